// noisemesh's Noise core against an independent implementation: github.com/flynn/noise, driven
// by test/interop/flynn-peer (Go, built here from Debian's packaged sources). The two talk over
// the peer's stdin/stdout in NMP/1 framing: preamble, u16 length-prefixed frames, IK message 1
// and 2 with payloads, then transport messages both ways, closed by END-OF-STREAM.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DecryptError,
  HandshakeState,
  MAX_MESSAGE_LEN,
  MAX_PLAINTEXT_LEN,
  nativeBackend,
  loadBackend,
  type CryptoBackend,
  type KeyPair,
  type Transport,
} from '../src/noise/index.js';
import { buildGoProgram, findGo, findGopathWith } from './helpers/go.js';
import { repoRoot } from './helpers/paths.js';

const nobleBackend = await loadBackend('noble');

/** Bound on every single wait for the peer: a frame, its exit. */
const WAIT_MS = 20_000;
/** Bound on compiling the peer (about 1 s with Debian's precompiled standard library). */
const BUILD_MS = 240_000;
const PREAMBLE = Buffer.from([0x4e, 0x4d, 0x01, 0x00]);
/** flynn-peer's exit codes (test/interop/flynn-peer/main.go). */
const EXIT = { ok: 0, handshake: 3, check: 4, transport: 5, framing: 6 } as const;
const BACKENDS: readonly CryptoBackend[] = [nativeBackend, nobleBackend];
const ROLES = ['initiator', 'responder'] as const;
type Role = (typeof ROLES)[number];

let workDir = '';
let peerBinary = '';
const livePeers = new Set<FlynnPeer>();

before(
  async () => {
    findGo(); // fails first, with the install hint, when there is no toolchain at all
    const gopath = findGopathWith('github.com/flynn/noise');
    findGopathWith('golang.org/x/crypto/curve25519');
    workDir = await mkdtemp(join(tmpdir(), 'noisemesh-interop-'));
    peerBinary = join(workDir, 'flynn-peer');
    await buildGoProgram({
      sourceDir: join(repoRoot, 'test', 'interop', 'flynn-peer'),
      output: peerBinary,
      gopath,
      cacheDir: join(workDir, 'cache'),
      timeoutMs: BUILD_MS,
    });
  },
  { timeout: BUILD_MS + WAIT_MS },
);

after(async () => {
  await Promise.all([...livePeers].map((peer) => peer.kill()));
  if (workDir !== '') await rm(workDir, { recursive: true, force: true });
});

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const random = (length: number): Uint8Array => new Uint8Array(randomBytes(length));

/** What flynn-peer answers to a transport plaintext: reversed, each byte XOR 0xA5. */
function transform(plaintext: Uint8Array): Uint8Array {
  const reply = new Uint8Array(plaintext.length);
  for (let i = 0; i < plaintext.length; i++) reply[plaintext.length - 1 - i] = plaintext[i]! ^ 0xa5;
  return reply;
}

function frame(message: Uint8Array): Buffer {
  assert.ok(message.length >= 1 && message.length <= MAX_MESSAGE_LEN, `cannot frame a ${message.length}-byte message`);
  const framed = Buffer.allocUnsafe(2 + message.length);
  framed.writeUInt16BE(message.length, 0);
  framed.set(message, 2);
  return framed;
}

/** Byte equality that names the first difference instead of printing 64 KiB of hex. */
function sameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  if (Buffer.from(actual).equals(Buffer.from(expected))) return;
  let at = 0;
  while (at < actual.length && at < expected.length && actual[at] === expected[at]) at++;
  assert.fail(`${what}: ${actual.length} bytes where ${expected.length} were expected, first difference at offset ${at}`);
}

/** Every error a failed handshake read may throw must be this one, and say where it failed. */
function isHandshakeDecryptError(err: unknown): boolean {
  assert.ok(err instanceof DecryptError, `expected a DecryptError, got ${String(err)}`);
  assert.equal(err.code, 'NOISE_DECRYPT');
  assert.equal(err.where, 'handshake');
  return true;
}

/** One flynn-peer process: frames in on its stdin, frames out on its stdout, reports on stderr. */
class FlynnPeer {
  private readonly child: ChildProcessWithoutNullStreams;
  private pending: Buffer = Buffer.alloc(0);
  private outputEnded = false;
  private wake: (() => void) | null = null;
  private stderrText = '';
  /** Every byte the peer ever wrote on stdout. */
  stdoutBytes = 0;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: readonly string[], secrets: { staticPrivate: Uint8Array; psk?: Uint8Array }) {
    // Secrets travel in the environment, never on the command line or in a message.
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', NOISE_PEER_STATIC_PRIVATE: hex(secrets.staticPrivate) };
    if (secrets.psk !== undefined) env.NOISE_PEER_PSK = hex(secrets.psk);
    this.child = spawn(peerBinary, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    livePeers.add(this);
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        livePeers.delete(this);
        resolve({ code, signal });
      });
      this.child.once('error', (err) => {
        this.stderrText += `\n(spawn failed: ${err.message})`;
        livePeers.delete(this);
        resolve({ code: null, signal: null });
      });
    });
    this.child.stdout.on('data', (chunk: Buffer) => {
      this.stdoutBytes += chunk.length;
      this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
      this.wake?.();
    });
    this.child.stdout.once('end', () => {
      this.outputEnded = true;
      this.wake?.();
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (text: string) => {
      if (this.stderrText.length < 64 * 1024) this.stderrText += text;
    });
    // EPIPE once the peer has exited after a failure; its exit code and stderr say why.
    this.child.stdin.on('error', () => {});
  }

  /** Bytes the peer wrote that no read has consumed. */
  get unread(): number {
    return this.pending.length;
  }

  write(bytes: Uint8Array): void {
    this.child.stdin.write(bytes);
  }

  writeFrame(message: Uint8Array): void {
    this.write(frame(message));
  }

  /** Closes the peer's input: what a noisemesh proxy does when it closes the connection. */
  endInput(): void {
    this.child.stdin.end();
  }

  async readExactly(length: number, what: string): Promise<Buffer> {
    const deadline = Date.now() + WAIT_MS;
    while (this.pending.length < length) {
      if (this.outputEnded) {
        throw new Error(`flynn-peer closed its output before ${what} (${this.pending.length} of ${length} bytes); its stderr:\n${this.stderrText}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} from flynn-peer within ${WAIT_MS} ms; its stderr:\n${this.stderrText}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
    const bytes = this.pending.subarray(0, length);
    this.pending = this.pending.subarray(length);
    return bytes;
  }

  async readFrame(what: string): Promise<Uint8Array> {
    const length = (await this.readExactly(2, `the length of ${what}`)).readUInt16BE(0);
    assert.notEqual(length, 0, `flynn-peer sent a zero-length frame for ${what}`);
    return new Uint8Array(await this.readExactly(length, what));
  }

  /** Waits, bounded, for the peer to exit; kills it if it does not. */
  async exit(): Promise<{ code: number | null; stderr: string }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), WAIT_MS);
    });
    const outcome = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      await this.kill();
      throw new Error(`flynn-peer did not exit within ${WAIT_MS} ms; its stderr:\n${this.stderrText}`);
    }
    return { code: outcome.code, stderr: this.stderrText };
  }

  /** The JSON report the peer printed as `flynn-peer: <kind> {...}`. */
  report(kind: 'handshake' | 'done'): Record<string, unknown> {
    const prefix = `flynn-peer: ${kind} `;
    const line = this.stderrText.split('\n').find((l) => l.startsWith(prefix));
    assert.ok(line !== undefined, `flynn-peer printed no '${kind}' report; its stderr:\n${this.stderrText}`);
    return JSON.parse(line.slice(prefix.length)) as Record<string, unknown>;
  }

  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGKILL');
    await Promise.race([this.exited, new Promise((resolve) => setTimeout(resolve, WAIT_MS))]);
  }
}

interface Session {
  readonly protocol: string;
  readonly backend: CryptoBackend;
  /** The role noisemesh plays; flynn-peer plays the other. */
  readonly role: Role;
  readonly prologue: Uint8Array;
  readonly ours: KeyPair;
  readonly theirs: KeyPair;
  /** The key noisemesh's initiator believes is the responder's (IK pre-message). */
  readonly ourBeliefOfTheirs: Uint8Array;
  readonly psk: Uint8Array | undefined;
  readonly payloads: { readonly fromInitiator: Uint8Array; readonly fromResponder: Uint8Array };
  readonly hs: HandshakeState;
  readonly peer: FlynnPeer;
}

interface SessionOverrides {
  /** The prologue flynn-peer uses, when it must differ from ours. */
  readonly theirPrologue?: Uint8Array;
  /** The responder's key flynn-peer's initiator believes in, when it must be wrong. */
  readonly theirBeliefOfOurs?: Uint8Array;
  /** The initiator's key flynn-peer's responder expects, when it must be wrong. */
  readonly theirExpectedInitiator?: Uint8Array;
  readonly ourBeliefOfTheirs?: Uint8Array;
  readonly theirPsk?: Uint8Array;
  /** flynn-peer's -rekey-every: Rekey() after every this many messages per CipherState. */
  readonly rekeyEvery?: number;
}

function prologueFor(trustDomain: string): Uint8Array {
  return new Uint8Array(Buffer.from(`noisemesh/1\0${trustDomain}`, 'utf8'));
}

/** Keys, payloads and a started flynn-peer for one session; nothing sent yet. */
function startSession(protocol: string, backend: CryptoBackend, role: Role, overrides: SessionOverrides = {}): Session {
  const dh = backend.dh('25519');
  const ours = dh.generateKeyPair();
  // flynn-peer derives its public key from this private key on its own (x/crypto/curve25519):
  // a disagreement with noisemesh's keyPairFromPrivate would fail every handshake.
  const theirs = dh.keyPairFromPrivate(random(32));
  const prologue = prologueFor(`interop-${randomInt(1e9)}.cluster.local`);
  const psk = protocol.startsWith('Noise_IKpsk2_') ? random(32) : undefined;
  const payloads = { fromInitiator: random(randomInt(1, 200)), fromResponder: random(randomInt(1, 200)) };
  const ourBeliefOfTheirs = overrides.ourBeliefOfTheirs ?? theirs.publicKey;

  const weInitiate = role === 'initiator';
  const args = [
    `-protocol=${protocol}`,
    `-role=${weInitiate ? 'responder' : 'initiator'}`,
    `-prologue=${hex(overrides.theirPrologue ?? prologue)}`,
    `-payload=${hex(weInitiate ? payloads.fromResponder : payloads.fromInitiator)}`,
    `-expect-payload=${hex(weInitiate ? payloads.fromInitiator : payloads.fromResponder)}`,
    weInitiate
      ? `-expect-remote-static=${hex(overrides.theirExpectedInitiator ?? ours.publicKey)}`
      : `-remote-static=${hex(overrides.theirBeliefOfOurs ?? ours.publicKey)}`,
    `-rekey-every=${overrides.rekeyEvery ?? 0}`,
  ];
  // Before the peer starts, so that a throw here leaves no process behind.
  const hs = new HandshakeState({
    protocol,
    initiator: weInitiate,
    backend,
    prologue,
    staticKeyPair: ours,
    ...(weInitiate && { remoteStaticKey: ourBeliefOfTheirs }),
    ...(psk && { psks: [psk] }),
  });
  const theirPsk = overrides.theirPsk ?? psk;
  const peer = new FlynnPeer(args, { staticPrivate: theirs.privateKey, ...(theirPsk && { psk: theirPsk }) });
  return { protocol, backend, role, prologue, ours, theirs, ourBeliefOfTheirs, psk, payloads, hs, peer };
}

/** Kills the peer whatever happened; a failed test leaves no process behind. */
async function withSession(session: Session, body: (s: Session) => Promise<void>): Promise<void> {
  try {
    await body(session);
  } finally {
    await session.peer.kill();
  }
}

/** Both IK messages, with payloads; returns noisemesh's transport. */
async function handshake(s: Session): Promise<Transport> {
  if (s.role === 'initiator') {
    const m1 = s.hs.writeMessage(s.payloads.fromInitiator);
    assert.equal(m1.transport, null, 'IK is not complete after message 1');
    s.peer.write(Buffer.concat([PREAMBLE, frame(m1.message)]));
    const m2 = await s.peer.readFrame('IK message 2');
    const read = s.hs.readMessage(m2);
    sameBytes(read.payload, s.payloads.fromResponder, "flynn responder's payload (P2)");
    assert.ok(read.transport !== null, 'IK is complete after message 2');
    return read.transport;
  }
  sameBytes(await s.peer.readExactly(PREAMBLE.length, 'the NMP/1 preamble'), PREAMBLE, 'preamble');
  const m1 = await s.peer.readFrame('IK message 1');
  const read = s.hs.readMessage(m1);
  sameBytes(read.payload, s.payloads.fromInitiator, "flynn initiator's payload (P1)");
  assert.equal(read.transport, null, 'IK is not complete after message 1');
  const remote = s.hs.remoteStaticKey;
  assert.ok(remote !== null, 'message 1 carried the initiator static key');
  sameBytes(remote, s.theirs.publicKey, "the flynn initiator's static key, as noisemesh read it from message 1");
  const m2 = s.hs.writeMessage(s.payloads.fromResponder);
  assert.ok(m2.transport !== null, 'IK is complete after message 2');
  s.peer.writeFrame(m2.message);
  return m2.transport;
}

/**
 * 24 data messages each way, of sizes that hit the AEAD block edges, the 65519-byte maximum
 * twice and random lengths, then END-OF-STREAM (an empty plaintext) each way.
 */
function plaintextSizes(): number[] {
  const sizes = [1, 15, 16, 17, 63, 64, 65, 1024, MAX_PLAINTEXT_LEN, MAX_PLAINTEXT_LEN - 1, MAX_PLAINTEXT_LEN];
  while (sizes.length < 24) sizes.push(sizes.length % 3 === 0 ? randomInt(1, MAX_PLAINTEXT_LEN + 1) : randomInt(1, 4097));
  for (let i = sizes.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [sizes[i], sizes[j]] = [sizes[j]!, sizes[i]!];
  }
  return [...sizes, 0];
}

/**
 * A whole session: handshake, every size of plaintextSizes() sent and its transformed echo
 * checked, END-OF-STREAM both ways, then flynn's own account of it. With `rekeyEvery`, both
 * sides call Rekey() on a CipherState after every that many messages on it.
 */
async function fullSession(protocol: string, backend: CryptoBackend, role: Role, rekeyEvery = 0): Promise<void> {
  await withSession(startSession(protocol, backend, role, { rekeyEvery }), async (s) => {
    const transport = await handshake(s);
    assert.ok(transport.remoteStaticKey !== null);
    sameBytes(transport.remoteStaticKey, s.theirs.publicKey, "the flynn peer's static key in noisemesh's transport");

    const sizes = plaintextSizes();
    const rekeyAfter = (count: number): boolean => rekeyEvery > 0 && count % rekeyEvery === 0;
    for (const [index, size] of sizes.entries()) {
      const plaintext = random(size);
      const ciphertext = transport.encrypt(plaintext);
      assert.equal(ciphertext.length, size + 16);
      s.peer.writeFrame(ciphertext);
      if (rekeyAfter(index + 1)) transport.sending!.rekey();
      const reply = await s.peer.readFrame(`the reply to transport message ${index + 1} (${size} bytes)`);
      sameBytes(transport.decrypt(reply), transform(plaintext), `flynn's reply to transport message ${index + 1} of ${size} bytes`);
      if (rekeyAfter(index + 1)) transport.receiving!.rekey();
    }
    // END-OF-STREAM was the last each way; nothing may follow it, so close.
    s.peer.endInput();
    const { code, stderr } = await s.peer.exit();
    assert.equal(code, EXIT.ok, `flynn-peer failed; its stderr:\n${stderr}`);
    assert.equal(s.peer.unread, 0, 'flynn-peer wrote nothing after its END-OF-STREAM');

    const hsReport = s.peer.report('handshake');
    assert.equal(hsReport.protocol, protocol);
    assert.equal(hsReport.handshakeHash, hex(transport.handshakeHash), 'flynn and noisemesh agree on the handshake hash');
    assert.equal(hsReport.localStatic, hex(s.theirs.publicKey), "flynn's own public key is the one noisemesh derived");
    assert.equal(hsReport.remoteStatic, hex(s.ours.publicKey), "flynn saw noisemesh's static key");
    assert.equal(hsReport.payload, hex(role === 'initiator' ? s.payloads.fromInitiator : s.payloads.fromResponder));
    const done = s.peer.report('done');
    assert.deepEqual(
      { received: done.received, sent: done.sent, sendNonce: done.sendNonce, receiveNonce: done.receiveNonce },
      { received: sizes.length, sent: sizes.length, sendNonce: sizes.length, receiveNonce: sizes.length },
    );
    assert.equal(done.plaintextBytes, sizes.reduce((a, b) => a + b, 0));
    assert.equal(done.rekeys, rekeyEvery === 0 ? 0 : 2 * Math.floor(sizes.length / rekeyEvery));
  });
}

// The suites the task names first, then every other one PROTOCOL.md section 2 allows a mesh
// to choose (IK over 25519; ChaChaPoly or AESGCM; SHA256, SHA512, BLAKE2s or BLAKE2b).
const PRIMARY_SUITES = ['25519_ChaChaPoly_BLAKE2s', '25519_AESGCM_SHA256'];
const OTHER_SUITES = ['ChaChaPoly', 'AESGCM']
  .flatMap((cipher) => ['SHA256', 'SHA512', 'BLAKE2s', 'BLAKE2b'].map((hash) => `25519_${cipher}_${hash}`))
  .filter((suite) => !PRIMARY_SUITES.includes(suite));

for (const pattern of ['IK', 'IKpsk2']) {
  for (const suite of PRIMARY_SUITES) {
    for (const backend of BACKENDS) {
      for (const role of ROLES) {
        const protocol = `Noise_${pattern}_${suite}`;
        test(`${protocol}: noisemesh (${backend.name}) as ${role} with flynn/noise, payloads, 25 transport messages each way`, () =>
          fullSession(protocol, backend, role));
      }
    }
  }
}

// PROTOCOL.md section 5 rekeys every 65536 messages; every 4 puts six Rekey() calls in each
// direction of a 25-message session, so flynn's REKEY(k) and ours must agree to the bit.
for (const suite of PRIMARY_SUITES) {
  for (const backend of BACKENDS) {
    for (const role of ROLES) {
      const protocol = `Noise_IK_${suite}`;
      test(`${protocol}: noisemesh (${backend.name}) as ${role} with flynn/noise, Rekey() after every 4 messages`, () =>
        fullSession(protocol, backend, role, 4));
    }
  }
}

for (const suite of OTHER_SUITES) {
  for (const backend of BACKENDS) {
    for (const role of ROLES) {
      const protocol = `Noise_IK_${suite}`;
      test(`${protocol}: noisemesh (${backend.name}) as ${role} with flynn/noise`, () => fullSession(protocol, backend, role));
    }
  }
}

// Failures. A handshake that must not complete fails on both sides: the reader of the first
// message that cannot be authenticated rejects it, and the other side never completes.

/** noisemesh initiates; flynn's responder must reject message 1 and answer nothing. */
async function flynnRejectsMessage1(s: Session, exitCode: number, reason: string): Promise<void> {
  s.peer.write(Buffer.concat([PREAMBLE, frame(s.hs.writeMessage(s.payloads.fromInitiator).message)]));
  const { code, stderr } = await s.peer.exit();
  assert.equal(code, exitCode, `flynn-peer should have failed (${reason}); its stderr:\n${stderr}`);
  assert.equal(s.peer.stdoutBytes, 0, 'flynn responder sent nothing in answer');
  assert.match(stderr, exitCode === EXIT.handshake ? /error handshake: read message 1/ : /error check:/);
  await assert.rejects(s.peer.readFrame('IK message 2'), /closed its output/);
  assert.ok(!s.hs.isMyTurn, 'noisemesh initiator is still waiting for message 2');
}

/** flynn initiates; noisemesh's responder must reject message 1 with a DecryptError. */
async function noisemeshRejectsMessage1(s: Session): Promise<void> {
  sameBytes(await s.peer.readExactly(PREAMBLE.length, 'the NMP/1 preamble'), PREAMBLE, 'preamble');
  const m1 = await s.peer.readFrame('IK message 1');
  assert.throws(() => s.hs.readMessage(m1), isHandshakeDecryptError);
  assert.equal(s.hs.remoteStaticKey, null, 'a rejected message 1 leaves no remote static key behind');
  // As a noisemesh responder does: close without sending a byte.
  s.peer.endInput();
  const { code, stderr } = await s.peer.exit();
  assert.equal(code, EXIT.framing, `flynn initiator should fail for want of message 2; its stderr:\n${stderr}`);
  assert.match(stderr, /error framing: end of file before the length of message 2/);
}

for (const backend of BACKENDS) {
  const protocol = 'Noise_IK_25519_ChaChaPoly_BLAKE2s';
  const otherDomain = prologueFor('some-other-domain.local');

  test(`mismatched prologue: flynn responder rejects noisemesh (${backend.name})'s message 1`, async () => {
    const s = startSession(protocol, backend, 'initiator', { theirPrologue: otherDomain });
    await withSession(s, (s) => flynnRejectsMessage1(s, EXIT.handshake, 'prologue differs'));
  });

  test(`mismatched prologue: noisemesh (${backend.name}) responder rejects flynn's message 1 with DecryptError`, async () => {
    const s = startSession(protocol, backend, 'responder', { theirPrologue: otherDomain });
    await withSession(s, noisemeshRejectsMessage1);
  });

  test(`wrong remote static key: flynn responder rejects noisemesh (${backend.name})'s message 1`, async () => {
    const s = startSession(protocol, backend, 'initiator', { ourBeliefOfTheirs: backend.dh('25519').generateKeyPair().publicKey });
    await withSession(s, (s) => flynnRejectsMessage1(s, EXIT.handshake, 'message 1 is for another responder'));
  });

  test(`wrong remote static key: noisemesh (${backend.name}) responder rejects flynn's message 1 with DecryptError`, async () => {
    const s = startSession(protocol, backend, 'responder', { theirBeliefOfOurs: backend.dh('25519').generateKeyPair().publicKey });
    await withSession(s, noisemeshRejectsMessage1);
  });

  test(`unknown initiator: flynn responder refuses noisemesh (${backend.name}) whose key it does not expect`, async () => {
    const s = startSession(protocol, backend, 'initiator', { theirExpectedInitiator: backend.dh('25519').generateKeyPair().publicKey });
    await withSession(s, (s) => flynnRejectsMessage1(s, EXIT.check, 'the initiator is not the expected one'));
  });

  // IKpsk2 mixes the psk at the end of message 2: message 1 still authenticates, and the
  // initiator is the one that finds out.
  const psk2 = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
  test(`wrong psk: noisemesh (${backend.name}) initiator rejects flynn's message 2 with DecryptError`, async () => {
    const s = startSession(psk2, backend, 'initiator', { theirPsk: random(32) });
    await withSession(s, async (s) => {
      s.peer.write(Buffer.concat([PREAMBLE, frame(s.hs.writeMessage(s.payloads.fromInitiator).message)]));
      const m2 = await s.peer.readFrame('IK message 2');
      assert.throws(() => s.hs.readMessage(m2), isHandshakeDecryptError);
      assert.ok(!s.hs.isMyTurn, 'a rejected message 2 leaves the initiator waiting for it');
      s.peer.endInput();
      const { code, stderr } = await s.peer.exit();
      assert.equal(code, EXIT.framing, `flynn responder should fail for want of transport; its stderr:\n${stderr}`);
      assert.match(stderr, /error framing: end of file before the length of a transport message/);
    });
  });

  test(`wrong psk: flynn initiator rejects noisemesh (${backend.name})'s message 2`, async () => {
    const s = startSession(psk2, backend, 'responder', { theirPsk: random(32) });
    await withSession(s, async (s) => {
      sameBytes(await s.peer.readExactly(PREAMBLE.length, 'the NMP/1 preamble'), PREAMBLE, 'preamble');
      const read = s.hs.readMessage(await s.peer.readFrame('IK message 1'));
      sameBytes(read.payload, s.payloads.fromInitiator, 'message 1 authenticates without the psk');
      s.peer.writeFrame(s.hs.writeMessage(s.payloads.fromResponder).message);
      const { code, stderr } = await s.peer.exit();
      assert.equal(code, EXIT.handshake, `flynn initiator should reject message 2; its stderr:\n${stderr}`);
      assert.match(stderr, /error handshake: read message 2/);
    });
  });
}
