// The Kubernetes source against hostile input: kubeconfigs and service-account mounts that
// name FIFOs, devices and runaway credential plugins, and API servers that answer every
// watch with 410, hand out list pages without end, or stream objects without end. Each must
// end in one clear error or a bounded store, never a hang, a crash or memory without bound.
// Checks that could hang the process that runs them (a synchronous read of a FIFO) run in a
// child process with a deadline, so that the old behaviour fails the test instead of hanging it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiClient,
  ClusterAccess,
  KubernetesRegistrySource,
  Reflector,
  SERVICE_ACCOUNT_DIR,
  clearanceRegistryResource,
  loadClusterAccess,
  readRegistryOnce,
  type ListFailedInfo,
  type WatchLostInfo,
} from '../src/kubernetes/index.js';
import { Registry, type RevocationReason } from '../src/registry-sync/index.js';
import { FakeApiServer, kubeconfigFor, toJson } from './helpers/fake-apiserver.js';
import { FakeClock } from './helpers/fake-clock.js';
import { repoRoot } from './helpers/paths.js';
import { peer, type Peer } from './fixtures/registry/make.js';

const TOKEN = 'hostile-test-token-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'noisemesh-k8s-hostile-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const fifo = join(dir, 'fifo');
execFileSync('mkfifo', [fifo]);

async function waitFor(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function registryObject(namespace: string, peers: Peer[], name = namespace): Record<string, unknown> {
  return { apiVersion: 'noisemesh.io/v1alpha1', kind: 'ClearanceRegistry', metadata: { name, namespace }, spec: { peers } };
}

/**
 * For each options object in turn, loadClusterAccess(options) and one headers(), in a child
 * process: a line `ok <authorization>` or `error <message>` each. A case that blocks for ever
 * leaves the lines after it missing (`timedOut`: the child was killed after 30 s).
 */
function accessInChild(cases: readonly Record<string, unknown>[]): Promise<{ lines: string[]; timedOut: boolean }> {
  const runner = join(dir, 'access-runner.mjs');
  writeFileSync(
    runner,
    `const { loadClusterAccess } = await import(${JSON.stringify(join(repoRoot, 'dist/src/kubernetes/index.js'))});
for (const options of JSON.parse(process.argv[2])) {
  try {
    const access = await loadClusterAccess(options);
    const headers = await access.headers();
    console.log('ok ' + (headers.authorization ?? ''));
    await access.close();
  } catch (err) {
    console.log('error ' + err.message);
  }
}
process.exit(0);
`,
  );
  return new Promise((resolve) => {
    execFile(process.execPath, [runner, JSON.stringify(cases)], { timeout: 30_000, killSignal: 'SIGKILL', maxBuffer: 1024 * 1024 }, (err, stdout) => {
      resolve({ lines: stdout.trim().split('\n'), timedOut: err !== null && (err as { killed?: boolean }).killed === true });
    });
  });
}

let kubeconfigs = 0;
/** A kubeconfig file whose current context is `cluster` and `user`, plus an `other` user. */
function kubeconfig(cluster: Record<string, unknown>, user: Record<string, unknown>, other: Record<string, unknown> = {}): string {
  const file = join(dir, `kubeconfig-${kubeconfigs++}`);
  writeFileSync(
    file,
    toJson({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443', ...cluster } }],
      users: [
        { name: 'u', user },
        { name: 'other', user: other },
      ],
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'ctx',
    }),
  );
  return file;
}

test('every file a kubeconfig names is read as a bounded regular file (a FIFO or a device is one clear error, never a hang), and settings our requests would drop are refused', async () => {
  const pem = join(dir, 'client.pem');
  writeFileSync(pem, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  const cases: [string, string, RegExp][] = [
    ['certificate-authority: /dev/zero', kubeconfig({ 'certificate-authority': '/dev/zero' }, { token: TOKEN }), /^error the kubeconfig \S+: certificate-authority: \/dev\/zero is a character device, not a regular file/],
    ['certificate-authority: a FIFO', kubeconfig({ 'certificate-authority': fifo }, { token: TOKEN }), /^error the kubeconfig \S+: certificate-authority: \S+fifo is a FIFO \(named pipe\), not a regular file/],
    ['client-key: /dev/zero', kubeconfig({}, { 'client-certificate': pem, 'client-key': '/dev/zero' }), /^error the kubeconfig \S+: client-key: \/dev\/zero is a character device/],
    ['token-file: a FIFO', kubeconfig({}, { 'token-file': fifo }), /^error the kubeconfig \S+: token-file: \S+fifo is a FIFO \(named pipe\)/],
    ["an auth-provider's tokenFile: a FIFO", kubeconfig({}, { 'auth-provider': { name: 'file', config: { tokenFile: fifo } } }), /^error the kubeconfig \S+: the token file \S+fifo is not a regular file/],
    // Settings our requests would drop without a word: refused, not ignored.
    ['impersonation (as)', kubeconfig({}, { token: TOKEN, as: 'system:serviceaccount:shop:reader' }), /^error the kubeconfig \S+: as is not supported .*: remove it/],
    ['impersonation (as-groups)', kubeconfig({}, { token: TOKEN, 'as-groups': ['readers'] }), /^error the kubeconfig \S+: as-groups is not supported/],
    ['proxy-url', kubeconfig({ 'proxy-url': 'http://proxy:3128' }, { token: TOKEN }), /^error the kubeconfig \S+: proxy-url is not supported/],
    // client-node runs a gcp or azure provider's cmd-path with execSync: the process stopped.
    ['auth-provider gcp', kubeconfig({}, { 'auth-provider': { name: 'gcp', config: { 'cmd-path': 'sleep', 'cmd-args': '1000', 'token-key': '{.token}', 'expiry-key': '{.expiry}' } } }), /^error the kubeconfig \S+: auth-provider gcp is not supported .*gke-gcloud-auth-plugin/],
  ];
  // A user of another context is never read, whatever its token-file names.
  const unused = kubeconfig({}, { token: TOKEN }, { 'token-file': fifo });
  // A relative token-file is the kubeconfig directory's (as kubectl reads it), through a symlink.
  mkdirSync(join(dir, 'conf'));
  writeFileSync(join(dir, 'conf', 'real-token'), `${TOKEN}\n`);
  symlinkSync('real-token', join(dir, 'conf', 'token'));
  const relative = join(dir, 'conf', 'kubeconfig');
  writeFileSync(relative, kubeconfigFor('https://127.0.0.1:6443', 'unused').replace(`"token":"unused"`, `"token-file":"token"`));

  const { lines, timedOut } = await accessInChild([...cases.map(([, file]) => ({ kubeconfig: file })), { kubeconfig: unused }, { kubeconfig: relative }]);
  assert.equal(timedOut, false, `loading a kubeconfig hung: ${cases[lines.length]?.[0] ?? "another user's token-file"}`);
  for (const [i, [what, , expected]] of cases.entries()) assert.match(lines[i]!, expected, what);
  assert.equal(lines[cases.length], `ok Bearer ${TOKEN}`, "another user's token-file is not read");
  assert.equal(lines[cases.length + 1], `ok Bearer ${TOKEN}`, 'a relative token-file');
});

test('an exec credential plugin is bounded in time and output, and its failure is one line without its output', async () => {
  const exec = (command: string, args: string[]): string =>
    kubeconfig({}, { exec: { apiVersion: 'client.authentication.k8s.io/v1beta1', command, args } });
  const started = Date.now();
  await assert.rejects(loadClusterAccess({ kubeconfig: exec('sleep', ['1000']), execTimeoutMs: 500 }), /its exec credential plugin sleep gave no answer in 0\.5 s: fix the plugin/);
  assert.ok(Date.now() - started < 10_000, 'the plugin was stopped at its deadline');
  // client-node keeps all a plugin writes, in one string: without a cap this crashes the process.
  await assert.rejects(loadClusterAccess({ kubeconfig: exec('sh', ['-c', 'cat /dev/zero']) }), /its exec credential plugin sh wrote more than 1048576 bytes/);
  await assert.rejects(loadClusterAccess({ kubeconfig: exec('sh', ['-c', 'echo leaked-secret-output >&2; exit 3']) }), (err: Error) =>
    /its exec credential plugin sh exited with status 3/.test(err.message) && !err.message.includes('leaked-secret-output'));
  await assert.rejects(loadClusterAccess({ kubeconfig: exec(join(dir, 'no-such-plugin'), []) }), /cannot be run \(ENOENT\)/);
  const credential = JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1beta1', kind: 'ExecCredential', status: { token: TOKEN } });
  const access = await loadClusterAccess({ kubeconfig: exec('echo', [credential]) });
  assert.deepEqual(await access.headers(), { authorization: `Bearer ${TOKEN}` });
  await access.close();
});

test('in-cluster: the CA and the token are bounded regular files, and the namespace file is never read', async () => {
  const env = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };
  /** A pod's service-account mount under a root of its own; `token` and `ca` may be replaced. */
  const pod = (name: string, make: { token?: (path: string) => void; ca?: (path: string) => void } = {}): Record<string, unknown> => {
    const root = join(dir, name);
    const sa = join(root, SERVICE_ACCOUNT_DIR);
    mkdirSync(sa, { recursive: true });
    (make.ca ?? ((p) => writeFileSync(p, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')))(join(sa, 'ca.crt'));
    (make.token ?? ((p) => writeFileSync(p, `${TOKEN}\n`)))(join(sa, 'token'));
    // client-node's loadFromCluster reads this with readFileSync: a FIFO hung it for ever.
    execFileSync('mkfifo', [join(sa, 'namespace')]);
    return { inClusterRoot: root, env };
  };
  const { lines, timedOut } = await accessInChild([
    pod('pod-good'),
    pod('pod-zero-token', { token: (p) => symlinkSync('/dev/zero', p) }),
    pod('pod-huge-token', { token: (p) => writeFileSync(p, 'x'.repeat(100_000)) }),
    pod('pod-fifo-ca', { ca: (p) => execFileSync('mkfifo', [p]) }),
  ]);
  assert.equal(timedOut, false, `in-cluster case ${lines.length + 1} hung`);
  assert.equal(lines[0], `ok Bearer ${TOKEN}`, 'the namespace FIFO is not read');
  assert.match(lines[1]!, /^error the token file \S+token is not a regular file/);
  assert.match(lines[2]!, /^error the token file \S+ is larger than 65536 bytes/);
  assert.match(lines[3]!, /^error the service-account CA \S+ca\.crt is a FIFO \(named pipe\), not a regular file/);
});

test('a server that answers every watch with 410 gets a list per backoff step, not a list per round trip', async () => {
  const server = await new FakeApiServer({ tokens: [TOKEN] }).start();
  server.goneAs = 'status';
  server.apply(registryObject('shop', [peer('shop', 'web')]));
  const clock = new FakeClock();
  const access = await loadClusterAccess({ kubeconfig: writeKubeconfig(server) });
  const lost: WatchLostInfo[] = [];
  const reflector = new Reflector({ client: new ApiClient(access), resource: clearanceRegistryResource(), handlers: {}, clock, random: () => 0.5 });
  reflector.on('watchLost', (i) => lost.push(i));
  server.failNext(410, 1_000_000, true);
  reflector.start();
  try {
    await waitFor(() => lost.length >= 2, 'two 410s');
    // Real time passes, fake time does not: only an attempt that waits for nothing can happen.
    await sleep(1000);
    const lists = server.requests.filter((r) => r.query.get('watch') === null).length;
    assert.ok(lists <= 3, `${lists} lists in a second of 410s`);
    assert.equal(lost[0]!.retryInMs, 0, 'the first 410 relists at once');
    assert.ok(lost.at(-1)!.retryInMs >= 1000, 'a 410 right after a relist backs off');
    // Once the server behaves, a watch that stays open resets it: the next 410 relists at once.
    server.failNext(200, 0);
    const before = lost.length;
    clock.advance(lost.at(-1)!.retryInMs);
    await waitFor(() => reflector.status().watching, 'a watch that stays open');
    clock.advance(15_000);
    await server.down();
    await waitFor(() => lost.length > before, 'the lost watch');
    server.apply(registryObject('shop', [peer('shop', 'api')]));
    server.compact();
    await server.up();
    clock.advance(lost.at(-1)!.retryInMs);
    await waitFor(() => lost.at(-1)!.reason === 'gone', 'the 410 after the outage');
    assert.equal(lost.at(-1)!.retryInMs, 0);
  } finally {
    await reflector.stop();
    await access.close();
    await server.close();
  }
});

function writeKubeconfig(server: { url: string }): string {
  const file = join(dir, `kubeconfig-${kubeconfigs++}`);
  writeFileSync(file, kubeconfigFor(server.url, TOKEN));
  return file;
}

/** A hostile API server: `list` answers list requests, `watch` takes over watch responses. */
async function hostileServer(handlers: { list(page: number, res: ServerResponse): void; watch(res: ServerResponse): void }): Promise<{ url: string; lists: () => number; close(): Promise<void> }> {
  let lists = 0;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    res.setHeader('content-type', 'application/json');
    if (url.searchParams.get('watch') === '1') return handlers.watch(res);
    lists++;
    handlers.list(Number(url.searchParams.get('continue') ?? '0'), res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    lists: () => lists,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

function object(i: number, pad = 0): Record<string, unknown> {
  return { ...registryObject('ns', [], `o${i}`), metadata: { name: `o${i}`, namespace: 'ns', resourceVersion: String(i + 1) }, pad: 'x'.repeat(pad) };
}

test('a list without end and a watch that streams new objects without end leave a bounded store', async () => {
  const listsWithoutEnd = await hostileServer({
    // Every page is 200 objects of ~1 KiB and promises another.
    list: (page, res) => res.end(JSON.stringify({ metadata: { resourceVersion: '1', continue: String(page + 1) }, items: Array.from({ length: 200 }, (_, i) => object(page * 200 + i, 1000)) })),
    watch: (res) => res.end(),
  });
  const access = await loadClusterAccess({ kubeconfig: writeKubeconfig(listsWithoutEnd) });
  const failed: ListFailedInfo[] = [];
  const clock = new FakeClock();
  const reflector = new Reflector({ client: new ApiClient(access), resource: clearanceRegistryResource(), handlers: {}, clock, maxStoreBytes: 1024 * 1024 });
  reflector.on('listFailed', (i) => failed.push(i));
  reflector.start();
  try {
    await waitFor(() => failed.length === 1, 'the refused list');
    assert.equal(failed[0]!.reason, 'too_large');
    assert.match(failed[0]!.message, /more than 1048576 bytes .*refused; the objects in force are kept/);
    assert.ok(listsWithoutEnd.lists() <= 8, `${listsWithoutEnd.lists()} pages read for a 1 MiB bound`);
    assert.equal(reflector.store.size, 0);
    assert.equal(reflector.status().listed, false);
  } finally {
    await reflector.stop();
    await access.close();
    await listsWithoutEnd.close();
  }
  // registry get reads once, with the same kind of bound.
  const again = await loadClusterAccess({ kubeconfig: writeKubeconfig(listsWithoutEnd) });
  const endless = await hostileServer({
    list: (page, res) => res.end(JSON.stringify({ metadata: { resourceVersion: '1', continue: String(page + 1) }, items: [object(page)] })),
    watch: (res) => res.end(),
  });
  const endlessAccess = await loadClusterAccess({ kubeconfig: writeKubeconfig(endless) });
  try {
    await assert.rejects(readRegistryOnce(endlessAccess, [], undefined, { maxObjects: 50, maxBytes: 1024 * 1024, timeoutMs: 10_000 }), /more than 50 objects .*more than a proxy would hold/);
    assert.ok(endless.lists() <= 51);
  } finally {
    await again.close();
    await endlessAccess.close();
    await endless.close();
  }

  let next = 0;
  const streams = await hostileServer({
    list: (_page, res) => res.end(JSON.stringify({ metadata: { resourceVersion: '1' }, items: [] })),
    watch: (res) => {
      // New objects for as long as the client reads.
      const pump = (): void => {
        while (!res.destroyed && res.write(`${JSON.stringify({ type: 'ADDED', object: object(next++) })}\n`));
      };
      res.on('drain', pump);
      pump();
    },
  });
  const streamAccess = await loadClusterAccess({ kubeconfig: writeKubeconfig(streams) });
  const lost: WatchLostInfo[] = [];
  let largest = 0;
  const watching = new Reflector({
    client: new ApiClient(streamAccess),
    resource: clearanceRegistryResource(),
    handlers: { add: () => (largest = Math.max(largest, watching.store.size)) },
    clock: new FakeClock(),
    maxObjects: 1000,
  });
  watching.on('watchLost', (i) => lost.push(i));
  watching.start();
  try {
    await waitFor(() => lost.length === 1, 'the watch ended at the bound');
    assert.equal(lost[0]!.reason, 'too_large');
    assert.equal(lost[0]!.relist, true);
    assert.equal(largest, 1000);
    assert.ok(watching.store.size <= 1000);
  } finally {
    await watching.stop();
    await streamAccess.close();
    await streams.close();
  }
});

test('an object whose new version is past the bound is dropped, not kept at its old version: its peers are revoked', async () => {
  const server = await new FakeApiServer({ tokens: [TOKEN] }).start();
  const web = peer('shop', 'web');
  server.apply(registryObject('shop', [web]));
  const access = await loadClusterAccess({ kubeconfig: writeKubeconfig(server) });
  const source = new KubernetesRegistrySource({ access, clock: new FakeClock(), tuning: { random: () => 0.5, maxStoreBytes: 64 * 1024 } });
  const registry = new Registry(source);
  const revoked: { key: string; reason: RevocationReason }[] = [];
  registry.on('revoked', (key, reason) => revoked.push({ key, reason }));
  registry.start();
  try {
    await registry.ready();
    await waitFor(() => server.watchers === 1, 'the watch');
    assert.notEqual(registry.index.byPublicKey(web.publicKey as string), undefined);
    // The same peer, revoked, in an object that no longer fits: the old version must not stay.
    server.apply({ ...registryObject('shop', [{ ...web, revoked: true }]), status: { note: 'x'.repeat(100_000) } });
    await waitFor(() => revoked.length === 1, 'the revocation');
    assert.deepEqual(revoked[0], { key: web.publicKey, reason: 'removed' });
    assert.equal(registry.index.byPublicKey(web.publicKey as string), undefined);
  } finally {
    await registry.stop();
    await server.close();
  }
});

test('a list refused with 401, 403 or 404 says what to fix (credentials, RBAC, the CRD), and a refused connection says where', async () => {
  let code = 404;
  const server = await hostileServer({
    list: (_page, res) => {
      const reason = code === 404 ? 'NotFound' : code === 403 ? 'Forbidden' : 'Unauthorized';
      res.statusCode = code;
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message: code === 404 ? 'the server could not find the requested resource' : reason }));
    },
    watch: (res) => res.end(),
  });
  const access = await loadClusterAccess({ kubeconfig: writeKubeconfig(server) });
  try {
    await assert.rejects(readRegistryOnce(access), /^ApiError: list clearanceregistries\.noisemesh\.io in all namespaces: HTTP 404 \(the server could not find the requested resource\): the API server does not serve clearanceregistries\.noisemesh\.io\/v1alpha1: is its CustomResourceDefinition installed \(for ClearanceRegistry, crds\/clearanceregistry\.yaml\)\?/);
    code = 403;
    await assert.rejects(readRegistryOnce(access, ['shop']), /HTTP 403 \(Forbidden\): grant get, list and watch on clearanceregistries\.noisemesh\.io to this identity/);
    code = 401;
    await assert.rejects(readRegistryOnce(access), /HTTP 401 \(Unauthorized\): the API server refused our credentials: check the kubeconfig's user, or the service-account token/);
  } finally {
    await access.close();
    await server.close();
  }
  // And a server that is not there: the message says where we tried.
  const gone = await loadClusterAccess({ kubeconfig: writeKubeconfig(server) });
  try {
    await assert.rejects(readRegistryOnce(gone), (err: Error) => err.message === `list clearanceregistries.noisemesh.io in all namespaces: ECONNREFUSED (${server.url})`);
  } finally {
    await gone.close();
  }
});

test('credentials that never come (a hung OIDC refresh, say) fail the request in time, and the reflector retries', async () => {
  const never = new ClusterAccess('http://127.0.0.1:9', 'a test', { rejectUnauthorized: true }, () => new Promise(() => {}));
  try {
    await assert.rejects(readRegistryOnce(never, [], { credentialsTimeoutMs: 200 }), /^ApiError: list clearanceregistries\.noisemesh\.io in all namespaces: no credentials in 0\.2 s$/);
    const failed: ListFailedInfo[] = [];
    const reflector = new Reflector({ client: new ApiClient(never, { credentialsTimeoutMs: 200 }), resource: clearanceRegistryResource(), handlers: {}, clock: new FakeClock() });
    reflector.on('listFailed', (i) => failed.push(i));
    reflector.start();
    try {
      await waitFor(() => failed.length === 1, 'the failed list');
      assert.equal(failed[0]!.reason, 'timeout');
      assert.ok(failed[0]!.retryInMs >= 1000);
    } finally {
      await reflector.stop();
    }
  } finally {
    await never.close();
  }
});
