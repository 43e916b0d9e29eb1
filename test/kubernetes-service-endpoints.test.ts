// The pure part of Service routing (src/kubernetes/service-endpoints.ts): a Service and its
// EndpointSlices, as the API server and the EndpointSlice controller write them
// (test/helpers/kube-services.ts), in; each ClusterIP:port's endpoint candidates out, as
// kube-proxy would pick them. And the balancer's power of two choices, with its random fixed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEndpointSlice, parseService, serviceFrontends, type ParsedSlice } from '../src/kubernetes/index.js';
import { ServiceBalancer, type MeshEndpoint } from '../src/proxy/outbound/service-balancer.js';
import { endpointSliceObject, serviceObject, slicesFor } from './helpers/kube-services.js';

function frontends(service: Record<string, unknown>, slices: Record<string, unknown>[]) {
  const parsed = parseService(service);
  assert.ok(parsed);
  return serviceFrontends(parsed, slices.map((s) => parseEndpointSlice(s)).filter((s): s is ParsedSlice => s !== undefined));
}

const endpointsOf = (f: { endpoints: readonly { address: string; port: number }[] }) => f.endpoints.map((e) => `${e.address}:${e.port}`).sort();

test('ports: a named targetPort resolves per pod through the slice port named as the Service port; a number maps as is', () => {
  const svc = serviceObject('shop', 'web', {
    clusterIP: '10.96.0.10',
    ports: [
      { name: 'http', port: 80, targetPort: 'http' },
      { name: 'metrics', port: 9090, targetPort: 9100 },
      { name: 'dns', port: 53, protocol: 'UDP' },
    ],
  });
  const slices = slicesFor(svc, [
    { name: 'a', ip: '10.0.0.1', ports: { http: 8080 } },
    { name: 'b', ip: '10.0.0.2', ports: { http: 8081 } },
    { name: 'c', ip: '10.0.0.3', ports: { web: 8080 } }, // no port named http
  ]);
  assert.equal(slices.length, 3, 'one slice per distinct set of resolved ports, as the controller writes them');
  const byPort = new Map(frontends(svc, slices).map((f) => [f.port, f]));
  assert.deepEqual([...byPort.keys()].sort(), [80, 9090], 'UDP ports are not captured, so not indexed');
  assert.deepEqual(endpointsOf(byPort.get(80)!), ['10.0.0.1:8080', '10.0.0.2:8081']);
  assert.deepEqual(endpointsOf(byPort.get(9090)!), ['10.0.0.1:9100', '10.0.0.2:9100', '10.0.0.3:9100']);
  assert.equal(byPort.get(80)!.service, 'shop/web');
  assert.equal(byPort.get(80)!.portName, 'http');
});

test('an unnamed single port matches the slice port named ""; a slice port of another name contributes nothing', () => {
  const svc = serviceObject('shop', 'db', { clusterIP: '10.96.0.11', ports: [{ port: 5432 }] });
  const [f] = frontends(svc, [
    endpointSliceObject('shop', 'db-0', 'db', { ports: [{ port: 5432 }], endpoints: [{ addresses: ['10.0.0.1'] }] }),
    endpointSliceObject('shop', 'db-1', 'db', { ports: [{ name: 'pg', port: 6432 }], endpoints: [{ addresses: ['10.0.0.2'] }] }),
    endpointSliceObject('shop', 'x-0', 'other', { ports: [{ port: 5432 }], endpoints: [{ addresses: ['10.0.0.3'] }] }),
  ]);
  assert.deepEqual(endpointsOf(f!), ['10.0.0.1:5432'], 'absent conditions mean ready');
});

test('conditions: ready endpoints only; serving and terminating ones only when none is ready; duplicates count once', () => {
  const svc = serviceObject('shop', 'api', { clusterIP: '10.96.0.12', ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
  const mixed = slicesFor(svc, [
    { name: 'a', ip: '10.0.0.1' },
    { name: 'b', ip: '10.0.0.2', terminating: true },
    { name: 'c', ip: '10.0.0.3', ready: false },
  ]);
  let [f] = frontends(svc, mixed);
  assert.deepEqual(endpointsOf(f!), ['10.0.0.1:8080']);
  assert.equal(f!.terminatingFallback, false);

  const draining = slicesFor(svc, [
    { name: 'b', ip: '10.0.0.2', terminating: true },
    { name: 'd', ip: '10.0.0.4', terminating: true, ready: false }, // terminating, not serving
    { name: 'c', ip: '10.0.0.3', ready: false },
  ]);
  [f] = frontends(svc, draining);
  assert.deepEqual(endpointsOf(f!), ['10.0.0.2:8080'], 'serving && terminating only');
  assert.equal(f!.terminatingFallback, true);

  // A pod that moved between slices appears in both for a moment: once, ready if either says so.
  const moving = [
    endpointSliceObject('shop', 'api-0', 'api', { ports: [{ name: 'http', port: 8080 }], endpoints: [{ addresses: ['10.0.0.5'], conditions: { ready: false, serving: false } }] }),
    endpointSliceObject('shop', 'api-1', 'api', { ports: [{ name: 'http', port: 8080 }], endpoints: [{ addresses: ['10.0.0.5'], conditions: { ready: true } }] }),
  ];
  [f] = frontends(svc, moving);
  assert.deepEqual(endpointsOf(f!), ['10.0.0.5:8080']);

  const none = slicesFor(svc, [{ name: 'c', ip: '10.0.0.3', ready: false }]);
  [f] = frontends(svc, none);
  assert.deepEqual(f!.endpoints, [], 'a frontend with no endpoint is still a frontend');
});

test('families, headless and hostile input', () => {
  const dual = serviceObject('shop', 'api', { clusterIP: '10.96.0.12', clusterIPs: ['10.96.0.12', 'FD00:0:0::A'], ports: [{ port: 80, targetPort: 8080 }] });
  const slices = [
    endpointSliceObject('shop', 'api-v4', 'api', { addressType: 'IPv4', ports: [{ port: 8080 }], endpoints: [{ addresses: ['10.0.0.1'] }] }),
    endpointSliceObject('shop', 'api-v6', 'api', { addressType: 'IPv6', ports: [{ port: 8080 }], endpoints: [{ addresses: ['fd00::0:1'] }] }),
    endpointSliceObject('shop', 'api-fqdn', 'api', { addressType: 'FQDN', ports: [{ port: 8080 }], endpoints: [{ addresses: ['db.example.com'] }] }),
  ];
  const fs = frontends(dual, slices);
  assert.deepEqual(fs.map((f) => [f.clusterIP, endpointsOf(f)]), [
    ['10.96.0.12', ['10.0.0.1:8080']],
    ['fd00::a', ['fd00::1:8080']],
  ], 'each ClusterIP gets the slices of its family; addresses normalized');

  const headless = parseService(serviceObject('shop', 'db', { clusterIP: 'None', ports: [{ port: 5432 }] }))!;
  assert.deepEqual(headless.clusterIPs, [], 'a headless Service has no frontend: its pod IPs are pod IPs');
  assert.deepEqual(serviceFrontends(headless, []), []);

  // What a broken or hostile server could send: skipped piece by piece, never thrown.
  const svc = serviceObject('shop', 'web', { clusterIP: '10.96.0.13', ports: [{ port: 80 }] });
  (svc.spec as Record<string, unknown>).ports = [{ port: 80 }, { port: 70000 }, { port: '80' }, null, 'x', { port: 81, protocol: 'TCP', name: 5 }];
  assert.deepEqual(parseService(svc)!.ports, [{ name: '', port: 80 }], 'only well-formed ports, distinct in number and name (81 has no usable name, so it repeats "")');
  const bad = endpointSliceObject('shop', 'web-0', 'web', { ports: [{ port: 80 }], endpoints: [] });
  bad.endpoints = [
    { addresses: ['10.0.0.1'], conditions: { ready: 'yes' } },
    { addresses: ['not an ip'] },
    { addresses: ['fd00::1'] }, // IPv6 in an IPv4 slice
    { addresses: [] },
    { addresses: ['10.0.0.2'] },
    7,
    ...Array.from({ length: 2000 }, (_, i) => ({ addresses: [`10.1.${i >> 8}.${i & 255}`] })),
  ];
  const parsed = parseEndpointSlice(bad)!;
  assert.equal(parsed.endpoints.length, 1000 - 4, 'at most the 1000 entries the API server allows, malformed ones skipped');
  assert.deepEqual(parsed.endpoints[0], { address: '10.0.0.1', ready: false, serving: false, terminating: false }, 'a condition that is no boolean is not true');
  assert.equal(parseEndpointSlice({ ...bad, metadata: { name: 'x', namespace: 'shop' } }), undefined, 'no service-name label: no Service');
  assert.equal(parseEndpointSlice({ ...bad, addressType: 'FQDN' }), undefined);
  assert.equal(parseService({ metadata: { name: 'x' }, spec: {} }), undefined, 'no namespace');
});

test('power of two choices: the less loaded of two draws wins; with two endpoints always the less loaded', () => {
  const peer = (name: string) => ({ agentId: `shop/${name}`, publicKey: new Uint8Array(32), publicKeyB64: name, generation: 1n, addresses: [] });
  const ends: MeshEndpoint[] = ['a', 'b', 'c'].map((n) => ({ peer: peer(n), address: n, port: 1 }));
  const load = new Map([['a', 5], ['b', 1], ['c', 0]]);
  const draws = [0.0, 0.0]; // i = 0 (a); j from the other two: 0 -> b
  const balancer = new ServiceBalancer({ countOf: (k) => load.get(k) ?? 0 }, () => draws.shift() ?? 0);
  assert.equal(balancer.pick(ends)!.peer.publicKeyB64, 'b', 'a (5) against b (1): b; c, the least loaded, was not drawn');
  draws.push(0.0, 0.99); // a against c
  assert.equal(balancer.pick(ends)!.peer.publicKeyB64, 'c');
  const two = ends.slice(0, 2);
  for (let i = 0; i < 20; i++) {
    const r = Math.random();
    const b = new ServiceBalancer({ countOf: (k) => load.get(k) ?? 0 }, () => r);
    assert.equal(b.pick(two)!.peer.publicKeyB64, 'b');
  }
  // Handshakes in flight count as load until they end.
  const idle = new ServiceBalancer({ countOf: () => 0 });
  const done = [idle.begin(two[0]!.peer), idle.begin(two[0]!.peer)];
  assert.equal(idle.load(two[0]!.peer), 2);
  assert.equal(idle.pick(two)!.peer.publicKeyB64, 'b');
  for (const d of done) d();
  done[0]!();
  assert.equal(idle.load(two[0]!.peer), 0, 'each end counted once');
  assert.equal(idle.pick(ends, new Set(ends)), undefined, 'every endpoint tried: none left');
  assert.equal(idle.pick(ends, new Set([ends[0]!, ends[1]!])), ends[2], 'the one left');
});
