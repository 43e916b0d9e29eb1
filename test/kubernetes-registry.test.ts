// The Kubernetes registry source, driven through a kubeconfig (or a fake in-cluster service
// account) against the API-server test double (test/helpers/fake-apiserver.ts): list, watch,
// 410 relists, outages in fake time, backoff jitter, the watchdogs, the log lines (never a
// token), $KUBECONFIG and in-cluster selection, token rotation over TLS, the namespace rule
// and conflicts exactly as for files, a generation bump ending a live session through real
// proxies, and `noisemesh registry get`.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { stringify } from 'yaml';
import {
  ApiError,
  KubernetesRegistrySource,
  loadClusterAccess,
  parseJson,
  readRegistryOnce,
  SERVICE_ACCOUNT_DIR,
  type ListedInfo,
  type ReflectorTuning,
  type WatchLostInfo,
} from '../src/kubernetes/index.js';
import { Registry, buildSnapshot, parseRegistryYaml, type RevocationReason } from '../src/registry-sync/index.js';
import { Proxy, silentLogger } from '../src/proxy/index.js';
import { nativeBackend } from '../src/noise/index.js';
import { openRegistry } from '../src/cli/registry-wiring.js';
import { parseProxyConfig } from '../src/cli/config/proxy-config.js';
import { CLEARANCE_REGISTRIES, FakeApiServer, kubeconfigFor } from './helpers/fake-apiserver.js';
import { FakeClock } from './helpers/fake-clock.js';
import { dial, makeIdentity, readAll, tcpServer } from './helpers/mesh.js';
import { newPublicKey, peer, type Peer } from './fixtures/registry/make.js';
import { repoRoot } from './helpers/paths.js';

const TOKEN = 'test-token-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'noisemesh-k8s-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function registryObject(namespace: string, peers: Peer[], name = namespace): Record<string, unknown> {
  return { apiVersion: 'noisemesh.io/v1alpha1', kind: 'ClearanceRegistry', metadata: { name, namespace }, spec: { peers } };
}

async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

let configs = 0;
function writeKubeconfig(server: FakeApiServer, token = TOKEN, ca?: string): string {
  const file = join(dir, `kubeconfig-${configs++}`);
  writeFileSync(file, kubeconfigFor(server.url, token, ca));
  return file;
}

interface Harness {
  readonly source: KubernetesRegistrySource;
  readonly registry: Registry;
  readonly clock: FakeClock;
  readonly listed: ListedInfo[];
  readonly lost: WatchLostInfo[];
  readonly revoked: { key: string; reason: RevocationReason }[];
  stop(): Promise<void>;
}

async function harness(server: FakeApiServer, options: { namespaces?: string[]; tuning?: ReflectorTuning; resyncSeconds?: number } = {}): Promise<Harness> {
  const clock = new FakeClock();
  const access = await loadClusterAccess({ kubeconfig: writeKubeconfig(server) });
  const source = new KubernetesRegistrySource({
    access,
    namespaces: options.namespaces ?? [],
    clock,
    ...(options.resyncSeconds !== undefined && { resyncSeconds: options.resyncSeconds }),
    tuning: { random: () => 0.5, ...options.tuning },
  });
  const listed: ListedInfo[] = [];
  const lost: WatchLostInfo[] = [];
  source.on('listed', (i) => listed.push(i));
  source.on('watchLost', (i) => lost.push(i));
  const registry = new Registry(source);
  const revoked: { key: string; reason: RevocationReason }[] = [];
  registry.on('revoked', (key, reason) => revoked.push({ key, reason }));
  registry.start();
  await registry.ready();
  return { source, registry, clock, listed, lost, revoked, stop: () => registry.stop() };
}

/** Fires the reflector's pending backoff sleep, and waits until the next attempt has ended. */
async function retryOnce(h: Harness): Promise<WatchLostInfo> {
  const before = h.lost.length;
  const wait = h.lost[before - 1]?.retryInMs ?? 0;
  h.clock.advance(wait);
  await waitFor(() => h.lost.length > before, 'the next watch attempt to end');
  return h.lost[h.lost.length - 1]!;
}

test('@kubernetes/client-node is pinned to 1.4.0 and loads under this Node', async () => {
  const require = createRequire(import.meta.url);
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'node_modules', '@kubernetes', 'client-node', 'package.json'), 'utf8')) as { version: string };
  assert.equal(pkg.version, '1.4.0');
  const ours = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  assert.equal(ours.dependencies['@kubernetes/client-node'], '1.4.0', 'package.json pins it exactly');
  const m = await import('@kubernetes/client-node');
  assert.equal(typeof m.KubeConfig, 'function');
  assert.equal(typeof m.Watch, 'function');
  void require;
});

test('JSON from the API server keeps generations beyond 2^53 exact', () => {
  const big = parseJson('{"a":[{"generation":9007199254740993,"small":5,"f":1.5,"s":"x\\"y"}]}') as { a: { generation: unknown; small: unknown; f: unknown; s: unknown }[] };
  assert.equal(big.a[0]!.generation, 9007199254740993n);
  assert.equal(big.a[0]!.small, 5);
  assert.equal(big.a[0]!.f, 1.5);
  assert.equal(big.a[0]!.s, 'x"y');
  assert.throws(() => parseJson('{"a":12345678901234567,}'), /not valid JSON/);
  assert.throws(() => parseJson(`${'['.repeat(200)}1234567890123456789${']'.repeat(200)}`), /nesting/);
});

test('initial list in pages, then add, modify and delete through the watch', async () => {
  const server = await new FakeApiServer({ tokens: [TOKEN] }).start();
  const peers = ['a', 'b', 'c', 'd', 'e'].map((ns) => peer(ns, 'api', { generation: 9007199254740993n }));
  peers.forEach((p, i) => server.apply(registryObject(['a', 'b', 'c', 'd', 'e'][i]!, [p])));
  const h = await harness(server, { tuning: { pageSize: 2 } });
  try {
    assert.equal(h.registry.index.size, 5);
    assert.equal(h.registry.index.byPublicKey(peers[0]!.publicKey as string)?.generation, 9007199254740993n, 'exact, not rounded');
    const lists = server.requests.filter((r) => r.query.get('watch') === null);
    assert.deepEqual(lists.map((r) => r.query.get('limit')), ['2', '2', '2'], 'three pages of two');
    assert.equal(lists[0]!.query.get('continue'), null);
    assert.ok(lists[1]!.query.get('continue'));
    assert.equal(lists[0]!.query.get('resourceVersion'), null, 'a consistent read, never a stale cache');
    await waitFor(() => server.watchers === 1, 'the watch');
    const watch = server.requests.find((r) => r.query.get('watch') === '1')!;
    assert.equal(watch.path, '/apis/noisemesh.io/v1alpha1/clearanceregistries');
    assert.equal(watch.query.get('allowWatchBookmarks'), 'true');
    assert.equal(watch.query.get('resourceVersion'), String(server.resourceVersion));
    const timeout = Number(watch.query.get('timeoutSeconds'));
    assert.ok(timeout >= 300 && timeout < 600, `timeoutSeconds ${timeout}`);
    assert.deepEqual(h.listed.map((l) => [l.reason, l.objects]), [['initial', 5]]);

    // add
    const added = peer('f', 'web');
    server.apply(registryObject('f', [added]));
    await waitFor(() => h.registry.index.byPublicKey(added.publicKey as string) !== undefined, 'the added peer');
    // modify: revoke one peer
    server.apply(registryObject('a', [{ ...peers[0]!, revoked: true }]));
    await waitFor(() => h.revoked.length === 1, 'the revocation');
    assert.deepEqual(h.revoked[0], { key: peers[0]!.publicKey, reason: 'revoked' });
    // modify: a new generation
    server.apply(registryObject('b', [{ ...peers[1]!, generation: 9007199254740994n }]));
    await waitFor(() => h.revoked.length === 2, 'the generation change');
    assert.deepEqual(h.revoked[1], { key: peers[1]!.publicKey, reason: 'generation' });
    // delete
    server.delete('c', 'c');
    await waitFor(() => h.revoked.length === 3, 'the deletion');
    assert.deepEqual(h.revoked[2], { key: peers[2]!.publicKey, reason: 'removed' });
    assert.equal(h.registry.index.byPublicKey(peers[2]!.publicKey as string), undefined);

    // A bookmark moves the resourceVersion the next watch starts from: a change to another
    // resource moves the server's resourceVersion past our last event, and only the bookmark
    // tells us. The stream's end follows the bookmark on the same connection.
    const services = { group: '', version: 'v1', resource: 'services', kind: 'Service' };
    server.register(services);
    server.apply({ metadata: { name: 'db', namespace: 'shop' }, spec: { clusterIP: '10.96.0.10' } }, services);
    server.bookmark();
    const bookmarkRv = String(server.resourceVersion);
    server.endWatches();
    await waitFor(() => server.watchers === 1 && h.lost.length === 1, 'the rewatch');
    assert.equal(h.lost[0]!.reason, 'closed');
    const rewatch = server.requests.filter((r) => r.query.get('watch') === '1').at(-1)!;
    assert.equal(rewatch.query.get('resourceVersion'), bookmarkRv);
    assert.equal(h.listed.length, 1, 'no relist for a watch the server ended');
  } finally {
    await h.stop();
    await server.close();
  }
});

test('the namespace rule and conflicting keys apply exactly as they do to a file', async () => {
  const server = await new FakeApiServer({ tokens: [TOKEN] }).start();
  const shared = newPublicKey();
  const objects = [
    registryObject('payments', [peer('payments', 'api'), peer('billing', 'intruder'), peer('payments', 'copy', { publicKey: shared })]),
    registryObject('billing', [peer('billing', 'ledger', { publicKey: shared }), peer('billing', 'web')]),
    registryObject('other', [peer('other', 'x')]),
  ];
  for (const o of objects) server.apply(o);
  const h = await harness(server, { namespaces: ['payments', 'billing'] });
  try {
    await waitFor(() => server.watchers === 2, 'one watch per namespace');
    const paths = server.requests.filter((r) => r.query.get('watch') === '1').map((r) => r.path).sort();
    assert.deepEqual(paths, ['/apis/noisemesh.io/v1alpha1/namespaces/billing/clearanceregistries', '/apis/noisemesh.io/v1alpha1/namespaces/payments/clearanceregistries']);
    const snapshot = h.registry.index.snapshot!;
    const agents = snapshot.entries.map((e) => e.agentId).sort();
    assert.deepEqual(agents, ['billing/web', 'payments/api'], 'the intruder, both key claimants and the unwatched namespace are out');
    const codes = snapshot.problems.map((p) => `${p.document} ${p.path} ${p.code}`).sort();

    // The same objects as a file, through the file source's parser and checks.
    const yaml = objects.slice(0, 2).map((o) => stringify(o)).join('---\n');
    const parsed = parseRegistryYaml(yaml, 'registry.yaml');
    assert.ok(parsed.ok);
    const fromFile = buildSnapshot(parsed.objects, { origin: 'file' }, parsed.problems);
    assert.deepEqual(fromFile.entries.map((e) => e.agentId).sort(), agents);
    assert.deepEqual(fromFile.problems.map((p) => `${p.document} ${p.path} ${p.code}`).sort(), codes);
    assert.ok(codes.includes('payments/payments spec.peers[1].agentId REGISTRY_NAMESPACE'), codes.join('\n'));
    assert.ok(codes.includes('payments/payments spec.peers[2].publicKey REGISTRY_CONFLICT'));
    assert.ok(codes.includes('billing/billing spec.peers[0].publicKey REGISTRY_CONFLICT'));
    for (const p of snapshot.problems) assert.ok(!p.message.includes(shared), 'no key in a problem');
  } finally {
    await h.stop();
    await server.close();
  }
});

for (const goneAs of ['event', 'status'] as const) {
  test(`410 Gone (${goneAs === 'event' ? 'an ERROR event' : 'HTTP 410'}) relists, and an object deleted in the gap is revoked`, async () => {
    const server = await new FakeApiServer({ tokens: [TOKEN] }).start();
    server.goneAs = goneAs;
    const keep = peer('shop', 'web');
    const doomed = peer('pay', 'api');
    server.apply(registryObject('shop', [keep]));
    server.apply(registryObject('pay', [doomed]));
    const h = await harness(server);
    try {
      await waitFor(() => server.watchers === 1, 'the watch');
      await server.down();
      await waitFor(() => h.lost.length === 1, 'the lost watch');
      assert.equal(h.lost[0]!.reason, 'network');
      // Meanwhile: the object is deleted and history compacted past our resourceVersion.
      server.delete('pay', 'pay');
      server.apply(registryObject('shop', [keep, peer('shop', 'new')]));
      server.compact();
      await server.up();
      const end = await retryOnce(h);
      assert.equal(end.reason, 'gone');
      assert.equal(end.relist, true);
      assert.equal(end.retryInMs, 0, 'a relist after 410 waits for nothing');
      await waitFor(() => h.revoked.length === 1, 'the revocation of the deleted object');
      assert.deepEqual(h.revoked[0], { key: doomed.publicKey, reason: 'removed' });
      assert.deepEqual(h.listed.map((l) => [l.reason, l.deleted, l.updated]), [['initial', 0, 0], ['gone', 1, 1]]);
      assert.equal(h.registry.index.byAgentId('shop/new').length, 1);
      assert.notEqual(h.registry.index.byPublicKey(keep.publicKey as string), undefined);
      await waitFor(() => server.watchers === 1, 'the watch after the relist');
    } finally {
      await h.stop();
      await server.close();
    }
  });
}

test('an expired continue token mid-list restarts the list in one piece', async () => {
  const server = await new FakeApiServer({ tokens: [TOKEN] }).start();
  for (const ns of ['a', 'b', 'c']) server.apply(registryObject(ns, [peer(ns, 'api')]));
  // Compact right after the first page is served.
  const original = server.requests.push.bind(server.requests);
  let compacted = false;
  server.requests.push = (...items) => {
    const n = original(...items);
    if (!compacted && items[0]?.query.get('limit') === '1') {
      compacted = true;
      server.apply(registryObject('d', [peer('d', 'api')]));
      server.compact();
    }
    return n;
  };
  const h = await harness(server, { tuning: { pageSize: 1 } });
  try {
    assert.equal(h.registry.index.size, 4);
    const lists = server.requests.filter((r) => r.query.get('watch') === null);
    assert.deepEqual(lists.map((r) => [r.status, r.query.get('limit')]), [[200, '1'], [410, '1'], [200, null]]);
  } finally {
    await h.stop();
    await server.close();
  }
});

test('the API server down for 60 s of fake time: the index is kept, /readyz stays ready and says how stale, then it converges', async () => {
  const server = await new FakeApiServer({ tokens: [TOKEN] }).start();
  const web = makeIdentity('shop/web');
  const api = peer('shop', 'api');
  const webEntry = { ...peer('shop', 'web'), publicKey: web.publicKeyB64 };
  server.apply(registryObject('shop', [api, webEntry]));
  const clock = new FakeClock();
  const config = parseProxyConfig({ identity: { agentId: 'shop/web' }, registry: { kubernetes: { kubeconfig: writeKubeconfig(server) } } });
  const opened = await openRegistry(config.registry, silentLogger(), { clock, tuning: { random: () => 0.5 } });
  const proxy = new Proxy({
    trustDomain: 'cluster.local',
    backend: nativeBackend,
    identity: web,
    directory: opened.directory,
    log: silentLogger(),
    outbound: { mode: 'permissive', explicit: [] },
    inbound: { mesh: { host: '127.0.0.1', port: 0 }, targetHost: '127.0.0.1' },
    admin: { host: '127.0.0.1', port: 0 },
  });
  opened.attach(proxy);
  const admin = (await proxy.start()).admin!;
  const get = async (path: string): Promise<{ status: number; body: string }> => {
    const res = await request(`http://127.0.0.1:${admin}${path}`);
    return { status: res.statusCode, body: await res.body.text() };
  };
  const source = opened.registry.source as KubernetesRegistrySource;
  const lost: WatchLostInfo[] = [];
  source.on('watchLost', (i) => lost.push(i));
  const revoked: string[] = [];
  opened.registry.on('revoked', (key) => revoked.push(key));
  try {
    await waitFor(() => server.watchersOf(CLEARANCE_REGISTRIES) === 1, 'the watch');
    let ready = JSON.parse((await get('/readyz')).body) as { ready: boolean; registry: { stale: boolean; staleSeconds: number; synced: boolean } };
    assert.equal(ready.ready, true);
    assert.deepEqual([ready.registry.synced, ready.registry.stale, ready.registry.staleSeconds], [true, false, 0]);

    await server.down();
    await waitFor(() => lost.length === 1, 'the lost watch');
    // While it is down, the revocation of api is written (it is applied once the server is back).
    server.apply(registryObject('shop', [{ ...api, revoked: true }, webEntry]));
    let elapsed = 0;
    const waits: number[] = [];
    while (elapsed < 60_000) {
      const wait = lost[lost.length - 1]!.retryInMs;
      waits.push(wait);
      const before = lost.length;
      clock.advance(wait);
      elapsed += wait;
      await waitFor(() => lost.length > before, 'the next attempt');
      assert.equal(lost[lost.length - 1]!.reason, 'network');
    }
    for (const w of waits) assert.ok(w >= 1000 && w <= 30_000, `backoff ${w} ms within 1-30 s`);
    assert.ok(waits[1]! > waits[0]! && waits[2]! > waits[1]!, `exponential: ${waits.join(', ')}`);
    assert.ok(waits.includes(30_000) || waits.at(-1)! >= 16_000, `capped growth: ${waits.join(', ')}`);

    assert.equal(opened.registry.index.size, 2, 'the last good index stays in force');
    assert.equal(revoked.length, 0);
    const down = await get('/readyz');
    assert.equal(down.status, 200, 'stale but serving: still ready');
    ready = JSON.parse(down.body) as typeof ready;
    assert.equal(ready.registry.stale, true);
    assert.ok(ready.registry.staleSeconds >= 60, `staleSeconds ${ready.registry.staleSeconds}`);
    const metrics = (await get('/metrics')).body;
    const stale = Number(/^noisemesh_registry_stale_seconds\{resource="clearanceregistries"\} (\S+)$/m.exec(metrics)?.[1]);
    assert.ok(stale >= 60, `noisemesh_registry_stale_seconds ${stale}`);
    assert.match(metrics, /^noisemesh_registry_watch_restarts_total\{resource="clearanceregistries",reason="network"\} [1-9]\d*$/m);
    const lastSync = Number(/^noisemesh_registry_last_sync_timestamp_seconds\{resource="clearanceregistries"\} (\S+)$/m.exec(metrics)?.[1]);
    assert.ok(Math.abs(lastSync - (clock.now() / 1000 - stale)) < 1, 'last sync = now - staleness');

    await server.up();
    clock.advance(lost[lost.length - 1]!.retryInMs);
    await waitFor(() => revoked.length === 1, 'the change made during the outage');
    assert.equal(revoked[0], api.publicKey);
    await waitFor(() => server.watchersOf(CLEARANCE_REGISTRIES) === 1, 'the watch');
    ready = JSON.parse((await get('/readyz')).body) as typeof ready;
    assert.deepEqual([ready.registry.stale, ready.registry.staleSeconds], [false, 0]);
  } finally {
    await proxy.shutdown(0);
    await opened.stop();
    await server.close();
  }
});

test('backoff jitter: each wait is drawn from 80-120% of its step (1 s doubling to 30 s), and kept within 1-30 s', async () => {
  // The two ends of the random draw: the waits of a fleet of proxies spread over this band.
  const cases: [number, number[]][] = [
    [0, [1000, 1600, 3200, 6400, 12_800, 24_000, 24_000]],
    [0.999_999, [1200, 2400, 4800, 9600, 19_200, 30_000, 30_000]],
  ];
  for (const [random, expected] of cases) {
    const server = await new FakeApiServer({ tokens: [TOKEN] }).start();
    server.apply(registryObject('shop', [peer('shop', 'web')]));
    const h = await harness(server, { tuning: { random: () => random } });
    try {
      await waitFor(() => server.watchers === 1, 'the watch');
      await server.down();
      await waitFor(() => h.lost.length === 1, 'the lost watch');
      while (h.lost.length < expected.length) await retryOnce(h);
      assert.deepEqual(h.lost.map((l) => l.retryInMs), expected, `random ${random}`);
      assert.ok(h.lost.every((l) => l.reason === 'network'));
      await server.up();
      h.clock.advance(h.lost.at(-1)!.retryInMs);
      await waitFor(() => server.watchers === 1, 'the watch once the server is back');
      assert.equal(h.registry.index.size, 1);
    } finally {
      await h.stop();
      await server.close();
    }
  }
});

test('before the first list /readyz answers 503 with the reason; the first list makes it ready', async () => {
  const server = await new FakeApiServer({ tokens: ['another-token'] }).start();
  const web = makeIdentity('shop/web');
  server.apply(registryObject('shop', [{ ...peer('shop', 'web'), publicKey: web.publicKeyB64 }]));
  const clock = new FakeClock();
  const config = parseProxyConfig({ identity: { agentId: 'shop/web' }, registry: { kubernetes: { kubeconfig: writeKubeconfig(server), namespaces: ['shop'] } } });
  const opened = await openRegistry(config.registry, silentLogger(), { clock, tuning: { random: () => 0.5 } });
  const proxy = new Proxy({
    trustDomain: 'cluster.local',
    backend: nativeBackend,
    identity: web,
    directory: opened.directory,
    log: silentLogger(),
    outbound: { mode: 'strict', explicit: [] },
    inbound: { mesh: { host: '127.0.0.1', port: 0 } },
    admin: { host: '127.0.0.1', port: 0 },
  });
  opened.attach(proxy);
  const admin = (await proxy.start()).admin!;
  const readyz = async (): Promise<{ status: number; body: { ready: boolean; checks: Record<string, boolean>; reasons?: Record<string, string>; registry?: { synced: boolean } } }> => {
    const res = await request(`http://127.0.0.1:${admin}/readyz`);
    return { status: res.statusCode, body: (await res.body.json()) as never };
  };
  try {
    let r = await readyz();
    assert.equal(r.status, 503);
    assert.equal(r.body.checks.registry, false);
    assert.match(r.body.reasons!.registry!, /cannot list clearanceregistries in namespace shop \(unauthorized\)/);
    assert.equal(r.body.registry?.synced, false);
    assert.ok(!JSON.stringify(r.body).includes(TOKEN));
    assert.equal(opened.directory.peerByKey(web.publicKeyB64), undefined, 'no peer before the first list');
    server.tokens.push(TOKEN);
    clock.advance(1000);
    await opened.registry.ready();
    await waitFor(async () => (await readyz()).body.checks.registry === true, 'the registry check');
    r = await readyz();
    assert.equal(r.body.checks.registry, true);
    assert.equal(r.body.registry?.synced, true);
  } finally {
    await proxy.shutdown(0);
    await opened.stop();
    await server.close();
  }
});

test('logs: one line per list and per lost watch, for the registry and the Services, and never the token', async () => {
  const server = await new FakeApiServer({ tokens: [TOKEN] }).start();
  server.apply(registryObject('shop', [peer('shop', 'web')]));
  const raw: string[] = [];
  const lines: { event?: string; reason?: string; msg?: string }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        raw.push(line);
        lines.push(JSON.parse(line) as (typeof lines)[number]);
      }
      done();
    },
  });
  const clock = new FakeClock();
  const config = parseProxyConfig({ identity: { agentId: 'shop/web' }, registry: { kubernetes: { kubeconfig: writeKubeconfig(server) } } });
  const opened = await openRegistry(config.registry, pino({ level: 'debug' }, stream), { clock, tuning: { random: () => 0.5 } });
  const source = opened.registry.source as KubernetesRegistrySource;
  const count = (event: string, reason?: string): number => lines.filter((l) => l.event === event && (reason === undefined || l.reason === reason)).length;
  const lost = { registry: 0, services: 0 };
  source.on('watchLost', () => lost.registry++);
  opened.services!.on('watchLost', () => lost.services++);
  const lostAll = (): number => lost.registry + lost.services;
  try {
    await waitFor(() => server.watchers === 3, 'the three watches');
    await waitFor(() => count('services-relist') === 2, 'the Services lists logged');
    assert.deepEqual([count('registry-relist', 'initial'), count('services-relist', 'initial')], [1, 2], 'one line per list');

    // Watches reset, then refused with a Status that quotes our Authorization header.
    server.echoCredentials = true;
    server.failNext(500, 3, true);
    server.dropWatches();
    await waitFor(() => lostAll() === 3, 'three lost watches');
    clock.advance(1000);
    await waitFor(() => lostAll() === 6, 'three refused rewatches');
    assert.equal(count('registry-watch-lost', 'server_error') + count('services-watch-lost', 'server_error'), 3);
    for (const l of lines.filter((x) => x.reason === 'server_error')) assert.match(l.msg!, /you sent \[redacted\]/);
    clock.advance(2000);
    await waitFor(() => server.watchers === 3, 'the watches back');

    // A gap past compaction: each rewatch gets 410 and relists, one line each.
    await server.down();
    await waitFor(() => lostAll() === 9, 'three more lost watches');
    server.apply(registryObject('shop', [peer('shop', 'web'), peer('shop', 'api')]));
    server.compact();
    await server.up();
    clock.advance(30_000);
    await waitFor(() => count('registry-relist', 'gone') === 1 && count('services-relist', 'gone') === 2, 'the relists after 410');
    await waitFor(() => server.watchers === 3, 'the watches after the relists');

    assert.equal(count('registry-watch-lost'), lost.registry, 'one line per lost registry watch');
    assert.equal(count('services-watch-lost'), lost.services, 'one line per lost Services or EndpointSlices watch');
    assert.equal(count('registry-relist'), 2);
    assert.equal(count('services-relist'), 4);
    for (const line of raw) {
      assert.ok(!line.includes(TOKEN), `a log line holds the token: ${line}`);
      assert.ok(!/authorization/i.test(line) || line.includes('[redacted]'), line);
    }
  } finally {
    await opened.stop();
    await server.close();
  }
});

test('before the first list the registry is not ready; a refused list (401) is reported and retried', async () => {
  const server = await new FakeApiServer({ tokens: ['another-token'] }).start();
  server.apply(registryObject('shop', [peer('shop', 'web')]));
  const clock = new FakeClock();
  const access = await loadClusterAccess({ kubeconfig: writeKubeconfig(server) });
  const source = new KubernetesRegistrySource({ access, clock, tuning: { random: () => 0.5 } });
  const registry = new Registry(source);
  const errors: string[] = [];
  registry.on('error', (e) => errors.push(e.message));
  registry.start();
  try {
    await waitFor(() => errors.length === 1, 'the refused list');
    assert.equal(server.requests[0]!.status, 401);
    assert.equal(registry.isReady, false);
    assert.equal(source.syncStatus().synced, false);
    assert.match(errors[0]!, /cannot list clearanceregistries in all namespaces \(unauthorized\).*no registry yet, retrying in 1 s/);
    assert.ok(!errors[0]!.includes(TOKEN));
    server.tokens.push(TOKEN);
    clock.advance(1000);
    await registry.ready();
    assert.equal(registry.index.size, 1);
    assert.equal(source.stats().healthy, true);
  } finally {
    await registry.stop();
    await server.close();
  }
});

test('a hung watch is caught by the watchdog and rewatched', async () => {
  const server = await new FakeApiServer({ tokens: [TOKEN] }).start();
  server.apply(registryObject('shop', [peer('shop', 'web')]));
  const h = await harness(server, { tuning: { watchIdleMs: 20_000 } });
  try {
    await waitFor(() => server.watchers === 1, 'the watch');
    server.hangWatches = true;
    server.dropWatches();
    await waitFor(() => h.lost.length === 1, 'the dropped watch');
    assert.equal(h.lost[0]!.reason, 'network');
    const watchesBefore = server.requests.filter((r) => r.query.get('watch') === '1').length;
    h.clock.advance(h.lost[0]!.retryInMs);
    await waitFor(() => server.requests.filter((r) => r.query.get('watch') === '1').length === watchesBefore + 1, 'the hung watch request');
    server.hangWatches = false;
    await sleep(100);
    assert.equal(h.lost.length, 1, 'a hung watch looks open');
    h.clock.advance(19_000);
    await sleep(50);
    assert.equal(h.lost.length, 1, 'not yet');
    h.clock.advance(1_000);
    await waitFor(() => h.lost.length === 2, 'the watchdog');
    assert.equal(h.lost[1]!.reason, 'watchdog');
    h.clock.advance(h.lost[1]!.retryInMs);
    await waitFor(() => server.watchers === 1, 'a working watch again');
    const late = peer('shop', 'late');
    server.apply(registryObject('shop', [late]));
    await waitFor(() => h.registry.index.byPublicKey(late.publicKey as string) !== undefined, 'an event on the new watch');
    // Bookmarks keep an idle but healthy watch alive.
    for (let i = 0; i < 3; i++) {
      server.bookmark();
      await sleep(300);
      h.clock.advance(15_000);
    }
    await sleep(50);
    assert.equal(h.lost.length, 2, 'no watchdog while bookmarks arrive');
  } finally {
    await h.stop();
    await server.close();
  }
});

test('a watch the server keeps open past its timeoutSeconds is ended by the watchdog 30 s later', async () => {
  const server = await new FakeApiServer({ tokens: [TOKEN] }).start();
  server.apply(registryObject('shop', [peer('shop', 'web')]));
  // No idle watchdog here: only the overdue one can end this watch.
  const h = await harness(server, { tuning: { watchIdleMs: 10_000_000 } });
  try {
    await waitFor(() => server.watchers === 1, 'the watch');
    const watch = server.requests.find((r) => r.query.get('watch') === '1')!;
    const timeoutSeconds = Number(watch.query.get('timeoutSeconds'));
    assert.equal(timeoutSeconds, 450, 'random 0.5: 300 s x 1.5');
    h.clock.advance((timeoutSeconds + 30) * 1000 - 1);
    await sleep(100);
    assert.equal(h.lost.length, 0, 'not yet');
    h.clock.advance(1);
    await waitFor(() => h.lost.length === 1, 'the overdue watchdog');
    assert.equal(h.lost[0]!.reason, 'watchdog');
    assert.equal(h.lost[0]!.relist, false);
    h.clock.advance(h.lost[0]!.retryInMs);
    await waitFor(() => server.watchers === 1, 'the rewatch');
  } finally {
    await h.stop();
    await server.close();
  }
});

test('server errors and resets are retried (client-node 1.4.0 would stop), and resyncSeconds relists', async () => {
  const server = await new FakeApiServer({ tokens: [TOKEN] }).start();
  server.apply(registryObject('shop', [peer('shop', 'web')]));
  // No watchdog in this test: the resync, 300 s of fake time later, must find the watch open.
  const h = await harness(server, { resyncSeconds: 300, tuning: { watchIdleMs: 10_000_000 } });
  try {
    await waitFor(() => server.watchers === 1, 'the watch');
    server.failNext(503, 2, true);
    server.dropWatches();
    await waitFor(() => h.lost.length === 1, 'the reset');
    assert.equal((await retryOnce(h)).reason, 'server_error');
    assert.equal((await retryOnce(h)).reason, 'server_error');
    h.clock.advance(h.lost.at(-1)!.retryInMs);
    await waitFor(() => server.watchers === 1, 'the watch after 503s');
    assert.equal(h.listed.length, 1, 'no relist for errors a watch can resume from');
    h.clock.advance(300_000);
    await waitFor(() => h.listed.length === 2, 'the resync');
    assert.equal(h.listed[1]!.reason, 'resync');
    assert.equal(h.lost.at(-1)!.reason, 'resync');
  } finally {
    await h.stop();
    await server.close();
  }
});

test('a malformed watch line ends the watch and relists', async () => {
  const server = await new FakeApiServer({ tokens: [TOKEN] }).start();
  server.apply(registryObject('shop', [peer('shop', 'web')]));
  const h = await harness(server);
  try {
    await waitFor(() => server.watchers === 1, 'the watch');
    // An event whose object has no name: it cannot be applied, and skipping it could skip a delete.
    server.apply({ apiVersion: 'noisemesh.io/v1alpha1', kind: 'ClearanceRegistry', metadata: { namespace: 'shop' }, spec: { peers: [] } });
    await waitFor(() => h.lost.length === 1, 'the broken watch');
    assert.equal(h.lost[0]!.reason, 'decode');
    assert.equal(h.lost[0]!.relist, true);
    h.clock.advance(h.lost[0]!.retryInMs);
    await waitFor(() => h.listed.length === 2, 'the relist');
    assert.equal(h.listed[1]!.reason, 'decode');
  } finally {
    await h.stop();
    await server.close();
  }
});

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.error !== undefined) throw new Error(`openssl is needed for the TLS test: install the Debian package openssl (${r.error.message})`);
  assert.equal(r.status, 0, r.stderr);
}

test('in-cluster over TLS with a generated CA: a rotated service-account token is picked up at once', async () => {
  const pki = join(dir, 'pki');
  mkdirSync(pki, { recursive: true });
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=fake-kubernetes-ca'], pki);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=kubernetes'], pki);
  writeFileSync(join(pki, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:kubernetes.default.svc\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf'], pki);
  const server = await new FakeApiServer({
    tokens: ['token-one'],
    tls: { cert: readFileSync(join(pki, 'server.crt'), 'utf8'), key: readFileSync(join(pki, 'server.key'), 'utf8') },
  }).start();
  const web = peer('shop', 'web');
  server.apply(registryObject('shop', [web]));
  const root = join(dir, 'pod');
  const sa = join(root, SERVICE_ACCOUNT_DIR);
  mkdirSync(sa, { recursive: true });
  writeFileSync(join(sa, 'ca.crt'), readFileSync(join(pki, 'ca.crt')));
  writeFileSync(join(sa, 'token'), 'token-one');
  const env = { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(server.port) };
  const access = await loadClusterAccess({ inClusterRoot: root, env });
  assert.equal(access.server, server.url.replace('127.0.0.1', '127.0.0.1'));
  assert.equal(access.description, 'in-cluster');
  const clock = new FakeClock();
  const source = new KubernetesRegistrySource({ access, namespaces: ['shop'], clock, tuning: { random: () => 0.5 } });
  const lost: WatchLostInfo[] = [];
  source.on('watchLost', (i) => lost.push(i));
  const registry = new Registry(source).start();
  try {
    await registry.ready();
    assert.notEqual(registry.index.byPublicKey(web.publicKey as string), undefined);
    await waitFor(() => server.watchers === 1, 'the watch');
    // The kubelet rotates the token (a new file renamed over the old path); the old one stops working.
    writeFileSync(join(sa, 'token.new'), 'token-two\n');
    renameSync(join(sa, 'token.new'), join(sa, 'token'));
    server.tokens = ['token-two'];
    server.dropWatches();
    await waitFor(() => lost.length === 1, 'the dropped watch');
    clock.advance(lost[0]!.retryInMs);
    await waitFor(() => server.watchers === 1, 'the watch with the new token');
    assert.equal(server.requests.filter((r) => !r.authorized).length, 0, 'the new token was used at once: no 401');
    assert.equal(access.tokenFile!.reads, 2);
    const added = peer('shop', 'api');
    server.apply(registryObject('shop', [web, added]));
    await waitFor(() => registry.index.byPublicKey(added.publicKey as string) !== undefined, 'an event over TLS');

    // A kubeconfig without the CA does not trust the server.
    const untrusting = await loadClusterAccess({ kubeconfig: writeKubeconfig(server, 'token-two') });
    const { ApiClient } = await import('../src/kubernetes/index.js');
    await assert.rejects(new ApiClient(untrusting).listPage({ group: 'noisemesh.io', version: 'v1alpha1', resource: 'clearanceregistries' }, {}), (err: unknown) => err instanceof ApiError && err.reason === 'network');
    await untrusting.close();
  } finally {
    await registry.stop();
    await server.close();
  }
});

test('a generation bump, and a deletion missed during an outage (410, relist), end live sessions through real proxies', async () => {
  const server = await new FakeApiServer({ tokens: [TOKEN] }).start();
  const echo = await tcpServer((s) => s.pipe(s));
  const client = makeIdentity('shop/web');
  const backend = makeIdentity('shop/api');
  const kubeconfig = writeKubeconfig(server);
  const config = parseProxyConfig({ identity: { agentId: 'shop/web' }, registry: { kubernetes: { kubeconfig, namespaces: ['shop'] } } });
  const proxies: Proxy[] = [];
  const registries: Awaited<ReturnType<typeof openRegistry>>[] = [];
  const make = async (identity: typeof client, explicit: { listen: { host: string; port: number }; peer: string; port: number }[]): Promise<Proxy> => {
    const opened = await openRegistry(config.registry, silentLogger());
    const proxy = new Proxy({
      trustDomain: 'cluster.local',
      backend: nativeBackend,
      identity,
      directory: opened.directory,
      log: silentLogger(),
      outbound: { mode: 'strict', explicit },
      inbound: { mesh: { host: '127.0.0.1', port: 0 }, targetHost: '127.0.0.1' },
    });
    opened.attach(proxy);
    await proxy.start();
    proxies.push(proxy);
    registries.push(opened);
    return proxy;
  };
  const entry = (identity: typeof client, meshPort: number, generation: number, installationId: string): Peer => ({
    agentId: identity.agentId,
    installationId,
    publicKey: identity.publicKeyB64,
    generation,
    addresses: ['127.0.0.1'],
    meshPort,
  });
  try {
    server.apply(registryObject('shop', []));
    const apiProxy = await make(backend, []);
    const webProxy = await make(client, [{ listen: { host: '127.0.0.1', port: 0 }, peer: 'shop/api', port: echo.port }]);
    const ids = ['11111111-2222-4333-8444-000000000001', '11111111-2222-4333-8444-000000000002'];
    // Two objects in namespace shop: the client's entry and the backend's.
    const publish = (clientGeneration: number): void => {
      server.apply(registryObject('shop', [entry(client, webProxy.ports().mesh, clientGeneration, ids[0]!)], 'web'));
    };
    server.apply(registryObject('shop', [entry(backend, apiProxy.ports().mesh, 1, ids[1]!)], 'api'));
    publish(1);
    await waitFor(() => registries.every((r) => r.registry.index.size === 2), 'both proxies to see both peers');

    const app = await dial(webProxy.ports().explicit[0]!);
    const ended = readAll(app);
    const echoed = new Promise((resolve) => app.once('data', resolve));
    app.write('ping');
    await echoed;
    assert.equal(apiProxy.sessions.summaries().length, 1, 'the session');
    const started = Date.now();
    publish(2);
    const result = await ended;
    assert.equal(result.data.toString(), 'ping', 'the echo came through the mesh first');
    assert.equal(result.ending, 'reset', 'the app sees its connection reset');
    assert.equal(apiProxy.sessions.summaries().length, 0);
    assert.ok(Date.now() - started < 5000);
    assert.equal(Number(/^noisemesh_revocations_total (\S+)$/m.exec(await apiProxy.metrics.registry.metrics())?.[1]), 1);

    // A new session at generation 2; then, while the API server is away, the client's object
    // is deleted and history compacted: the proxies' rewatches get 410, they relist, and the
    // deletion they never saw as an event ends the session.
    const again = await dial(webProxy.ports().explicit[0]!);
    const againEnded = readAll(again);
    const againEchoed = new Promise((resolve) => again.once('data', resolve));
    again.write('pong');
    await againEchoed;
    await server.down();
    server.delete('shop', 'web');
    server.compact();
    await server.up();
    const second = await againEnded;
    assert.equal(second.data.toString(), 'pong');
    assert.equal(second.ending, 'reset');
    await waitFor(() => registries.every((r) => r.registry.index.size === 1), 'both proxies to drop the client');
  } finally {
    await Promise.all(proxies.map((p) => p.shutdown(0)));
    await Promise.all(registries.map((r) => r.stop()));
    await echo.close();
    await server.close();
  }
});

test('noisemesh registry get prints what a proxy would load, as kubectl get would', async () => {
  const server = await new FakeApiServer({ tokens: [TOKEN] }).start();
  const shared = newPublicKey();
  const web = peer('payments', 'web', { addresses: ['10.0.3.7'], clearance: 'internal', generation: 3 });
  server.apply(registryObject('payments', [web, peer('payments', 'api', { revoked: true }), peer('billing', 'intruder')]));
  server.apply(registryObject('billing', [peer('billing', 'ledger', { publicKey: shared }), peer('billing', 'copy', { publicKey: shared })]));
  const kubeconfig = writeKubeconfig(server);
  const cli = join(repoRoot, 'dist/src/cli/main.js');
  try {
    const run = (args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> =>
      new Promise((resolve) => {
        // Asynchronous: the API server double lives in this process.
        import('node:child_process').then(({ execFile }) => {
          execFile(process.execPath, [cli, 'registry', 'get', ...args], (err, stdout, stderr) => {
            resolve({ status: err === null ? 0 : ((err as { code?: number }).code ?? null), stdout, stderr });
          });
        });
      });
    const one = await run(['--kubeconfig', kubeconfig, '-n', 'payments']);
    assert.equal(one.status, 0, one.stderr);
    const lines = one.stdout.split('\n');
    assert.match(lines[0]!, /^NAMESPACE +AGENT ID +KEY +GENERATION +CLEARANCE +STATUS +ADDRESSES +PROBLEMS$/);
    const columns = ['AGENT ID', 'KEY', 'GENERATION', 'CLEARANCE', 'STATUS', 'ADDRESSES', 'PROBLEMS'].map((c) => lines[0]!.indexOf(c));
    const webRow = lines.find((l) => l.includes('payments/web'))!;
    const fingerprint = (await import('node:crypto')).createHash('sha256').update(Buffer.from(web.publicKey as string, 'base64')).digest('hex').slice(0, 16);
    assert.equal(webRow.slice(columns[1]!).split(/ +/)[0], fingerprint);
    assert.equal(webRow.slice(columns[2]!).split(/ +/)[0], '3');
    assert.equal(webRow.slice(columns[3]!).split(/ +/)[0], 'internal');
    assert.equal(webRow.slice(columns[4]!).split(/ +/)[0], 'Valid');
    assert.equal(webRow.slice(columns[5]!).split(/ +/)[0], '10.0.3.7');
    assert.match(lines.find((l) => l.includes('payments/api'))!, /Revoked/);
    assert.ok(!one.stdout.includes('billing/ledger'), '-n limits the namespaces');
    assert.match(one.stdout, /spec\.peers\[2\]\.agentId: names namespace 'billing'/);
    assert.ok(!one.stdout.includes(web.publicKey as string) && !one.stdout.includes(TOKEN), 'no key, no token');

    const all = await run(['--kubeconfig', kubeconfig]);
    assert.equal(all.status, 0, all.stderr);
    assert.match(all.stdout, /billing\/billing: spec\.peers\[0\]\.publicKey: is also claimed by/);
    assert.ok(!all.stdout.includes(shared));

    await server.down();
    const refused = await run(['--kubeconfig', kubeconfig]);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /list clearanceregistries\.noisemesh\.io in all namespaces: ECONNREFUSED/);
  } finally {
    await server.close();
  }
});

test('configuration: registry.kubernetes is read, and exactly one source is allowed', () => {
  const c = parseProxyConfig({ identity: { agentId: 'a/b' }, registry: { kubernetes: { namespaces: ['payments', 'billing'], kubeconfig: '/k', resyncSeconds: 300 } } });
  assert.deepEqual(c.registry, { kubernetes: { namespaces: ['payments', 'billing'], kubeconfig: '/k', resyncSeconds: 300 } });
  const d = parseProxyConfig({ identity: { agentId: 'a/b' }, registry: { kubernetes: {} } });
  assert.deepEqual(d.registry, { kubernetes: { namespaces: [], kubeconfig: undefined, resyncSeconds: 0 } });
  assert.throws(() => parseProxyConfig({ identity: { agentId: 'a/b' }, registry: { file: '/r', kubernetes: {} } }), /registry: set exactly one of registry.file and registry.kubernetes/);
  assert.throws(() => parseProxyConfig({ identity: { agentId: 'a/b' }, registry: {} }), /registry: required/);
  assert.throws(() => parseProxyConfig({ identity: { agentId: 'a/b' }, registry: { kubernetes: { namespaces: ['Bad_NS'], resyncSecond: 1 } } }), (err: Error) =>
    /namespaces\[0\]: must be a Kubernetes namespace name/.test(err.message) && /resyncSecond: unknown key: did you mean 'resyncSeconds'\?/.test(err.message));
});

test('no kubeconfig set: in a pod the service account, else the first file of $KUBECONFIG that exists', async () => {
  const server = await new FakeApiServer({ tokens: [TOKEN] }).start();
  server.apply(registryObject('shop', [peer('shop', 'web')]));
  const file = writeKubeconfig(server);
  const missing = join(dir, 'no-such-kubeconfig');
  try {
    const access = await loadClusterAccess({ env: { KUBECONFIG: `${missing}::${file}` } });
    assert.equal(access.server, server.url);
    assert.match(access.description, /from \$KUBECONFIG/);
    const snapshot = await readRegistryOnce(access);
    assert.deepEqual(snapshot.entries.map((e) => e.agentId), ['shop/web']);
    await access.close();
    await assert.rejects(loadClusterAccess({ env: { KUBECONFIG: missing } }), /\$KUBECONFIG names no file that exists/);
    // In a pod (KUBERNETES_SERVICE_HOST set) the service account wins over $KUBECONFIG.
    const root = join(dir, 'pod-env');
    mkdirSync(join(root, SERVICE_ACCOUNT_DIR), { recursive: true });
    writeFileSync(join(root, SERVICE_ACCOUNT_DIR, 'token'), TOKEN);
    writeFileSync(join(root, SERVICE_ACCOUNT_DIR, 'ca.crt'), '');
    const pod = await loadClusterAccess({ inClusterRoot: root, env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(server.port), KUBECONFIG: file } });
    assert.equal(pod.description, 'in-cluster');
    assert.equal(pod.server, `https://127.0.0.1:${server.port}`);
    await pod.close();
  } finally {
    await server.close();
  }
});

test('no API server configured: the error says what to set', async () => {
  await assert.rejects(loadClusterAccess({ env: {} }), /set registry\.kubernetes\.kubeconfig or \$KUBECONFIG/);
  const bad = join(dir, 'bad-kubeconfig');
  writeFileSync(bad, 'users: [{name: u, user: {token: sekrit-token-value}}]\n: : :\n');
  await assert.rejects(loadClusterAccess({ kubeconfig: bad }), (err: Error) => !err.message.includes('sekrit') && /bad-kubeconfig/.test(err.message));
});

test('a server that echoes our credentials back never gets them into an error', async () => {
  const { createServer } = await import('node:http');
  const echoing = createServer((req, res) => {
    res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 500, message: `you sent ${req.headers.authorization}` }));
  });
  await new Promise<void>((resolve) => echoing.listen(0, '127.0.0.1', resolve));
  const port = (echoing.address() as { port: number }).port;
  const file = join(dir, 'kubeconfig-echo');
  writeFileSync(file, kubeconfigFor(`http://127.0.0.1:${port}`, TOKEN));
  const access = await loadClusterAccess({ kubeconfig: file });
  const { ApiClient } = await import('../src/kubernetes/index.js');
  try {
    await assert.rejects(new ApiClient(access).listPage({ group: '', version: 'v1', resource: 'services' }, {}), (err: unknown) => {
      assert.ok(err instanceof ApiError);
      assert.equal(err.reason, 'server_error');
      assert.ok(!err.message.includes(TOKEN), err.message);
      assert.match(err.message, /you sent \[redacted\]/);
      return true;
    });
  } finally {
    await access.close();
    await new Promise((resolve) => echoing.close(resolve));
  }
});
