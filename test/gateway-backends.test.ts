// The secrets gateway end to end with its remote backends, built by createBackend as
// `noisemesh gateway` builds them and fronted by the gateway's cache: real client proxies, a
// real gateway proxy serving the API in-process, fetches through the mesh.
// - vault (kubernetes auth: the JWT read from a service-account token file) against the Vault
//   test double (test/helpers/fake-vault.ts): the value and version through the mesh; cache
//   hits; a sealed Vault: the cached value within maxStaleSeconds, then 503; a 403 from Vault
//   (the gateway's own credentials): 503 with no value, logged, never masked by the cache;
//   the audit line's backend outcome; the cache's and vault's metrics.
// - kubernetes against the API-server test double (test/helpers/fake-apiserver.ts): a Secret
//   of the configured namespace through the mesh; RBAC's 403 as 503.
// The cache's time is a FakeClock (TTL and staleness without waiting); the HTTP is real.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startGatewayFixture, type GatewayFixture } from './helpers/gateway.js';
import { FakeVault } from './helpers/fake-vault.js';
import { FakeApiServer, SECRETS, kubeconfigFor } from './helpers/fake-apiserver.js';
import { FakeClock } from './helpers/fake-clock.js';

const POLICY = `rules:
  - id: payments
    paths: ["payments/**", "billing/**"]
    agents: ["payments/*"]
    require: {clearance: secrets-only}
`;
const ROLE = 'noisemesh-gateway';
const JWT = 'eyJhbGciOiJSUzI1NiJ9.SERVICE-ACCOUNT-JWT.signature';
const K8S_TOKEN = 'API-SERVER-TOKEN-0123456789';

const dir = mkdtempSync(join(tmpdir(), 'noisemesh-gateway-backends-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function get(port: number, path: string): Promise<{ status: number; body: any; text: string; id: string }> {
  const res = await request(`http://127.0.0.1:${port}${path}`, { reset: true });
  const text = await res.body.text();
  return { status: res.statusCode, body: text === '' ? null : JSON.parse(text), text, id: res.headers['x-noisemesh-decision-id'] as string };
}

function auditFor(f: GatewayFixture, decisionId: string): any {
  const line = readFileSync(f.auditFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l)).find((l) => l.decisionId === decisionId);
  assert.ok(line, `no audit line for decision ${decisionId}`);
  return line;
}

async function metrics(f: GatewayFixture): Promise<string> {
  return (await request(`http://127.0.0.1:${f.adminPort}/metrics`)).body.text();
}

function metric(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `no series ${series} in /metrics`);
  return Number(line.slice(series.length + 1));
}

function logs(f: GatewayFixture, event: string): any[] {
  return f.logLines.map((l) => JSON.parse(l)).filter((l) => l.event === event);
}

describe('the vault backend through the mesh', () => {
  let vault: FakeVault;
  let f: GatewayFixture;
  const clock = new FakeClock(Date.now());
  let port: number;

  before(async () => {
    vault = await new FakeVault().start();
    vault.addRole(ROLE, { jwts: [JWT], policies: ['payments/'], ttlSeconds: 3600 });
    const tokenFile = join(dir, 'sa-token');
    writeFileSync(tokenFile, `${JWT}\n`);
    f = await startGatewayFixture({
      policy: POLICY,
      callers: [{ agentId: 'payments/api' }],
      backend: { kind: 'vault', vault: { address: vault.url, mount: 'secret', auth: { method: 'kubernetes', role: ROLE, mountPath: 'kubernetes', tokenFile }, namespace: undefined, caFile: undefined, timeoutSeconds: 5 } },
      backendDeps: { vault: { retry: { attempts: 2, baseMs: 5, maxMs: 10 } } },
      cache: { ttlSeconds: 30, maxStaleSeconds: 600, maxEntries: 100, notFoundTtlSeconds: 5, maxNotFoundEntries: 100, maxConcurrent: 4, maxQueued: 16 },
      cacheClock: clock,
    });
    port = f.callers.get('payments/api')!.entryPort;
  });

  after(async () => {
    await f?.close();
    await vault?.close();
  });

  test('an allowed fetch returns the Vault value and its KV version; a repeat is a cache hit; past the TTL the new version', async () => {
    vault.put('payments/db', { username: 'app', password: 'SECRET-VALUE-vault-1' });
    const r = await get(port, '/v1/secrets/payments/db');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { path: 'payments/db', data: { username: 'app', password: 'SECRET-VALUE-vault-1' }, version: '1' });
    const line = auditFor(f, r.id);
    assert.deepEqual({ status: line.status, backend: line.backend, backendOutcome: line.backendOutcome }, { status: 200, backend: 'vault', backendOutcome: 'miss' });
    assert.ok(!JSON.stringify(line).includes('SECRET-VALUE'));
    // The gateway logged in with the service account's JWT, once.
    assert.equal(vault.requestsTo('/v1/auth/kubernetes/login').length, 1);

    const reads = (): number => vault.requestsTo('/v1/secret/data/payments/db').length;
    assert.equal(reads(), 1);
    vault.put('payments/db', { username: 'app', password: 'SECRET-VALUE-vault-2' });
    const hit = await get(port, '/v1/secrets/payments/db');
    assert.equal(hit.body.version, '1', 'within the TTL the cached version');
    assert.equal(auditFor(f, hit.id).backendOutcome, 'hit');
    assert.equal(reads(), 1, 'a hit does not ask Vault');

    clock.advance(31_000);
    const fresh = await get(port, '/v1/secrets/payments/db');
    assert.deepEqual({ version: fresh.body.version, password: fresh.body.data.password }, { version: '2', password: 'SECRET-VALUE-vault-2' });
    assert.equal(auditFor(f, fresh.id).backendOutcome, 'miss');
    assert.equal(reads(), 2);

    const m = await metrics(f);
    assert.ok(metric(m, 'noisemesh_secret_cache_events_total{event="hit"}') >= 1);
    assert.ok(metric(m, 'noisemesh_secret_cache_events_total{event="miss"}') >= 2);
    assert.equal(metric(m, 'noisemesh_secret_vault_auth_total{operation="login",result="success"}'), 1);
    assert.ok(metric(m, 'noisemesh_secret_cache_entries{kind="value"}') >= 1);
    assert.ok(!m.includes('SECRET-VALUE') && !m.includes('payments/db'), 'no value and no path in the metrics');
  });

  test('a path Vault does not have is 404, remembered for notFoundTtlSeconds', async () => {
    const r = await get(port, '/v1/secrets/payments/none');
    assert.equal(r.status, 404);
    assert.equal(auditFor(f, r.body.decisionId).backendOutcome, 'miss');
    const again = await get(port, '/v1/secrets/payments/none');
    assert.equal(auditFor(f, again.body.decisionId).backendOutcome, 'not_found_hit');
  });

  test('Vault sealed after a fetch: the cached value is served within maxStaleSeconds, then 503 with a reason and no value', async () => {
    vault.put('payments/sealed', { token: 'SECRET-VALUE-sealed' });
    assert.equal((await get(port, '/v1/secrets/payments/sealed')).status, 200);
    const errorsBefore = /noisemesh_secret_backend_errors_total\{backend="vault",failure="unavailable"\} (\d+)/.exec(await metrics(f))?.[1] ?? '0';
    vault.seal();
    try {
      clock.advance(31_000); // past the TTL: Vault is asked, and is sealed
      const stale = await get(port, '/v1/secrets/payments/sealed');
      assert.equal(stale.status, 200, stale.text);
      assert.deepEqual(stale.body, { path: 'payments/sealed', data: { token: 'SECRET-VALUE-sealed' }, version: '1' });
      assert.deepEqual((({ status, backendOutcome }) => ({ status, backendOutcome }))(auditFor(f, stale.id)), { status: 200, backendOutcome: 'stale' });
      assert.ok(vault.requests.some((q) => q.path === '/v1/secret/data/payments/sealed' && q.status === 503), 'Vault was asked and answered sealed');

      clock.advance(500_000); // still within ttl + maxStale (630 s after the read)
      assert.equal((await get(port, '/v1/secrets/payments/sealed')).status, 200);

      clock.advance(100_000); // 631 s after the read: too old
      const gone = await get(port, '/v1/secrets/payments/sealed');
      assert.equal(gone.status, 503, gone.text);
      assert.equal(gone.body.reason, 'backend_unavailable');
      assert.match(gone.body.error, /unavailable/);
      assert.deepEqual(Object.keys(gone.body).sort(), ['decisionId', 'error', 'reason']);
      assert.ok(!gone.text.includes('SECRET-VALUE'));
      const line = auditFor(f, gone.body.decisionId);
      assert.deepEqual({ status: line.status, decision: line.decision, backendOutcome: line.backendOutcome, backendFailure: line.backendFailure }, { status: 503, decision: 'allow', backendOutcome: 'miss', backendFailure: 'unavailable' });

      // Three failed Vault reads within a few (real) seconds: logged once, each counted.
      const warned = logs(f, 'backend-error').filter((l) => l.failure === 'unavailable');
      assert.equal(warned.length, 1, 'the outage is logged, once per 10 s');
      assert.match(warned[0].error, /sealed/i);
      assert.equal(warned[0].level, 40, 'a warning');
      const m = await metrics(f);
      assert.equal(metric(m, 'noisemesh_secret_backend_errors_total{backend="vault",failure="unavailable"}'), Number(errorsBefore) + 3, 'each failed Vault read counted, the ones a stale value hid too');
      assert.ok(metric(m, 'noisemesh_secret_cache_events_total{event="stale"}') >= 2);
    } finally {
      vault.unseal();
    }
    clock.advance(10_000);
    assert.equal((await get(port, '/v1/secrets/payments/sealed')).status, 200, 'served again once Vault is unsealed');
  });

  test('a 403 from Vault (the gateway\'s policy does not cover the path): 503 backend_denied, no value, logged as an error', async () => {
    vault.put('billing/ledger', { key: 'SECRET-VALUE-ledger' });
    const r = await get(port, '/v1/secrets/billing/ledger');
    assert.equal(r.status, 503, r.text);
    assert.equal(r.body.reason, 'backend_denied');
    assert.match(r.body.error, /gateway's own credentials/);
    assert.ok(!r.text.includes('SECRET-VALUE'));
    assert.equal(auditFor(f, r.body.decisionId).backendFailure, 'denied');
    const denied = logs(f, 'backend-error').filter((l) => l.failure === 'denied');
    assert.equal(denied.length, 1);
    assert.equal(denied[0].level, 50, 'an error: an operator must act');
    assert.match(denied[0].error, /HTTP 403/);
    assert.equal(metric(await metrics(f), 'noisemesh_secret_backend_errors_total{backend="vault",failure="denied"}'), 1);
    // Vault's 403 (permission denied) made the backend log in again once, then give up.
    assert.equal(vault.requestsTo('/v1/secret/data/billing/ledger').filter((q) => q.status === 403).length, 2);
  });

  test('denied is never masked by the cache: a cached value Vault now refuses is not served', async () => {
    vault.put('payments/rotated', { key: 'SECRET-VALUE-rotated' });
    assert.equal((await get(port, '/v1/secrets/payments/rotated')).status, 200);
    // The role no longer accepts the gateway's JWT, and its tokens are revoked.
    vault.addRole(ROLE, { jwts: [], policies: ['payments/'], ttlSeconds: 3600 });
    for (const token of vault.issuedTokens) vault.revoke(token);
    clock.advance(31_000);
    const r = await get(port, '/v1/secrets/payments/rotated');
    assert.equal(r.status, 503, r.text);
    assert.equal(r.body.reason, 'backend_denied');
    assert.ok(!r.text.includes('SECRET-VALUE'));
    const line = logs(f, 'vault-login-failed').at(-1);
    assert.ok(line, 'the refused login is logged');
    assert.equal(line.failure, 'denied');
    // The whole log, with its outages and refusals: no value, no JWT, no Vault token.
    const all = f.logLines.join('');
    assert.ok(!all.includes('SECRET-VALUE') && !all.includes(JWT), 'no value or JWT in any log line');
    for (const token of vault.issuedTokens) assert.ok(!all.includes(token), 'no Vault token in any log line');
  });
});

describe('the kubernetes backend through the mesh', () => {
  let api: FakeApiServer;
  let f: GatewayFixture;
  let port: number;

  before(async () => {
    api = await new FakeApiServer({ tokens: [K8S_TOKEN] }).start();
    api.register(SECRETS);
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, kubeconfigFor(api.url, K8S_TOKEN));
    f = await startGatewayFixture({
      policy: POLICY,
      callers: [{ agentId: 'payments/api' }],
      backend: { kind: 'kubernetes', kubernetes: { namespace: 'payments-secrets', kubeconfig } },
      backendDeps: { kubernetes: { retry: { attempts: 2, baseMs: 5, maxMs: 10 } } },
      cache: { ttlSeconds: 30, maxStaleSeconds: 600, maxEntries: 100, notFoundTtlSeconds: 0, maxNotFoundEntries: 100, maxConcurrent: 4, maxQueued: 16 },
    });
    port = f.callers.get('payments/api')!.entryPort;
  });

  after(async () => {
    await f?.close();
    await api?.close();
  });

  const secret = (namespace: string, name: string, data: Record<string, string>): Record<string, unknown> => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace },
    type: 'Opaque',
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  });

  test('a fetch through the mesh returns the Secret of the configured namespace, decoded, versioned by its resourceVersion', async () => {
    const stored = api.apply(secret('payments-secrets', 'payments.db', { password: 'SECRET-VALUE-k8s' }), SECRETS);
    api.apply(secret('other', 'payments.db', { password: 'NOT-THIS-ONE' }), SECRETS);
    const r = await get(port, '/v1/secrets/payments/db');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { path: 'payments/db', data: { password: 'SECRET-VALUE-k8s' }, version: stored.metadata.resourceVersion });
    const line = auditFor(f, r.id);
    assert.deepEqual({ backend: line.backend, backendOutcome: line.backendOutcome }, { backend: 'kubernetes', backendOutcome: 'miss' });
    assert.equal(auditFor(f, (await get(port, '/v1/secrets/payments/db')).id).backendOutcome, 'hit');
    const gets = api.requests.filter((q) => q.path.startsWith('/api/v1/'));
    assert.deepEqual([...new Set(gets.map((q) => q.path))], ['/api/v1/namespaces/payments-secrets/secrets/payments.db']);
    assert.equal((await get(port, '/v1/secrets/payments/missing')).status, 404);
  });

  test('RBAC refusing the gateway (403): 503 backend_denied, logged', async () => {
    api.apply(secret('payments-secrets', 'payments.locked', { password: 'SECRET-VALUE-locked' }), SECRETS);
    api.authorize = (q) => q.name !== 'payments.locked';
    try {
      const r = await get(port, '/v1/secrets/payments/locked');
      assert.equal(r.status, 503, r.text);
      assert.equal(r.body.reason, 'backend_denied');
      assert.ok(!r.text.includes('SECRET-VALUE'));
      const denied = logs(f, 'backend-error').filter((l) => l.failure === 'denied');
      assert.equal(denied.length, 1);
      assert.match(denied[0].error, /grant the gateway's service account get on secrets in namespace payments-secrets/);
      assert.equal(metric(await metrics(f), 'noisemesh_secret_backend_errors_total{backend="kubernetes",failure="denied"}'), 1);
    } finally {
      api.authorize = undefined;
    }
    assert.ok(!f.logLines.join('').includes(K8S_TOKEN), 'no API token in any log line');
  });
});
