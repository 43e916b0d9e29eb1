// Two real proxies on loopback, in explicit mode, carrying real TCP: integrity, half-close,
// resets, truncation, a man in the middle, and each P2 status.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { sessionPump, Status, TimestampClock, wallClockNs } from '../src/proxy/index.js';
import { connectTcp } from '../src/proxy/session/connect.js';
import { encodeKey, nativeBackend } from '../src/noise/index.js';
import { dial, makeIdentity, rawHandshake, readAll, tcpServer, twoProxies, peerOf } from './helpers/mesh.js';

const MiB = 1024 * 1024;

/** Writes `total` random bytes with backpressure, then FIN; resolves to their SHA-256. */
async function sendRandom(socket: Socket, total: number): Promise<string> {
  const hash = createHash('sha256');
  let sent = 0;
  while (sent < total) {
    const chunk = randomBytes(Math.min(65536, total - sent));
    hash.update(chunk);
    sent += chunk.length;
    if (!socket.write(chunk)) await once(socket, 'drain');
  }
  socket.end();
  return hash.digest('hex');
}

function digestUntilEnd(socket: Socket): Promise<{ digest: string; bytes: number; ending: string }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    let ending = 'closed';
    socket.on('data', (c: Buffer) => {
      hash.update(c);
      bytes += c.length;
    });
    socket.on('end', () => {
      ending = 'end';
      resolve({ digest: hash.digest('hex'), bytes, ending });
    });
    socket.on('error', (e) => reject(e));
  });
}

test('100 MiB each way arrive intact, concurrently, through two proxies', async () => {
  const serverDone: Promise<{ received: { digest: string; bytes: number }; sent: string }>[] = [];
  const app = await tcpServer((socket) => {
    serverDone.push(
      (async () => {
        const receiving = digestUntilEnd(socket);
        const sent = await sendRandom(socket, 100 * MiB);
        return { received: await receiving, sent };
      })(),
    );
  });
  const mesh = await twoProxies(app.port);
  try {
    const client = await dial(mesh.entryPort);
    const receiving = digestUntilEnd(client);
    const sent = await sendRandom(client, 100 * MiB);
    const received = await receiving;
    const server = await serverDone[0]!;
    assert.equal(server.received.bytes, 100 * MiB);
    assert.equal(server.received.digest, sent, 'client -> server digest');
    assert.equal(received.bytes, 100 * MiB);
    assert.equal(received.digest, server.sent, 'server -> client digest');
  } finally {
    await mesh.close();
    await app.close();
  }
});

test('half-close: the client finishes first, then the server answers and finishes', async () => {
  const app = await tcpServer((socket) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => socket.end(`got ${Buffer.concat(chunks).toString()}`));
  });
  const mesh = await twoProxies(app.port);
  try {
    const client = await dial(mesh.entryPort);
    const reply = readAll(client);
    client.end('question');
    const { data, ending } = await reply;
    assert.equal(data.toString(), 'got question');
    assert.equal(ending, 'end');
  } finally {
    await mesh.close();
    await app.close();
  }
});

test('half-close: the server finishes first and keeps reading', async () => {
  let serverGot: Promise<{ data: Buffer; ending: string }> | undefined;
  const app = await tcpServer((socket) => {
    serverGot = readAll(socket);
    socket.end('banner, then silence');
  });
  const mesh = await twoProxies(app.port);
  try {
    const client = await dial(mesh.entryPort);
    const chunks: Buffer[] = [];
    client.on('data', (c: Buffer) => chunks.push(c));
    await once(client, 'end');
    assert.equal(Buffer.concat(chunks).toString(), 'banner, then silence');
    // The client can still talk after the server's FIN.
    client.end('late words');
    const got = await serverGot!;
    assert.equal(got.data.toString(), 'late words');
    assert.equal(got.ending, 'end');
  } finally {
    await mesh.close();
    await app.close();
  }
});

test('a server that speaks first is heard before the client sends anything', async () => {
  const app = await tcpServer((socket) => socket.write('220 ready\r\n'));
  const mesh = await twoProxies(app.port);
  try {
    const client = await dial(mesh.entryPort);
    const [chunk] = (await once(client, 'data')) as [Buffer];
    assert.equal(chunk.toString(), '220 ready\r\n');
    client.destroy();
  } finally {
    await mesh.close();
    await app.close();
  }
});

test('a reset by the server reaches the client as a reset, and the other way round', async () => {
  let serverSide: Socket | undefined;
  let serverEnding: Promise<{ ending: string }> | undefined;
  const app = await tcpServer((socket) => {
    serverSide = socket;
    serverEnding = readAll(socket);
    socket.write('hello');
  });
  const mesh = await twoProxies(app.port);
  try {
    const a = await dial(mesh.entryPort);
    const aEnding = readAll(a);
    await new Promise((r) => a.once('data', r));
    serverSide!.resetAndDestroy();
    assert.equal((await aEnding).ending, 'reset');

    const b = await dial(mesh.entryPort);
    await new Promise((r) => b.once('data', r));
    const ending = serverEnding!;
    b.resetAndDestroy();
    assert.equal((await ending).ending, 'reset');
  } finally {
    await mesh.close();
    await app.close();
  }
});

/** A relay between the proxies that the test can turn hostile. */
async function manInTheMiddle(behaviour: 'flip' | 'truncate'): Promise<{ via: (port: number) => Promise<number>; close(): Promise<void> }> {
  let relay: Awaited<ReturnType<typeof tcpServer>> | undefined;
  return {
    via: async (serverMeshPort) => {
      relay = await tcpServer((fromA) => {
        const toB = connect({ host: '127.0.0.1', port: serverMeshPort, allowHalfOpen: true });
        toB.on('error', () => fromA.destroy());
        fromA.on('error', () => toB.destroy());
        let upstream = 0;
        let downstream = 0;
        fromA.on('data', (chunk: Buffer) => {
          // Past the 123-byte handshake message: flip one bit of a transport frame.
          if (behaviour === 'flip' && upstream < 1000 && upstream + chunk.length > 1000) {
            chunk = Buffer.from(chunk);
            chunk[1000 - upstream]! ^= 0x04;
          }
          upstream += chunk.length;
          toB.write(chunk);
        });
        toB.on('data', (chunk: Buffer) => {
          downstream += chunk.length;
          fromA.write(chunk);
          // After the handshake answer and some transport data: a clean FIN to A, mid-stream.
          if (behaviour === 'truncate' && downstream > 2000) {
            fromA.end();
            toB.destroy();
          }
        });
      });
      return relay.port;
    },
    close: () => relay?.close() ?? Promise.resolve(),
  };
}

test('a bit flipped in transit aborts the session: both applications see a reset', async () => {
  let serverEnding: Promise<{ ending: string }> | undefined;
  const app = await tcpServer((socket) => {
    serverEnding = readAll(socket);
  });
  const mitm = await manInTheMiddle('flip');
  const mesh = await twoProxies(app.port, { via: mitm.via });
  try {
    const client = await dial(mesh.entryPort);
    const clientEnding = readAll(client);
    client.write(randomBytes(4000));
    assert.equal((await clientEnding).ending, 'reset');
    assert.equal((await serverEnding!).ending, 'reset');
    const metrics = await mesh.server.metrics.registry.getSingleMetricAsString('noisemesh_session_aborts_total');
    assert.match(metrics, /reason="decrypt"} 1/);
  } finally {
    await mesh.close();
    await mitm.close();
    await app.close();
  }
});

test('a TCP FIN before END-OF-STREAM is a truncation: the client sees a reset, not an end', async () => {
  const app = await tcpServer((socket) => {
    socket.write(randomBytes(8000));
  });
  const mitm = await manInTheMiddle('truncate');
  const mesh = await twoProxies(app.port, { via: mitm.via });
  try {
    const client = await dial(mesh.entryPort);
    assert.equal((await readAll(client)).ending, 'reset');
    const metrics = await mesh.client.metrics.registry.getSingleMetricAsString('noisemesh_session_aborts_total');
    assert.match(metrics, /reason="truncated"} 1/);
  } finally {
    await mesh.close();
    await mitm.close();
    await app.close();
  }
});

test('a wrong responder key fails the handshake and resets the client', async () => {
  let reached = false;
  const app = await tcpServer(() => (reached = true));
  const mesh = await twoProxies(app.port);
  try {
    const impostor = makeIdentity('demo/server');
    const real = mesh.clientView.peerByKey(mesh.serverId.publicKeyB64)!;
    mesh.clientView.delete(real.publicKeyB64);
    mesh.clientView.set(peerOf(impostor, real.meshPort!));
    const client = await dial(mesh.entryPort);
    assert.equal((await readAll(client)).ending, 'reset');
    assert.equal(reached, false);
    const responder = await mesh.server.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total');
    assert.match(responder, /role="responder",result="decrypt"} 1/);
  } finally {
    await mesh.close();
    await app.close();
  }
});

test('status 1: an initiator the responder does not know is refused and reset', async () => {
  const app = await tcpServer(() => assert.fail('target must not be reached'));
  const mesh = await twoProxies(app.port);
  try {
    mesh.serverView.delete(mesh.clientId.publicKeyB64);
    const client = await dial(mesh.entryPort);
    assert.equal((await readAll(client)).ending, 'reset');
    const m = await mesh.client.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total');
    assert.match(m, /role="initiator",result="unknownInitiator"} 1/);
  } finally {
    await mesh.close();
    await app.close();
  }
});

test('status 2: a stale generation is refused', async () => {
  const app = await tcpServer(() => assert.fail('target must not be reached'));
  const mesh = await twoProxies(app.port);
  try {
    const known = mesh.serverView.peerByKey(mesh.clientId.publicKeyB64)!;
    mesh.serverView.set({ ...known, generation: 2n });
    const client = await dial(mesh.entryPort);
    assert.equal((await readAll(client)).ending, 'reset');
    const m = await mesh.client.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total');
    assert.match(m, /role="initiator",result="staleGeneration"} 1/);
  } finally {
    await mesh.close();
    await app.close();
  }
});

test('status 3: a repeated or out-of-window timestamp is a replay', async () => {
  const app = await tcpServer((s) => s.end());
  const mesh = await twoProxies(app.port);
  try {
    const base = { port: mesh.serverMeshPort, identity: mesh.clientId, responderKey: mesh.serverId.keyPair.publicKey, targetPort: app.port };
    const ts = BigInt(Date.now()) * 1_000_000n;
    const first = await rawHandshake({ ...base, timestampNs: ts });
    assert.equal(first.status, Status.accepted);
    first.socket.destroy();
    const again = await rawHandshake({ ...base, timestampNs: ts });
    assert.equal(again.status, Status.replay);
    const old = await rawHandshake({ ...base, timestampNs: ts - 31_000_000_000n });
    assert.equal(old.status, Status.replay);
    const future = await rawHandshake({ ...base, timestampNs: ts + 31_000_000_000n });
    assert.equal(future.status, Status.replay);
    const later = await rawHandshake({ ...base, timestampNs: ts + 1n });
    assert.equal(later.status, Status.accepted);
    later.socket.destroy();
  } finally {
    await mesh.close();
    await app.close();
  }
});

test('a client clock that steps 45 s or 120 s ahead and back: refused (status 3) while ahead, accepted again at once', async () => {
  const app = await tcpServer((s) => s.end('hi'));
  let offsetNs = 0n;
  const clientClock = new TimestampClock(() => wallClockNs() + offsetNs);
  const mesh = await twoProxies(app.port, { clientClock });
  const attempt = async (): Promise<{ data: string; ending: string }> => {
    const { data, ending } = await readAll(await dial(mesh.entryPort));
    return { data: data.toString(), ending };
  };
  const replays = async (): Promise<number> => {
    const text = await mesh.server.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total');
    return Number(/role="responder",result="replay"} (\d+)/.exec(text)?.[1] ?? 0);
  };
  try {
    assert.deepEqual(await attempt(), { data: 'hi', ending: 'end' });
    for (const stepSeconds of [45n, 120n]) {
      offsetNs = stepSeconds * 1_000_000_000n;
      const before = await replays();
      assert.deepEqual(await attempt(), { data: '', ending: 'reset' }, `${stepSeconds} s ahead: outside the window`);
      assert.equal(await replays(), before + 1);
      offsetNs = 0n;
      // The very next connection after the clocks agree again: no waiting out the step.
      for (let i = 0; i < 3; i++) assert.deepEqual(await attempt(), { data: 'hi', ending: 'end' }, `after the ${stepSeconds} s step, connection ${i + 1}`);
      assert.equal(await replays(), before + 1);
    }
  } finally {
    await mesh.close();
    await app.close();
  }
});

test('status 4: the proxy never forwards to one of its own ports', async () => {
  const app = await tcpServer(() => {});
  const mesh = await twoProxies(app.port);
  try {
    const r = await rawHandshake({
      port: mesh.serverMeshPort,
      identity: mesh.clientId,
      responderKey: mesh.serverId.keyPair.publicKey,
      targetPort: mesh.serverMeshPort,
    });
    assert.equal(r.status, Status.targetPortNotAllowed);
    assert.equal(r.generation, 1n);
  } finally {
    await mesh.close();
    await app.close();
  }
});

test('status 5: a target port with nothing listening', async () => {
  const app = await tcpServer(() => {});
  const freePort = app.port;
  await app.close();
  const mesh = await twoProxies(freePort);
  try {
    const client = await dial(mesh.entryPort);
    assert.equal((await readAll(client)).ending, 'reset');
    const m = await mesh.client.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total');
    assert.match(m, /role="initiator",result="targetUnavailable"} 1/);
  } finally {
    await mesh.close();
  }
});

test('silence for strangers: bad preamble, undecryptable or malformed message 1, zero-length frame', async () => {
  const app = await tcpServer(() => {});
  const mesh = await twoProxies(app.port);
  try {
    const base = { port: mesh.serverMeshPort, identity: mesh.clientId, responderKey: mesh.serverId.keyPair.publicKey, targetPort: app.port };
    const cases: [string, Parameters<typeof rawHandshake>[0]][] = [
      ['wrong preamble', { ...base, mangle: (w) => Buffer.concat([Buffer.from('GET '), w.subarray(4)]) }],
      ['flipped ciphertext', { ...base, mangle: (w) => { const c = Buffer.from(w); c[60]! ^= 1; return c; } }],
      ['other trust domain', { ...base, trustDomain: 'evil.example' }],
      ['wrong responder key', { ...base, responderKey: nativeBackend.dh('25519').generateKeyPair().publicKey }],
      ['target port 0', { ...base, rawP1: Buffer.concat([Buffer.of(1), Buffer.alloc(16), Buffer.from([0, 0, 0, 0])]) }],
      ['P1 too short', { ...base, rawP1: Buffer.alloc(20, 1) }],
      ['P1 version 2', { ...base, rawP1: Buffer.concat([Buffer.of(2), Buffer.alloc(16), Buffer.from([0, 80, 0, 0])]) }],
      ['extensions overrun', { ...base, rawP1: Buffer.concat([Buffer.of(1), Buffer.alloc(16), Buffer.from([0, 80, 0, 9, 0, 1, 0, 4])]) }],
      ['zero-length frame', { ...base, mangle: (w) => Buffer.concat([w.subarray(0, 4), Buffer.of(0, 0)]) }],
    ];
    for (const [name, options] of cases) {
      const r = await rawHandshake(options);
      assert.equal(r.silent, true, `${name}: the responder must close without a byte`);
      assert.equal(r.status, null, name);
    }
  } finally {
    await mesh.close();
    await app.close();
  }
});

test('a client that never finishes message 1 is cut off at the handshake timeout', async () => {
  const app = await tcpServer(() => {});
  const mesh = await twoProxies(app.port, { handshakeTimeoutMs: 300 });
  try {
    const started = Date.now();
    const socket = await dial(mesh.serverMeshPort);
    socket.write(Buffer.from([0x4e, 0x4d, 0x01, 0x00, 0x00, 0x60, 1, 2, 3]));
    const { data } = await readAll(socket, 10_000);
    assert.equal(data.length, 0, 'no answer, only a close');
    assert.ok(Date.now() - started >= 250, 'closed by the timeout, not at once');
    const m = await mesh.server.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total');
    assert.match(m, /role="responder",result="timeout"} 1/);
  } finally {
    await mesh.close();
    await app.close();
  }
});

test('revoking a key aborts its live sessions on both sides, reported once for all of them', async () => {
  const app = await tcpServer((s) => s.write('hi'));
  const lines: { event?: string; reason?: string | null; result?: string }[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _, done) => { for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l)); done(); } });
  const mesh = await twoProxies(app.port, { serverLog: pino({ level: 'info' }, sink) });
  try {
    const clients = await Promise.all([1, 2, 3].map(() => dial(mesh.entryPort)));
    const endings = clients.map((c) => readAll(c));
    await Promise.all(clients.map((c) => new Promise((r) => c.once('data', r))));
    assert.equal(mesh.server.sessions.size, 3);
    mesh.serverView.delete(mesh.clientId.publicKeyB64);
    assert.equal(mesh.server.revokeKey(mesh.clientId.publicKeyB64), 3);
    for (const ending of endings) assert.equal((await ending).ending, 'reset');
    assert.equal(mesh.server.sessions.size, 0);
    assert.equal(mesh.server.revokeKey(mesh.clientId.publicKeyB64), 0, 'nothing left to abort');
    // The three ends are counted, with their bytes, in one update: the same totals as one each.
    const metrics = mesh.server.metrics.registry;
    assert.match(await metrics.getSingleMetricAsString('noisemesh_session_aborts_total'), /reason="revoked"} 3$/m);
    assert.match(await metrics.getSingleMetricAsString('noisemesh_sessions_total'), /direction="inbound",result="aborted"} 3$/m);
    assert.match(await metrics.getSingleMetricAsString('noisemesh_session_bytes_total'), /direction="inbound",flow="from_app"} 6$/m);
    // No line per session aborted (the revocation's own line gives the count); other ends still log.
    assert.deepEqual(lines.filter((l) => l.event === 'session-end'), []);
    mesh.serverView.set(peerOf(mesh.clientId, 0));
    const another = await dial(mesh.entryPort);
    await new Promise((r) => another.once('data', r));
    another.resetAndDestroy();
    for (let i = 0; i < 200 && !lines.some((l) => l.event === 'session-end'); i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(lines.filter((l) => l.event === 'session-end').length, 1, `an ordinary end is logged: ${JSON.stringify(lines)}`);
  } finally {
    await mesh.close();
    await app.close();
  }
});

test('/debug/sessions-style summaries name peers and bytes, never keys', async () => {
  const app = await tcpServer((s) => s.write('x'.repeat(100)));
  const mesh = await twoProxies(app.port);
  try {
    const client = await dial(mesh.entryPort);
    await new Promise((r) => client.once('data', r));
    const [summary] = mesh.client.sessions.summaries();
    assert.equal(summary!.peer, 'demo/server');
    assert.equal(summary!.direction, 'outbound');
    assert.equal(summary!.targetPort, app.port);
    // The pump this process runs sessions on (this suite runs on both: proxy-js-pump.test.ts).
    assert.equal(summary!.pump, sessionPump().engine);
    assert.equal(JSON.stringify(summary).includes(encodeKey(mesh.serverId.keyPair.publicKey)), false);
    client.destroy();
  } finally {
    await mesh.close();
    await app.close();
  }
});

test('backpressure: a reader that stops pauses the writer; each proxy holds at most 288 KiB per session', async () => {
  let serverSide: Socket | undefined;
  const app = await tcpServer((socket) => {
    serverSide = socket; // never read from, until the end of the test
  });
  const mesh = await twoProxies(app.port);
  try {
    const client = await dial(mesh.entryPort);
    const limit = 256 * MiB;
    const chunk = randomBytes(64 * 1024);
    let written = 0;
    // Write until the socket has refused more for a whole second: the writer is paused.
    for (let round = 0; round < 10_000 && written < limit; round++) {
      if (client.write(chunk)) {
        written += chunk.length;
        continue;
      }
      written += chunk.length;
      const drained = await Promise.race([once(client, 'drain').then(() => true), new Promise((r) => setTimeout(r, 1000, false))]);
      if (!drained) break;
    }
    assert.ok(written < limit, `the writer should have been paused long before ${limit} bytes`);
    for (const proxy of [mesh.client, mesh.server]) {
      const [session] = proxy.sessions.summaries();
      assert.ok(session, 'a live session');
      assert.ok(session.bufferedBytes <= 288 * 1024, `${session.direction} session buffers ${session.bufferedBytes} bytes`);
    }
    // Once the reader reads again, every byte arrives.
    const got = readAll(serverSide!);
    serverSide!.resume();
    client.end();
    const { data, ending } = await got;
    assert.equal(data.length, written);
    assert.equal(ending, 'end');
  } finally {
    await mesh.close();
    await app.close();
  }
});

test('an initiator whose message 2 never comes resets the application at the handshake timeout', async () => {
  const app = await tcpServer(() => assert.fail('target must not be reached'));
  // A "responder" that takes message 1 and says nothing.
  const mute = await tcpServer((socket) => socket.resume());
  const mesh = await twoProxies(app.port, { handshakeTimeoutMs: 300, via: async () => mute.port });
  try {
    const started = Date.now();
    const client = await dial(mesh.entryPort);
    const { ending, data } = await readAll(client, 10_000);
    assert.equal(ending, 'reset');
    assert.equal(data.length, 0);
    assert.ok(Date.now() - started >= 250, 'reset by the timeout, not at once');
    const m = await mesh.client.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total');
    assert.match(m, /role="initiator",result="timeout"} 1/);
  } finally {
    await mesh.close();
    await mute.close();
    await app.close();
  }
});

test('a connected socket keeps only the no-op error guard: no timer or promise outlives the connect', async () => {
  const server = await tcpServer((s) => s.on('error', () => {}));
  try {
    const socket = await connectTcp('127.0.0.1', server.port, 5_000);
    // The guard that keeps socket errors from reaching the process, and nothing else: a
    // listener left from connecting would hold its timer and promise for the session's life.
    assert.equal(socket.listenerCount('error'), 1);
    assert.equal(socket.listenerCount('connect'), 0);
    socket.destroy();
    await assert.rejects(connectTcp('127.0.0.1', 1, 5_000), /ECONNREFUSED/);
  } finally {
    await server.close();
  }
});
