// The native session pump (native/session_pump.c, on unless NOISEMESH_NATIVE_PUMP=0; set to 1
// here so the suite never runs without it): real proxies on loopback, an encrypted stream cut
// into arbitrary pieces, and a hostile initiator's malformed frames, each of which must reset
// that session only; and the addon driven directly, against JS CipherStates.
process.env.NOISEMESH_NATIVE_PUMP = '1';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import type { CipherState as CipherStateT } from '../src/noise/index.js';
import type { NativePump as NativePumpT } from '../src/proxy/session/native-pump.js';

const { dial, rawHandshake, readAll, tcpServer, twoProxies } = await import('./helpers/mesh.js');
const { Status } = await import('../src/proxy/index.js');
const { nativePumpStarts } = await import('../src/proxy/session/native-pump.js');
const { connect } = await import('node:net');

const EMPTY = new Uint8Array(0);

/** Random writes of 1 byte to 200 KiB, then FIN; resolves to the SHA-256 of all of them. */
async function sendMixed(socket: Socket, total: number): Promise<string> {
  const hash = createHash('sha256');
  let sent = 0;
  for (let i = 0; sent < total && i < 100_000; i++) {
    const size = Math.min(total - sent, i % 3 === 0 ? randomInt(1, 200) : randomInt(1, 200 * 1024));
    const chunk = randomBytes(size);
    hash.update(chunk);
    sent += size;
    if (!socket.write(chunk)) await once(socket, 'drain');
  }
  socket.end();
  return hash.digest('hex');
}

function digest(socket: Socket): Promise<string> {
  const hash = createHash('sha256');
  socket.on('data', (c: Buffer) => hash.update(c));
  return new Promise((resolve, reject) => {
    socket.on('end', () => resolve(hash.digest('hex')));
    socket.on('error', reject);
  });
}

/** A relay between the proxies that re-cuts the encrypted stream into pieces of 1..3000 bytes. */
async function recutter() {
  let relay: Awaited<ReturnType<typeof tcpServer>> | undefined;
  return {
    via: async (port: number) => {
      relay = await tcpServer((a) => {
        const b = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
        b.on('error', () => a.destroy());
        a.on('error', () => b.destroy());
        for (const [from, to] of [[a, b], [b, a]] as const) {
          from.on('data', (chunk: Buffer) => {
            for (let off = 0; off < chunk.length; ) {
              const n = Math.min(chunk.length - off, randomInt(1, 3000));
              if (!to.write(chunk.subarray(off, off + n))) from.pause();
              off += n;
            }
          });
          to.on('drain', () => from.resume());
          from.on('end', () => to.end());
        }
      });
      return relay.port;
    },
    close: () => relay?.close(),
  };
}

test('native pump: mixed writes both ways arrive intact through an encrypted stream cut at random, with half-close', async () => {
  const before = nativePumpStarts();
  const server: Promise<{ got: string; sent: string }>[] = [];
  const app = await tcpServer((s) => server.push((async () => {
    const got = digest(s);
    const sent = await sendMixed(s, 8 * 1024 * 1024);
    return { got: await got, sent };
  })()));
  const mitm = await recutter();
  const mesh = await twoProxies(app.port, { via: mitm.via });
  try {
    const clients = await Promise.all([1, 2, 3].map(() => dial(mesh.entryPort)));
    const results = await Promise.all(clients.map(async (c) => {
      const got = digest(c);
      const sent = await sendMixed(c, 8 * 1024 * 1024);
      return { got: await got, sent };
    }));
    const servers = await Promise.all(server);
    assert.equal(servers.length, 3);
    const serverGot = new Set(servers.map((s) => s.got));
    for (const r of results) assert.ok(serverGot.has(r.sent), 'a client stream arrived changed');
    const clientGot = new Set(results.map((r) => r.got));
    for (const s of servers) assert.ok(clientGot.has(s.sent), 'a server stream arrived changed');
    // Every session is pumped natively on both sides, including those where node had read
    // bytes before the hand-over (the client writes at once, so its request waits in the
    // initiator's app socket during the handshake; the re-cut stream brings the responder's
    // first frames along with its handshake message): the pump takes them over first.
    assert.equal(nativePumpStarts() - before, 6, 'native sessions, of 3 sessions x 2 proxies');
  } finally {
    await mesh.close();
    await mitm.close();
    await app.close();
  }
});

test('native pump: a pumped session holds four descriptors in each proxy, and the descriptor budget counts four', async () => {
  const { readdirSync } = await import('node:fs');
  const { descriptorBudget, sessionDescriptors } = await import('../src/proxy/index.js');
  const app = await tcpServer((s) => s.pipe(s));
  const mesh = await twoProxies(app.port);
  const clients: Socket[] = [];
  try {
    const open = () => readdirSync('/proc/self/fd').length;
    const sessions = 5;
    const before = open();
    const startsBefore = nativePumpStarts();
    for (let i = 0; i < sessions; i++) {
      const c = await dial(mesh.entryPort);
      clients.push(c);
      c.write('x');
      await once(c, 'data');
    }
    assert.equal(nativePumpStarts() - startsBefore, 2 * sessions, 'every session pumped on both proxies');
    // Each session: the client's socket and the echo server's (2), then each proxy's share.
    const perProxy = ((open() - before) / sessions - 2) / 2;
    assert.equal(perProxy, 4, "two connections and the pump's duplicate of each");
    assert.equal(sessionDescriptors(), perProxy);
    // With what a session really holds, the caps still leave the reserve (accept(2) never meets EMFILE).
    for (const limit of [512, 1024, 4096, 65_536]) {
      const b = descriptorBudget(limit, 2, sessionDescriptors());
      assert.ok(b.reserved + b.pendingHandshakes + perProxy * b.sessions <= limit, `limit ${limit}: ${JSON.stringify(b)}`);
    }
  } finally {
    for (const c of clients) c.destroy();
    await mesh.close();
    await app.close();
  }
});

test('native pump: each malformed or forged frame resets only its own session', async () => {
  const arrived: Promise<{ data: Buffer; ending: string }>[] = [];
  const app = await tcpServer((s) => arrived.push(readAll(s, 10_000)));
  const mesh = await twoProxies(app.port);
  try {
    const base = { port: mesh.serverMeshPort, identity: mesh.clientId, responderKey: mesh.serverId.keyPair.publicKey, targetPort: app.port };
    const ts0 = BigInt(Date.now()) * 1_000_000n;
    const frame = (body: Uint8Array) => Buffer.concat([Buffer.from([body.length >> 8, body.length & 0xff]), body]);
    const cases: { name: string; wire: (seal: (p: Uint8Array) => Uint8Array) => Buffer; fin: boolean; delivered: string }[] = [
      { name: 'zero length', wire: (seal) => Buffer.concat([frame(seal(Buffer.from('ok'))), Buffer.from([0, 0])]), fin: false, delivered: 'ok' },
      { name: 'shorter than a tag', wire: (seal) => Buffer.concat([frame(seal(Buffer.from('ok'))), frame(Buffer.alloc(5))]), fin: false, delivered: 'ok' },
      {
        name: 'forged tag',
        wire: (seal) => {
          const bad = Buffer.from(seal(Buffer.from('evil')));
          bad[bad.length - 1]! ^= 1;
          return Buffer.concat([frame(seal(Buffer.from('ok'))), frame(bad)]);
        },
        fin: false,
        delivered: 'ok',
      },
      { name: 'data after EOS', wire: (seal) => Buffer.concat([frame(seal(Buffer.from('ok'))), frame(seal(EMPTY)), frame(seal(Buffer.from('more')))]), fin: false, delivered: 'ok' },
      { name: 'FIN inside a frame', wire: (seal) => Buffer.concat([frame(seal(Buffer.from('ok'))), frame(seal(Buffer.from('cut'))).subarray(0, 6)]), fin: true, delivered: 'ok' },
      { name: 'FIN before EOS', wire: (seal) => frame(seal(Buffer.from('ok'))), fin: true, delivered: 'ok' },
    ];
    for (const [i, c] of cases.entries()) {
      const before = nativePumpStarts();
      const raw = await rawHandshake({ ...base, timestampNs: ts0 + BigInt(i) * 1_000_000n });
      assert.equal(raw.status, Status.accepted, c.name);
      const sending = raw.transport!.sending!;
      const seal = (p: Uint8Array) => sending.encryptWithAd(EMPTY, p);
      // Wait for the responder to connect to the app, so the session is established (and pumped).
      for (let tries = 0; arrived.length <= i && tries < 200; tries++) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 100));
      raw.socket.on('error', () => {});
      raw.socket.write(c.wire(seal));
      if (c.fin) raw.socket.end();
      const seen = await arrived[i]!;
      assert.equal(seen.ending, 'reset', `${c.name}: the app sees a reset`);
      // What verified before the fault may or may not reach the app ahead of the RST (the
      // kernel drops unread data at a reset); nothing after the fault ever does.
      assert.ok(c.delivered.startsWith(seen.data.toString()), `${c.name}: only what verified reaches the app`);
      assert.equal(nativePumpStarts() - before, 1, `${c.name}: the session was the native pump's`);
      raw.socket.destroy();
    }
    // The proxy is still serving.
    const client = await dial(mesh.entryPort);
    client.end('after');
    for (let tries = 0; arrived.length <= cases.length && tries < 500; tries++) await new Promise((r) => setTimeout(r, 10));
    assert.equal((await arrived[cases.length]!).data.toString(), 'after');
  } finally {
    await mesh.close();
    await app.close();
  }
});

test('native pump: frames that come with message 2 are taken over at start; a fault among them ends the session inside start() with a reset, and nothing of it reaches the client', async () => {
  // A relay that holds the responder's bytes (message 2, then the target's greeting sealed)
  // and delivers them in one write, with a fault spliced in after message 2 or not: the
  // initiator's decoder holds them, so its pump gets them as pending bytes.
  let fault: 'none' | 'zero-length' | 'forged' = 'none';
  let target = 0;
  const relay = await tcpServer((a) => {
    const b = connect({ host: '127.0.0.1', port: target, allowHalfOpen: true });
    b.on('error', () => a.destroy());
    a.on('error', () => b.destroy());
    a.on('data', (c: Buffer) => b.write(c));
    a.on('end', () => b.end());
    const held: Buffer[] = [];
    let holding = true;
    b.on('data', (c: Buffer) => (holding ? held.push(c) : a.write(c)));
    b.on('end', () => a.end());
    setTimeout(() => {
      holding = false;
      const all = Buffer.concat(held);
      const m2 = 2 + all.readUInt16BE(0);
      const rest = Buffer.from(all.subarray(m2));
      if (fault === 'forged') rest[Math.min(rest.length - 1, 2000)]! ^= 1;
      a.write(Buffer.concat([all.subarray(0, m2), fault === 'zero-length' ? Buffer.from([0, 0]) : EMPTY, rest]));
    }, 300);
  });
  let greeting = Buffer.alloc(0);
  const app = await tcpServer((s) => {
    s.write(greeting);
    s.on('data', () => {});
    s.on('end', () => s.end());
  });
  const mesh = await twoProxies(app.port, { via: async (port) => ((target = port), relay.port) });
  try {
    for (const [f, size] of [['none', 200_000], ['zero-length', 100], ['zero-length', 200_000], ['forged', 100], ['forged', 200_000]] as const) {
      fault = f;
      greeting = randomBytes(size);
      const before = nativePumpStarts();
      const c = await dial(mesh.entryPort);
      const seen = readAll(c, 20_000);
      await new Promise((r) => setTimeout(r, 1000));
      c.end();
      const { data, ending } = await seen;
      assert.equal(nativePumpStarts() - before, 2, `${f} ${size}: pumped on both sides`);
      if (f === 'none') {
        assert.ok(data.equals(greeting), `${size}: the greeting arrives intact`);
        assert.equal(ending, 'end');
      } else {
        assert.equal(ending, 'reset', `${f} ${size}: the client sees a reset`);
        assert.equal(data.length, 0, `${f} ${size}: nothing of the faulty read reaches the client`);
      }
    }
  } finally {
    await mesh.close();
    await relay.close();
    await app.close();
  }
});

// ---- The pump alone, between two loopback TCP pairs, against JS CipherStates ----------------

const { CipherState, nativeBackend } = await import('../src/noise/index.js');
const { NativePump } = await import('../src/proxy/session/native-pump.js');
const { FrameDecoder } = await import('../src/proxy/protocol/index.js');
const { tcpPair: loopbackPair } = await import('./helpers/tcp-pair.js');

/** A pair whose far end also ignores errors (the tests watch its events, not its errors). */
async function tcpPair(): Promise<[Socket, Socket]> {
  const [ours, theirs] = await loopbackPair();
  theirs.on('error', () => {});
  return [ours, theirs];
}


interface Rig {
  app: Socket; // the application's end
  peer: Socket; // the remote proxy's end of the mesh connection
  pump: NativePumpT;
  ended: Promise<{ result: string; reason: string | null }>;
  peerMessages: Uint8Array[]; // what the peer opened, in order (EOS as an empty one)
  peerSend: CipherStateT;
  peerRecv: CipherStateT;
  frame: (plaintext: Uint8Array) => Buffer;
}

/** A pump whose send/receive nonces start at the given values, with a JS peer (rekeying as secure-session.ts does). */
async function rig(cipher: 'ChaChaPoly' | 'AESGCM', sendNonce: bigint, recvNonce: bigint): Promise<Rig> {
  const [appOurs, app] = await tcpPair();
  const [meshOurs, peer] = await tcpPair();
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  const cs = (k: Buffer, n: bigint) => {
    const c = new CipherState(nativeBackend.cipher(cipher), Uint8Array.from(k));
    c.setNonce(n);
    return c;
  };
  const peerRecv = cs(k1, sendNonce);
  const peerSend = cs(k2, recvNonce);
  let resolveEnd!: (v: { result: string; reason: string | null }) => void;
  const ended = new Promise<{ result: string; reason: string | null }>((r) => (resolveEnd = r));
  const pump = NativePump.tryStart(appOurs, meshOurs, null, cs(k1, sendNonce), cs(k2, recvNonce), (result, reason) => {
    appOurs.destroy();
    meshOurs.destroy();
    resolveEnd({ result, reason });
  });
  assert.ok(pump !== null, 'the pump took the pair');
  const peerMessages: Uint8Array[] = [];
  const decoder = new FrameDecoder();
  peer.on('data', (chunk: Buffer) =>
    decoder.push(chunk, (m) => {
      peerMessages.push(peerRecv.decryptWithAd(EMPTY, m));
      if (peerRecv.nonceLow16 === 0) peerRecv.rekey();
    }),
  );
  app.on('error', () => {});
  peer.on('error', () => {});
  const frame = (plaintext: Uint8Array) => {
    const c = peerSend.encryptWithAd(EMPTY, plaintext);
    if (peerSend.nonceLow16 === 0) peerSend.rekey();
    return Buffer.concat([Buffer.from([c.length >> 8, c.length & 0xff]), c]);
  };
  return { app, peer, pump, ended, peerMessages, peerSend, peerRecv, frame };
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

for (const cipher of ['ChaChaPoly', 'AESGCM'] as const) {
  test(`native pump (${cipher}): REKEY at every 2^16 messages both ways, exactly as the JS CipherState; a frame split across reads leaves nothing buffered`, async () => {
    // 65,533: the 3rd message of each direction crosses 65,536 and rekeys; 5 more use the new key.
    const r = await rig(cipher, 65_533n, 65_533n);
    const appGot: Buffer[] = [];
    r.app.on('data', (c: Buffer) => appGot.push(c));
    const appEnded = once(r.app, 'end');
    for (let i = 0; i < 8; i++) {
      r.app.write(`up${i}`);
      await until(`message ${i} at the peer`, () => r.peerMessages.length === i + 1);
      assert.equal(Buffer.from(r.peerMessages[i]!).toString(), `up${i}`);
      const f = r.frame(Buffer.from(`down${i}`));
      // Header and body in separate reads: the pump assembles the frame.
      r.peer.write(f.subarray(0, 3));
      await new Promise((res) => setTimeout(res, 20));
      r.peer.write(f.subarray(3));
      await until(`message ${i} at the app`, () => Buffer.concat(appGot).toString().endsWith(`down${i}`));
    }
    assert.equal(r.pump.stats().bufferedBytes, 0, 'no bytes held once every frame was delivered');
    assert.deepEqual(r.pump.stats().bytesFromApp, 8 * 3);
    r.app.end();
    await until('END-OF-STREAM at the peer', () => r.peerMessages.length === 9);
    assert.equal(r.peerMessages[8]!.length, 0);
    r.peer.end(r.frame(EMPTY));
    await appEnded;
    r.app.end();
    const end = await r.ended;
    assert.deepEqual(end, { result: 'closed', reason: null });
    // After the end: stats and abort are harmless no-ops on the same handle.
    assert.equal(r.pump.stats().bufferedBytes, 0);
    r.pump.abort('shutdown');
    r.app.destroy();
    r.peer.destroy();
  });

  test(`native pump (${cipher}): nonce 2^64-1 is never used, either way: 'nonce-exhausted', and the peer has every message before it`, async () => {
    const send = await rig(cipher, 2n ** 64n - 3n, 0n);
    const peerClosed = new Promise((r) => send.peer.once('close', r));
    send.app.write('a');
    await until('a', () => send.peerMessages.length === 1);
    send.app.write('b');
    await until('b', () => send.peerMessages.length === 2);
    send.app.write('c');
    assert.deepEqual(await send.ended, { result: 'aborted', reason: 'nonce-exhausted' });
    await peerClosed;
    assert.deepEqual(send.peerMessages.map((m) => Buffer.from(m).toString()), ['a', 'b']);
    send.app.destroy();

    const recv = await rig(cipher, 0n, 2n ** 64n - 2n);
    const got: Buffer[] = [];
    recv.app.on('data', (c: Buffer) => got.push(c));
    recv.peer.write(recv.frame(Buffer.from('last')));
    await until('the last message', () => Buffer.concat(got).toString() === 'last');
    // The peer's JS CipherState refuses nonce 2^64-1; any well-formed frame must be refused too.
    recv.peer.write(Buffer.concat([Buffer.from([0, 20]), randomBytes(20)]));
    assert.deepEqual(await recv.ended, { result: 'aborted', reason: 'nonce-exhausted' });
    recv.app.destroy();
    recv.peer.destroy();
  });
}

test('native pump: abort() from inside the end callback, and stats() there, are safe no-ops', async () => {
  const [appOurs, app] = await tcpPair();
  const [meshOurs, peer] = await tcpPair();
  const cs = () => new CipherState(nativeBackend.cipher('ChaChaPoly'), randomBytes(32));
  let pump: NativePumpT | null = null;
  const calls: string[] = [];
  pump = NativePump.tryStart(appOurs, meshOurs, null, cs(), cs(), (result, reason) => {
    calls.push(`${result}:${reason}`);
    pump!.abort('internal');
    assert.equal(pump!.stats().bufferedBytes, 0);
    appOurs.destroy();
    meshOurs.destroy();
  });
  assert.ok(pump !== null);
  app.on('error', () => {});
  peer.on('error', () => {});
  pump.abort('revoked');
  pump.abort('shutdown');
  assert.deepEqual(calls, ['aborted:revoked']);
  await new Promise((r) => peer.once('close', r));
  app.destroy();
});

test('native pump: a handle collected while its session runs neither stops the session nor frees it early', async () => {
  const { setFlagsFromString } = await import('node:v8');
  const { runInNewContext } = await import('node:vm');
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  for (let round = 0; round < 5; round++) {
    // rig() keeps the handle; this session's is dropped at once.
    const [appOurs, app] = await tcpPair();
    const [meshOurs, peer] = await tcpPair();
    const k1 = randomBytes(32);
    const k2 = randomBytes(32);
    const cs = (k: Buffer) => new CipherState(nativeBackend.cipher('ChaChaPoly'), Uint8Array.from(k));
    let resolveEnd!: (v: string) => void;
    const ended = new Promise<string>((r) => (resolveEnd = r));
    assert.ok(NativePump.tryStart(appOurs, meshOurs, null, cs(k1), cs(k2), (result) => {
      appOurs.destroy();
      meshOurs.destroy();
      resolveEnd(result);
    }) !== null);
    gc();
    await new Promise((r) => setImmediate(r));
    gc();
    const peerRecv = cs(k1);
    const peerSend = cs(k2);
    const frame = (p: Uint8Array) => {
      const c = peerSend.encryptWithAd(EMPTY, p);
      return Buffer.concat([Buffer.from([c.length >> 8, c.length & 0xff]), c]);
    };
    const got: Buffer[] = [];
    app.on('data', (c: Buffer) => got.push(c));
    const up: string[] = [];
    const decoder = new FrameDecoder();
    peer.on('data', (chunk: Buffer) => decoder.push(chunk, (m) => void up.push(Buffer.from(peerRecv.decryptWithAd(EMPTY, m)).toString())));
    app.write('up');
    peer.write(frame(Buffer.from('down')));
    await until('both messages', () => up.length === 1 && Buffer.concat(got).toString() === 'down');
    gc();
    const appEnded = once(app, 'end');
    app.end();
    peer.end(frame(EMPTY));
    await appEnded;
    assert.equal(await ended, 'closed');
    gc();
    await until('END-OF-STREAM at the peer', () => up.length === 2);
    assert.deepEqual(up, ['up', '']);
    app.destroy();
    peer.destroy();
  }
});

test('native pump: pumps alive when a Worker is terminated are closed at its teardown (no open handle, no abort), and their connections close', async () => {
  const { execFile } = await import('node:child_process');
  const script = new URL('./helpers/pump-worker-teardown.js', import.meta.url);
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(process.execPath, [script.pathname], { timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? null), stdout, stderr }),
    );
    child.stdin?.end();
  });
  assert.equal(code, 0, `the child failed (exit ${code}): ${stderr.slice(0, 2000)}`);
  assert.equal(stdout.trim(), 'ok');
});

test('native pump: abort() and stats() refuse anything but a pump handle (handles carry a type tag)', async () => {
  const { addonPath, loadAddon } = await import('../src/native/index.js');
  const load = loadAddon<{ start(...a: unknown[]): unknown; abort(h: unknown, r: string): void; stats(h: unknown): unknown }>(addonPath('session_pump'), ['start', 'abort', 'stats']);
  assert.ok(load.ok);
  for (const h of [{}, null, undefined, 42, 'pump', Buffer.alloc(8), () => {}]) {
    assert.throws(() => load.addon.stats(h), /not a pump handle/);
    assert.throws(() => load.addon.abort(h, 'shutdown'), /not a pump handle/);
  }
});
