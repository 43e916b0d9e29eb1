// The `kubernetes` secrets backend against the API-server test double
// (test/helpers/fake-apiserver.ts, serving v1 Secrets): the path -> Secret mapping within one
// namespace, base64 values, resourceVersion as the version, 404, RBAC's 403, 401 after a
// token rotation, 5xx retries and an API server that is down.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigReader } from '../src/cli/config/config-reader.js';
import { KubernetesBackend, parseKubernetesBackendConfig, secretNameOf, SecretsBackendError } from '../src/secrets/index.js';
import { FakeApiServer, SECRETS, kubeconfigFor } from './helpers/fake-apiserver.js';

const TOKEN = 'gateway-token-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'noisemesh-k8s-secrets-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function secret(namespace: string, name: string, data: Record<string, string>, type = 'Opaque'): Record<string, unknown> {
  const encoded = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, type, data: encoded };
}

async function server(): Promise<FakeApiServer> {
  const s = await new FakeApiServer({ tokens: [TOKEN] }).start();
  s.register(SECRETS);
  return s;
}

let configs = 0;
async function backend(s: FakeApiServer, namespace = 'payments'): Promise<KubernetesBackend> {
  const file = join(dir, `kubeconfig-${configs++}`);
  writeFileSync(file, kubeconfigFor(s.url, TOKEN));
  return KubernetesBackend.open({ namespace, kubeconfig: file }, { retry: { attempts: 3, baseMs: 5, maxMs: 20 }, random: () => 0.5 });
}

async function failure(p: Promise<unknown>, kind: 'unavailable' | 'denied', pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof SecretsBackendError, String(err));
    assert.equal(err.failure, kind, err.message);
    assert.equal(err.backend, 'kubernetes');
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes(TOKEN));
    return true;
  });
}

test('the path names a Secret of the configured namespace, segments joined with dots; anything else names none', () => {
  assert.equal(secretNameOf('payments/db'), 'payments.db');
  assert.equal(secretNameOf('db'), 'db');
  assert.equal(secretNameOf('a/b-c/d9'), 'a.b-c.d9');
  assert.equal(secretNameOf(`${'abcdefgh/'.repeat(28)}x`)?.length, 253, 'the longest name Kubernetes allows');
  // One-to-one: no segment may hold a dot, so `a.b` and `a/b` cannot meet.
  for (const p of ['a.b', 'Payments/db', 'payments/db_1', 'payments//db', '-a/b', 'a-/b', '../x', '', 'a/', `${'a'.repeat(64)}/b`, `${'abcdefgh/'.repeat(29)}x`]) {
    assert.equal(secretNameOf(p), undefined, p);
  }
});

test('reads decode base64 data; the version is the resourceVersion and moves on update; 404 is null', async () => {
  const s = await server();
  const b = await backend(s);
  try {
    const stored = s.apply(secret('payments', 'payments.db', { password: 'hunter2', 'config.json': '{"a":1}', unicode: 'grüße' }), SECRETS);
    s.apply(secret('other', 'payments.db', { password: 'NOT THIS ONE' }), SECRETS);
    assert.deepEqual(await b.read('payments/db'), { data: { password: 'hunter2', 'config.json': '{"a":1}', unicode: 'grüße' }, version: stored.metadata.resourceVersion });
    const updated = s.apply(secret('payments', 'payments.db', { password: 'rotated' }), SECRETS);
    const after = await b.read('payments/db');
    assert.deepEqual(after, { data: { password: 'rotated' }, version: updated.metadata.resourceVersion });
    assert.notEqual(stored.metadata.resourceVersion, updated.metadata.resourceVersion);
    assert.equal(await b.read('payments/missing'), null);
    // No data at all is an empty secret, not an error.
    s.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'empty', namespace: 'payments' }, type: 'Opaque' }, SECRETS);
    assert.deepEqual((await b.read('empty'))?.data, {});
    // A path that maps to no valid name is never requested.
    const before = s.requests.length;
    assert.equal(await b.read('payments/DB'), null);
    assert.equal(s.requests.length, before);
    const gets = s.requests.filter((r) => r.path.startsWith('/api/v1/'));
    assert.ok(gets.every((r) => r.path.startsWith('/api/v1/namespaces/payments/secrets/')), 'only the configured namespace is asked');
  } finally {
    await b.close();
    await s.close();
  }
});

test('service-account tokens are never served; a value that is not UTF-8 fails without showing it', async () => {
  const s = await server();
  const b = await backend(s);
  try {
    s.apply(secret('payments', 'gateway-token', { token: 'eyJhbGciOi' }, 'kubernetes.io/service-account-token'), SECRETS);
    assert.equal(await b.read('gateway-token'), null);
    s.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'bin', namespace: 'payments' }, type: 'Opaque', data: { key: Buffer.from([0xff, 0xfe, 0x00]).toString('base64') } }, SECRETS);
    await failure(b.read('bin'), 'unavailable', /secret bin in namespace payments: data\.key is not UTF-8 text/);
  } finally {
    await b.close();
    await s.close();
  }
});

test('RBAC: a Secret the role does not name is denied (403); the ones it names are read', async () => {
  const s = await server();
  const b = await backend(s);
  try {
    // A Role with resourceNames: [payments.db], verbs: [get].
    s.authorize = (r) => r.verb === 'get' && r.resource === 'secrets' && r.namespace === 'payments' && r.name === 'payments.db';
    s.apply(secret('payments', 'payments.db', { password: 'p' }), SECRETS);
    s.apply(secret('payments', 'payments.api', { key: 'k' }), SECRETS);
    assert.equal((await b.read('payments/db'))?.data.password, 'p');
    await failure(b.read('payments/api'), 'denied', /secrets "payments\.api" is forbidden.*grant the gateway's service account get on secrets in namespace payments/);
    assert.equal(s.requests.filter((r) => r.path.endsWith('/payments.api')).length, 1, 'a 403 is not retried');
  } finally {
    await b.close();
    await s.close();
  }
});

test('401: one more try with the credentials read again, then denied', async () => {
  const s = await server();
  const b = await backend(s);
  try {
    s.apply(secret('payments', 'db', { password: 'p' }), SECRETS);
    s.tokens = ['another-token'];
    await failure(b.read('db'), 'denied', /HTTP 401.*the API server refuses the gateway's credentials/);
    assert.equal(s.requests.filter((r) => r.status === 401).length, 2);
  } finally {
    await b.close();
    await s.close();
  }
});

test('5xx is retried with backoff; an API server that stays down is unavailable after the tries', async () => {
  const s = await server();
  const b = await backend(s);
  try {
    s.apply(secret('payments', 'db', { password: 'p' }), SECRETS);
    s.failNext(503, 2);
    assert.equal((await b.read('db'))?.data.password, 'p');
    assert.deepEqual(s.requests.map((r) => r.status), [503, 503, 200]);
    s.failNext(500, 5);
    await failure(b.read('db'), 'unavailable', /get secrets\/db in namespace payments: HTTP 500 \(injected failure 500\) \(after 3 tries\)/);
    s.failNext(500, 0);
    await s.down();
    await failure(b.read('db'), 'unavailable', /ECONNREFUSED \(after 3 tries\)/);
  } finally {
    await b.close();
    await s.close();
  }
});

test('gateway.backend.kubernetes: every wrong key is reported with its path and fix', () => {
  const r = new ConfigReader();
  assert.equal(parseKubernetesBackendConfig({ namespace: 'Payments', kubeconfg: '/x' }, 'gateway.backend.kubernetes', r), undefined);
  assert.deepEqual(
    r.problems.map((p) => p.path),
    ['gateway.backend.kubernetes.kubeconfg', 'gateway.backend.kubernetes.namespace'],
  );
  assert.match(r.problems[0]!.message, /did you mean 'kubeconfig'/);
  assert.match(r.problems[1]!.message, /must be a Kubernetes namespace name/);
  const r2 = new ConfigReader();
  parseKubernetesBackendConfig({}, 'k', r2);
  assert.deepEqual(r2.problems, [{ path: 'k.namespace', message: 'required: the namespace whose Secrets the gateway serves' }]);
  const r3 = new ConfigReader();
  assert.deepEqual(parseKubernetesBackendConfig({ namespace: 'payments' }, 'k', r3), { namespace: 'payments', kubeconfig: undefined });
  assert.deepEqual(r3.problems, []);
});
