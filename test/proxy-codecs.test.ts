// The NMP/1 codecs and the small state machines around them, as pure functions: frames over
// split reads, P1/P2 byte layouts, the replay window's bounds, and timestamp ordering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FrameBuffers,
  FrameDecoder,
  FrameError,
  RECYCLED_FRAME_MIN,
  PROTOCOL,
  ReplayWindow,
  TimestampClock,
  decodeP1,
  decodeP2,
  describeP1Error,
  encodeFrame,
  encodeP1,
  encodeP2,
  prologue,
} from '../src/proxy/index.js';

function frames(messages: Buffer[]): Buffer {
  return Buffer.concat(messages.map((m) => encodeFrame(m)));
}

test('frames survive every split of the byte stream, including one byte at a time', () => {
  const messages = [Buffer.from('a'), Buffer.alloc(300, 7), Buffer.alloc(65535, 9), Buffer.from('tail')];
  const wire = frames(messages);
  for (const step of [1, 2, 3, 1000, 65536, wire.length]) {
    const decoder = new FrameDecoder();
    const got: Buffer[] = [];
    for (let i = 0; i < wire.length; i += step) decoder.push(wire.subarray(i, i + step), (m) => void got.push(Buffer.from(m)));
    assert.deepEqual(got, messages, `step ${step}`);
    assert.equal(decoder.hasPartialFrame(), false);
  }
});

test('a recycling decoder assembles large split frames in reused buffers, and small ones apart', () => {
  const buffers = new FrameBuffers(PROTOCOL.frameHeaderLength + PROTOCOL.maxFrameLength, 2);
  const large = [Buffer.alloc(65535, 1), Buffer.alloc(RECYCLED_FRAME_MIN, 2), Buffer.alloc(40_000, 3)];
  const small = Buffer.alloc(RECYCLED_FRAME_MIN - 1, 4);
  const messages = [...large, small, Buffer.alloc(50_000, 5)];
  const wire = frames(messages);
  const decoder = new FrameDecoder();
  decoder.recycleInto(buffers);
  const got: Buffer[] = [];
  const backings = new Set<ArrayBuffer>();
  for (let i = 0; i < wire.length; i += 1000) {
    decoder.push(wire.subarray(i, i + 1000), (m) => {
      got.push(Buffer.from(m));
      if (m.length >= RECYCLED_FRAME_MIN) backings.add(m.buffer as ArrayBuffer);
      else assert.equal(m.buffer.byteLength < RECYCLED_FRAME_MIN * 2, true, 'a small frame is not in a recycled buffer');
    });
  }
  // Every frame intact, though each large one was assembled in the buffer the one before used.
  assert.deepEqual(got, messages);
  assert.equal(backings.size, 1, 'one buffer served every large frame');
  assert.equal(buffers.idle, 1, 'and it is back in the pool');
});

test('frame buffers keep at most their limit, and only buffers of their size', () => {
  const buffers = new FrameBuffers(1024, 2);
  const taken = [buffers.take(), buffers.take(), buffers.take()];
  assert.ok(taken.every((b) => b.length === 1024));
  for (const b of taken) buffers.give(b);
  buffers.give(Buffer.alloc(10));
  assert.equal(buffers.idle, 2);
  assert.equal(buffers.take(), taken[1]);
});

test('a stopped handler keeps the rest of the read for later', () => {
  const wire = frames([Buffer.from('m1'), Buffer.from('m2'), Buffer.from('m3')]);
  const decoder = new FrameDecoder();
  const got: string[] = [];
  decoder.push(wire.subarray(0, wire.length - 1), (m) => {
    got.push(m.toString());
    return false;
  });
  assert.deepEqual(got, ['m1']);
  assert.ok(decoder.bufferedBytes > 0);
  decoder.resume((m) => void got.push(m.toString()));
  decoder.push(wire.subarray(wire.length - 1), (m) => void got.push(m.toString()));
  assert.deepEqual(got, ['m1', 'm2', 'm3']);
});

test('a zero-length frame is an error; a frame cut short is visible as a partial frame', () => {
  assert.throws(() => new FrameDecoder().push(Buffer.from([0, 0]), () => {}), FrameError);
  const decoder = new FrameDecoder();
  decoder.push(Buffer.from([0, 5, 1, 2]), () => assert.fail('no complete frame'));
  assert.equal(decoder.hasPartialFrame(), true);
  // Every cut inside a frame, down to its header alone with no byte of its body (the JS
  // decoder once said "no partial frame" there, so END-OF-STREAM, a bare header and FIN
  // passed for a clean end: found by the session pump's differential fuzzer).
  const wire = frames([Buffer.from('abc')]);
  for (let cut = 1; cut < wire.length; cut++) {
    const d = new FrameDecoder();
    d.push(wire.subarray(0, cut), () => assert.fail('no complete frame'));
    assert.equal(d.hasPartialFrame(), true, `cut after ${cut} bytes`);
    assert.equal(d.bufferedBytes, cut, `cut after ${cut} bytes`);
  }
  assert.throws(() => encodeFrame(Buffer.alloc(65536)), FrameError);
  assert.throws(() => encodeFrame(Buffer.alloc(0)), FrameError);
});

test('P1 has the byte layout of PROTOCOL.md 4.1', () => {
  const p1 = encodeP1({
    timestampNs: 0x0102030405060708n,
    generation: 3n,
    targetPort: 5432,
    extensions: [{ type: 1, value: Buffer.alloc(16, 0xaa) }, { type: 2, value: Buffer.from('http/1.1') }],
  });
  assert.equal(p1.toString('hex', 0, 21), '01' + '0102030405060708' + '0000000000000003' + '1538' + '0020');
  assert.equal(p1.length, 21 + 4 + 16 + 4 + 8);
  const back = decodeP1(p1)!;
  assert.equal(back.timestampNs, 0x0102030405060708n);
  assert.equal(back.generation, 3n);
  assert.equal(back.targetPort, 5432);
  assert.deepEqual(back.extensions.map((e) => [e.type, Buffer.from(e.value).toString('latin1')]), [[1, '\xaa'.repeat(16)], [2, 'http/1.1']]);
});

test('malformed P1s are named: version, short, target port 0, extension overrun, too long', () => {
  const good = encodeP1({ timestampNs: 1n, generation: 1n, targetPort: 80, extensions: [] });
  const with_ = (offset: number, bytes: number[]): Buffer => {
    const b = Buffer.from(good);
    b.set(bytes, offset);
    return b;
  };
  assert.equal(describeP1Error(good), null);
  assert.equal(describeP1Error(with_(0, [2])), 'version');
  assert.equal(describeP1Error(good.subarray(0, 20)), 'too-short');
  assert.equal(describeP1Error(with_(17, [0, 0])), 'target-port');
  assert.equal(describeP1Error(with_(19, [0, 1])), 'extensions');
  assert.equal(describeP1Error(Buffer.concat([with_(19, [0, 3]), Buffer.from([0, 1, 0])])), 'extensions', 'an extension header cut short');
  assert.equal(describeP1Error(Buffer.concat([with_(19, [0, 5]), Buffer.from([0, 9, 0, 2, 1])])), 'extensions', 'a value past the end');
  assert.equal(describeP1Error(Buffer.alloc(8193, 1)), 'too-long');
  // Unknown extension types are carried, and ignored by whoever does not know them.
  const unknown = encodeP1({ timestampNs: 1n, generation: 1n, targetPort: 80, extensions: [{ type: 999, value: Buffer.from('x') }] });
  assert.equal(decodeP1(unknown)?.extensions[0]?.type, 999);
  assert.throws(() => encodeP1({ timestampNs: 1n, generation: 1n, targetPort: 0, extensions: [] }), RangeError);
});

test('P2 has the byte layout of PROTOCOL.md 4.2', () => {
  const p2 = encodeP2({ status: 2, generation: 7n, extensions: [] });
  assert.equal(p2.toString('hex'), '01' + '02' + '0000000000000007' + '0000');
  assert.deepEqual(decodeP2(p2), { status: 2, generation: 7n, extensions: [] });
  assert.equal(decodeP2(p2.subarray(0, 11)), null);
  assert.equal(decodeP2(Buffer.concat([p2.subarray(0, 10), Buffer.from([0, 4])])), null);
});

test('the prologue is noisemesh/1, a zero byte, and the trust domain', () => {
  assert.equal(Buffer.from(prologue('cluster.local')).toString('hex'), Buffer.from('noisemesh/1\0cluster.local').toString('hex'));
});

test('the replay window refuses repeats and out-of-window timestamps, and expires old ones', () => {
  let now = 1_000_000_000_000n;
  const window = new ReplayWindow(PROTOCOL.replayWindowNs, 100, 10, () => now);
  assert.equal(window.check('k', now), 'fresh');
  assert.equal(window.check('k', now), 'replay');
  assert.equal(window.check('other', now), 'fresh', 'windows are per key');
  assert.equal(window.check('k', now - 30_000_000_001n), 'replay');
  assert.equal(window.check('k', now + 30_000_000_001n), 'replay');
  assert.equal(window.check('k', now + 30_000_000_000n), 'fresh', 'the window edge is inside');
  now += 31_000_000_000n;
  assert.equal(window.check('k', now), 'fresh');
  assert.equal(window.size, 3, 'the first timestamp of k has expired; other is kept until touched');
});

test('the replay window is bounded per key and in total, and says overloaded rather than forget', () => {
  let now = 5_000_000_000_000n;
  const window = new ReplayWindow(PROTOCOL.replayWindowNs, 25, 10, () => now);
  for (let i = 0n; i < 10n; i++) assert.equal(window.check('a', now + i), 'fresh');
  assert.equal(window.check('a', now + 10n), 'overloaded');
  assert.equal(window.check('a', now + 3n), 'replay', 'what was accepted is still remembered');
  for (let i = 0n; i < 10n; i++) window.check('b', now + i);
  for (let i = 0n; i < 5n; i++) assert.equal(window.check('c', now + i), 'fresh');
  assert.equal(window.check('d', now), 'overloaded');
  // Room comes back only as timestamps age out of the window, never by forgetting them.
  now += 30_000_000_010n;
  assert.equal(window.check('d', now), 'fresh');
  assert.equal(window.size, 1);
});

test('the replay window has no way to forget a key before its timestamps age out', () => {
  // Revocation used to call forget(): a message 1 recorded before a revoke-and-restore of the
  // same key and generation was then accepted again (issue 8, part 8).
  assert.equal('forget' in ReplayWindow.prototype, false);
});

test('a timestamp that aged out of the window stays a replay after the wall clock steps back', () => {
  // The responder's clock runs 20 s ahead; a message 1 is accepted, ages out, and the clock is
  // corrected: the recorded message 1 was accepted again (issue 8, parts 5 and 8 combined).
  const s = 1_000_000_000n;
  let now = 1_700_000_000n * s;
  const window = new ReplayWindow(PROTOCOL.replayWindowNs, 100, 10, () => now);
  const recorded = now - 20n * s;
  assert.equal(window.check('k', recorded), 'fresh');
  now += 11n * s;
  assert.equal(window.check('k', now - 20n * s), 'fresh', 'a genuine later handshake ages the recorded one out');
  assert.equal(window.check('other', now - 25n * s), 'fresh');
  now -= 20n * s;
  assert.equal(window.check('k', recorded), 'replay', 'back inside the window, but it aged out once');
  assert.equal(window.check('k', recorded - 1n), 'replay', 'and so did everything below it');
  now += s;
  assert.equal(window.check('k', now), 'fresh', 'the genuine initiator, whose clock was right, goes on');
  assert.equal(window.check('other', now - 26n * s), 'fresh', 'a key with nothing aged out has no floor');
});

test('initiator timestamps strictly increase even when the clock stalls or steps back a little', () => {
  const readings = [100n, 100n, 100n, 50n, 200n, 200n];
  const clock = new TimestampClock(() => readings.shift()!);
  assert.deepEqual([0, 1, 2, 3, 4, 5].map(() => clock.next()), [100n, 101n, 102n, 103n, 200n, 201n]);
});

test('initiator timestamps follow the wall clock back after a step of more than the lead bound', () => {
  const s = 1_000_000_000n;
  const t0 = 1_700_000_000n * s;
  let now = t0;
  const clock = new TimestampClock(() => now, s);
  assert.equal(clock.next(), t0);
  now = t0 + 45n * s; // an NTP or RTC glitch: 45 s ahead
  assert.equal(clock.next(), t0 + 45n * s);
  assert.equal(clock.next(), t0 + 45n * s + 1n);
  now = t0 + 100_000n; // corrected, 0.1 ms of real time later
  const after = clock.next();
  assert.equal(after, t0 + 100_000n, 'the first timestamp after the correction is the wall clock, inside any window');
  const burst = Array.from({ length: 1000 }, () => clock.next());
  assert.equal(new Set([after, ...burst]).size, 1001, 'handshakes after the step never share a timestamp');
  for (let i = 1; i < burst.length; i++) assert.ok(burst[i]! > burst[i - 1]!);
  assert.ok(burst.at(-1)! - now < s, 'and they stay within the lead bound of the wall clock');

  // A step back within the bound keeps them strictly increasing, ahead of the wall clock.
  now = burst.at(-1)! - s / 2n;
  assert.equal(clock.next(), burst.at(-1)! + 1n);
  // The default lead bound is 1 s.
  let wall = t0 + 120n * s;
  const byDefault = new TimestampClock(() => wall);
  byDefault.next();
  wall = t0;
  assert.equal(byDefault.next(), t0);
});
