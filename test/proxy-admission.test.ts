// What a stranger can make a responder hold before it is authenticated, module by module:
// handshake message lengths from the pattern, the first-frame assembler (an impossible
// message-1 length is refused on its two bytes, a possible one is held as it arrives), the
// reader on a real socket, the pending-handshake caps and their eviction order, and the
// descriptor budget. The process-level tests are in proxy-admission-process.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  HandshakeState,
  basePatternNames,
  handshakeMessageOverhead,
  nativeBackend,
  parseProtocolName,
} from '../src/noise/index.js';
import {
  HandshakeFrameAssembler,
  PROTOCOL,
  LIMITS,
  PendingHandshakes,
  descriptorBudget,
  decodeP2,
  encodeFrame,
  encodeP1,
  handshakeLimits,
  prologue,
  FrameDecoder,
  type HandshakeFrameStep,
  type ShedReason,
} from '../src/proxy/index.js';
import { readHandshakeFrame, HandshakeReadError } from '../src/proxy/session/handshake-reader.js';
import { readProcLimits } from '../src/proxy/runtime/index.js';
import { parseProxyConfig } from '../src/cli/config/proxy-config.js';
import { ConfigError } from '../src/cli/config/config-reader.js';
import { TRUST_DOMAIN, dial, readAll, tcpServer, twoProxies } from './helpers/mesh.js';

const IK = parseProtocolName(PROTOCOL.protocolName);
const PREAMBLE = Buffer.from(PROTOCOL.preamble);

function header(length: number): Buffer {
  const h = Buffer.alloc(2);
  h.writeUInt16BE(length);
  return h;
}

/** A buffer of its own (never node's shared pool), as a socket read is. */
function own(bytes: Buffer): Buffer {
  const out = Buffer.alloc(bytes.length);
  bytes.copy(out);
  return out;
}

test('handshake message lengths follow from the pattern, for every pattern, with and without psk', () => {
  const dh = nativeBackend.dh('25519');
  const names = basePatternNames.flatMap((base) => [base, `${base}psk0`, `${base}psk2`]);
  let checked = 0;
  for (const name of names) {
    let protocol;
    try {
      protocol = parseProtocolName(`Noise_${name}_25519_ChaChaPoly_BLAKE2s`);
    } catch {
      continue; // psk2 on a one-message pattern does not exist
    }
    checked++;
    const pattern = protocol.pattern;
    const keys = { initiator: dh.generateKeyPair(), responder: dh.generateKeyPair() };
    const psks = Array.from({ length: pattern.messages.flatMap((m) => m.tokens).filter((t) => t === 'psk').length }, () => new Uint8Array(32).fill(7));
    const party = (initiator: boolean): HandshakeState =>
      new HandshakeState({
        protocol,
        initiator,
        staticKeyPair: initiator ? keys.initiator : keys.responder,
        remoteStaticKey: initiator ? keys.responder.publicKey : keys.initiator.publicKey,
        psks,
      });
    const sides = { initiator: party(true), responder: party(false) };
    pattern.messages.forEach((m, index) => {
      const payload = new Uint8Array(index * 7 + 3);
      const writer = m.from === 'initiator' ? sides.initiator : sides.responder;
      const reader = m.from === 'initiator' ? sides.responder : sides.initiator;
      const { message } = writer.writeMessage(payload);
      assert.equal(message.length, payload.length + handshakeMessageOverhead(protocol, index), `${name} message ${index}`);
      reader.readMessage(message);
    });
    assert.throws(() => handshakeMessageOverhead(protocol, pattern.messages.length), RangeError);
  }
  assert.ok(checked >= 3 * basePatternNames.length - 3, `${checked} patterns checked`);
});

test('the longest message 1 is 32 + 48 + 8,192 + 16 bytes for every NMP/1 suite, psk or not', () => {
  for (const pattern of ['IK', 'IKpsk2']) {
    for (const cipher of ['ChaChaPoly', 'AESGCM']) {
      for (const hash of ['BLAKE2s', 'BLAKE2b', 'SHA256', 'SHA512']) {
        const limits = handshakeLimits(parseProtocolName(`Noise_${pattern}_25519_${cipher}_${hash}`));
        assert.equal(limits.message1, 32 + 48 + PROTOCOL.maxP1Length + 16);
        assert.equal(limits.message1, 8288);
        // PROTOCOL.md gives P2 no maximum but its u16 extensions length: the frame bounds it.
        assert.equal(limits.message2, PROTOCOL.maxFrameLength);
      }
    }
  }
  // The derivation follows the DH length rather than assuming 32.
  assert.equal(handshakeLimits(parseProtocolName('Noise_IK_448_ChaChaPoly_BLAKE2s')).message1, 56 + 72 + 8192 + 16);
});

test('an impossible message-1 length is refused on its two bytes, before any of it is held', () => {
  const max = handshakeLimits(IK).message1;
  for (const length of [max + 1, 0x2061, 0xffff]) {
    const a = new HandshakeFrameAssembler(max, true);
    assert.deepEqual(a.push(own(PREAMBLE)), { kind: 'more' });
    assert.deepEqual(a.push(own(header(length).subarray(0, 1))), { kind: 'more' });
    assert.deepEqual(a.push(own(header(length).subarray(1))), { kind: 'failed', failure: 'oversize' }, `length ${length}`);
    assert.equal(a.heldBytes, 0);
    assert.equal(a.retainedBytes, 0);
    assert.throws(() => a.push(Buffer.alloc(1)), /already/);
  }
  // The attack of issue 8: preamble, FF FF and 65,534 bytes in one read.
  const a = new HandshakeFrameAssembler(max, true);
  assert.deepEqual(a.push(Buffer.concat([PREAMBLE, header(0xffff), Buffer.alloc(65534, 1)])), { kind: 'failed', failure: 'oversize' });
  assert.equal(a.retainedBytes, 0);
  // Zero is malformed; a wrong preamble byte fails at that byte.
  assert.deepEqual(new HandshakeFrameAssembler(max, true).push(Buffer.concat([PREAMBLE, header(0)])), { kind: 'failed', failure: 'bad-frame' });
  assert.deepEqual(new HandshakeFrameAssembler(max, true).push(Buffer.from([0x4e, 0x4d, 0x02])), { kind: 'failed', failure: 'bad-preamble' });
});

test('a message 1 of the longest length, split at every size, is held only as far as it has arrived', () => {
  const max = handshakeLimits(IK).message1;
  const message = Buffer.alloc(max);
  for (let i = 0; i < message.length; i++) message[i] = (i * 31) & 0xff;
  const trailer = Buffer.from('after the frame');
  const wire = Buffer.concat([PREAMBLE, header(max), message, trailer]);
  for (const step of [1, 2, 3, 7, 100, 1000, 4096, wire.length]) {
    const a = new HandshakeFrameAssembler(max, true);
    let result: HandshakeFrameStep = { kind: 'more' };
    let arrived = 0;
    for (let i = 0; i < wire.length && result.kind === 'more'; i += step) {
      const chunk = own(wire.subarray(i, i + step));
      arrived += chunk.length;
      result = a.push(chunk);
      if (result.kind === 'more') {
        const bodyArrived = Math.max(0, arrived - PREAMBLE.length - 2);
        assert.equal(a.heldBytes, bodyArrived, `step ${step}: held = arrived`);
        // Never the announced length: at most the reads themselves (and their few header bytes).
        assert.ok(a.retainedBytes <= bodyArrived + step + PREAMBLE.length + 2, `step ${step}: ${a.retainedBytes} retained for ${bodyArrived} arrived`);
      }
    }
    assert.equal(result.kind, 'frame', `step ${step}`);
    if (result.kind !== 'frame') continue;
    assert.ok(result.message.equals(message), `step ${step}: the message`);
    // What followed in the last read is for the session's decoder; the rest of the wire was never pushed.
    const consumed = Math.ceil((PREAMBLE.length + 2 + max) / step) * step;
    assert.ok(result.rest.equals(wire.subarray(PREAMBLE.length + 2 + max, Math.min(consumed, wire.length))), `step ${step}: the rest`);
    assert.equal(a.heldBytes, 0);
  }
});

test('the initiator reads message 2 without a preamble, bounded by the frame', () => {
  const max = handshakeLimits(IK).message2;
  const a = new HandshakeFrameAssembler(max, false);
  const m2 = Buffer.alloc(48, 5);
  const step = a.push(Buffer.concat([header(48), m2]));
  assert.equal(step.kind, 'frame');
  assert.ok(step.kind === 'frame' && step.message.equals(m2) && step.rest.length === 0);
  const big = new HandshakeFrameAssembler(max, false);
  assert.deepEqual(big.push(own(header(0xffff))), { kind: 'more' });
  assert.deepEqual(big.push(own(Buffer.alloc(10))), { kind: 'more' });
  assert.equal(big.retainedBytes, 10, 'a 65,535-byte announcement costs what arrived');
});

/** A listening socket whose accepted connections the test reads with readHandshakeFrame. */
async function acceptOne(): Promise<{ port: number; accepted: Promise<Socket>; close(): Promise<void> }> {
  let resolveAccepted!: (s: Socket) => void;
  const accepted = new Promise<Socket>((r) => (resolveAccepted = r));
  const server = await tcpServer((s) => {
    s.pause();
    resolveAccepted(s);
  });
  return { port: server.port, accepted, close: () => server.close() };
}

test('the reader on a socket: an oversize length fails at once, long before the deadline', async () => {
  const listener = await acceptOne();
  try {
    const client = await dial(listener.port);
    client.on('error', () => {});
    const socket = await listener.accepted;
    const started = Date.now();
    const reading = readHandshakeFrame(socket, { timeoutMs: 10_000, expectPreamble: true, maxLength: handshakeLimits(IK).message1 });
    client.write(Buffer.concat([PREAMBLE, header(0xffff)]));
    await assert.rejects(reading, (err: unknown) => err instanceof HandshakeReadError && err.failure === 'oversize');
    assert.ok(Date.now() - started < 5_000, 'refused on the header, not at the deadline');
    client.destroy();
  } finally {
    await listener.close();
  }
});

test('the reader on a socket: bytes after the frame reach the session decoder', async () => {
  const listener = await acceptOne();
  try {
    const client = await dial(listener.port);
    const socket = await listener.accepted;
    const reading = readHandshakeFrame(socket, { timeoutMs: 10_000, expectPreamble: false, maxLength: 100 });
    client.write(Buffer.concat([header(3), Buffer.from('abc'), encodeFrame(Buffer.from('next'))]));
    const { message, decoder } = await reading;
    assert.equal(message.toString(), 'abc');
    const frames: string[] = [];
    decoder.push(Buffer.alloc(0), (m) => void frames.push(m.toString()));
    assert.deepEqual(frames, ['next']);
    client.destroy();
  } finally {
    await listener.close();
  }
});

test('a message 1 that arrives in pieces, within bounds, is answered: status 0', async () => {
  const target = await tcpServer((s) => s.end('served'));
  const mesh = await twoProxies(target.port);
  try {
    const socket = await dial(mesh.serverMeshPort);
    const handshake = new HandshakeState({
      protocol: IK,
      initiator: true,
      staticKeyPair: mesh.clientId.keyPair,
      remoteStaticKey: mesh.serverId.keyPair.publicKey,
      prologue: prologue(TRUST_DOMAIN),
    });
    // The longest P1 there is, so message 1 is exactly the bound.
    const p1 = encodeP1({ timestampNs: BigInt(Date.now()) * 1_000_000n, generation: 1n, targetPort: target.port, extensions: [{ type: 99, value: new Uint8Array(PROTOCOL.maxP1Length - PROTOCOL.p1FixedLength - 4) }] });
    const message = handshake.writeMessage(p1).message;
    assert.equal(message.length, handshakeLimits(IK).message1);
    const wire = Buffer.concat([PREAMBLE, encodeFrame(message)]);
    const replies: Buffer[] = [];
    socket.on('data', (c: Buffer) => replies.push(c));
    for (const [from, to] of [[0, 3], [3, 5], [5, 4000], [4000, wire.length]] as const) {
      socket.write(wire.subarray(from, to));
      await sleep(30);
    }
    const decoder = new FrameDecoder();
    let status: number | null = null;
    const deadline = Date.now() + 10_000;
    while (status === null && Date.now() < deadline) {
      decoder.push(Buffer.concat(replies.splice(0)), (m) => {
        status = decodeP2(handshake.readMessage(m).payload)?.status ?? -1;
        return false;
      });
      if (status === null) await sleep(20);
    }
    assert.equal(status, 0);
    await closed(socket);
    await waitFor(() => mesh.server.sessions.size === 0, 'the session over');
  } finally {
    await mesh.close();
    await target.close();
  }
});

/** Destroys `socket` and resolves once node has closed it, so nothing is in flight when a test ends. */
function closed(socket: Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  const done = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.destroy();
  return done;
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** How a new connection to `port` ends; a reset can come before node has seen it connect. */
async function endingOf(port: number): Promise<string> {
  try {
    return (await readAll(await dial(port))).ending;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ECONNRESET') return 'reset';
    throw err;
  }
}

test('the session cap counts handshakes under way, in both directions', async () => {
  const target = await tcpServer((s) => s.pipe(s));
  const one = { pendingHandshakes: 4, pendingHandshakesPerSource: 4, sessions: 1, adminConnections: 4 };
  // The server takes one session: a second handshake gets status 7 and the application a reset.
  const mesh = await twoProxies(target.port, { caps: { server: one } });
  try {
    const first = await dial(mesh.entryPort);
    first.write('one');
    await new Promise((r) => first.once('data', r));
    assert.equal(await endingOf(mesh.entryPort), 'reset');
    const metrics = await mesh.server.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total');
    assert.match(metrics, /result="overloaded"\} 1/);
    await closed(first);
    await waitFor(() => mesh.server.sessions.size === 0 && mesh.client.sessions.size === 0, 'the sessions over');
  } finally {
    await mesh.close();
  }
  // The client opens one: a second application connection is reset before it dials.
  const client = await twoProxies(target.port, { caps: { client: one } });
  try {
    const first = await dial(client.entryPort);
    first.write('one');
    await new Promise((r) => first.once('data', r));
    assert.equal(await endingOf(client.entryPort), 'reset');
    const metrics = await client.client.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total');
    assert.match(metrics, /role="initiator",result="overloaded"\} 1/);
    assert.doesNotMatch(await client.server.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total'), /overloaded/);
    await closed(first);
    await waitFor(() => client.server.sessions.size === 0 && client.client.sessions.size === 0, 'the sessions over');
  } finally {
    await client.close();
    await target.close();
  }
});

test('pending handshakes: the per-source cap sheds that source\'s oldest, never another source\'s', () => {
  const pending = new PendingHandshakes({ total: 10, perSource: 3 });
  const shed: string[] = [];
  const admit = (source: string, name: string) => pending.admit(source, (reason) => shed.push(`${name}:${reason}`));
  const quiet = admit('10.0.0.9', 'quiet');
  const a = ['a1', 'a2', 'a3', 'a4', 'a5'].map((n) => admit('10.0.0.1', n));
  assert.deepEqual(shed, ['a1:source-cap', 'a2:source-cap']);
  assert.equal(pending.heldBy('10.0.0.1'), 3);
  assert.equal(pending.size, 4);
  assert.equal(a[0]!.shed, 'source-cap');
  assert.equal(quiet.shed, null);
  // A released connection frees its place; releasing twice, or after a shed, changes nothing.
  a[2]!.release();
  a[2]!.release();
  a[0]!.release();
  assert.equal(pending.heldBy('10.0.0.1'), 2);
  admit('10.0.0.1', 'a6');
  assert.deepEqual(shed, ['a1:source-cap', 'a2:source-cap']);
  assert.equal(pending.size, 4);
});

test('pending handshakes: the total cap sheds the oldest of the source holding the most', () => {
  const pending = new PendingHandshakes({ total: 6, perSource: 4 });
  const shed: string[] = [];
  const admit = (source: string, name: string) => pending.admit(source, (reason: ShedReason) => shed.push(`${name}:${reason}`));
  admit('b', 'b1');
  admit('a', 'a1');
  admit('a', 'a2');
  admit('c', 'c1');
  admit('a', 'a3');
  admit('b', 'b2');
  assert.equal(pending.size, 6);
  // Full. a holds the most (3): its oldest goes, though b1 is older.
  admit('d', 'd1');
  assert.deepEqual(shed, ['a1:total-cap']);
  // Now a and b hold two each; b has held two for longer (a only just fell back to two).
  admit('e', 'e1');
  assert.deepEqual(shed, ['a1:total-cap', 'b1:total-cap']);
  admit('f', 'f1');
  assert.deepEqual(shed, ['a1:total-cap', 'b1:total-cap', 'a2:total-cap']);
  assert.equal(pending.size, 6);
  for (const s of ['a', 'b', 'c', 'd', 'e', 'f']) assert.equal(pending.heldBy(s), 1, s);
  // Everyone holds one: the oldest of all goes.
  admit('g', 'g1');
  assert.deepEqual(shed.at(-1), 'c1:total-cap');
  assert.equal(pending.size, 6);
});

test('pending handshakes: shedding is O(1) and exact under churn from many sources', () => {
  const caps = { total: 500, perSource: 40 };
  const pending = new PendingHandshakes(caps);
  const live = new Set<{ release(): void }>();
  let shedCount = 0;
  const quiet = pending.admit('quiet', () => assert.fail('a quiet source\'s only handshake was shed'));
  for (let i = 0; i < 200_000; i++) {
    const ticket = pending.admit(`10.1.${i % 37}.1`, () => {
      shedCount++;
      live.delete(ticket);
    });
    live.add(ticket);
    if (i % 3 === 0) {
      const first = live.values().next().value!;
      first.release();
      live.delete(first);
    }
    assert.ok(pending.size <= caps.total);
  }
  assert.equal(pending.size, live.size + 1);
  assert.ok(shedCount > 0);
  quiet.release();
});

test('the descriptor budget keeps every cap below the limit, with the reserve held back', () => {
  const b = descriptorBudget(1024, 2);
  assert.equal(b.reserved, 64 + 2 + 32);
  assert.equal(b.pendingHandshakes, 308);
  assert.equal(b.pendingHandshakesPerSource, 39);
  assert.equal(b.sessions, 308);
  // Pending handshakes hold one descriptor each, sessions two: all of it fits beside the reserve.
  assert.ok(b.reserved + b.pendingHandshakes + 2 * b.sessions <= 1024);
  // On the native pump a session holds four (the pump's duplicates): still within the limit.
  const pumped = descriptorBudget(1024, 2, 4);
  assert.deepEqual([pumped.pendingHandshakes, pumped.sessions], [308, 154]);
  assert.ok(pumped.reserved + pumped.pendingHandshakes + 4 * pumped.sessions <= 1024);
  assert.equal(descriptorBudget(2048, 2, 4).sessions, 325);
  const big = descriptorBudget(1_048_576, 5);
  assert.equal(big.pendingHandshakes, LIMITS.maxPendingHandshakes);
  assert.equal(big.pendingHandshakesPerSource, LIMITS.maxPendingHandshakesPerSource);
  assert.equal(big.sessions, LIMITS.maxSessions);
  assert.equal(descriptorBudget(Infinity, 2).sessions, LIMITS.maxSessions);
  const tiny = descriptorBudget(50, 2);
  assert.deepEqual([tiny.pendingHandshakes, tiny.pendingHandshakesPerSource, tiny.sessions], [1, 1, 1]);
});

test('/proc/self/limits is read for the descriptor limit when the addon is missing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-limits-'));
  try {
    const file = join(dir, 'limits');
    writeFileSync(file, 'Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \n');
    assert.deepEqual(readProcLimits(file), { soft: 1024, hard: 524288 });
    writeFileSync(file, 'Max open files            unlimited            unlimited            files\n');
    assert.deepEqual(readProcLimits(file), { soft: Infinity, hard: Infinity });
    writeFileSync(file, 'Max processes 10 10\n');
    assert.match(readProcLimits(file) as string, /no "Max open files" row/);
    assert.match(readProcLimits(join(dir, 'absent')) as string, /cannot read .* \(ENOENT\)/);
    assert.equal(typeof readProcLimits(), 'object', 'this Linux has /proc/self/limits');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('configured caps are validated like every other key', () => {
  const base = { identity: { agentId: 'shop/web' }, registry: { file: '/x' } };
  const ok = parseProxyConfig({ ...base, limits: { pendingHandshakes: 100, pendingHandshakesPerSource: 10, sessions: 50 } });
  assert.deepEqual(ok.limits, { pendingHandshakes: 100, pendingHandshakesPerSource: 10, sessions: 50 });
  assert.deepEqual(parseProxyConfig(base).limits, { pendingHandshakes: null, pendingHandshakesPerSource: null, sessions: null });
  try {
    parseProxyConfig({ ...base, limits: { pendingHandshakes: 0, pendingHandshakesPerSource: 2.5, sessons: 3 } });
    assert.fail('accepted');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /limits.pendingHandshakes: must be a number from 1 to 1000000; got 0/);
    assert.match(err.message, /limits.pendingHandshakesPerSource: must be a whole number/);
    assert.match(err.message, /limits.sessons: unknown key: did you mean 'sessions'\?/);
  }
  assert.throws(() => parseProxyConfig({ ...base, limits: { pendingHandshakes: 10, pendingHandshakesPerSource: 20 } }), /must not exceed limits.pendingHandshakes \(10\)/);
});
