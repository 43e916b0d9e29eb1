// Where inbound traffic is delivered inside the pod (PROTOCOL.md 4.2, DESIGN.md "Inbound"),
// on loopback: the responder connects to the address the mesh connection arrived on unless
// inbound.targetHost says otherwise, and inbound capture forwards only to the pod's own
// addresses, never to its loopback or to another host. test/target-address-netns.test.ts
// shows the same with pods, iptables and an unmeshed client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { once } from 'node:events';
import { nativeBackend } from '../src/noise/index.js';
import { Proxy, silentLogger, type OriginalDestination } from '../src/proxy/index.js';
import { arrivalTarget, isLoopback, PodAddresses, unmapIPv4 } from '../src/proxy/inbound/arrival-address.js';
import { TestDirectory, TRUST_DOMAIN, dial, makeIdentity, peerOf, readAll } from './helpers/mesh.js';

test('unmapIPv4 and isLoopback', () => {
  assert.equal(unmapIPv4('::ffff:10.251.3.2'), '10.251.3.2');
  assert.equal(unmapIPv4('::FFFF:127.0.0.1'), '127.0.0.1');
  assert.equal(unmapIPv4('::ffff:1'), '::ffff:1', 'not a v4-mapped address');
  assert.equal(unmapIPv4('fd00:251:3::2'), 'fd00:251:3::2');
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1']) assert.equal(isLoopback(a), true, a);
  for (const a of ['10.0.0.1', '::ffff:10.0.0.1', 'fd00::1', '127.example', '::2']) assert.equal(isLoopback(a), false, a);
});

test('arrivalTarget: the local address, unmapped; nothing for loopback reached from outside or a closed socket', () => {
  assert.deepEqual(arrivalTarget('10.251.3.2', '10.251.3.1'), { ok: true, host: '10.251.3.2' });
  assert.deepEqual(arrivalTarget('::ffff:10.251.3.2', '::ffff:10.251.3.1'), { ok: true, host: '10.251.3.2' });
  assert.deepEqual(arrivalTarget('fd00:251:3::2', 'fd00:251:3::1'), { ok: true, host: 'fd00:251:3::2' });
  // Within the pod (or the demo's loopback mesh): the arrival address is loopback, and so is the source.
  assert.deepEqual(arrivalTarget('127.0.0.1', '127.0.0.1'), { ok: true, host: '127.0.0.1' });
  assert.deepEqual(arrivalTarget('::ffff:127.0.0.2', '::ffff:127.0.0.1'), { ok: true, host: '127.0.0.2' });
  // A neighbour that routed a packet to our 127.0.0.1 (route_localnet) reaches nothing.
  assert.deepEqual(arrivalTarget('127.0.0.1', '10.251.3.1'), { ok: false, reason: 'arrived on a loopback address from outside the pod' });
  assert.deepEqual(arrivalTarget('::ffff:127.0.0.1', '::ffff:10.251.3.1'), { ok: false, reason: 'arrived on a loopback address from outside the pod' });
  assert.equal(arrivalTarget(undefined, '10.251.3.1').ok, false);
  assert.equal(arrivalTarget('10.251.3.2', undefined).ok, false);
});

test("PodAddresses: the pod's non-loopback addresses, re-read on a miss at most once a second", () => {
  const info = (address: string, internal = false): NetworkInterfaceInfo =>
    ({ address, internal, family: address.includes(':') ? 'IPv6' : 'IPv4', netmask: '', mac: '', cidr: null, ...(address.includes(':') && { scopeid: 0 }) }) as NetworkInterfaceInfo;
  let interfaces: Record<string, NetworkInterfaceInfo[]> = {
    lo: [info('127.0.0.1', true), info('::1', true)],
    eth0: [info('10.251.3.2'), info('fd00:251:3::2')],
  };
  let reads = 0;
  let now = 0;
  const pod = new PodAddresses(() => (reads++, interfaces), () => now);
  assert.equal(pod.has('10.251.3.2'), true);
  assert.equal(pod.has('::ffff:10.251.3.2'), true);
  assert.equal(pod.has('FD00:251:3::2'), true);
  assert.equal(reads, 1);
  for (const foreign of ['127.0.0.1', '::1', '10.251.3.9', '10.251.3.10']) assert.equal(pod.has(foreign), false, foreign);
  assert.equal(reads, 1, 'misses within a second of the last read do not re-read');
  interfaces = { ...interfaces, eth1: [info('10.9.9.9')] };
  assert.equal(pod.has('10.9.9.9'), false, 'not yet re-read');
  now = 1000;
  assert.equal(pod.has('10.9.9.9'), true, 'an address added after start is found on the next read');
  assert.equal(reads, 2);
  // Even an interface not flagged internal never makes loopback a pod address.
  interfaces = { odd: [info('127.0.0.5')] };
  now = 2000;
  assert.equal(pod.has('127.0.0.5'), false);
});

/** Two servers on the same port: `127.0.0.1` ("admin, localhost only") and `127.0.0.2` ("app"). */
async function sameOnTwoAddresses(): Promise<{ port: number; close(): void }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const app = createServer((s) => s.on('error', () => {}).end('app on 127.0.0.2'));
    app.listen(0, '127.0.0.2');
    await once(app, 'listening');
    const port = (app.address() as AddressInfo).port;
    const admin = createServer((s) => s.on('error', () => {}).end('admin on 127.0.0.1'));
    const bound = await new Promise<boolean>((resolve) => {
      admin.once('error', () => resolve(false));
      admin.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (bound) return { port, close: () => void (app.close(), admin.close()) };
    app.close();
  }
  throw new Error('no port free on both 127.0.0.1 and 127.0.0.2 in 20 tries');
}

/** A client proxy with an explicit listener to `port` on a server proxy whose mesh port is on 127.0.0.2. */
async function meshTo(port: number, targetHost?: string) {
  const clientId = makeIdentity('shop/web');
  const serverId = makeIdentity('shop/api');
  const view = new TestDirectory();
  const common = { trustDomain: TRUST_DOMAIN, backend: nativeBackend, log: silentLogger(), directory: view };
  const server = new Proxy({
    ...common,
    identity: serverId,
    outbound: { mode: 'permissive', explicit: [] },
    inbound: { mesh: { host: '127.0.0.2', port: 0 }, ...(targetHost !== undefined && { targetHost }) },
  });
  const serverMesh = (await server.start()).mesh;
  const client = new Proxy({
    ...common,
    identity: clientId,
    outbound: { mode: 'permissive', explicit: [{ listen: { host: '127.0.0.1', port: 0 }, peer: serverId.agentId, port }] },
    inbound: { mesh: { host: '127.0.0.1', port: 0 } },
  });
  const ports = await client.start();
  view.set(peerOf(clientId, ports.mesh, 1n, ['127.0.0.1']));
  view.set(peerOf(serverId, serverMesh, 1n, ['127.0.0.2']));
  return {
    server,
    request: async () => readAll(await dial(ports.explicit[0]!)),
    close: () => Promise.all([client.shutdown(0), server.shutdown(0)]),
  };
}

test('the responder connects to the address the mesh connection arrived on, not to 127.0.0.1', async () => {
  const servers = await sameOnTwoAddresses();
  const mesh = await meshTo(servers.port);
  try {
    const r = await mesh.request();
    assert.equal(r.data.toString(), 'app on 127.0.0.2');
    assert.equal(r.ending, 'end');
    assert.match(await mesh.server.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total'), /role="responder",result="accepted"} 1/);
  } finally {
    await mesh.close();
    servers.close();
  }
});

test('a server bound only to 127.0.0.1 is not reached through the mesh: status 5, the client sees a reset', async () => {
  const admin = createServer((s) => s.on('error', () => {}).end('admin on 127.0.0.1'));
  admin.listen(0, '127.0.0.1');
  await once(admin, 'listening');
  let reached = 0;
  admin.on('connection', () => reached++);
  const mesh = await meshTo((admin.address() as AddressInfo).port);
  try {
    const r = await mesh.request();
    assert.equal(r.ending, 'reset');
    assert.equal(r.data.length, 0);
    assert.equal(reached, 0);
    assert.match(await mesh.server.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total'), /role="responder",result="targetUnavailable"} 1/);
  } finally {
    await mesh.close();
    admin.close();
  }
});

test('inbound.targetHost, when configured, is where the responder connects', async () => {
  const servers = await sameOnTwoAddresses();
  const mesh = await meshTo(servers.port, '127.0.0.1');
  try {
    assert.equal((await mesh.request()).data.toString(), 'admin on 127.0.0.1');
  } finally {
    await mesh.close();
    servers.close();
  }
});

test("inbound capture never forwards to loopback or to an address that is not the pod's", async () => {
  const local = new Set(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address)));
  const foreign = ['198.51.100.7', '203.0.113.9', '2001:db8::7'].find((a) => !local.has(a))!;
  let reached = 0;
  const target: Server = createServer((s) => (reached++, s.on('error', () => {}).end('must not be reached')));
  target.listen(0, '127.0.0.1');
  await once(target, 'listening');
  const port = (target.address() as AddressInfo).port;
  let next: OriginalDestination = { address: '127.0.0.1', port };
  const id = makeIdentity('shop/api');
  const view = new TestDirectory();
  view.set(peerOf(id, 1, 1n, []));
  const proxy = new Proxy({
    trustDomain: TRUST_DOMAIN,
    backend: nativeBackend,
    log: silentLogger(),
    directory: view,
    identity: id,
    outbound: { mode: 'permissive', explicit: [] },
    inbound: { mesh: { host: '127.0.0.1', port: 0 }, capture: { host: '127.0.0.1', port: 0, mode: 'permissive' } },
    originalDestinationOf: () => next,
  });
  const ports = await proxy.start();
  try {
    for (const destination of [{ address: '127.0.0.1', port }, { address: '::ffff:127.0.0.1', port }, { address: foreign, port: 80 }]) {
      next = destination;
      let ending: string;
      try {
        ending = (await readAll(await dial(ports.inboundCapture!))).ending;
      } catch (err) {
        ending = (err as NodeJS.ErrnoException).code === 'ECONNRESET' ? 'reset' : String(err);
      }
      assert.equal(ending, 'reset', `${destination.address}:${destination.port} is refused`);
    }
    assert.equal(reached, 0, 'the loopback server was never reached');
    assert.match(await proxy.metrics.registry.getSingleMetricAsString('noisemesh_plaintext_connections_total'), /direction="inbound",result="refused"} 3/);
  } finally {
    await proxy.shutdown(0);
    target.close();
  }
});
