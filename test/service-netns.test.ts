// A Service in network namespaces, as root: the client pod A dials a ClusterIP, an address no
// pod has, and reaches the meshed endpoint pod B over Noise. A's proxy runs with
// `registry.kubernetes`, watching the API-server test double (run inside A's namespace, the
// only place A's proxy can reach it); B's inbound capture is strict, so plaintext could not
// get through. A's nat OUTPUT chain holds, after the noisemesh jump, the DNAT rule kube-proxy
// would install (ClusterIP:80 -> B:8080), so an unmeshed client would reach B too: the test
// checks the order, that the app's connection is redirected before that rule sees it, and
// that a connection our UID makes to the ClusterIP (not captured) meets the rule.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { PodNetwork, requireTools, waitForLine, type Pod } from './helpers/netns.js';
import { APP_UID, MeshedPods, PROXY_UID, sample } from './helpers/meshed-pods.js';
import { kubeconfigFor } from './helpers/fake-apiserver.js';
import { serviceObject, slicesFor } from './helpers/kube-services.js';
import { repoRoot } from './helpers/paths.js';

const CLUSTER_IP = '10.96.77.10';
const TOKEN = 'netns-test-token';
let net: PodNetwork;
let mesh: MeshedPods;
let a: Pod, b: Pod;

const client = (host: string, port: number): string => `
  const s = require('net').connect(${port}, '${host}');
  let got = '';
  s.on('data', (d) => { got += d; if (got.includes('\\n')) { console.log('GOT ' + got.trim()); s.destroy(); } });
  s.on('error', (e) => { console.log('ERR ' + e.code); });
  s.on('close', () => { if (!got) console.log('CLOSED'); });
  setTimeout(() => { console.log('TIMEOUT'); process.exit(1); }, 8000).unref();`;

/** The DNAT rule's packet count in A's nat OUTPUT chain. */
async function dnatPackets(): Promise<number> {
  const r = await net.exec(a, 'iptables', ['-t', 'nat', '-L', 'OUTPUT', '-v', '-x', '-n']);
  const line = r.stdout.split('\n').find((l) => l.includes('DNAT') && l.includes(CLUSTER_IP));
  assert.ok(line, `no DNAT rule in:\n${r.stdout}`);
  return Number(line.trim().split(/\s+/)[0]);
}

before(async () => {
  requireTools(['ip', 'iptables', 'iptables-restore', 'setpriv', 'curl']);
  net = await PodNetwork.create(2);
  [a, b] = net.pods as [Pod, Pod];
  mesh = await MeshedPods.create(net, [a, b]);
  await waitForLine(net.spawn(b, process.execPath, ['-e', `require('net').createServer((s) => { s.on('error', () => {}); s.end('hello from b\\n'); }).listen(8080, '::'); console.log('app ready');`], { uid: APP_UID }), /app ready/);

  // The cluster, as A's API server serves it: the registry, the Service and its slice.
  const svc = serviceObject('shop', 'api', { clusterIP: CLUSTER_IP, ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
  const objects = [
    ...parseAllDocuments(readFileSync(join(mesh.dir, 'registry.yaml'), 'utf8')).map((d) => ({ resource: 'clearanceregistries', object: d.toJSON() as Record<string, unknown> })),
    { resource: 'services', object: svc },
    ...slicesFor(svc, [{ name: 'b', ip: b.ipv4 }]).map((object) => ({ resource: 'endpointslices', object })),
  ];
  writeFileSync(join(mesh.dir, 'cluster.json'), JSON.stringify(objects));
  const apiserver = net.spawn(a, process.execPath, [join(repoRoot, 'dist/test/helpers/fake-apiserver-main.js'), join(mesh.dir, 'cluster.json'), TOKEN]);
  const port = Number(/listening (\d+)/.exec(await waitForLine(apiserver, /^listening \d+/))![1]);
  const kubeconfig = join(mesh.dir, 'kubeconfig');
  writeFileSync(kubeconfig, kubeconfigFor(`http://127.0.0.1:${port}`, TOKEN));
  chmodSync(kubeconfig, 0o644);

  // What kube-proxy would add: a route the ClusterIP can leave by, and the DNAT after our chain.
  for (const args of [
    ['ip', 'route', 'add', '10.96.0.0/12', 'dev', 'eth0'],
    ['iptables', '-t', 'nat', '-A', 'OUTPUT', '-d', `${CLUSTER_IP}/32`, '-p', 'tcp', '--dport', '80', '-j', 'DNAT', '--to-destination', `${b.ipv4}:8080`],
  ]) {
    const r = await net.exec(a, args[0]!, args.slice(1));
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  }
  const rules = (await net.exec(a, 'iptables', ['-t', 'nat', '-S', 'OUTPUT'])).stdout.split('\n').filter((l) => l.startsWith('-A OUTPUT'));
  assert.ok(rules.findIndex((l) => l.includes('NOISEMESH')) < rules.findIndex((l) => l.includes('DNAT')), `the DNAT comes after our jump:\n${rules.join('\n')}`);

  const inbound = { bind: '::', meshPort: 15443, capture: { port: 15006, mode: 'strict', excludePorts: [15020] } };
  const admin = { bind: '0.0.0.0', port: 15020 };
  await mesh.startProxy(b, { inbound, admin });
  await mesh.startProxy(a, {
    registry: { kubernetes: { kubeconfig, namespaces: ['shop'] } },
    outbound: { mode: 'strict', capture: { bind: '::', port: 15001 } },
    inbound,
    admin,
  });
});

after(async () => {
  await mesh?.stop();
  await net?.destroy();
});

test('a client pod dials a ClusterIP and reaches the meshed endpoint pod over Noise', async () => {
  // /readyz of A's proxy turns ready only once the Services are in.
  for (let i = 0; i < 100; i++) {
    const r = await net.exec(a, 'curl', ['-sf', 'http://127.0.0.1:15020/readyz']);
    const ready = (r.code === 0 ? JSON.parse(r.stdout) : {}) as { ready?: boolean; checks?: { services?: boolean }; services?: { frontends?: number } };
    if (ready.ready === true) {
      assert.deepEqual([ready.checks?.services, ready.services?.frontends], [true, 1], r.stdout);
      break;
    }
    assert.ok(i < 99, `A's proxy never listed the Service: ${r.stdout}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const before = await dnatPackets();
  const r = await net.exec(a, process.execPath, ['-e', client(CLUSTER_IP, 80)], { uid: APP_UID });
  assert.equal(r.stdout.trim(), 'GOT hello from b', r.stderr);
  assert.equal(sample(await mesh.metrics(a), 'noisemesh_handshakes_total', { role: 'initiator', result: 'accepted' }), 1);
  assert.equal(sample(await mesh.metrics(b), 'noisemesh_handshakes_total', { role: 'responder', result: 'accepted' }), 1);
  assert.equal(await dnatPackets(), before, "the app's connection was redirected before the DNAT; the proxy dialled B's pod IP");

  // Our UID is not captured: its connection to the ClusterIP meets kube-proxy's rule and
  // arrives at B in plaintext, where B's strict inbound capture refuses it.
  const plain = await net.exec(a, process.execPath, ['-e', client(CLUSTER_IP, 80)], { uid: PROXY_UID });
  assert.equal(await dnatPackets(), before + 1, 'the DNAT applies to connections our chain lets by');
  assert.doesNotMatch(plain.stdout, /GOT/, 'strict inbound on B refuses plaintext');
  assert.match(plain.stdout, /ERR ECONNRESET|CLOSED/);
  assert.equal(sample(await mesh.metrics(b), 'noisemesh_plaintext_connections_total', { direction: 'inbound', result: 'refused' }), 1, 'B refused it');
});
