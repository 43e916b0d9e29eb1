// The outbound capture path without iptables: the original-destination lookup is the
// replaceable step around accept, so the test hands in its own. A meshed destination goes
// over Noise; an unmeshed one passes in plaintext (permissive) or is refused (strict); a
// meshed but revoked one is refused in either mode, never sent in plaintext.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nativeBackend } from '../src/noise/index.js';
import { Proxy, silentLogger, type OriginalDestination } from '../src/proxy/index.js';
import { TestDirectory, TRUST_DOMAIN, dial, makeIdentity, peerOf, readAll, tcpServer } from './helpers/mesh.js';

async function setup(mode: 'permissive' | 'strict') {
  const meshedApp = await tcpServer((s) => s.end('from the meshed app'));
  const plainApp = await tcpServer((s) => s.end('from a plaintext server'));
  const clientId = makeIdentity('shop/web');
  const serverId = makeIdentity('shop/api');
  const view = new TestDirectory();
  const common = { trustDomain: TRUST_DOMAIN, backend: nativeBackend, log: silentLogger(), directory: view };
  // The server "pod" is 127.0.0.2; its application listens on 127.0.0.1 behind the proxy.
  const server = new Proxy({
    ...common,
    identity: serverId,
    outbound: { mode: 'permissive', explicit: [] },
    inbound: { mesh: { host: '127.0.0.2', port: 0 }, targetHost: '127.0.0.1' },
  });
  const serverMesh = (await server.start()).mesh;
  let next: OriginalDestination = { address: '0.0.0.0', port: 1 };
  const client = new Proxy({
    ...common,
    identity: clientId,
    outbound: { mode, capture: { host: '127.0.0.1', port: 0 }, explicit: [] },
    inbound: { mesh: { host: '127.0.0.1', port: 0 }, targetHost: '127.0.0.1' },
    originalDestinationOf: () => next,
  });
  const ports = await client.start();
  view.set(peerOf(clientId, ports.mesh, 1n, ['127.0.0.3']));
  view.set(peerOf(serverId, serverMesh, 1n, ['127.0.0.2']));
  return {
    client,
    server,
    view,
    serverId,
    meshedApp,
    plainApp,
    /** Connects "to" `destination` the way a captured application would. */
    async connect(destination: OriginalDestination) {
      next = destination;
      try {
        return await readAll(await dial(ports.outboundCapture!));
      } catch (err) {
        // A reset can overtake the connect itself when the proxy refuses at once.
        if ((err as NodeJS.ErrnoException).code === 'ECONNRESET') return { data: Buffer.alloc(0), ending: 'reset' as const };
        throw err;
      }
    },
    async close() {
      await Promise.all([client.shutdown(0), server.shutdown(0), meshedApp.close(), plainApp.close()]);
    },
  };
}

test('permissive: meshed destinations over Noise, others in plaintext', async () => {
  const m = await setup('permissive');
  try {
    const meshed = await m.connect({ address: '127.0.0.2', port: m.meshedApp.port });
    assert.equal(meshed.data.toString(), 'from the meshed app');
    assert.match(await m.server.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total'), /role="responder",result="accepted"} 1/);
    const plain = await m.connect({ address: '127.0.0.1', port: m.plainApp.port });
    assert.equal(plain.data.toString(), 'from a plaintext server');
    assert.match(await m.client.metrics.registry.getSingleMetricAsString('noisemesh_plaintext_connections_total'), /direction="outbound",result="passed"} 1/);
  } finally {
    await m.close();
  }
});

test('strict: a destination that is no meshed peer is refused', async () => {
  const m = await setup('strict');
  try {
    const plain = await m.connect({ address: '127.0.0.1', port: m.plainApp.port });
    assert.equal(plain.ending, 'reset');
    assert.equal(plain.data.length, 0);
    const meshed = await m.connect({ address: '127.0.0.2', port: m.meshedApp.port });
    assert.equal(meshed.data.toString(), 'from the meshed app');
  } finally {
    await m.close();
  }
});

test('a meshed but revoked destination is refused even in permissive mode', async () => {
  const m = await setup('permissive');
  try {
    m.view.delete(m.serverId.publicKeyB64);
    m.view.refuseAddress('127.0.0.2', 'shop/api is revoked');
    const r = await m.connect({ address: '127.0.0.2', port: m.meshedApp.port });
    assert.equal(r.ending, 'reset');
    assert.match(await m.client.metrics.registry.getSingleMetricAsString('noisemesh_plaintext_connections_total'), /direction="outbound",result="refused"} 1/);
  } finally {
    await m.close();
  }
});
