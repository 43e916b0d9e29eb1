// `noisemesh gateway` as a process: its configuration refused with every problem and its fix
// (the backends' and the cache's keys among them), a policy or secrets file, a Vault CA
// bundle or a kubeconfig that does not load refused at start, and real gateway processes
// (file backend; vault backend against the Vault test double, with the default cache)
// serving fetches to an in-process client proxy, then draining on SIGTERM.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { stringify } from 'yaml';
import { encodeKey, nativeBackend } from '../src/noise/index.js';
import { Proxy, silentLogger } from '../src/proxy/index.js';
import { ConfigError } from '../src/cli/config/config-reader.js';
import { parseGatewayConfig } from '../src/cli/config/gateway-config.js';
import { DEFAULT_CACHE, DEFAULT_SERVICE_ACCOUNT_TOKEN } from '../src/secrets/index.js';
import { FakeVault } from './helpers/fake-vault.js';
import { TestDirectory, TRUST_DOMAIN, makeIdentity, peerOf } from './helpers/mesh.js';
import { repoRoot } from './helpers/paths.js';
import { freePorts } from './helpers/process.js';

const CLI = join(repoRoot, 'dist/src/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'noisemesh-gateway-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function run(config: unknown): { status: number | null; stdout: string; stderr: string } {
  const file = join(dir, `c${Math.random().toString(16).slice(2)}.yaml`);
  writeFileSync(file, typeof config === 'string' ? config : stringify(config));
  const r = spawnSync(process.execPath, [CLI, 'gateway', '--config', file], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const BASE = { identity: { agentId: 'noisemesh-system/gateway' }, registry: { file: join(dir, 'registry.yaml') }, admin: false };

test('every problem of the gateway section at once, the vault backend\'s and the cache\'s among them, each with its path and fix', () => {
  const r = run({
    ...BASE,
    inbound: { meshPort: 15443 },
    gateway: {
      port: 15443,
      policy: 'p.yaml',
      backend: { vault: { address: 'ftp://vault:8200', mount: '/secret/', auth: { token: { file: 't' }, kubernetes: { role: 'r' } }, timeoutSeconds: 0, namespce: 'a' } },
      audit: { file: 'a.log', stdout: true },
      cache: { ttlSeconds: -1, maxStale: 600, maxEntries: 1.5 },
      loopbak: {},
    },
  });
  assert.equal(r.status, 2);
  for (const expected of [
    /gateway\.backend\.vault\.address: must be an http\(s\) URL such as https:\/\/vault\.vault:8200; got the scheme ftp:/,
    /gateway\.backend\.vault\.mount: must be a Vault mount path/,
    /gateway\.backend\.vault\.auth: has both token and kubernetes: keep one of them/,
    /gateway\.backend\.vault\.timeoutSeconds: must be a number from 0\.1 to 300; got 0/,
    /gateway\.backend\.vault\.namespce: unknown key: did you mean 'namespace'\?/,
    /gateway\.cache\.ttlSeconds: must be a number from 0 to 86400; got -1/,
    /gateway\.cache\.maxStale: unknown key; known keys: ttlSeconds, maxStaleSeconds, maxEntries, notFoundTtlSeconds, maxNotFoundEntries, maxConcurrent, maxQueued/,
    /gateway\.cache\.maxEntries: must be an integer from 1 to 1000000; got 1\.5/,
    /gateway\.loopbak: unknown key: did you mean 'loopback'\?/,
    /gateway\.audit: set one of gateway\.audit\.file and gateway\.audit\.stdout, not both/,
    /gateway\.port: 15443 is also inbound\.meshPort/,
  ]) {
    assert.match(r.stderr, expected);
  }
  assert.ok(!r.stderr.includes('    at '), 'no stack trace');
});

test('a misspelt gateway section is offered its name, as any other top-level key is, and the section is still required', () => {
  const r = run({ ...BASE, gatway: { policy: 'p.yaml', backend: { file: 's.yaml' }, audit: { stdout: true } }, inbund: {} });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /gatway: unknown key: did you mean 'gateway'\?/);
  assert.match(r.stderr, /inbund: unknown key: did you mean 'inbound'\?/);
  assert.match(r.stderr, /gateway: required: gateway: \{policy, backend: \{file\}/);
  assert.ok(!r.stderr.includes('    at '), 'no stack trace');
});

test('two backends, a wrong kubernetes backend, a cache beside the file backend, and backends of the wrong shape are refused', () => {
  assert.match(run(BASE).stderr, /gateway: required: gateway: \{policy, backend: \{file\}, audit/);
  const two = run({ ...BASE, gateway: { policy: 'p.yaml', backend: { file: 's.yaml', kubernetes: { namespace: 'Bad_NS', kubeconfg: 'k' } }, audit: { stdout: 'yes' } } });
  assert.equal(two.status, 2);
  assert.match(two.stderr, /gateway\.backend: set exactly one backend, not file and kubernetes: keep one of them/);
  // Both are still read: their problems are reported in the same go.
  assert.match(two.stderr, /gateway\.backend\.kubernetes\.namespace: must be a Kubernetes namespace name/);
  assert.match(two.stderr, /gateway\.backend\.kubernetes\.kubeconfg: unknown key: did you mean 'kubeconfig'\?/);
  assert.match(two.stderr, /gateway\.audit\.stdout: must be true/);

  const cached = run({ ...BASE, gateway: { policy: 'p.yaml', backend: { file: 's.yaml' }, cache: { ttlSeconds: 30 }, audit: { stdout: true } } });
  assert.match(cached.stderr, /gateway\.cache: the file backend is held in memory and needs no cache .*remove gateway\.cache/);

  const shapes = run({ ...BASE, gateway: { policy: 'p.yaml', backend: { vault: 'https://vault:8200' }, cache: 30, audit: { stdout: true } } });
  assert.match(shapes.stderr, /gateway\.backend\.vault: must be a mapping with keys address, mount, auth, namespace, caFile, timeoutSeconds; got "https:\/\/vault:8200"/);
  assert.match(shapes.stderr, /gateway\.cache: must be a mapping with keys ttlSeconds, maxStaleSeconds/);
  const missing = run({ ...BASE, gateway: { policy: 'p.yaml', backend: { vault: { address: 'https://vault:8200', auth: { kubernetes: {} } } }, audit: { stdout: true } } });
  assert.match(missing.stderr, /gateway\.backend\.vault\.mount: required: the KV v2 mount/);
  assert.match(missing.stderr, /gateway\.backend\.vault\.auth\.kubernetes\.role: required/);
  const empty = run({ ...BASE, gateway: { policy: 'p.yaml', backend: {}, audit: { stdout: true } } });
  assert.match(empty.stderr, /gateway\.backend: required: exactly one of \{file: PATH\}, \{vault: \{address, mount, auth\}\} or \{kubernetes: \{namespace\}\}/);
  const typo = run({ ...BASE, gateway: { policy: 'p.yaml', backend: { vualt: {} }, audit: { stdout: true } } });
  assert.match(typo.stderr, /gateway\.backend\.vualt: unknown key: did you mean 'vault'\?/);
  assert.doesNotMatch(typo.stderr, /gateway\.backend: required/, 'a typo is reported once, as a typo');
  assert.equal(run({ ...BASE, gateway: { policy: 'p.yaml', backend: { file: 's.yaml' }, audit: { stdout: true } }, inbound: { targetHost: '127.0.0.1' } }).status, 2);
});

test('an unreadable Vault CA bundle or an unusable kubeconfig stops the gateway at start, naming the key', () => {
  writeFileSync(join(dir, 'registry.yaml'), '');
  writeFileSync(join(dir, 'open-policy.yaml'), 'rules: []\n');
  const policy = join(dir, 'open-policy.yaml');
  const vault = run({
    ...BASE,
    gateway: { policy, backend: { vault: { address: 'https://127.0.0.1:1', mount: 'secret', auth: { token: { file: join(dir, 'no-token') } }, caFile: join(dir, 'no-ca.pem') } }, audit: { stdout: true } },
  });
  assert.equal(vault.status, 2, vault.stderr);
  assert.match(vault.stderr, /gateway\.backend\.vault\.caFile: \S+no-ca\.pem does not exist: create it, or fix gateway\.backend\.vault\.caFile/);
  const kube = run({ ...BASE, gateway: { policy, backend: { kubernetes: { namespace: 'payments', kubeconfig: join(dir, 'no-kubeconfig') } }, audit: { stdout: true } } });
  assert.equal(kube.status, 2, kube.stderr);
  assert.match(kube.stderr, /gateway\.backend\.kubernetes: the kubeconfig .*no-kubeconfig does not exist: check the path/);
  assert.ok(!vault.stderr.includes('    at ') && !kube.stderr.includes('    at '), 'no stack trace');
});

test('a policy or a secrets file that does not load stops the gateway at start, naming the problem and never a value', () => {
  writeFileSync(join(dir, 'bad-policy.yaml'), 'rules:\n  - id: x\n    paths: ["a/*"]\n    require: {clearance: secret}\n');
  writeFileSync(join(dir, 'good-policy.yaml'), 'rules: []\n');
  writeFileSync(join(dir, 'bad-secrets.yaml'), 'payments/db: {password: 123456789}\n');
  writeFileSync(join(dir, 'registry.yaml'), '');
  const policy = run({ ...BASE, gateway: { policy: join(dir, 'bad-policy.yaml'), backend: { file: join(dir, 'bad-secrets.yaml') }, audit: { stdout: true } } });
  assert.equal(policy.status, 2);
  assert.match(policy.stderr, /gateway\.policy: invalid policy .*rules\[0\]\.require\.clearance: must be one of/s);
  const secrets = run({ ...BASE, gateway: { policy: join(dir, 'good-policy.yaml'), backend: { file: join(dir, 'bad-secrets.yaml') }, audit: { stdout: true } } });
  assert.equal(secrets.status, 2);
  assert.match(secrets.stderr, /gateway\.backend\.file: .*line 1: payments\/db\.password: must be a string: quote it/);
  assert.ok(!secrets.stderr.includes('123456789'));
});

test('an audit path or a secrets file the gateway cannot use is its only output: one line naming the key, no log line before it, exit 2', () => {
  writeFileSync(join(dir, 'registry.yaml'), '');
  writeFileSync(join(dir, 'open-policy.yaml'), 'rules: []\n');
  writeFileSync(join(dir, 'ok-secrets.yaml'), 'payments/db: {password: "x"}\n');
  const policy = join(dir, 'open-policy.yaml');
  const cases: [object, RegExp][] = [
    // A device takes every line and keeps none: refused at start as it is when it replaces the file later.
    [{ audit: { file: '/dev/null' }, backend: { file: join(dir, 'ok-secrets.yaml') } }, /^noisemesh gateway: gateway\.audit\.file: \/dev\/null is not a regular file \(a device, FIFO, socket or directory\): point it at a regular file, or use gateway\.audit\.stdout: true$/],
    [{ audit: { file: dir }, backend: { file: join(dir, 'ok-secrets.yaml') } }, /^noisemesh gateway: gateway\.audit\.file: .* cannot be opened for appending \(EISDIR\): it is a directory: name a file in it$/],
    [{ audit: { stdout: true }, backend: { file: '/dev/zero' } }, /^noisemesh gateway: .*\/dev\/zero is a character device, not a regular file/],
  ];
  for (const [gateway, line] of cases) {
    const r = run({ ...BASE, gateway: { policy, ...gateway } });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stdout, '', `no log line before the refusal: ${r.stdout}`);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, line);
  }
});

interface GatewayProcess {
  /** The client proxy's listener to the gateway's port 8200. */
  readonly entry: number;
  readonly adminPort: number;
  readonly child: ReturnType<typeof spawn>;
  readonly exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
  /** The audit lines on stdout so far. */
  audit(): any[];
}

/**
 * A `noisemesh gateway` process with this backend (and cache), a registry that holds it and
 * payments/api, a policy that lets payments/* read payments/**, and an in-process client
 * proxy for payments/api; resolves once the gateway is ready.
 */
async function startGatewayProcess(t: { after(fn: () => unknown): void }, name: string, backendSection: object): Promise<GatewayProcess> {
  const [meshPort, adminPort] = await freePorts(2);
  const gatewayKey = nativeBackend.dh('25519').generateKeyPair();
  const file = (f: string): string => join(dir, `${name}-${f}`);
  writeFileSync(file('gw.key'), `${encodeKey(gatewayKey.privateKey)}\n`, { mode: 0o600 });
  const client = makeIdentity('payments/api');
  const doc = (ns: string, peers: object[]): string => stringify({ apiVersion: 'noisemesh.io/v1alpha1', kind: 'ClearanceRegistry', metadata: { name: 'p', namespace: ns }, spec: { peers } });
  writeFileSync(file('registry.yaml'), [
    doc('noisemesh-system', [{ agentId: 'noisemesh-system/gateway', installationId: '11111111-2222-4333-8444-000000000001', publicKey: encodeKey(gatewayKey.publicKey), generation: 1, addresses: ['127.0.0.1'], meshPort }]),
    doc('payments', [{ agentId: 'payments/api', installationId: '11111111-2222-4333-8444-000000000002', publicKey: client.publicKeyB64, generation: 1, clearance: 'secrets-only', addresses: ['127.0.0.1'] }]),
  ].join('---\n'));
  writeFileSync(file('policy.yaml'), 'rules:\n  - id: payments\n    paths: ["payments/**"]\n    agents: ["payments/*"]\n    require: {clearance: secrets-only}\n');
  const config = file('gateway.yaml');
  writeFileSync(config, stringify({
    identity: { agentId: 'noisemesh-system/gateway', privateKeyFile: file('gw.key') },
    registry: { file: file('registry.yaml') },
    inbound: { bind: '127.0.0.1', meshPort },
    admin: { bind: '127.0.0.1', port: adminPort },
    shutdown: { drainSeconds: 1 },
    gateway: { policy: file('policy.yaml'), ...backendSection, audit: { stdout: true } },
  }));
  const child = spawn(process.execPath, [CLI, 'gateway', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(() => child.kill('SIGKILL'));

  const view = new TestDirectory();
  view.set(peerOf(client, 1));
  view.set({ ...peerOf(makeIdentity('noisemesh-system/gateway'), meshPort!), publicKey: gatewayKey.publicKey, publicKeyB64: encodeKey(gatewayKey.publicKey) });
  const proxy = new Proxy({
    trustDomain: TRUST_DOMAIN,
    backend: nativeBackend,
    identity: client,
    directory: view,
    log: silentLogger(),
    outbound: { mode: 'permissive', explicit: [{ listen: { host: '127.0.0.1', port: 0 }, peer: 'noisemesh-system/gateway', port: 8200 }] },
    inbound: { mesh: { host: '127.0.0.1', port: 0 } },
  });
  const entry = (await proxy.start()).explicit[0]!;
  t.after(() => proxy.shutdown(0));

  for (let i = 0; i < 200; i++) {
    try {
      const res = await request(`http://127.0.0.1:${adminPort}/readyz`);
      await res.body.dump();
      if (res.statusCode === 200) break;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  return {
    entry,
    adminPort: adminPort!,
    child,
    exited,
    stdout: () => stdout,
    stderr: () => stderr,
    audit: () => stdout.split('\n').filter((l) => l.includes('"decisionId"')).map((l) => JSON.parse(l)),
  };
}

async function fetchSecret(entry: number, path: string): Promise<{ status: number; body: any; text: string }> {
  const res = await request(`http://127.0.0.1:${entry}/v1/secrets/${path}`, { reset: true });
  const text = await res.body.text();
  return { status: res.statusCode, body: JSON.parse(text), text };
}

test('a gateway process serves a fetch through the mesh, audits it to stdout, and drains on SIGTERM', async (t) => {
  writeFileSync(join(dir, 'secrets.yaml'), 'payments/db: {password: "SECRET-VALUE-cli"}\n');
  const g = await startGatewayProcess(t, 'file', { backend: { file: join(dir, 'secrets.yaml') } });
  const r = await fetchSecret(g.entry, 'payments/db');
  assert.equal(r.status, 200, g.stderr());
  assert.equal(r.body.data.password, 'SECRET-VALUE-cli');
  const metrics = await (await request(`http://127.0.0.1:${g.adminPort}/metrics`)).body.text();
  assert.match(metrics, /noisemesh_secret_requests_total\{decision="allow",rule="payments"\} 1/);
  assert.doesNotMatch(metrics, /noisemesh_secret_cache_events_total/, 'the file backend has no cache');

  g.child.kill('SIGTERM');
  assert.equal(await g.exited, 0, g.stderr());
  const audit = g.audit();
  assert.equal(audit.length, 1);
  assert.equal(audit[0].agentId, 'payments/api');
  assert.equal(audit[0].decision, 'allow');
  assert.equal(audit[0].backendOutcome, 'uncached');
  assert.ok(!g.stdout().includes('SECRET-VALUE') && !g.stderr().includes('SECRET-VALUE'), 'no value in the audit line or any log');
});

test('a gateway process with the vault backend (token auth) serves the Vault value and version, then the cached value while Vault is sealed, then 503', async (t) => {
  const vault = await new FakeVault().start();
  t.after(() => vault.close());
  const token = vault.createToken({ policies: ['payments/'], ttlSeconds: 0 });
  writeFileSync(join(dir, 'vault-token'), `${token}\n`);
  vault.put('payments/db', { password: 'SECRET-VALUE-vault-v1' });
  vault.put('payments/db', { password: 'SECRET-VALUE-vault-v2' });
  // ttlSeconds 0: every fetch asks Vault; a value stays servable for 3 s while Vault is down.
  const g = await startGatewayProcess(t, 'vault', {
    backend: { vault: { address: vault.url, mount: 'secret', auth: { token: { file: join(dir, 'vault-token') } }, timeoutSeconds: 2 } },
    cache: { ttlSeconds: 0, maxStaleSeconds: 3 },
  });
  const r = await fetchSecret(g.entry, 'payments/db');
  assert.equal(r.status, 200, g.stderr());
  assert.deepEqual(r.body, { path: 'payments/db', data: { password: 'SECRET-VALUE-vault-v2' }, version: '2' });
  assert.ok(vault.requestsTo('/v1/secret/data/payments/db').every((q) => q.token), 'the token file\'s token was sent');

  vault.seal();
  const stale = await fetchSecret(g.entry, 'payments/db');
  assert.equal(stale.status, 200, g.stderr());
  assert.equal(stale.body.version, '2');
  await sleep(3500);
  const gone = await fetchSecret(g.entry, 'payments/db');
  assert.equal(gone.status, 503, gone.text);
  assert.equal(gone.body.reason, 'backend_unavailable');
  assert.ok(!gone.text.includes('SECRET-VALUE'));

  const metrics = await (await request(`http://127.0.0.1:${g.adminPort}/metrics`)).body.text();
  assert.match(metrics, /noisemesh_secret_cache_events_total\{event="stale"\} 1/);
  assert.match(metrics, /noisemesh_secret_backend_errors_total\{backend="vault",failure="unavailable"\} 2/);
  g.child.kill('SIGTERM');
  assert.equal(await g.exited, 0, g.stderr());
  assert.deepEqual(g.audit().map((l) => [l.status, l.backend, l.backendOutcome, l.backendFailure ?? null]), [
    [200, 'vault', 'miss', null],
    [200, 'vault', 'stale', null],
    [503, 'vault', 'miss', 'unavailable'],
  ]);
  const everything = g.stdout() + g.stderr();
  assert.ok(!everything.includes('SECRET-VALUE') && !everything.includes(token), 'no value and no Vault token in the audit lines or the log');
  assert.match(g.stderr() + g.stdout(), /"event":"backend-error".*"failure":"unavailable"/);
});

test('in-process: the gateway\'s cache defaults (vault and kubernetes get DEFAULT_CACHE, the file backend none) and an explicit cache fills in the rest', () => {
  const gateway = (backend: object, cache?: object): object => ({ identity: { agentId: 'noisemesh-system/gateway' }, registry: { file: 'r.yaml' }, gateway: { policy: 'p.yaml', backend, audit: { stdout: true }, ...(cache && { cache }) } });
  const vault = { address: 'https://vault.vault:8200/', mount: 'kv/team', auth: { kubernetes: { role: 'gw' } } };
  const v = parseGatewayConfig(gateway({ vault }));
  assert.deepEqual(v.gateway.backend, {
    kind: 'vault',
    vault: { address: 'https://vault.vault:8200', mount: 'kv/team', auth: { method: 'kubernetes', role: 'gw', mountPath: 'kubernetes', tokenFile: DEFAULT_SERVICE_ACCOUNT_TOKEN }, namespace: undefined, caFile: undefined, timeoutSeconds: 5 },
  });
  assert.deepEqual(v.gateway.cache, DEFAULT_CACHE);
  assert.deepEqual(parseGatewayConfig(gateway({ kubernetes: { namespace: 'secrets' } })).gateway.cache, DEFAULT_CACHE);
  assert.equal(parseGatewayConfig(gateway({ file: 's.yaml' })).gateway.cache, null);
  assert.deepEqual(parseGatewayConfig(gateway({ vault }, { ttlSeconds: 5, maxQueued: 0 })).gateway.cache, { ...DEFAULT_CACHE, ttlSeconds: 5, maxQueued: 0 });
  assert.throws(() => parseGatewayConfig(gateway({ vault, kubernetes: { namespace: 'x' } })), (err: Error) => err instanceof ConfigError && /exactly one backend/.test(err.message));
});
