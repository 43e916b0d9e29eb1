// Where inbound traffic lands inside a pod, end to end (issue 8, item 2; PROTOCOL.md 4.2,
// DESIGN.md "Inbound"). Pods A (meshed), B (meshed, default target address, permissive
// inbound capture) and C (not meshed). In B, one server listens on loopback only
// (127.0.0.1:7001 and [::1]:7001), another on B's pod addresses only (7002). Without a mesh,
// another pod gets "refused" from 7001 and an answer from 7002; with it, the same from both
// a meshed client (over Noise) and an unmeshed one (plaintext through inbound capture).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PodNetwork, requireTools, waitForLine, type Pod } from './helpers/netns.js';
import { APP_UID, MeshedPods, sample } from './helpers/meshed-pods.js';

let net: PodNetwork;
let mesh: MeshedPods;
let a: Pod, b: Pod, c: Pod;

/** Servers that say which address and port answered. */
const SERVERS = `
const net = require('net');
const [v4, v6] = process.argv.slice(1);
const binds = [['127.0.0.1', 7001], ['::1', 7001], [v4, 7002], [v6, 7002]];
let listening = 0;
for (const [host, port] of binds) {
  net.createServer((s) => { s.on('error', () => {}); s.end('server ' + host + ' ' + port + '\\n'); })
    .listen({ host, port, ipv6Only: true }, () => { if (++listening === binds.length) console.log('servers ready'); });
}`;

/** What a client gets from host:port: the text, then `end`, or `error <code>`. */
const CLIENT = `
const [host, port] = process.argv.slice(1);
let text = '';
const s = require('net').connect({ host, port: Number(port) });
s.setEncoding('utf8');
s.setTimeout(10000, () => { console.log(text + 'timeout'); process.exit(1); });
s.on('data', (d) => (text += d));
s.on('end', () => { console.log(text + 'end'); process.exit(0); });
s.on('error', (e) => { console.log(text + 'error ' + e.code); process.exit(0); });`;

async function dial(from: Pod, host: string, port: number): Promise<string> {
  const r = await net.exec(from, process.execPath, ['-e', CLIENT, host, String(port)], { uid: APP_UID });
  assert.equal(r.code, 0, `client in ${from.name} to ${host}:${port}: ${r.stdout}${r.stderr}`);
  return r.stdout.trim();
}

before(async () => {
  requireTools(['ip', 'iptables', 'iptables-restore', 'setpriv', 'curl']);
  net = await PodNetwork.create(3);
  [a, b, c] = net.pods as [Pod, Pod, Pod];
  await waitForLine(net.spawn(b, process.execPath, ['-e', SERVERS, b.ipv4, b.ipv6], { uid: APP_UID }), /servers ready/);
});

after(async () => {
  await mesh?.stop();
  await net?.destroy();
});

test('without a mesh: from another pod, the loopback-only server is refused and the pod-IP server answers', async () => {
  for (const host of [b.ipv4, b.ipv6]) {
    assert.equal(await dial(c, host, 7001), 'error ECONNREFUSED');
    assert.equal(await dial(c, host, 7002), `server ${host} 7002\nend`);
  }
});

test('with the mesh: from meshed pod A, over Noise, 7001 is reset and 7002 answers', async () => {
  mesh = await MeshedPods.create(net, [a, b]);
  const common = {
    outbound: { mode: 'permissive', capture: { bind: '::', port: 15001 } },
    admin: { bind: '0.0.0.0', port: 15020 },
  };
  await mesh.startProxy(a, { ...common, inbound: { bind: '::', meshPort: 15443 } });
  // B: no inbound.targetHost, so the default: the address each mesh connection arrived on.
  await mesh.startProxy(b, { ...common, inbound: { bind: '::', meshPort: 15443, capture: { port: 15006, mode: 'permissive', excludePorts: [15020] } } });

  for (const host of [b.ipv4, b.ipv6]) {
    assert.equal(await dial(a, host, 7001), 'error ECONNRESET', `${host}:7001 from A`);
    assert.equal(await dial(a, host, 7002), `server ${host} 7002\nend`, `${host}:7002 from A`);
  }
  const fromA = await mesh.metrics(a);
  const atB = await mesh.metrics(b);
  // Four handshakes from A, all answered by B: two carried, two with status 5 (nothing at B's address:7001).
  assert.equal(sample(fromA, 'noisemesh_handshakes_total', { role: 'initiator', result: 'accepted' }), 2, fromA);
  assert.equal(sample(fromA, 'noisemesh_handshakes_total', { role: 'initiator', result: 'targetUnavailable' }), 2, fromA);
  assert.equal(sample(atB, 'noisemesh_handshakes_total', { role: 'responder', result: 'accepted' }), 2, atB);
  assert.equal(sample(atB, 'noisemesh_handshakes_total', { role: 'responder', result: 'targetUnavailable' }), 2, atB);
  assert.equal(sample(atB, 'noisemesh_plaintext_connections_total', { direction: 'inbound', result: 'passed' }), 0, 'nothing from A came in plaintext');
});

test('with the mesh: from unmeshed pod C, through inbound capture, 7001 is reset and 7002 answers', async () => {
  for (const host of [b.ipv4, b.ipv6]) {
    assert.equal(await dial(c, host, 7001), 'error ECONNRESET', `${host}:7001 from C`);
    assert.equal(await dial(c, host, 7002), `server ${host} 7002\nend`, `${host}:7002 from C`);
  }
  const atB = await mesh.metrics(b);
  assert.equal(sample(atB, 'noisemesh_plaintext_connections_total', { direction: 'inbound', result: 'passed' }), 2, atB);
  assert.equal(sample(atB, 'noisemesh_plaintext_connections_total', { direction: 'inbound', result: 'unreachable' }), 2, atB);
  assert.equal(sample(atB, 'noisemesh_handshakes_total', { role: 'responder', result: 'accepted' }), 2, 'no new handshakes: C is not meshed');
});

test("inside B, the loopback-only server still answers B's own clients", async () => {
  assert.equal(await dial(b, '127.0.0.1', 7001), 'server 127.0.0.1 7001\nend');
  assert.equal(await dial(b, '::1', 7001), 'server ::1 7001\nend');
});
