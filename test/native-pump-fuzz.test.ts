// A differential fuzzer for the native session pump (native/session_pump.c, the proxy's
// default transport): its hostile side (mesh -> app) and its state machine, driven directly
// over two loopback TCP pairs. Each case is a random mesh byte stream (valid frames of random
// sizes under random starting nonces, END-OF-STREAM, and mutations: zero and short lengths,
// flipped bits, replayed, dropped and swapped frames, garbage, truncation, data after
// END-OF-STREAM, a peer reset), cut into random pieces and delivered with random pauses, while
// the application side sends, half-closes, resets or reads slowly. The ORACLE is the JS
// transport (FrameDecoder and the noble CipherState, exactly as secure-session.ts uses them)
// run over the same bytes: what the application may receive, how the session ends and why.
//
// Deterministic by default (seeds 1..DEFAULT_CASES; the timing still varies). More:
//   PUMP_FUZZ_CASES=5000 node --test dist/test/native-pump-fuzz.test.js
//   PUMP_FUZZ_SEED=123 PUMP_FUZZ_CASES=1 ...   replays case 123 (a failure prints this line).
// PUMP_FUZZ_ADDON=/path/to/session_pump.node loads another build (scripts/pump-sanitize.sh
// runs an ASan + UBSan one); PUMP_FUZZ_VERBOSE=1 prints each case's plan and outcome.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { CipherState, loadBackend, nativeBackend, NoiseError, type CipherName, type CryptoBackend } from '../src/noise/index.js';
import { FrameDecoder, FrameError } from '../src/proxy/protocol/index.js';
import { addonPath, loadAddon } from '../src/native/index.js';
import { Rng } from './helpers/random.js';
import { tcpPair as loopbackPair } from './helpers/tcp-pair.js';

const DEFAULT_CASES = 250;
/** Seeds that show a known pump bug, kept out of the default run (replay them by seed). */
const KNOWN_BAD_SEEDS: ReadonlySet<number> = new Set([]);
const CASE_DEADLINE_MS = 15_000;
const SETTLE_DEADLINE_MS = 3_000;
/**
 * stats().bufferedBytes can never exceed the header's sizing argument: to_app <= one mesh
 * read's plaintext (65,519 + 65,536), to_mesh <= one app read sealed (65,572), a partial frame
 * (< 65,535) and one header byte.
 */
const BUFFER_BOUND = 65_519 + 65_536 + 65_572 + 65_534 + 1;
const MAX_PLAINTEXT = 65_519;
const U64_MAX = 2n ** 64n - 1n;
const EMPTY = new Uint8Array(0);


const EMPTY_BUFFER = Buffer.alloc(0);

/** The pump's counters this test reads: [bytesFromApp, bytesToApp, bufferedBytes]. */
function statsOf(handle: PumpHandle): [number, number, number] {
  const out = new Float64Array(4);
  addon.stats(handle, out);
  return [out[0]!, out[1]!, out[2]!];
}

// ---- the addon, and the ONE call of its start() ------------------------------------------

type PumpHandle = object & { readonly __pump: unique symbol };
type PumpEnd = (result: 'closed' | 'aborted', reason: string | null, bytesFromApp: number, bytesToApp: number) => void;
interface SessionPumpAddon {
  start(...args: unknown[]): PumpHandle;
  abort(handle: PumpHandle, reason: string): void;
  stats(handle: PumpHandle, out: Float64Array): void;
}

const ADDON_PATH = process.env.PUMP_FUZZ_ADDON ?? addonPath('session_pump');
const loaded = loadAddon<SessionPumpAddon>(ADDON_PATH, ['start', 'abort', 'stats']);
if (!loaded.ok) throw new Error(`the session pump addon did not load: ${loaded.reason}`);
const addon = loaded.addon;

interface Direction {
  key: Uint8Array;
  nonce: bigint;
}

function fdOf(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  assert.ok(typeof fd === 'number' && fd >= 0, 'a TCP socket with a descriptor');
  return fd;
}

/**
 * The one place that calls start(): adapt here when its arguments change. The key bytes are
 * copies (the addon copies them again; the caller wipes its own in production).
 */
function startPump(app: Socket, mesh: Socket, cipher: CipherName, send: Direction, recv: Direction, onEnd: PumpEnd, appPending: Buffer, meshPending: Buffer): PumpHandle {
  const hi = (n: bigint) => Number(n >> 32n);
  const lo = (n: bigint) => Number(n & 0xffff_ffffn);
  return addon.start(
    fdOf(app), fdOf(mesh), cipher === 'ChaChaPoly' ? 0 : 1,
    Uint8Array.from(send.key), hi(send.nonce), lo(send.nonce),
    Uint8Array.from(recv.key), hi(recv.nonce), lo(recv.nonce),
    onEnd, appPending, meshPending,
  );
}

// ---- plans: what one case does -------------------------------------------------------------

/** Deterministic bytes from the case's generator (AES-CTR keystream under a key it draws). */
function bytesFrom(rng: Rng, n: number): Buffer {
  const key = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) key[i] = rng.int(256);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

/** A starting nonce: small, just before a 2^16 boundary (REKEY), a u32 carry, or near 2^64-1. */
function nonceFrom(rng: Rng): bigint {
  const r = rng.next();
  if (r < 0.15) return BigInt(rng.int(4));
  if (r < 0.25) return BigInt(rng.int(100_000));
  if (r < 0.55) return BigInt(1 + rng.int(5_000)) * 65_536n - BigInt(rng.int(8)); // REKEY within a few messages
  if (r < 0.65) return (BigInt(rng.int(2 ** 32)) << 32n) + 0xffff_ffffn - BigInt(rng.int(6)); // hi/lo carry, and REKEY
  if (r < 0.8) return U64_MAX - BigInt(rng.int(8)); // exhaustion within a few messages
  return (BigInt(rng.int(2 ** 32)) << 32n) | BigInt(rng.int(2 ** 32));
}

/** A plaintext size in 1..65,519, weighted to small ones and to the edges 1 and 65,519. */
function plaintextSize(rng: Rng): number {
  const r = rng.next();
  if (r < 0.35) return 1 + rng.int(64);
  if (r < 0.5) return 1 + rng.int(2_000);
  if (r < 0.58) return 1;
  if (r < 0.66) return MAX_PLAINTEXT;
  if (r < 0.72) return MAX_PLAINTEXT - rng.int(40);
  if (r < 0.88) return 1 + rng.int(16_384);
  return 1 + rng.int(MAX_PLAINTEXT);
}

type AppEnding = 'end-on-eof' | 'end-early' | 'end-late' | 'reset' | 'end-then-reset';
/**
 * How a far end reads: at once; 'slow', paused and resumed for one loop turn every 1-4 ms;
 * 'stall', the same every 30-80 ms. Loopback buffers ~3.8 MB between a writer and a paused
 * reader, so only a flood (4.5-6 MB) towards a stalled reader makes the pump queue and stop
 * reading the other side.
 */
type Reader = 'prompt' | 'slow' | 'stall';
type Step = { kind: 'send'; data: Buffer } | { kind: 'yield' } | { kind: 'sleep'; ms: number };

interface Plan {
  seed: number;
  cipher: CipherName;
  send: Direction; // the pump's sending CipherState (app -> mesh)
  recv: Direction; // the pump's receiving CipherState (mesh -> app)
  stream: Buffer; // what the peer writes to the mesh socket, before its FIN or RST
  pieces: number[]; // the writes it is cut into
  pauses: number[]; // per piece: 0 = none, -1 = setImmediate, n > 0 = n ms
  ending: 'fin' | 'rst';
  appSteps: Step[];
  appEnding: AppEnding;
  appSlow: Reader;
  peerSlow: Reader;
  revokeAfterMs: number | null;
  notes: string[];
  /** Bytes node "had read" before the hand-over, given to start(): the stream's first ones, and the app's first sends. */
  meshPending: number;
  appPending: number;
}

function makePlan(seed: number): Plan {
  const rng = new Rng(seed);
  const notes: string[] = [];
  const cipher: CipherName = rng.chance(0.5) ? 'ChaChaPoly' : 'AESGCM';
  const send = { key: bytesFrom(rng, 32), nonce: nonceFrom(rng) };
  const recv = { key: bytesFrom(rng, 32), nonce: nonceFrom(rng) };
  // A flood: megabytes towards a stalled reader (the mesh's frames to the app, or the app's
  // data to the peer), for the pump's write queues and backpressure.
  const flood = rng.chance(0.04) ? rng.pick(['to-app', 'to-peer'] as const) : null;
  const appSlow: Reader = flood === 'to-app' ? 'stall' : rng.chance(0.25) ? 'slow' : 'prompt';
  const peerSlow: Reader = flood === 'to-peer' ? 'stall' : rng.chance(0.15) ? 'slow' : 'prompt';
  const budget = flood === 'to-app' ? 4_500_000 + rng.int(1_500_000) : appSlow === 'slow' ? 1_500_000 : 400_000;
  if (flood !== null) notes.push(`flood ${flood}`);

  // The peer's CipherState; once it reaches 2^64-1 it cannot seal, and a hostile peer sends
  // a well-formed frame of random bytes instead.
  const peerSend = new CipherState(nativeBackend.cipher(cipher), Uint8Array.from(recv.key));
  peerSend.setNonce(recv.nonce);
  const seal = (plaintext: Uint8Array): Buffer => {
    let body: Uint8Array;
    try {
      body = peerSend.encryptWithAd(EMPTY, plaintext);
      if (peerSend.nonceLow16 === 0) peerSend.rekey();
    } catch {
      body = bytesFrom(rng, plaintext.length + 16);
    }
    return Buffer.concat([Buffer.from([body.length >> 8, body.length & 0xff]), body]);
  };

  // Units: whole frames (or inserted garbage), so mutations can aim at one.
  const units: Buffer[] = [];
  let total = 0;
  const frames = flood === 'to-app' ? 1_000 : rng.pick([0, 1, 1, 2, 2, 3, 4, 5, 8, 12, 20, 40]);
  for (let i = 0; i < frames && total < budget; i++) {
    const size = flood === 'to-app' && rng.chance(0.8) ? MAX_PLAINTEXT : plaintextSize(rng);
    total += size;
    units.push(seal(bytesFrom(rng, size)));
  }
  let eosIndex = -1;
  if (rng.chance(0.85)) {
    eosIndex = units.length;
    units.push(seal(EMPTY));
    if (rng.chance(0.2)) {
      const what = rng.pick(['frame', 'eos', 'garbage', 'zero', 'short']);
      notes.push(`after EOS: ${what}`);
      if (what === 'frame') units.push(seal(bytesFrom(rng, plaintextSize(rng))));
      else if (what === 'eos') units.push(seal(EMPTY));
      else if (what === 'garbage') units.push(bytesFrom(rng, 1 + rng.int(rng.chance(0.5) ? 4 : 3_000)));
      else if (what === 'zero') units.push(Buffer.from([0, 0]));
      else units.push(Buffer.concat([Buffer.from([0, 1 + rng.int(15)]), bytesFrom(rng, 15)]).subarray(0, 2 + 1 + rng.int(15)));
    }
  }
  notes.push(`${frames} data frames (${total} B), ${eosIndex >= 0 ? 'EOS' : 'no EOS'}`);

  // Mutations on units.
  // A flood mostly runs to its end: an early fault would stop it before any queue fills.
  const mutations = rng.chance(flood === null ? 0.5 : 0.15) ? 1 + (rng.chance(0.3) ? 1 : 0) : 0;
  for (let m = 0; m < mutations; m++) {
    const kind = rng.pick(['zero', 'short', 'flip-header', 'flip-body', 'flip-tag', 'replay', 'drop', 'swap', 'garbage', 'foreign']);
    const at = rng.int(units.length + 1);
    const target = units.length === 0 ? -1 : rng.int(units.length);
    notes.push(`${kind}@${kind.startsWith('flip') || kind === 'drop' ? target : at}`);
    switch (kind) {
      case 'zero':
        units.splice(at, 0, Buffer.from([0, 0]));
        break;
      case 'short': {
        const len = 1 + rng.int(15);
        units.splice(at, 0, Buffer.concat([Buffer.from([0, len]), bytesFrom(rng, len)]));
        break;
      }
      case 'flip-header':
      case 'flip-body':
      case 'flip-tag': {
        if (target < 0) break;
        const u = Buffer.from(units[target]!);
        const bodyLen = u.length - 2;
        let pos: number;
        if (kind === 'flip-header' || bodyLen <= 0) pos = rng.int(Math.min(2, u.length));
        else if (kind === 'flip-tag' && bodyLen >= 16) pos = u.length - 1 - rng.int(16);
        else pos = 2 + rng.int(Math.max(1, bodyLen - 16));
        if (pos < u.length) u[pos]! ^= 1 << rng.int(8);
        units[target] = u;
        break;
      }
      case 'replay':
        if (target >= 0) units.splice(at, 0, units[target]!);
        break;
      case 'drop':
        if (target >= 0) units.splice(target, 1);
        break;
      case 'swap':
        if (target >= 0 && target + 1 < units.length) [units[target], units[target + 1]] = [units[target + 1]!, units[target]!];
        break;
      case 'garbage':
        units.splice(at, 0, bytesFrom(rng, 1 + rng.int(rng.chance(0.5) ? 3 : 200)));
        break;
      case 'foreign': // well-formed frame under another key
        units.splice(at, 0, Buffer.concat([Buffer.from([0, 40]), bytesFrom(rng, 40)]));
        break;
    }
  }

  let stream = Buffer.concat(units);
  // Truncation: FIN mid-header, mid-body, before EOS, or anywhere.
  if (stream.length > 0 && rng.chance(0.15)) {
    const starts: number[] = [];
    for (let i = 0, off = 0; i < units.length; off += units[i]!.length, i++) starts.push(off);
    const k = rng.int(units.length);
    const where = rng.pick(['mid-header', 'mid-body', 'before-eos', 'anywhere']);
    let cut: number;
    if (where === 'mid-header') cut = starts[k]! + 1;
    else if (where === 'mid-body') cut = starts[k]! + 2 + rng.int(Math.max(1, units[k]!.length - 2));
    else if (where === 'before-eos' && eosIndex >= 0 && eosIndex < starts.length) cut = starts[eosIndex]!;
    else cut = rng.int(stream.length);
    cut = Math.min(cut, stream.length);
    notes.push(`truncated ${where} at ${cut}/${stream.length}`);
    stream = stream.subarray(0, cut);
  }
  let ending: 'fin' | 'rst' = 'fin';
  if (rng.chance(0.1)) {
    ending = 'rst';
    stream = stream.subarray(0, rng.int(stream.length + 1));
    notes.push(`peer RST after ${stream.length} B`);
  }

  // Cuts: 1 byte .. 70 KiB, in a style per case.
  const style = rng.pick(['one', 'tiny', 'small', 'large', 'mixed', 'mixed']);
  const effective = style === 'tiny' && stream.length > 6_000 ? 'mixed' : style;
  const pieces: number[] = [];
  const pauses: number[] = [];
  for (let off = 0; off < stream.length; ) {
    const kind = effective === 'mixed' ? rng.pick(['tiny', 'small', 'large']) : effective;
    const max = kind === 'one' ? stream.length : kind === 'tiny' ? 3 : kind === 'small' ? 3_000 : 70 * 1024;
    const n = Math.min(stream.length - off, 1 + rng.int(max));
    pieces.push(n);
    const r = rng.next();
    pauses.push(r < 0.55 ? 0 : r < 0.95 ? -1 : 1 + rng.int(3));
    off += n;
  }
  notes.push(`${pieces.length} pieces (${effective}), ${cipher}, send n=${send.nonce}, recv n=${recv.nonce}`);

  // The application: sends, pauses, then its ending.
  const appSteps: Step[] = [];
  const appBudget = flood === 'to-peer' ? 4_500_000 + rng.int(1_500_000) : peerSlow === 'slow' ? 1_500_000 : 300_000;
  if (flood === 'to-peer' || rng.chance(0.5)) {
    let sent = 0;
    for (let i = flood === 'to-peer' ? 1_000 : 1 + rng.int(6); i > 0 && sent < appBudget; i--) {
      const size = flood === 'to-peer' ? 100_000 + rng.int(900_000) : rng.pick([1 + rng.int(100), 1 + rng.int(70_000), 1 + rng.int(200_000)]);
      appSteps.push({ kind: 'send', data: bytesFrom(rng, size) });
      sent += size;
      appSteps.push(rng.chance(0.5) ? { kind: 'yield' } : { kind: 'sleep', ms: rng.int(4) });
    }
  }
  for (let i = rng.int(4); i > 0; i--) appSteps.push(rng.chance(0.5) ? { kind: 'yield' } : { kind: 'sleep', ms: rng.int(8) });
  const r = rng.next();
  const appEnding: AppEnding = r < 0.55 ? 'end-on-eof' : r < 0.72 ? 'end-early' : r < 0.84 ? 'end-late' : r < 0.93 ? 'reset' : 'end-then-reset';
  const revokeAfterMs = rng.chance(0.04) ? rng.int(20) : null;
  notes.push(`app: ${appSteps.filter((s) => s.kind === 'send').length} sends, ${appEnding}, app reader ${appSlow}, peer reader ${peerSlow}${revokeAfterMs !== null ? `, revoke at ${revokeAfterMs} ms` : ''}`);
  // The hand-over's pending bytes, from a generator of their own (the plans above stay as
  // they were): often none; else a prefix of the stream (past READ_SIZE at times, so the
  // pump cuts it in chunks) and of the app's first sends, as node would have read them.
  const pending = new Rng((seed * 2654435761 + 12345) >>> 0);
  const meshPending = pending.chance(0.3) ? Math.min(stream.length, pending.pick([1, 2, 3, 1 + pending.int(4_000), 1 + pending.int(150_000)])) : 0;
  const firstSend = appSteps.find((st) => st.kind === 'send');
  const appPending = firstSend !== undefined && pending.chance(0.3) ? 1 + pending.int(firstSend.data.length) : 0;
  if (meshPending > 0 || appPending > 0) notes.push(`pending: mesh ${meshPending} B, app ${appPending} B`);
  return { seed, cipher, send, recv, stream, pieces, pauses, ending, appSteps, appEnding, appSlow, peerSlow, revokeAfterMs, notes, meshPending, appPending };
}

// ---- the oracle: the JS transport over the same bytes ---------------------------------------

interface Model {
  messages: Buffer[]; // data plaintexts before the end or the fault, in order
  eos: boolean; // END-OF-STREAM opened before the end or the fault
  verdict: 'clean' | 'open' | string; // clean = EOS then FIN; open = no end seen (RST); else the abort reason
}

let modelBackend: CryptoBackend;

/**
 * secure-session.ts's fromMesh/meshEnded over `stream` fed in `pieces`: FrameDecoder (zero
 * length -> 'frame'), 'data-after-eos' before any decryption, the CipherState's nonce check
 * ('nonce-exhausted') and DecryptError ('decrypt'), REKEY at n & 0xffff == 0, and at the FIN
 * 'truncated' unless END-OF-STREAM came and no byte of a further frame was read.
 */
function model(plan: Plan): Model {
  const cs = new CipherState(modelBackend.cipher(plan.cipher), Uint8Array.from(plan.recv.key));
  cs.setNonce(plan.recv.nonce);
  const decoder = new FrameDecoder();
  const messages: Buffer[] = [];
  let eos = false;
  let fault: string | null = null;
  let off = 0;
  let framed = 0; // bytes of whole frames handed out
  for (const n of plan.pieces) {
    const chunk = plan.stream.subarray(off, off + n);
    off += n;
    try {
      decoder.push(Buffer.from(chunk), (m) => {
        framed += 2 + m.length;
        if (eos) {
          fault = 'data-after-eos';
          return false;
        }
        const plaintext = cs.decryptWithAd(EMPTY, m);
        if (cs.nonceLow16 === 0) cs.rekey();
        if (plaintext.length === 0) eos = true;
        else messages.push(Buffer.from(plaintext));
        return true;
      });
    } catch (err) {
      if (err instanceof FrameError) fault = 'frame';
      else if (err instanceof NoiseError && err.code === 'NOISE_NONCE_EXHAUSTED') fault = 'nonce-exhausted';
      else if (err instanceof NoiseError && err.code === 'NOISE_DECRYPT') fault = 'decrypt';
      else throw err;
    }
    if (fault !== null) return { messages, eos, verdict: fault };
  }
  if (plan.ending === 'rst') return { messages, eos, verdict: 'open' };
  // Not decoder.hasPartialFrame(): it is false between a frame's header and its first body
  // byte (FrameDecoder keeps the length in `partial`, with 0 bytes filled), so a FIN there
  // after END-OF-STREAM passes as a clean end in secure-session.ts: a JS bug; the pump is right.
  if (!eos || off > framed) return { messages, eos, verdict: 'truncated' };
  return { messages, eos, verdict: 'clean' };
}

// ---- running one case -----------------------------------------------------------------------

/** A connected pair whose far end's ports are remembered (for /proc/net/tcp after the end). */
async function tcpPair(): Promise<[Socket, Socket]> {
  const [ours, theirs] = await loopbackPair();
  ports.set(theirs, [theirs.localPort!, theirs.remotePort!]);
  return [ours, theirs];
}

const ports = new WeakMap<Socket, [number, number]>();
// /proc/net/tcp states in which the socket has received a FIN.
const FIN_RECEIVED = new Set(['06', '08', '09', '0B']); // TIME_WAIT, CLOSE_WAIT, LAST_ACK, CLOSING

/**
 * What an 'end' event of `s` really was. libuv reports an RST that arrives while data is
 * still unread as EOF (POLLHUP after a partial read: uv__stream_io), so node emits 'end' for
 * it; the kernel tells them apart: after a FIN the socket is listed in a FIN-received state
 * ('end'); a socket that is no longer listed was reset ('end:reset') unless it had sent its
 * own FIN, when a completed close looks the same ('end:gone', either). Call it synchronously
 * from the 'end' listener.
 */
function endKind(s: Socket): 'end' | 'end:reset' | 'end:gone' {
  const [local, remote] = ports.get(s)!;
  const hex = (p: number) => p.toString(16).toUpperCase().padStart(4, '0');
  const want = `0100007F:${hex(local)} 0100007F:${hex(remote)} `;
  for (const line of readFileSync('/proc/net/tcp', 'latin1').split('\n')) {
    const at = line.indexOf(want);
    if (at >= 0 && FIN_RECEIVED.has(line.substr(at + want.length, 2))) return 'end';
  }
  return s.writableEnded ? 'end:gone' : 'end:reset';
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const tick = () => new Promise<void>((r) => setImmediate(r));

interface Observed {
  ends: { result: string; reason: string | null; fromApp: number; toApp: number }[];
  statsAfter: [number, number, number] | null;
  appData: Buffer[];
  appEvents: string[]; // 'end', 'error:CODE', 'close' in order
  appWritten: number;
  appSent: Buffer[];
  appEndCalled: boolean; // before the pump ended
  appResetBeforeEnd: boolean;
  appResetAfterHalfClose: boolean;
  revokedBeforeEnd: boolean;
  peerData: Buffer[];
  peerEos: boolean;
  peerEvents: string[];
  peerFault: string | null;
  violations: string[];
  maxBuffered: number;
  delivered: number;
}

async function execute(plan: Plan, expected: Model): Promise<Observed> {
  const timing = new Rng((plan.seed ^ 0x9e3779b9) >>> 0);
  const [appOurs, app] = await tcpPair();
  const [meshOurs, peer] = await tcpPair();
  const obs: Observed = {
    ends: [], statsAfter: null, appData: [], appEvents: [], appWritten: 0, appSent: [], appEndCalled: false,
    appResetBeforeEnd: false, appResetAfterHalfClose: false, revokedBeforeEnd: false, peerData: [], peerEos: false, peerEvents: [], peerFault: null,
    violations: [], maxBuffered: 0, delivered: 0,
  };
  const boundaries = new Set<number>([0]);
  for (let i = 0, s = 0; i < expected.messages.length; i++) boundaries.add((s += expected.messages[i]!.length));
  const deadline = Date.now() + CASE_DEADLINE_MS;
  let ended = false;
  let resolveEnded!: () => void;
  const endedPromise = new Promise<void>((r) => (resolveEnded = r));

  // What node had read before the hand-over: the first bytes of the stream, and of the app's
  // first send (the rest of that send is written to the socket as usual below).
  const meshPending = plan.stream.subarray(0, plan.meshPending);
  const firstSend = plan.appSteps.findIndex((st) => st.kind === 'send');
  const steps = plan.appSteps.slice();
  let appPending: Buffer = EMPTY_BUFFER;
  if (plan.appPending > 0 && firstSend >= 0) {
    const data = (steps[firstSend] as { kind: 'send'; data: Buffer }).data;
    appPending = data.subarray(0, plan.appPending);
    steps[firstSend] = { kind: 'send', data: data.subarray(plan.appPending) };
    obs.appWritten += appPending.length;
    obs.appSent.push(appPending);
  }
  obs.delivered = meshPending.length;
  const handle = startPump(appOurs, meshOurs, plan.cipher, plan.send, plan.recv, (result, reason, fromApp, toApp) => {
    obs.ends.push({ result, reason, fromApp, toApp });
    ended = true;
    // As secure-session.ts: node's sockets are the last holders; destroying them is the final close.
    appOurs.destroy();
    meshOurs.destroy();
    resolveEnded();
  }, appPending, meshPending);

  let lastFromApp = 0;
  let lastToApp = 0;
  const checkStats = () => {
    const [fromApp, toApp, buffered] = statsOf(handle);
    if (ended) {
      if (buffered !== 0) obs.violations.push(`stats after the end: bufferedBytes ${buffered}`);
      return;
    }
    obs.maxBuffered = Math.max(obs.maxBuffered, buffered);
    if (!(buffered >= 0 && buffered <= BUFFER_BOUND)) obs.violations.push(`bufferedBytes ${buffered} > ${BUFFER_BOUND}`);
    if (fromApp < lastFromApp || toApp < lastToApp) obs.violations.push(`stats went back: ${lastFromApp}/${lastToApp} -> ${fromApp}/${toApp}`);
    if (fromApp > obs.appWritten) obs.violations.push(`bytesFromApp ${fromApp} > ${obs.appWritten} written`);
    if (!boundaries.has(toApp)) obs.violations.push(`bytesToApp ${toApp} is no message boundary of the model`);
    lastFromApp = fromApp;
    lastToApp = toApp;
  };
  const poller = setInterval(checkStats, 1);

  // The application.
  app.on('data', (c: Buffer) => obs.appData.push(c));
  app.on('end', () => obs.appEvents.push(endKind(app)));
  app.on('error', (e: NodeJS.ErrnoException) => obs.appEvents.push(`error:${e.code}`));
  app.on('close', () => obs.appEvents.push('close'));
  // The remote proxy: opens what the pump sends, as secure-session.ts would.
  const peerRecv = new CipherState(nativeBackend.cipher(plan.cipher), Uint8Array.from(plan.send.key));
  peerRecv.setNonce(plan.send.nonce);
  const decoder = new FrameDecoder();
  peer.on('data', (chunk: Buffer) => {
    if (obs.peerFault !== null) return;
    try {
      decoder.push(chunk, (m) => {
        if (obs.peerEos) {
          obs.peerFault = 'a frame after END-OF-STREAM';
          return false;
        }
        const plaintext = peerRecv.decryptWithAd(EMPTY, m);
        if (peerRecv.nonceLow16 === 0) peerRecv.rekey();
        if (plaintext.length === 0) obs.peerEos = true;
        else obs.peerData.push(Buffer.from(plaintext));
        return true;
      });
    } catch (err) {
      obs.peerFault = `the pump sent a frame the peer cannot open: ${(err as Error).message}`;
    }
  });
  peer.on('end', () => {
    obs.peerEvents.push(endKind(peer));
    if (obs.peerEvents.at(-1) === 'end' && (!obs.peerEos || decoder.hasPartialFrame())) obs.peerFault ??= 'FIN without END-OF-STREAM from the pump';
  });
  peer.on('error', (e: NodeJS.ErrnoException) => obs.peerEvents.push(`error:${e.code}`));
  peer.on('close', () => obs.peerEvents.push('close'));

  // Slow readers: paused, resumed for one loop turn now and then.
  const slowReader = async (s: Socket, how: Reader) => {
    s.pause();
    while (!ended && Date.now() < deadline) {
      await sleep(how === 'stall' ? 30 + timing.int(50) : 1 + timing.int(4));
      s.resume();
      await tick();
      if (!ended) s.pause();
    }
    s.resume();
  };
  const tasks: Promise<void>[] = [];
  if (plan.appSlow !== 'prompt') tasks.push(slowReader(app, plan.appSlow));
  if (plan.peerSlow !== 'prompt') tasks.push(slowReader(peer, plan.peerSlow));

  const waitOr = async (p: Promise<unknown>) => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([p, endedPromise, new Promise((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now()))))]);
    clearTimeout(timer);
  };

  // The peer delivers the stream.
  tasks.push((async () => {
    let off = meshPending.length;
    for (let i = 0; i < plan.pieces.length && off < plan.stream.length && !ended && Date.now() < deadline; i++) {
      const piece = plan.stream.subarray(off, off + plan.pieces[i]!);
      off += piece.length;
      obs.delivered = off;
      const flushed = peer.write(piece);
      if (!flushed) await waitOr(once(peer, 'drain'));
      const pause = plan.pauses[i]!;
      if (pause === -1) await tick();
      else if (pause > 0) await sleep(pause);
    }
    if (ended) return;
    if (plan.ending === 'rst') peer.resetAndDestroy();
    else peer.end();
  })());

  // The application sends, then ends or resets.
  let eofSeen!: () => void;
  const appEof = new Promise<void>((r) => (eofSeen = r));
  app.on('end', () => eofSeen());
  tasks.push((async () => {
    for (const step of steps) {
      if (ended || Date.now() >= deadline) return;
      if (step.kind === 'send') {
        if (step.data.length === 0) continue;
        obs.appWritten += step.data.length;
        obs.appSent.push(step.data);
        if (!app.write(step.data)) await waitOr(once(app, 'drain'));
      } else if (step.kind === 'yield') await tick();
      else await sleep(step.ms);
    }
    if (plan.appEnding === 'end-on-eof') await waitOr(appEof);
    else if (plan.appEnding === 'end-late') await sleep(timing.int(15));
    if (ended) return;
    if (plan.appEnding === 'reset') {
      obs.appResetBeforeEnd = true;
      app.resetAndDestroy();
    } else {
      obs.appEndCalled = true;
      app.end();
      if (plan.appEnding !== 'end-then-reset') return;
      await sleep(timing.int(10));
      if (ended) return;
      obs.appResetBeforeEnd = true;
      obs.appResetAfterHalfClose = true;
      app.resetAndDestroy();
    }
  })());

  let revokeTimer: NodeJS.Timeout | undefined;
  if (plan.revokeAfterMs !== null) {
    revokeTimer = setTimeout(() => {
      if (ended) return;
      obs.revokedBeforeEnd = true;
      addon.abort(handle, 'revoked');
    }, plan.revokeAfterMs);
  }

  let deadlineTimer: NodeJS.Timeout | undefined;
  await Promise.race([endedPromise, new Promise((r) => (deadlineTimer = setTimeout(r, CASE_DEADLINE_MS)))]);
  clearTimeout(deadlineTimer);
  clearTimeout(revokeTimer);
  clearInterval(poller);
  if (!ended) {
    const [fromApp, toApp, buffered] = statsOf(handle);
    obs.violations.push(`no end within ${CASE_DEADLINE_MS} ms (stats ${fromApp}/${toApp}/${buffered}, delivered ${obs.delivered}/${plan.stream.length})`);
    addon.abort(handle, 'shutdown');
  }
  obs.statsAfter = statsOf(handle);
  checkStats();
  // Let both far ends see what the pump's close sent them (FIN or RST), bounded.
  app.resume();
  peer.resume();
  const settled = (events: string[], s: Socket) => s.destroyed || events.some((e) => e.startsWith('end') || e.startsWith('error') || e === 'close');
  for (let i = 0; i < SETTLE_DEADLINE_MS / 5 && !(settled(obs.appEvents, app) && settled(obs.peerEvents, peer)); i++) await sleep(5);
  await Promise.all(tasks);
  await sleep(2); // an onEnd called twice would show here
  app.destroy();
  peer.destroy();
  return obs;
}

// ---- the verdict ----------------------------------------------------------------------------

/** Known, documented pump behaviours a case showed (counted, not failed). */
const known = new Map<string, number>();

function verdictFor(plan: Plan, expected: Model, obs: Observed): string[] {
  const problems = [...obs.violations];
  if (obs.peerFault !== null) problems.push(`peer: ${obs.peerFault}`);
  if (obs.ends.length !== 1) {
    problems.push(`onEnd called ${obs.ends.length} times`);
    if (obs.ends.length === 0) return problems;
  }
  const end = obs.ends[0]!;
  const P = Buffer.concat(expected.messages);
  const B = Buffer.concat(obs.appData);
  const boundaries = new Set<number>([0]);
  for (let i = 0, s = 0; i < expected.messages.length; i++) boundaries.add((s += expected.messages[i]!.length));
  const appSent = Buffer.concat(obs.appSent);
  const peerGot = Buffer.concat(obs.peerData);
  // 'end' = a FIN; 'end:reset' or 'error:ECONNRESET'/'error:EPIPE' = an RST.
  const appResult = obs.appEvents.find((e) => e.startsWith('end') || e.startsWith('error'));
  // 'end:gone' cannot be told from either (endKind), so it passes as both.
  const isReset = (e: string | undefined) => e !== undefined && /^(end:reset|end:gone|error:ECONNRESET|error:EPIPE)$/.test(e);

  // Which ends the model allows.
  const allowed = new Set<string>();
  if (expected.verdict === 'open') allowed.add('peer-reset');
  else if (expected.verdict !== 'clean') allowed.add(expected.verdict);
  if (plan.ending === 'rst') allowed.add('peer-reset');
  if (obs.appResetBeforeEnd) allowed.add('app-reset');
  // Sending needs at least ceil(bytes / 65,519) messages (and one for EOS), at most one per byte.
  const room = U64_MAX - plan.send.nonce;
  const eosMsg = obs.appEndCalled ? 1n : 0n;
  const minMsgs = BigInt(Math.ceil(obs.appWritten / MAX_PLAINTEXT)) + eosMsg;
  const maxMsgs = BigInt(obs.appWritten) + eosMsg;
  if (maxMsgs > room) allowed.add('nonce-exhausted');
  // NOTES.md second reading, finding 7 (open): after the app's EOF the pump no longer polls
  // it, so an RST from the app after its half-close goes unnoticed unless something is written
  // to it; a clean mesh end then closes the session, where the JS path aborts 'app-reset'.
  const lateReset = obs.appResetAfterHalfClose;
  const closedAllowed = expected.verdict === 'clean' && obs.appEndCalled && (!obs.appResetBeforeEnd || lateReset) && minMsgs <= room;

  if (obs.revokedBeforeEnd) {
    // abort() ends the session synchronously, so nothing else can have come first.
    if (end.result !== 'aborted' || end.reason !== 'revoked') problems.push(`revoked while running, but ended ${end.result}/${end.reason}`);
  } else if (end.result === 'closed') {
    if (!closedAllowed) problems.push(`closed, but the model says ${expected.verdict} (allowed: ${[...allowed].join(', ')})`);
    if (end.reason !== null) problems.push(`closed with reason ${end.reason}`);
  } else if (end.result === 'aborted') {
    if (!allowed.has(end.reason ?? '')) problems.push(`aborted '${end.reason}', the model allows ${[...allowed].join(', ') || 'nothing'} (model: ${expected.verdict})`);
  } else problems.push(`unknown result ${end.result}`);

  // What the application received.
  if (!P.subarray(0, B.length).equals(B)) problems.push(`the app received ${B.length} B that are not a prefix of the model's ${P.length} B`);
  if (end.result === 'closed' && lateReset) {
    known.set('closed after the app reset its half-closed socket (NOTES finding 7)', (known.get('closed after the app reset its half-closed socket (NOTES finding 7)') ?? 0) + 1);
  } else if (end.result === 'closed') {
    if (!B.equals(P)) problems.push(`closed, but the app got ${B.length} of ${P.length} B`);
    if (appResult !== 'end' && appResult !== 'end:gone') problems.push(`closed, but the app saw ${obs.appEvents.join(',') || 'nothing'}`);
    if (end.toApp !== P.length) problems.push(`closed, bytesToApp ${end.toApp} != ${P.length}`);
    if (end.fromApp !== obs.appWritten) problems.push(`closed, bytesFromApp ${end.fromApp} != ${obs.appWritten} written`);
    if (!peerGot.equals(appSent) || !obs.peerEos || !obs.peerEvents.some((e) => e === 'end' || e === 'end:gone')) {
      problems.push(`closed, but the peer got ${peerGot.length}/${appSent.length} B, EOS ${obs.peerEos}, ${obs.peerEvents.join(',')}`);
    }
  } else if (end.result === 'aborted') {
    if (!boundaries.has(end.toApp)) problems.push(`aborted, bytesToApp ${end.toApp} is no message boundary`);
    // Not "B ends at a message boundary", nor "B = bytesToApp": the RST of an abort makes the
    // kernel drop what the pump's socket had not yet transmitted (loopback sends only as far
    // as the app's receive window), which cuts anywhere.
    if (B.length > end.toApp) problems.push(`the app received ${B.length} B, more than bytesToApp ${end.toApp}`);
    if (end.fromApp > obs.appWritten || peerGot.length > end.fromApp) problems.push(`bytesFromApp ${end.fromApp}: peer got ${peerGot.length}, app wrote ${obs.appWritten}`);
    if (!obs.appResetBeforeEnd) {
      if (appResult === 'end') {
        // A FIN only after END-OF-STREAM, and after all that came before it.
        if (!expected.eos || !B.equals(P)) problems.push(`aborted, the app saw a FIN after ${B.length}/${P.length} B (model EOS: ${expected.eos})`);
      } else if (!isReset(appResult)) {
        problems.push(`aborted, the app saw ${obs.appEvents.join(',') || 'nothing'}, not a reset`);
      }
    }
    if (plan.ending !== 'rst') {
      // A FIN only after the pump's END-OF-STREAM (checked as it came), else an RST.
      const peerResult = obs.peerEvents.find((e) => e.startsWith('end') || e.startsWith('error'));
      if (!(peerResult === 'end' && obs.peerEos) && !isReset(peerResult)) problems.push(`aborted, the peer saw ${obs.peerEvents.join(',') || 'nothing'}, not a reset`);
    }
  }
  if (!appSent.subarray(0, peerGot.length).equals(peerGot)) problems.push(`the peer got ${peerGot.length} B that are not a prefix of what the app sent`);
  if (obs.statsAfter !== null && obs.statsAfter[2] !== 0) problems.push(`stats after the end: bufferedBytes ${obs.statsAfter[2]}`);
  return problems;
}

// ---- the run ----------------------------------------------------------------------------------

function caseSeeds(): number[] {
  const first = process.env.PUMP_FUZZ_SEED;
  const n = Number(process.env.PUMP_FUZZ_CASES ?? DEFAULT_CASES);
  const count = Number.isInteger(n) && n > 0 ? n : DEFAULT_CASES;
  const start = first === undefined ? 1 : Number(first) >>> 0;
  const seeds: number[] = [];
  for (let i = 0; i < count; i++) {
    const s = (start + i) >>> 0;
    // Known-bad seeds are left out of the default run only; a given seed always runs.
    if (first === undefined && KNOWN_BAD_SEEDS.has(s)) continue;
    seeds.push(s);
  }
  return seeds;
}

test('native pump fuzz: random mesh streams, cuts and app behaviour against the JS transport as oracle', async (t) => {
  modelBackend = await loadBackend('noble');
  const seeds = caseSeeds();
  const verbose = process.env.PUMP_FUZZ_VERBOSE === '1';
  const counts = new Map<string, number>();
  const failures: string[] = [];
  let maxBuffered = 0;
  let queued = 0;
  const started = Date.now();
  t.diagnostic(`addon: ${ADDON_PATH}`);
  for (const seed of seeds) {
    const plan = makePlan(seed);
    const expected = model(plan);
    const obs = await execute(plan, expected);
    const problems = verdictFor(plan, expected, obs);
    const end = obs.ends[0];
    const outcome = end === undefined ? 'none' : end.result === 'closed' ? 'closed' : `aborted:${end.reason}`;
    counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
    maxBuffered = Math.max(maxBuffered, obs.maxBuffered);
    if (obs.maxBuffered > 65_535) queued++; // more than a partial frame can be: a write queue held bytes
    if (verbose) t.diagnostic(`seed ${seed}: ${outcome} (model ${expected.verdict}); ${plan.notes.join('; ')}`);
    if (problems.length > 0) {
      failures.push(
        `seed ${seed} (replay: PUMP_FUZZ_SEED=${seed} PUMP_FUZZ_CASES=1): ${problems.join(' | ')}\n` +
          `  plan: ${plan.notes.join('; ')}\n  model: ${expected.verdict}, ${expected.messages.length} messages, EOS ${expected.eos}; ` +
          `app events ${obs.appEvents.join(',')}; peer events ${obs.peerEvents.join(',')}; ends ${JSON.stringify(obs.ends)}`,
      );
      if (failures.length >= 5) break;
    }
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  t.diagnostic(`${seeds.length} cases (seeds ${seeds[0]}..${seeds.at(-1)}) in ${seconds} s; max bufferedBytes ${maxBuffered}, ${queued} cases seen holding > 64 KiB (a write queue)`);
  t.diagnostic(`outcomes: ${[...counts].sort().map(([k, v]) => `${k} ${v}`).join(', ')}`);
  for (const [what, n] of known) t.diagnostic(`known: ${what}: ${n} cases`);
  assert.deepEqual(failures, [], failures.join('\n'));
});
