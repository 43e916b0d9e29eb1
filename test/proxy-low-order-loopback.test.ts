// Low-order public keys end to end (PROTOCOL.md section 2), with real Proxy instances on
// loopback, on every backend and AEAD engine. An impostor holds no private key at all: it
// claims a registry entry whose key is a low-order point and mixes the all-zero DH outputs
// it predicts. As initiator it must get silence and never reach the target; as responder
// answering for such an entry it must get the application's connection reset, not a session.
// The registry refuses such keys (test/registry-*.test.ts); these proxies read a directory
// that holds them anyway, so what is tested is the handshake's own refusal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { HandshakeState, type CryptoBackend } from '../src/noise/index.js';
import {
  FrameDecoder,
  PROTOCOL,
  Proxy,
  Status,
  decodeP1,
  encodeFrame,
  encodeP1,
  encodeP2,
  prologue,
  silentLogger,
  type MeshPeer,
} from '../src/proxy/index.js';
import { CRYPTO_ENGINES } from './helpers/crypto-engines.js';
import { LOW_ORDER_X25519_B64 } from './helpers/low-order.js';
import { claimedKeyPair, predictingBackend } from './helpers/attacker.js';
import { TRUST_DOMAIN, TestDirectory, dial, makeIdentity, peerOf, rawHandshake, readAll, tcpServer } from './helpers/mesh.js';

const PROLOGUE = prologue(TRUST_DOMAIN);

function lowOrderPeer(agentId: string, publicKeyB64: string, meshPort: number): MeshPeer {
  return { agentId, publicKey: new Uint8Array(Buffer.from(publicKeyB64, 'base64')), publicKeyB64, generation: 1n, addresses: ['127.0.0.1'], meshPort };
}

function serverProxy(backend: CryptoBackend, directory: TestDirectory) {
  const identity = makeIdentity('demo/server');
  const proxy = new Proxy({
    trustDomain: TRUST_DOMAIN,
    backend,
    log: silentLogger(),
    identity,
    directory,
    outbound: { mode: 'permissive', explicit: [] },
    inbound: { mesh: { host: '127.0.0.1', port: 0 }, targetHost: '127.0.0.1' },
  });
  return { proxy, identity };
}

/** What the application meets first: a reset, a clean end, or bytes (from whoever answered). */
function firstOutcome(socket: Socket, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let ending: string | null = null;
    const timer = setTimeout(() => reject(new Error(`nothing happened within ${timeoutMs} ms`)), timeoutMs);
    const done = (what: string): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(what);
    };
    socket.on('data', (c: Buffer) => done(`heard: ${c.toString()}`));
    socket.on('error', (err: NodeJS.ErrnoException) => (ending ??= err.code === 'ECONNRESET' ? 'reset' : `error ${err.code}`));
    socket.on('end', () => (ending ??= 'end'));
    socket.on('close', () => done(ending ?? 'closed'));
  });
}

for (const { label, backend } of CRYPTO_ENGINES) {
  test(`${label}: an initiator without a private key claiming a low-order entry gets silence and never reaches the target`, async () => {
    let targetConnections = 0;
    const target = await tcpServer((s) => {
      targetConnections++;
      s.end();
    });
    const directory = new TestDirectory();
    const { proxy, identity: serverId } = serverProxy(backend, directory);
    const meshPort = (await proxy.start()).mesh;
    try {
      directory.set(peerOf(serverId, meshPort));
      // The setup works: a genuine registered initiator gets status 0 and reaches the target.
      const honest = makeIdentity('demo/honest');
      directory.set(peerOf(honest, 1));
      const ok = await rawHandshake({ port: meshPort, identity: honest, responderKey: serverId.keyPair.publicKey, targetPort: target.port });
      assert.equal(ok.status, Status.accepted);
      ok.socket.destroy();
      for (let i = 0; i < 50 && targetConnections === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(targetConnections, 1, 'the genuine initiator reached the target');

      const answered: string[] = [];
      for (const [i, key] of LOW_ORDER_X25519_B64.entries()) {
        directory.set(lowOrderPeer(`demo/mallory-${i}`, key, 1));
        const claimed = claimedKeyPair(new Uint8Array(Buffer.from(key, 'base64')));
        const attacker = new HandshakeState({
          protocol: PROTOCOL.protocolName,
          initiator: true,
          backend: predictingBackend(backend, claimed),
          prologue: PROLOGUE,
          staticKeyPair: claimed,
          remoteStaticKey: serverId.keyPair.publicKey,
          DANGEROUS_allowAllZeroDh: true,
        });
        const p1 = encodeP1({ timestampNs: BigInt(Date.now()) * 1_000_000n, generation: 1n, targetPort: target.port, extensions: [] });
        const socket = await dial(meshPort);
        const answer = readAll(socket, 15_000);
        socket.write(Buffer.concat([PROTOCOL.preamble, encodeFrame(attacker.writeMessage(p1).message)]));
        if ((await answer).data.length > 0) answered.push(key);
      }

      // And a registered initiator whose ephemeral is low-order is refused the same way.
      const mangled = await rawHandshake({
        port: meshPort,
        identity: honest,
        responderKey: serverId.keyPair.publicKey,
        targetPort: target.port,
        mangle: (wire) => {
          const out = Buffer.from(wire);
          out.set(Buffer.from(LOW_ORDER_X25519_B64[1]!, 'base64'), PROTOCOL.preamble.length + 2);
          return out;
        },
      });
      assert.equal(mangled.silent, true);

      // Give a wrongly accepted connection time to reach the target before counting.
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(answered, [], 'the responder answered impostors claiming these keys');
      assert.equal(targetConnections, 1, 'an impostor reached the target');
      assert.equal(proxy.sessions.size, 0);
      const m = await proxy.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total');
      assert.match(m, new RegExp(`role="responder",result="low-order"} ${LOW_ORDER_X25519_B64.length + 1}$`, 'm'));
      assert.match(m, /role="responder",result="accepted"} 1$/m);
    } finally {
      await proxy.shutdown(0);
      await target.close();
    }
  });

  test(`${label}: a responder answering for a low-order entry gets the application's connection reset`, async () => {
    // The impostor's mesh port: it answers message 1 as the claimed key, with status 0, then
    // sends application data, if it ever gets a message 1.
    let messages1 = 0;
    let claimedB64 = '';
    const impostorSockets = new Set<Socket>();
    const impostor = createServer((socket) => {
      impostorSockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => impostorSockets.delete(socket));
      const claimed = claimedKeyPair(new Uint8Array(Buffer.from(claimedB64, 'base64')));
      const responder = new HandshakeState({
        protocol: PROTOCOL.protocolName,
        initiator: false,
        backend: predictingBackend(backend, claimed),
        prologue: PROLOGUE,
        staticKeyPair: claimed,
        DANGEROUS_allowAllZeroDh: true,
      });
      const decoder = new FrameDecoder();
      let preamble = 0;
      let answered = false;
      socket.on('data', (chunk: Buffer) => {
        if (answered) return; // what follows message 1 is the application's, and not our concern
        if (preamble < PROTOCOL.preamble.length) {
          const take = Math.min(PROTOCOL.preamble.length - preamble, chunk.length);
          preamble += take;
          chunk = chunk.subarray(take);
        }
        decoder.push(chunk, (message) => {
          answered = true;
          messages1++;
          if (decodeP1(responder.readMessage(message).payload) === null) {
            socket.destroy();
            return false;
          }
          const { message: m2, transport } = responder.writeMessage(encodeP2({ status: Status.accepted, generation: 1n, extensions: [] }));
          socket.write(Buffer.concat([encodeFrame(m2), encodeFrame(transport!.encrypt(Buffer.from('from the impostor')))]));
          return false;
        });
      });
    });
    impostor.listen(0, '127.0.0.1');
    await once(impostor, 'listening');
    const impostorPort = (impostor.address() as AddressInfo).port;

    const directory = new TestDirectory();
    const clientId = makeIdentity('demo/client');
    const client = new Proxy({
      trustDomain: TRUST_DOMAIN,
      backend,
      log: silentLogger(),
      identity: clientId,
      directory,
      outbound: { mode: 'permissive', explicit: [{ listen: { host: '127.0.0.1', port: 0 }, peer: 'demo/server', port: 8080 }] },
      inbound: { mesh: { host: '127.0.0.1', port: 0 }, targetHost: '127.0.0.1' },
    });
    const ports = await client.start();
    try {
      directory.set(peerOf(clientId, ports.mesh));
      for (const key of LOW_ORDER_X25519_B64) {
        for (const p of directory.peersByAgentId('demo/server')) directory.delete(p.publicKeyB64);
        directory.set(lowOrderPeer('demo/server', key, impostorPort));
        claimedB64 = key;
        const app = await dial(ports.explicit[0]!);
        assert.equal(await firstOutcome(app), 'reset', key);
      }
      assert.equal(messages1, 0, 'a message 1 went to a peer that cannot be authenticated');
      assert.equal(client.sessions.size, 0);
      const m = await client.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total');
      assert.match(m, new RegExp(`role="initiator",result="low-order"} ${LOW_ORDER_X25519_B64.length}$`, 'm'));
    } finally {
      await client.shutdown(0);
      for (const s of impostorSockets) s.destroy();
      await new Promise<void>((resolve) => impostor.close(() => resolve()));
    }
  });
}
