/**
 * Noise benchmarks, per backend: IK handshakes per second, transport throughput against
 * node:crypto's raw AEAD in the same run, and the message size below which noble's
 * ChaCha20-Poly1305 beats node:crypto's (the split @chainsafe/libp2p-noise makes).
 * bench/README.md explains every figure and records the last results.
 */
import { createCipheriv, createDecipheriv, diffieHellman, generateKeyPairSync, randomBytes } from 'node:crypto';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import {
  HandshakeState,
  defaultAeadEngine,
  nativeBackendWith,
  loadBackend,
  parseProtocolName,
  type CipherName,
  type CryptoBackend,
  type KeyPair,
  type Protocol,
  type Transport,
} from '../src/noise/index.js';
import { listOption, type BenchModule } from './lib/module.js';
import { pairedRatio } from './lib/stats.js';
import { formatPercent, formatRate, formatRatio, formatTable } from './lib/table.js';
import { measureGroup, type Case, type Measured, type TimingOptions } from './lib/timing.js';

const nobleBackend = await loadBackend('noble');

/**
 * The native backend on each AEAD engine (src/noise/aead-openssl.ts), and noble. `native`
 * is what the proxy runs; the node:crypto engine is its fallback when the addon is absent.
 */
const BACKENDS: readonly { readonly label: string; readonly backend: CryptoBackend }[] = [
  { label: 'native', backend: nativeBackendWith('context') },
  { label: 'native/node:crypto', backend: nativeBackendWith('node-crypto') },
  { label: 'noble', backend: nobleBackend },
];
const CIPHERS: readonly CipherName[] = ['ChaChaPoly', 'AESGCM'];
/** 64 KiB stands for the largest transport message: 65535 minus the 16-byte tag. */
const TRANSPORT_SIZES = [64, 1400, 16384, 65519] as const;
/** 0 and 32 are the handshake's own AEAD calls (empty payload, encrypted static key). */
const CROSSOVER_SIZES = [0, 32, 64, 128, 256, 512, 1024, 1400, 4096] as const;

const HANDSHAKE_TIMING: TimingOptions = { warmupMs: 400, roundMs: 250, rounds: 7 };
const TRANSPORT_TIMING: TimingOptions = { warmupMs: 300, roundMs: 200, rounds: 7 };
const CROSSOVER_TIMING: TimingOptions = { warmupMs: 200, roundMs: 100, rounds: 7 };

/** PROTOCOL.md 2: `noisemesh/1`, a zero byte, the trust domain. */
const PROLOGUE = new TextEncoder().encode('noisemesh/1\0cluster.local');
/** PROTOCOL.md 4.1 and 4.2 without extensions: P1 is 21 bytes, P2 is 12. */
const P1 = new Uint8Array(21);
const P2 = new Uint8Array(12);
const TAG_LEN = 16;

function protocolFor(cipher: CipherName): Protocol {
  return parseProtocolName(`Noise_IK_25519_${cipher}_BLAKE2s`);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Both sides of one IK handshake, as a proxy runs it: static keys built once and reused,
 * a fresh ephemeral per handshake, the responder learning the initiator's static key from
 * the wire (so only the initiator's `ss` can come from the native backend's memo, as in a
 * real proxy). Throws unless both sides end with the same handshake hash.
 */
function ikHandshake(
  protocol: Protocol,
  backend: CryptoBackend,
  initiatorStatic: KeyPair,
  responderStatic: KeyPair,
): [Transport, Transport] {
  const initiator = new HandshakeState({
    protocol,
    initiator: true,
    prologue: PROLOGUE,
    staticKeyPair: initiatorStatic,
    remoteStaticKey: responderStatic.publicKey,
    backend,
  });
  const responder = new HandshakeState({ protocol, initiator: false, prologue: PROLOGUE, staticKeyPair: responderStatic, backend });
  responder.readMessage(initiator.writeMessage(P1).message);
  const written = responder.writeMessage(P2);
  const read = initiator.readMessage(written.message);
  if (read.transport === null || written.transport === null) throw new Error('IK did not complete in two messages');
  if (!equalBytes(read.transport.handshakeHash, written.transport.handshakeHash)) throw new Error('handshake hashes differ');
  return [read.transport, written.transport];
}

function handshakeCase({ label, backend }: (typeof BACKENDS)[number]): Case {
  const protocol = protocolFor('ChaChaPoly');
  const dh = backend.dh('25519');
  const initiatorStatic = dh.generateKeyPair();
  const responderStatic = dh.generateKeyPair();
  return {
    name: `${label} IK`,
    unitsPerOp: 1,
    run(ops) {
      for (let i = 0; i < ops; i++) ikHandshake(protocol, backend, initiatorStatic, responderStatic);
    },
  };
}

/**
 * The X25519 work an IK handshake cannot avoid, done straight on node:crypto KeyObjects:
 * two key generations and eight DH (four per side: es, ss, ee, se). Everything a handshake
 * costs beyond this is hashing, AEAD, key import and our own code.
 */
function dhFloorCase(): Case {
  const s1 = generateKeyPairSync('x25519');
  const s2 = generateKeyPairSync('x25519');
  return {
    name: 'node X25519 floor (2 keygen + 8 DH)',
    unitsPerOp: 1,
    run(ops) {
      for (let i = 0; i < ops; i++) {
        const e1 = generateKeyPairSync('x25519');
        const e2 = generateKeyPairSync('x25519');
        for (const [privateKey, publicKey] of [
          [e1.privateKey, s2.publicKey], // es, initiator
          [s1.privateKey, s2.publicKey], // ss, initiator
          [s2.privateKey, e1.publicKey], // es, responder
          [s2.privateKey, s1.publicKey], // ss, responder
          [e2.privateKey, e1.publicKey], // ee, responder
          [e2.privateKey, s1.publicKey], // se, responder
          [e1.privateKey, e2.publicKey], // ee, initiator
          [s1.privateKey, e2.publicKey], // se, initiator
        ] as const) {
          diffieHellman({ privateKey, publicKey });
        }
      }
    },
  };
}

/** One transport message sealed by the initiator and opened by the responder. */
function transportCase({ label, backend }: (typeof BACKENDS)[number], cipher: CipherName, size: number): Case {
  const dh = backend.dh('25519');
  const [sender, receiver] = ikHandshake(protocolFor(cipher), backend, dh.generateKeyPair(), dh.generateKeyPair());
  const plaintext = new Uint8Array(randomBytes(size));
  if (!equalBytes(receiver.decrypt(sender.encrypt(plaintext)), plaintext)) throw new Error(`${label} ${cipher} round trip`);
  return {
    name: `${label} ${cipher}`,
    unitsPerOp: size,
    run(ops) {
      for (let i = 0; i < ops; i++) {
        if (receiver.decrypt(sender.encrypt(plaintext)).length !== size) throw new Error('short plaintext');
      }
    },
  };
}

/**
 * The ceiling: node:crypto's AEAD called directly, a fresh cipher per message as the
 * transport must (each message has its own nonce), tag kept apart, no framing, no copy.
 */
function rawNodeCase(algorithm: 'chacha20-poly1305' | 'aes-256-gcm', size: number): Case {
  const key = randomBytes(32);
  const nonce = Buffer.alloc(12);
  const plaintext = randomBytes(size);
  return {
    name: `raw node ${algorithm}`,
    unitsPerOp: size,
    run(ops) {
      for (let i = 0; i < ops; i++) {
        nonce.writeUInt32LE(i, 4);
        const cipher = createCipheriv(algorithm as 'chacha20-poly1305', key, nonce, { authTagLength: TAG_LEN });
        const body = cipher.update(plaintext);
        cipher.final();
        const tag = cipher.getAuthTag();
        const decipher = createDecipheriv(algorithm as 'chacha20-poly1305', key, nonce, { authTagLength: TAG_LEN });
        decipher.setAuthTag(tag);
        const opened = decipher.update(body);
        decipher.final();
        if (opened.length !== size) throw new Error('short plaintext');
      }
    },
  };
}

/** noble's ChaCha20-Poly1305 called directly, the counterpart of rawNodeCase. */
function rawNobleChachaCase(size: number): Case {
  const key = new Uint8Array(randomBytes(32));
  const nonce = new Uint8Array(12);
  const view = new DataView(nonce.buffer);
  const plaintext = new Uint8Array(randomBytes(size));
  return {
    name: 'raw noble chacha20-poly1305',
    unitsPerOp: size,
    run(ops) {
      for (let i = 0; i < ops; i++) {
        view.setUint32(4, i, true);
        const sealed = chacha20poly1305(key, nonce).encrypt(plaintext);
        if (chacha20poly1305(key, nonce).decrypt(sealed).length !== size) throw new Error('short plaintext');
      }
    },
  };
}

function byName(results: readonly Measured[], name: string): Measured {
  const found = results.find((r) => r.name === name);
  if (found === undefined) throw new Error(`no result named '${name}'`);
  return found;
}

function benchHandshakes(): void {
  const floor = dhFloorCase();
  const results = measureGroup([floor, ...BACKENDS.map(handshakeCase)], HANDSHAKE_TIMING);
  const base = byName(results, floor.name);
  const rows = results.map((r) => [
    r.name,
    formatRate(r.rate.median),
    formatPercent(r.rate.spread),
    formatRatio(pairedRatio(r.rate, base.rate).median),
    formatRate(1e6 / r.rate.median),
  ]);
  console.log('## Noise_IK_25519_ChaChaPoly_BLAKE2s: both sides of a handshake in one thread\n');
  console.log(formatTable(['case', 'handshakes/s', 'spread', 'x floor', 'µs each'], rows));
  console.log();
}

function benchTransport(): void {
  console.log('## Transport: one message sealed then opened (MB/s of plaintext, 1 MB = 10^6 bytes)\n');
  const rows: string[][] = [];
  for (const size of TRANSPORT_SIZES) {
    const cases: Case[] = [];
    const ceilingOf: Record<string, string> = {};
    for (const cipher of CIPHERS) {
      const raw = rawNodeCase(cipher === 'ChaChaPoly' ? 'chacha20-poly1305' : 'aes-256-gcm', size);
      cases.push(raw);
      for (const backend of BACKENDS) {
        const c = transportCase(backend, cipher, size);
        cases.push(c);
        ceilingOf[c.name] = raw.name;
      }
    }
    const results = measureGroup(cases, TRANSPORT_TIMING);
    const chachaCeiling = byName(results, 'raw node chacha20-poly1305');
    for (const r of results) {
      const own = byName(results, ceilingOf[r.name] ?? r.name);
      rows.push([
        String(size),
        r.name,
        formatRate(r.rate.median / 1e6),
        formatPercent(r.rate.spread),
        formatRatio(pairedRatio(r.rate, own.rate).median),
        formatRatio(pairedRatio(r.rate, chachaCeiling.rate).median),
      ]);
    }
  }
  console.log(formatTable(['bytes', 'case', 'MB/s', 'spread', 'x own raw', 'x raw chacha'], rows));
  console.log();
}

function benchCrossover(): void {
  console.log('## ChaCha20-Poly1305 per message: noble against node:crypto (seal then open)\n');
  const rows: string[][] = [];
  let crossover: number | null = null;
  for (const size of CROSSOVER_SIZES) {
    const node = rawNodeCase('chacha20-poly1305', size);
    const noble = rawNobleChachaCase(size);
    // Rates per message, not per byte, so that the 0-byte case means something.
    const results = measureGroup(
      [node, noble].map((c) => ({ ...c, unitsPerOp: 1 })),
      CROSSOVER_TIMING,
    );
    const nodeRate = byName(results, node.name).rate;
    const nobleRate = byName(results, noble.name).rate;
    const ratio = pairedRatio(nobleRate, nodeRate).median;
    if (ratio > 1) crossover = size;
    rows.push([
      String(size),
      formatRate(1e6 / nodeRate.median),
      formatRate(1e6 / nobleRate.median),
      formatRatio(ratio),
      ratio > 1 ? 'noble' : 'node',
    ]);
  }
  console.log(formatTable(['bytes', 'node µs', 'noble µs', 'noble speed x node', 'faster'], rows));
  console.log(
    crossover === null
      ? '\nnoble is slower than node:crypto at every size measured: no crossover.\n'
      : `\nnoble is faster up to ${crossover} bytes (the largest size where it won).\n`,
  );
}

/**
 * Transport runs first: after the handshake section, and noble's handshakes above all,
 * the same transport cases measured 10-15% lower against their raw ceiling (heap and JIT
 * state left behind), while the handshake figures do not mind what ran before them.
 */
const SECTIONS: Readonly<Record<string, () => void>> = {
  transport: benchTransport,
  handshake: benchHandshakes,
  crossover: benchCrossover,
};

/** The sections `--only=` names, if given; throws one line for a name that is no section. */
function noiseSections(args: readonly string[]): string[] | undefined {
  const only = listOption(args, 'only', `sections (${Object.keys(SECTIONS).join(', ')})`);
  for (const name of only ?? []) {
    if (!Object.hasOwn(SECTIONS, name)) throw new Error(`unknown noise section '${name}': choose from ${Object.keys(SECTIONS).join(', ')}`);
  }
  return only;
}

export const noiseBench: BenchModule = {
  name: 'noise',
  description: 'IK handshakes/s, transport MB/s against raw node:crypto AEAD, noble-vs-node ChaCha crossover',
  /** `--only=transport` (or handshake, crossover; comma-separated) runs part of it. */
  options: ['--only='],
  check: noiseSections,
  run(args) {
    if (defaultAeadEngine.fallbackReason !== undefined) {
      console.log(`**The AEAD context addon is not built** (${defaultAeadEngine.fallbackReason}): \`native\` cannot be measured.\n`);
    }
    const only = noiseSections(args);
    for (const [name, section] of Object.entries(SECTIONS)) {
      if (only === undefined || only.includes(name)) section();
    }
  },
};
