// Services through EndpointSlices, end to end on loopback: real proxies, each opening the
// registry and the Services through a kubeconfig that points at the API-server test double
// (test/helpers/fake-apiserver.ts), exactly as `noisemesh proxy` with `registry.kubernetes`
// does. Pods are 127.0.0.x addresses: each endpoint pod runs a proxy whose mesh listener and
// application bind its own address. The client's capture listener is handed an original-
// destination lookup that answers the ClusterIP, 127.0.0.100, as SO_ORIGINAL_DST would for
// a connection iptables redirected; in the permissive cases a plain server on 127.0.0.100
// plays the node's Service rules (kube-proxy), the only way plaintext reaches an endpoint.
// Also: /readyz and the metrics of the Services and EndpointSlices watches, fake-clocked.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Proxy, Status, silentLogger, type Identity, type OriginalDestination, type ProxyOptions } from '../src/proxy/index.js';
import { nativeBackend } from '../src/noise/index.js';
import { openRegistry, type OpenRegistry } from '../src/cli/registry-wiring.js';
import { parseProxyConfig } from '../src/cli/config/proxy-config.js';
import { ENDPOINT_SLICES, FakeApiServer, SERVICES, kubeconfigFor } from './helpers/fake-apiserver.js';
import { serviceObject, slicesFor, type PodSpec } from './helpers/kube-services.js';
import { TestDirectory, dial, makeIdentity, peerOf, readAll } from './helpers/mesh.js';
import { FakeClock } from './helpers/fake-clock.js';

const TOKEN = 'test-token-services';
const NS = 'shop';
const CLUSTER_IP = '127.0.0.100';
const dir = mkdtempSync(join(tmpdir(), 'noisemesh-svc-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function waitFor(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return;
    await sleep(5);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A server on `host:port` (0: any) that greets each connection with `name\n`, then echoes. */
async function greeter(host: string, port: number, name: string): Promise<{ port: number; accepted: number; server: Server; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const state = { accepted: 0 };
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    state.accepted++;
    socket.on('error', () => {});
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
  server.listen(port, host);
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    get accepted() {
      return state.accepted;
    },
    server,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface EndpointPod {
  readonly name: string;
  readonly ip: string;
  readonly identity: Identity;
  /** Absent for an unmeshed pod, or a meshed one whose proxy is not running (dead). */
  readonly proxy: Proxy | undefined;
  /** The port its registry entry announces. */
  readonly meshPort: number;
  readonly app: Awaited<ReturnType<typeof greeter>>;
}

interface Cluster {
  readonly api: FakeApiServer;
  readonly client: Proxy;
  readonly clientRegistry: OpenRegistry;
  readonly pods: Map<string, EndpointPod>;
  destination: OriginalDestination;
  /** Publishes a ClearanceRegistry object for the pod (meshed pods only). */
  publish(pod: EndpointPod, overrides?: Record<string, unknown>): void;
  /** Waits until the client proxy routes `port` to exactly these endpoint addresses:ports. */
  routes(port: number, expected: string[]): Promise<void>;
  /** Connects to the ClusterIP as a captured app would; resolves with the greeting's name. */
  connect(port?: number): Promise<{ name: string; socket: Socket }>;
  /** A connection the proxy is expected to end: how it ended. */
  connectExpectingEnd(port?: number): Promise<{ data: string; ending: string }>;
  close(): Promise<void>;
}

let installation = 0;
const installationId = (): string => `00000000-0000-4000-8000-${String(++installation).padStart(12, '0')}`;

interface PodPlan {
  readonly name: string;
  readonly ip: string;
  /**
   * Default 'meshed'. `dead`: a registry entry whose mesh port has nothing listening.
   * `stranger`: a proxy that knows no registry (status 1 to everyone). `stale`: a proxy that
   * knows the client at another generation (status 2). `silent`: a mesh port that accepts
   * and never answers.
   */
  readonly kind?: 'meshed' | 'unmeshed' | 'dead' | 'stranger' | 'stale' | 'silent';
  /** For a meshed pod's proxy: session caps (status 7), an inbound policy (status 6). */
  readonly proxy?: Pick<ProxyOptions, 'caps' | 'policy'>;
  /** The application's port; default the cluster's shared target port. */
  readonly appPort?: number;
}

async function cluster(mode: 'permissive' | 'strict', plans: readonly PodPlan[], options: { explicitTo?: string; handshakeTimeoutMs?: number } = {}): Promise<Cluster> {
  const api = await new FakeApiServer({ tokens: [TOKEN] }).start();
  const kubeconfig = join(dir, `kubeconfig-${installation}`);
  writeFileSync(kubeconfig, kubeconfigFor(api.url, TOKEN));
  const config = parseProxyConfig({ identity: { agentId: `${NS}/web` }, registry: { kubernetes: { kubeconfig, namespaces: [NS] } } });
  const registries: OpenRegistry[] = [];
  const proxies: Proxy[] = [];
  const ids = new Map<string, string>();
  const publish = (name: string, identity: Identity, address: string, meshPort: number, overrides: Record<string, unknown> = {}): void => {
    if (!ids.has(name)) ids.set(name, installationId());
    api.apply({
      apiVersion: 'noisemesh.io/v1alpha1',
      kind: 'ClearanceRegistry',
      metadata: { name, namespace: NS },
      spec: { peers: [{ agentId: identity.agentId, installationId: ids.get(name), publicKey: identity.publicKeyB64, generation: 1, addresses: [address], meshPort, ...overrides }] },
    });
  };
  const pods = new Map<string, EndpointPod>();
  const silent: Awaited<ReturnType<typeof greeter>>[] = [];
  const silentSockets = new Set<Socket>();
  let sharedPort = 0;
  const clientId = makeIdentity(`${NS}/web`);
  try {
    for (const plan of plans) {
      const kind = plan.kind ?? 'meshed';
      const app = await greeter(plan.ip, plan.appPort ?? sharedPort, plan.name);
      if (plan.appPort === undefined) sharedPort = app.port;
      const identity = makeIdentity(`${NS}/${plan.name}`);
      let proxy: Proxy | undefined;
      let meshPort = 0;
      if (kind === 'meshed' || kind === 'stranger' || kind === 'stale') {
        const opened = kind === 'meshed' ? await openRegistry(config.registry, silentLogger()) : undefined;
        if (opened) registries.push(opened);
        const own = new TestDirectory();
        proxy = new Proxy({
          trustDomain: 'cluster.local',
          backend: nativeBackend,
          identity,
          directory: opened?.directory ?? own,
          log: silentLogger(),
          outbound: { mode: 'permissive', explicit: [] },
          inbound: { mesh: { host: plan.ip, port: 0 } },
          ...plan.proxy,
        });
        opened?.attach(proxy);
        meshPort = (await proxy.start()).mesh;
        proxies.push(proxy);
        // A stranger knows itself, and nobody else: status 1 to every initiator.
        if (kind !== 'meshed') own.set(peerOf(identity, meshPort, 1n, [plan.ip]));
        // Stale: it holds generation 2 of the client's key, which handshakes at 1.
        if (kind === 'stale') own.set(peerOf(clientId, 1, 2n, ['127.0.0.9']));
      } else if (kind === 'dead') {
        // A port that was free a moment ago: connections to it are refused.
        const probe = await greeter(plan.ip, 0, 'probe');
        meshPort = probe.port;
        await probe.close();
      } else if (kind === 'silent') {
        // Accepts, reads, never answers: the handshake times out.
        const quiet = await greeter(plan.ip, 0, 'never sent');
        quiet.server.removeAllListeners('connection');
        quiet.server.on('connection', (socket: Socket) => {
          socket.on('error', () => {});
          socket.resume();
          silentSockets.add(socket);
        });
        silent.push(quiet);
        meshPort = quiet.port;
      }
      const pod: EndpointPod = { name: plan.name, ip: plan.ip, identity, proxy, meshPort, app };
      pods.set(plan.name, pod);
      if (kind !== 'unmeshed') publish(plan.name, identity, plan.ip, meshPort);
    }
    const clientRegistry = await openRegistry(config.registry, silentLogger());
    registries.push(clientRegistry);
    const state = { destination: { address: CLUSTER_IP, port: 80 } as OriginalDestination };
    const client = new Proxy({
      trustDomain: 'cluster.local',
      backend: nativeBackend,
      identity: clientId,
      directory: clientRegistry.directory,
      log: silentLogger(),
      outbound: {
        mode,
        capture: { host: '127.0.0.1', port: 0 },
        explicit: options.explicitTo === undefined ? [] : [{ listen: { host: '127.0.0.1', port: 0 }, peer: `${NS}/${options.explicitTo}`, port: sharedPort }],
      },
      inbound: { mesh: { host: '127.0.0.9', port: 0 } },
      originalDestinationOf: () => state.destination,
      ...(options.handshakeTimeoutMs !== undefined && { handshakeTimeoutMs: options.handshakeTimeoutMs }),
    });
    clientRegistry.attach(client);
    const clientPorts = await client.start();
    proxies.push(client);
    publish('web', clientId, '127.0.0.9', clientPorts.mesh);
    const meshed = plans.filter((p) => (p.kind ?? 'meshed') !== 'unmeshed').length + 1;
    await waitFor(() => registries.every((r) => r.registry.index.size === meshed), 'every proxy to see every registry entry');

    const c: Cluster = {
      api,
      client,
      clientRegistry,
      pods,
      get destination() {
        return state.destination;
      },
      set destination(d) {
        state.destination = d;
      },
      publish: (pod, overrides) => publish(pod.name, pod.identity, pod.ip, pod.meshPort, overrides),
      async routes(port, expected) {
        const want = [...expected].sort().join(' ');
        let have = '';
        await waitFor(() => {
          const f = clientRegistry.services!.resolve(CLUSTER_IP, port);
          have = f === undefined ? '(no frontend)' : f.endpoints.map((e) => `${e.address}:${e.port}`).sort().join(' ');
          return have === want;
        }, `the client's endpoints of ${CLUSTER_IP}:${port} to be [${want}] (last seen [${have}])`);
      },
      async connect(port = 80) {
        state.destination = { address: CLUSTER_IP, port };
        const socket = await dial(clientPorts.outboundCapture!);
        socket.on('error', () => {});
        const line = await new Promise<string>((resolve, reject) => {
          let text = '';
          const timer = setTimeout(() => reject(new Error('no greeting within 10 s')), 10_000);
          socket.on('data', function onData(chunk: Buffer) {
            text += chunk.toString();
            if (text.includes('\n')) {
              clearTimeout(timer);
              socket.off('data', onData);
              resolve(text.split('\n')[0]!);
            }
          });
          socket.once('close', () => {
            clearTimeout(timer);
            reject(new Error(`closed before a greeting (got ${JSON.stringify(text)})`));
          });
        });
        return { name: line, socket };
      },
      async connectExpectingEnd(port = 80) {
        state.destination = { address: CLUSTER_IP, port };
        try {
          const r = await readAll(await dial(clientPorts.outboundCapture!));
          return { data: r.data.toString(), ending: r.ending };
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ECONNRESET') return { data: '', ending: 'reset' };
          throw err;
        }
      },
      async close() {
        await Promise.all(proxies.map((p) => p.shutdown(0)));
        await Promise.all(registries.map((r) => r.stop()));
        await Promise.all([...pods.values()].map((p) => p.app.close()));
        for (const s of silentSockets) s.destroy();
        await Promise.all(silent.map((q) => new Promise((resolve) => q.server.close(resolve))));
        await api.close();
      },
    };
    return c;
  } catch (err) {
    for (const s of silentSockets) s.destroy();
    await Promise.all(silent.map((q) => new Promise((resolve) => q.server.close(resolve))));
    await Promise.all(proxies.map((p) => p.shutdown(0)));
    await Promise.all(registries.map((r) => r.stop()));
    await Promise.all([...pods.values()].map((p) => p.app.close()));
    await api.close();
    throw err;
  }
}

const podSpecs = (c: Cluster, names: string[], extra: Partial<PodSpec> = {}): PodSpec[] => names.map((n) => ({ name: n, ip: c.pods.get(n)!.ip, ...extra }));

function applyService(c: Cluster, port = 80): Record<string, unknown> {
  const svc = serviceObject(NS, 'api', { clusterIP: CLUSTER_IP, ports: [{ name: 'http', port, targetPort: c.pods.values().next().value!.app.port }] });
  c.api.apply(svc, SERVICES);
  return svc;
}

function count(names: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of names) out[n] = (out[n] ?? 0) + 1;
  return out;
}

test('a ClusterIP connection is balanced over three meshed endpoints by power of two choices', async () => {
  const c = await cluster('strict', [
    { name: 'a', ip: '127.0.0.2' },
    { name: 'b', ip: '127.0.0.3' },
    { name: 'c', ip: '127.0.0.4' },
  ], { explicitTo: 'a' });
  const held: Socket[] = [];
  try {
    const svc = applyService(c);
    const port = c.pods.get('a')!.app.port;
    for (const slice of slicesFor(svc, podSpecs(c, ['a', 'b', 'c']))) c.api.apply(slice, ENDPOINT_SLICES);
    await c.routes(80, ['127.0.0.2', '127.0.0.3', '127.0.0.4'].map((ip) => `${ip}:${port}`));

    // 30 connections, each held open: every endpoint is used, and the open sessions stay
    // spread (P2C sends each new one to the less loaded of two endpoints).
    const names: string[] = [];
    for (let i = 0; i < 30; i++) {
      const { name, socket } = await c.connect();
      names.push(name);
      held.push(socket);
    }
    const spread = count(names);
    assert.deepEqual(Object.keys(spread).sort(), ['a', 'b', 'c'], `all three used: ${JSON.stringify(spread)}`);
    for (const n of ['a', 'b', 'c']) assert.ok(spread[n]! >= 5, `each endpoint holds a fair share of the 30 open sessions: ${JSON.stringify(spread)}`);
    assert.equal(c.client.sessions.size, 30);
    assert.match(await c.client.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total'), /role="initiator",result="accepted"} 30/);
    for (const s of held.splice(0)) s.destroy();
    await waitFor(() => c.client.sessions.size === 0, 'the sessions to end');

    // The least loaded wins: with endpoint c gone from the slice, a and b are the two
    // choices every time; four sessions held to a (through the explicit listener, the same
    // session table) send the next four ClusterIP connections to b, and only then alternate.
    for (const slice of slicesFor(svc, podSpecs(c, ['a', 'b']))) c.api.apply(slice, ENDPOINT_SLICES);
    await c.routes(80, [`127.0.0.2:${port}`, `127.0.0.3:${port}`]);
    for (let i = 0; i < 4; i++) {
      const s = await dial(c.client.ports().explicit[0]!);
      s.on('error', () => {});
      held.push(s);
    }
    await waitFor(() => c.client.sessions.countOf(c.pods.get('a')!.identity.publicKeyB64) === 4, 'four sessions to a');
    const next: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { name, socket } = await c.connect();
      next.push(name);
      held.push(socket);
    }
    assert.deepEqual(next, ['b', 'b', 'b', 'b']);
  } finally {
    for (const s of held) s.destroy();
    await c.close();
  }
});

test('EndpointSlice churn while connections are made: no new session to a removed endpoint once its event is applied; its live sessions go on', async () => {
  const c = await cluster('strict', [
    { name: 'a', ip: '127.0.0.2' },
    { name: 'b', ip: '127.0.0.3' },
    { name: 'c', ip: '127.0.0.4' },
  ]);
  const held: Socket[] = [];
  try {
    const svc = applyService(c);
    const port = c.pods.get('a')!.app.port;
    for (const slice of slicesFor(svc, podSpecs(c, ['a', 'b', 'c']))) c.api.apply(slice, ENDPOINT_SLICES);
    await c.routes(80, ['127.0.0.2', '127.0.0.3', '127.0.0.4'].map((ip) => `${ip}:${port}`));

    // Connections flow without pause while the slice changes under them.
    let appliedAt: number | undefined;
    const made: { name: string; startedAt: number }[] = [];
    let stop = false;
    const loop = (async () => {
      for (let i = 0; i < 400 && !stop; i++) {
        const startedAt = performance.now();
        const { name, socket } = await c.connect();
        made.push({ name, startedAt });
        if (name === 'c' && appliedAt === undefined) held.push(socket);
        else socket.destroy();
      }
    })();
    await waitFor(() => held.length >= 2, 'two sessions to c before it goes');
    // c leaves (its pod is deleted): the controller rewrites the slice without it.
    for (const slice of slicesFor(svc, podSpecs(c, ['a', 'b']))) c.api.apply(slice, ENDPOINT_SLICES);
    await waitFor(() => {
      const f = c.clientRegistry.services!.resolve(CLUSTER_IP, 80);
      return f !== undefined && f.endpoints.length === 2;
    }, 'the client to apply the slice change');
    appliedAt = performance.now();
    const before = made.length;
    await waitFor(() => made.length >= before + 30, '30 more connections after the change', 20_000);
    stop = true;
    await loop;
    const after = made.filter((m) => m.startedAt >= appliedAt!);
    assert.ok(after.length >= 30);
    assert.deepEqual(after.filter((m) => m.name === 'c'), [], 'no connection started after the event reached c');
    assert.deepEqual(Object.keys(count(after.map((m) => m.name))).sort(), ['a', 'b']);

    // Leaving a slice is not a revocation: the sessions to c still carry data.
    for (const s of held) {
      const echoed = new Promise<string>((resolve) => s.once('data', (d: Buffer) => resolve(d.toString())));
      s.write('still here');
      assert.equal(await echoed, 'still here');
    }
    assert.equal(c.client.sessions.countOf(c.pods.get('c')!.identity.publicKeyB64), held.length);
    assert.doesNotMatch(await c.client.metrics.registry.getSingleMetricAsString('noisemesh_session_aborts_total'), /reason="revoked"} [1-9]/);
  } finally {
    for (const s of held) s.destroy();
    await c.close();
  }
});

test('a terminating-only Service: serving and terminating endpoints take connections until a ready one is back', async () => {
  const c = await cluster('strict', [
    { name: 'a', ip: '127.0.0.2' },
    { name: 'b', ip: '127.0.0.3' },
    { name: 'c', ip: '127.0.0.4' },
  ]);
  try {
    const svc = applyService(c);
    const port = c.pods.get('a')!.app.port;
    const slices = slicesFor(svc, [
      { name: 'a', ip: '127.0.0.2', terminating: true },
      { name: 'b', ip: '127.0.0.3', terminating: true, ready: false }, // terminating and no longer serving
      { name: 'c', ip: '127.0.0.4', ready: false },
    ]);
    for (const slice of slices) c.api.apply(slice, ENDPOINT_SLICES);
    await c.routes(80, [`127.0.0.2:${port}`]);
    const names: string[] = [];
    for (let i = 0; i < 6; i++) {
      const { name, socket } = await c.connect();
      names.push(name);
      socket.destroy();
    }
    assert.deepEqual(names, Array(6).fill('a'), 'only the serving, terminating endpoint');

    // c turns ready: the terminating one stops taking new connections at once.
    for (const slice of slicesFor(svc, [{ name: 'a', ip: '127.0.0.2', terminating: true }, { name: 'c', ip: '127.0.0.4' }])) c.api.apply(slice, ENDPOINT_SLICES);
    await c.routes(80, [`127.0.0.4:${port}`]);
    const { name, socket } = await c.connect();
    socket.destroy();
    assert.equal(name, 'c');

    // Nothing ready or serving: no endpoint; strict mode refuses the connection.
    for (const slice of slicesFor(svc, [{ name: 'b', ip: '127.0.0.3', terminating: true, ready: false }])) c.api.apply(slice, ENDPOINT_SLICES);
    await c.routes(80, []);
    assert.equal((await c.connectExpectingEnd()).ending, 'reset');
  } finally {
    await c.close();
  }
});

test('endpoints with no registry entry follow the outbound mode: strict refuses, permissive passes in plaintext to the ClusterIP', async () => {
  for (const mode of ['strict', 'permissive'] as const) {
    const c = await cluster(mode, [{ name: 'u', ip: '127.0.0.5', kind: 'unmeshed' }]);
    // The node's Service rules: plaintext to the ClusterIP:port reaches the unmeshed pod's app.
    const kubeProxy = await greeter(CLUSTER_IP, 0, 'via the ClusterIP');
    const servicePort = kubeProxy.port;
    try {
      const svc = applyService(c, servicePort);
      for (const slice of slicesFor(svc, podSpecs(c, ['u']))) c.api.apply(slice, ENDPOINT_SLICES);
      await c.routes(servicePort, [`127.0.0.5:${c.pods.get('u')!.app.port}`]);
      if (mode === 'strict') {
        const r = await c.connectExpectingEnd(servicePort);
        assert.deepEqual(r, { data: '', ending: 'reset' });
        assert.equal(kubeProxy.accepted + c.pods.get('u')!.app.accepted, 0, 'nothing left the proxy');
        assert.match(await c.client.metrics.registry.getSingleMetricAsString('noisemesh_plaintext_connections_total'), /direction="outbound",result="refused"} 1/);
      } else {
        const { name, socket } = await c.connect(servicePort);
        socket.destroy();
        assert.equal(name, 'via the ClusterIP', 'plaintext to the original destination, the ClusterIP');
        assert.match(await c.client.metrics.registry.getSingleMetricAsString('noisemesh_plaintext_connections_total'), /direction="outbound",result="passed"} 1/);
      }
      assert.equal(c.client.sessions.size, 0);
    } finally {
      await kubeProxy.close();
      await c.close();
    }
  }
});

test('a meshed endpoint is preferred to an unmeshed one, and a revoked endpoint is never reached in plaintext', async () => {
  const c = await cluster('permissive', [
    { name: 'a', ip: '127.0.0.2' },
    { name: 'u', ip: '127.0.0.5', kind: 'unmeshed' },
  ]);
  const kubeProxy = await greeter(CLUSTER_IP, 0, 'via the ClusterIP');
  const servicePort = kubeProxy.port;
  try {
    const svc = applyService(c, servicePort);
    for (const slice of slicesFor(svc, podSpecs(c, ['a', 'u']))) c.api.apply(slice, ENDPOINT_SLICES);
    await c.routes(servicePort, ['127.0.0.2', '127.0.0.5'].map((ip) => `${ip}:${c.pods.get('a')!.app.port}`));
    for (let i = 0; i < 5; i++) {
      const { name, socket } = await c.connect(servicePort);
      socket.destroy();
      assert.equal(name, 'a');
    }
    // a is revoked: no meshed endpoint is left, and one is meshed but unusable: refused, even permissive.
    c.publish(c.pods.get('a')!, { revoked: true });
    await waitFor(() => c.clientRegistry.directory.peerByKey(c.pods.get('a')!.identity.publicKeyB64) === undefined, 'the revocation');
    assert.equal((await c.connectExpectingEnd(servicePort)).ending, 'reset');
    assert.equal(kubeProxy.accepted, 0);
  } finally {
    await kubeProxy.close();
    await c.close();
  }
});

test('a dead endpoint and one that refuses the handshake are retried elsewhere; after 3 failed tries the app is reset', async () => {
  const c = await cluster('strict', [
    { name: 'dead', ip: '127.0.0.6', kind: 'dead' },
    { name: 'stranger', ip: '127.0.0.7', kind: 'stranger' }, // answers status 1: it knows no registry
    { name: 'good', ip: '127.0.0.2' },
    { name: 'dead2', ip: '127.0.0.8', kind: 'dead' },
    { name: 'stranger2', ip: '127.0.0.10', kind: 'stranger' },
  ]);
  try {
    const svc = applyService(c);
    const port = c.pods.get('dead')!.app.port;
    for (const slice of slicesFor(svc, podSpecs(c, ['dead', 'stranger', 'good']))) c.api.apply(slice, ENDPOINT_SLICES);
    await c.routes(80, ['127.0.0.6', '127.0.0.7', '127.0.0.2'].map((ip) => `${ip}:${port}`));
    for (let i = 0; i < 10; i++) {
      const { name, socket } = await c.connect();
      socket.destroy();
      assert.equal(name, 'good', 'every connection lands on the one endpoint that works, within three tries');
    }
    const handshakes = await c.client.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total');
    assert.match(handshakes, /role="initiator",result="accepted"} 10/);
    assert.match(handshakes, /role="initiator",result="connect-failed"} [1-9]/);
    assert.match(handshakes, /role="initiator",result="unknownInitiator"} [1-9]/);
    const failed = (text: string): number =>
      [...text.matchAll(/role="initiator",result="([^"]+)"} (\d+)/g)].filter((m) => m[1] !== 'accepted').reduce((n, m) => n + Number(m[2]), 0);
    assert.ok(failed(handshakes) <= 20, 'at most two failed tries a connection');

    // Four endpoints that all fail: three tries, then the application's connection is reset.
    for (const slice of slicesFor(svc, podSpecs(c, ['dead', 'stranger', 'dead2', 'stranger2']))) c.api.apply(slice, ENDPOINT_SLICES);
    await c.routes(80, ['127.0.0.6', '127.0.0.7', '127.0.0.8', '127.0.0.10'].map((ip) => `${ip}:${port}`));
    const before = failed(await c.client.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total'));
    const r = await c.connectExpectingEnd();
    assert.deepEqual(r, { data: '', ending: 'reset' });
    const after = failed(await c.client.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total'));
    assert.equal(after - before, 3, 'exactly three tries');
    assert.equal(c.pods.get('good')!.app.accepted, 10);
  } finally {
    await c.close();
  }
});

test('a named targetPort goes to each pod\'s own port, through the slice port named as the Service port', async () => {
  const c = await cluster('strict', [
    { name: 'a', ip: '127.0.0.2' },
    { name: 'b', ip: '127.0.0.3', appPort: 0 },
  ]);
  const metricsA = await greeter('127.0.0.2', 0, 'a-metrics');
  const metricsB = await greeter('127.0.0.3', metricsA.port, 'b-metrics');
  try {
    const a = c.pods.get('a')!;
    const b = c.pods.get('b')!;
    assert.notEqual(a.app.port, b.app.port, 'the two pods serve "http" on different ports');
    const svc = serviceObject(NS, 'api', {
      clusterIP: CLUSTER_IP,
      ports: [
        { name: 'web', port: 80, targetPort: 'http' },
        { name: 'metrics', port: 9090, targetPort: metricsA.port },
      ],
    });
    c.api.apply(svc, SERVICES);
    const slices = slicesFor(svc, [
      { name: 'a', ip: a.ip, ports: { http: a.app.port } },
      { name: 'b', ip: b.ip, ports: { http: b.app.port } },
    ]);
    assert.equal(slices.length, 2, 'the controller writes one slice per port set');
    for (const slice of slices) c.api.apply(slice, ENDPOINT_SLICES);
    await c.routes(80, [`${a.ip}:${a.app.port}`, `${b.ip}:${b.app.port}`]);
    await c.routes(9090, [`${a.ip}:${metricsA.port}`, `${b.ip}:${metricsA.port}`]);
    const seen = new Set<string>();
    for (let i = 0; i < 20 && seen.size < 2; i++) {
      const { name, socket } = await c.connect(80);
      socket.destroy();
      seen.add(name);
    }
    assert.deepEqual([...seen].sort(), ['a', 'b'], 'each pod reached at its own "http" port');
    const m = await c.connect(9090);
    m.socket.destroy();
    assert.match(m.name, /^[ab]-metrics$/);
    // A port the Service does not have is no frontend: strict mode refuses it as unmeshed.
    assert.equal((await c.connectExpectingEnd(81)).ending, 'reset');
  } finally {
    await metricsA.close();
    await metricsB.close();
    await c.close();
  }
});

test('Services: /readyz waits for the first list of Services and EndpointSlices, then stays ready while stale; their restarts and staleness are metrics by resource', async () => {
  const api = await new FakeApiServer({ tokens: [TOKEN] }).start();
  const identity = makeIdentity(`${NS}/web`);
  api.apply({
    apiVersion: 'noisemesh.io/v1alpha1',
    kind: 'ClearanceRegistry',
    metadata: { name: 'web', namespace: NS },
    spec: { peers: [{ agentId: identity.agentId, installationId: installationId(), publicKey: identity.publicKeyB64, generation: 1, addresses: ['127.0.0.9'], meshPort: 15443 }] },
  });
  const svc = serviceObject(NS, 'api', { clusterIP: CLUSTER_IP, ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
  api.apply(svc, SERVICES);
  for (const slice of slicesFor(svc, [{ name: 'a', ip: '127.0.0.2' }])) api.apply(slice, ENDPOINT_SLICES);
  // RBAC without Services and EndpointSlices: the registry lists, they cannot.
  api.authorize = (r) => r.resource === 'clearanceregistries';
  const kubeconfig = join(dir, 'kubeconfig-readiness');
  writeFileSync(kubeconfig, kubeconfigFor(api.url, TOKEN));
  const config = parseProxyConfig({ identity: { agentId: `${NS}/web` }, registry: { kubernetes: { kubeconfig, namespaces: [NS] } } });
  const clock = new FakeClock();
  const opened = await openRegistry(config.registry, silentLogger(), { clock, tuning: { random: () => 0.5 } });
  const lost: { resource: string; reason: string }[] = [];
  opened.services!.on('watchLost', (i) => lost.push({ resource: i.resource, reason: i.reason }));
  const proxy = new Proxy({
    trustDomain: 'cluster.local',
    backend: nativeBackend,
    identity,
    directory: opened.directory,
    log: silentLogger(),
    outbound: { mode: 'strict', explicit: [] },
    inbound: { mesh: { host: '127.0.0.1', port: 0 } },
    admin: { host: '127.0.0.1', port: 0 },
  });
  opened.attach(proxy);
  const admin = (await proxy.start()).admin!;
  const get = async (path: string): Promise<{ status: number; body: string }> => {
    const res = await fetch(`http://127.0.0.1:${admin}${path}`);
    return { status: res.status, body: await res.text() };
  };
  interface Ready {
    ready: boolean;
    checks: Record<string, boolean>;
    reasons?: Record<string, string>;
    services?: { synced: boolean; stale: boolean; staleSeconds: number; frontends: number; lastSyncAt: string | null };
  }
  const readyz = async (): Promise<{ status: number; body: Ready }> => {
    const r = await get('/readyz');
    return { status: r.status, body: JSON.parse(r.body) as Ready };
  };
  const sampleOf = (text: string, name: string, labels: string): number | undefined => {
    const m = new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(text);
    return m === null ? undefined : Number(m[1]);
  };
  try {
    // The registry is in, the Services are not: not ready, and the reason names the refusal.
    assert.equal(opened.registry.isReady, true);
    let r = await readyz();
    for (let i = 0; i < 200 && !(r.body.reasons?.services ?? '').includes('forbidden'); i++) {
      await sleep(10);
      r = await readyz();
    }
    assert.equal(r.status, 503);
    assert.equal(r.body.checks.registry, true);
    assert.equal(r.body.checks.services, false);
    assert.match(r.body.reasons!.services!, /^Services and EndpointSlices not listed yet: cannot list (services|endpointslices) in namespace shop \(forbidden\)/);
    assert.ok(!JSON.stringify(r.body).includes(TOKEN));
    assert.equal(r.body.services?.synced, false);
    assert.equal(opened.services!.resolve(CLUSTER_IP, 80), undefined, 'no Service before its list');
    let metrics = (await get('/metrics')).body;
    assert.equal(sampleOf(metrics, 'noisemesh_registry_stale_seconds', 'resource="clearanceregistries"'), 0);
    assert.equal(sampleOf(metrics, 'noisemesh_registry_stale_seconds', 'resource="services"'), undefined, 'no value before the first list');

    // RBAC fixed: the retry lists both, and the proxy turns ready.
    api.authorize = undefined;
    clock.advance(1000);
    await waitFor(() => opened.services!.synced, 'the Services and EndpointSlices to list');
    r = await readyz();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([r.body.checks.services, r.body.services?.synced, r.body.services?.stale, r.body.services?.frontends], [true, true, false, 1]);
    await waitFor(() => api.watchersOf(SERVICES) === 1 && api.watchersOf(ENDPOINT_SLICES) === 1, 'the Services and EndpointSlices watches');

    // The API server goes away for 61 s of fake time: still ready, stale, and counted.
    await api.down();
    await waitFor(() => ['services', 'endpointslices'].every((res) => lost.some((l) => l.resource === res)), 'both watches to be lost');
    clock.advance(61_000);
    r = await readyz();
    assert.equal(r.status, 200, 'stale but serving');
    assert.equal(r.body.services?.stale, true);
    assert.ok(r.body.services!.staleSeconds >= 61, `staleSeconds ${r.body.services!.staleSeconds}`);
    assert.notEqual(opened.services!.resolve(CLUSTER_IP, 80), undefined, 'the Services in force are kept');
    metrics = (await get('/metrics')).body;
    for (const resource of ['clearanceregistries', 'services', 'endpointslices']) {
      const stale = sampleOf(metrics, 'noisemesh_registry_stale_seconds', `resource="${resource}"`);
      assert.ok(stale !== undefined && stale >= 61, `noisemesh_registry_stale_seconds{resource="${resource}"} ${stale}`);
      const lastSync = sampleOf(metrics, 'noisemesh_registry_last_sync_timestamp_seconds', `resource="${resource}"`);
      assert.ok(lastSync !== undefined && Math.abs(lastSync - (clock.now() / 1000 - stale)) < 1, `last sync of ${resource} = now - staleness`);
      const restarts = sampleOf(metrics, 'noisemesh_registry_watch_restarts_total', `resource="${resource}",reason="network"`);
      assert.ok(restarts !== undefined && restarts >= 1, `noisemesh_registry_watch_restarts_total{resource="${resource}",reason="network"} ${restarts}`);
    }
    assert.doesNotMatch(metrics, /^noisemesh_registry_(stale_seconds|last_sync_timestamp_seconds|watch_restarts_total)\{(?![^}]*resource="(clearanceregistries|services|endpointslices)")/m, 'every sample has a resource from the closed set');

    // Back: current again.
    await api.up();
    clock.advance(30_000);
    await waitFor(() => opened.services!.staleSeconds === 0, 'the Services and EndpointSlices to be current again');
    r = await readyz();
    assert.deepEqual([r.status, r.body.services?.stale, r.body.services?.staleSeconds], [200, false, 0]);
  } finally {
    await proxy.shutdown(0);
    await opened.stop();
    await api.close();
  }
});

test('each refusal another endpoint may not share (status 2, 5, 7, no answer) is retried elsewhere; a policy denial (status 6) is not', async () => {
  const c = await cluster('strict', [
    { name: 'a', ip: '127.0.0.2' },
    { name: 'stale', ip: '127.0.0.11', kind: 'stale' },
    { name: 'notarget', ip: '127.0.0.12' },
    { name: 'busy', ip: '127.0.0.13', proxy: { caps: { pendingHandshakes: 64, pendingHandshakesPerSource: 64, sessions: 0, adminConnections: 4 } } },
    { name: 'silent', ip: '127.0.0.14', kind: 'silent' },
    { name: 'denier', ip: '127.0.0.15', proxy: { policy: () => Status.deniedByPolicy } },
  ], { handshakeTimeoutMs: 500 });
  const held: Socket[] = [];
  const initiatorResults = async (): Promise<Record<string, number>> => {
    const text = await c.client.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total');
    return Object.fromEntries([...text.matchAll(/role="initiator",result="([^"]+)"} (\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
  };
  try {
    // notarget's application is gone: its proxy answers status 5 (target unavailable).
    await c.pods.get('notarget')!.app.close();
    const svc = applyService(c);
    const port = c.pods.get('a')!.app.port;
    const cases = [
      { pod: 'stale', result: 'staleGeneration' },
      { pod: 'notarget', result: 'targetUnavailable' },
      { pod: 'busy', result: 'overloaded' },
      { pod: 'silent', result: 'timeout' },
    ];
    for (const { pod, result } of cases) {
      for (const slice of slicesFor(svc, podSpecs(c, [pod, 'a']))) c.api.apply(slice, ENDPOINT_SLICES);
      await c.routes(80, [`${c.pods.get(pod)!.ip}:${port}`, `127.0.0.2:${port}`]);
      // One session held to a makes the failing endpoint the less loaded: P2C tries it first.
      if (held.length === 0) {
        const first = await c.connect();
        assert.equal(first.name, 'a');
        held.push(first.socket);
      }
      const before = await initiatorResults();
      for (let i = 0; i < 3; i++) {
        const { name, socket } = await c.connect();
        socket.destroy();
        assert.equal(name, 'a', `${pod}: the connection lands on a after ${result}`);
      }
      const after = await initiatorResults();
      assert.equal((after[result] ?? 0) - (before[result] ?? 0), 3, `${pod}: tried first each time, failed with ${result}: ${JSON.stringify(after)}`);
      assert.equal((after.accepted ?? 0) - (before.accepted ?? 0), 3);
    }

    // A policy denial is the responder's verdict on us, not a busy endpoint: no second try.
    for (const slice of slicesFor(svc, podSpecs(c, ['denier', 'a']))) c.api.apply(slice, ENDPOINT_SLICES);
    await c.routes(80, [`127.0.0.15:${port}`, `127.0.0.2:${port}`]);
    const before = await initiatorResults();
    const acceptedByA = c.pods.get('a')!.app.accepted;
    assert.deepEqual(await c.connectExpectingEnd(), { data: '', ending: 'reset' });
    const after = await initiatorResults();
    assert.equal((after.deniedByPolicy ?? 0) - (before.deniedByPolicy ?? 0), 1);
    assert.equal((after.accepted ?? 0) - (before.accepted ?? 0), 0, 'a was not tried');
    assert.equal(c.pods.get('a')!.app.accepted, acceptedByA);
  } finally {
    for (const s of held) s.destroy();
    await c.close();
  }
});

test('a headless Service has no ClusterIP: its endpoints are reached as pod IPs, meshed over Noise, unmeshed by the mode', async () => {
  const c = await cluster('strict', [
    { name: 'a', ip: '127.0.0.2' },
    { name: 'u', ip: '127.0.0.5', kind: 'unmeshed' },
  ]);
  try {
    const port = c.pods.get('a')!.app.port;
    const svc = serviceObject(NS, 'db', { clusterIP: 'None', ports: [{ name: 'http', port, targetPort: port }] });
    c.api.apply(svc, SERVICES);
    for (const slice of slicesFor(svc, podSpecs(c, ['a', 'u']))) c.api.apply(slice, ENDPOINT_SLICES);
    // A Service with a ClusterIP, written after it: once the client has its frontend (events
    // arrive in order), it has seen the headless one too.
    const marker = serviceObject(NS, 'marker', { clusterIP: CLUSTER_IP, ports: [{ name: 'http', port: 80, targetPort: port }] });
    c.api.apply(marker, SERVICES);
    for (const slice of slicesFor(marker, podSpecs(c, ['a']))) c.api.apply(slice, ENDPOINT_SLICES);
    await c.routes(80, [`127.0.0.2:${port}`]);
    assert.equal(c.clientRegistry.services!.size, 1, 'no frontend for the headless Service, only the marker\'s');
    assert.equal(c.clientRegistry.services!.resolve('127.0.0.2', port), undefined);

    // A connection to a's pod IP, as DNS for a headless Service answers: over Noise, to a.
    c.destination = { address: '127.0.0.2', port };
    const socket = await dial(c.client.ports().outboundCapture!);
    socket.on('error', () => {});
    const greeting = await new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString())));
    assert.equal(greeting, 'a\n');
    assert.equal(c.client.sessions.countOf(c.pods.get('a')!.identity.publicKeyB64), 1, 'a session, not plaintext');
    socket.destroy();

    // u's pod IP is unmeshed: strict refuses it, as any unmeshed pod IP.
    c.destination = { address: '127.0.0.5', port };
    const r = await dial(c.client.ports().outboundCapture!).then((s) => readAll(s)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET') return { data: Buffer.alloc(0), ending: 'reset' as const };
      throw err;
    });
    assert.deepEqual([r.data.toString(), r.ending], ['', 'reset']);
    assert.equal(c.pods.get('u')!.app.accepted, 0);
  } finally {
    await c.close();
  }
});
