// The `vault` secrets backend against the Vault HTTP API test double (test/helpers/fake-vault.ts):
// KV v2 reads, token auth from a file that rotates, kubernetes login and lease renewal in fake
// time, 403 and re-login, 5xx retries, 429, hung responses, a sealed Vault, the namespace
// header, TLS with a generated CA, bounded answers, and no token in any error or event.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigReader } from '../src/cli/config/config-reader.js';
import { parseVaultBackendConfig, SecretsBackendError, VaultBackend, type VaultBackendOptions, type VaultEvent } from '../src/secrets/index.js';
import { FakeVault, type FakeVaultOptions } from './helpers/fake-vault.js';
import { FakeClock } from './helpers/fake-clock.js';
import { makePki } from './helpers/pki.js';

const dir = mkdtempSync(join(tmpdir(), 'noisemesh-vault-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Every error message and event the backends produced, and every credential the doubles knew. */
const messages: string[] = [];
const credentials: string[] = [];
const doubles: FakeVault[] = [];
after(async () => {
  for (const d of doubles) await d.close();
});

async function vault(options: FakeVaultOptions = {}): Promise<FakeVault> {
  const v = await new FakeVault(options).start();
  doubles.push(v);
  return v;
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return;
    await sleep(5);
  }
  throw new Error(`timed out waiting for ${what}`);
}

let files = 0;
function tokenFile(token: string): string {
  const file = join(dir, `token-${files++}`);
  writeFileSync(file, `${token}\n`);
  credentials.push(token);
  return file;
}

/** Replaces the file in one rename, as Vault Agent's sink and the kubelet do. */
function rotate(file: string, token: string): void {
  writeFileSync(`${file}.new`, token);
  renameSync(`${file}.new`, file);
  credentials.push(token);
}

function backend(v: FakeVault, options: Partial<VaultBackendOptions> & Pick<VaultBackendOptions, 'auth'>, events: VaultEvent[] = []): VaultBackend {
  return new VaultBackend({
    address: v.url,
    mount: 'secret',
    retry: { attempts: 3, baseMs: 5, maxMs: 20 },
    random: () => 0.5,
    onEvent: (e) => {
      events.push(e);
      if ('message' in e) messages.push(e.message);
    },
    ...options,
  });
}

async function failure(p: Promise<unknown>, kind: 'unavailable' | 'denied', pattern?: RegExp): Promise<SecretsBackendError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof SecretsBackendError, `a SecretsBackendError, got ${String(err)}`);
    messages.push(err.message);
    assert.equal(err.failure, kind, err.message);
    assert.equal(err.backend, 'vault');
    if (pattern) assert.match(err.message, pattern);
    return err;
  }
  assert.fail(`expected a ${kind} failure`);
}

test('token auth: KV v2 reads, a missing, deleted or destroyed secret is null, and JSON values become text', async () => {
  const v = await vault();
  const token = v.createToken({ policies: [''], ttlSeconds: 0 });
  v.put('payments/db', { password: 'hunter2', user: 'app' });
  v.put('payments/db', { password: 'correct horse', user: 'app' });
  v.put('payments/json', { port: 5432, tls: true, hosts: ['a', 'b'], none: null });
  v.put('payments/gone', { a: '1' });
  v.deleteLatest('payments/gone');
  v.put('payments/burnt', { a: '1' });
  v.destroyLatest('payments/burnt');
  const b = backend(v, { auth: { method: 'token', file: tokenFile(token) } });
  try {
    assert.deepEqual(await b.read('payments/db'), { data: { password: 'correct horse', user: 'app' }, version: '2' });
    assert.deepEqual(await b.read('payments/json'), { data: { port: '5432', tls: 'true', hosts: '["a","b"]', none: 'null' }, version: '1' });
    assert.equal(await b.read('payments/missing'), null);
    assert.equal(await b.read('payments/gone'), null);
    assert.equal(await b.read('payments/burnt'), null);
    // A path no policy glob can match is never turned into a URL.
    const before = v.requests.length;
    assert.equal(await b.read('payments/../sys'), null);
    assert.equal(await b.read('a//b'), null);
    assert.equal(v.requests.length, before);
    const reads = v.requestsTo('/v1/secret/data/');
    assert.equal(reads.length, 5);
    assert.ok(reads.every((r) => r.token && r.method === 'GET' && r.status !== 403));
    assert.deepEqual(reads.map((r) => r.path), ['/v1/secret/data/payments/db', '/v1/secret/data/payments/json', '/v1/secret/data/payments/missing', '/v1/secret/data/payments/gone', '/v1/secret/data/payments/burnt']);
  } finally {
    await b.close();
  }
});

test('token auth: a rotated token file is used at the next read; the old token, revoked, is never retried into a denial', async () => {
  const v = await vault();
  const first = v.createToken({ policies: ['payments/'], ttlSeconds: 0 });
  const file = tokenFile(first);
  v.put('payments/db', { password: 'p1' });
  const b = backend(v, { auth: { method: 'token', file } });
  try {
    assert.equal((await b.read('payments/db'))?.data.password, 'p1');
    const second = v.createToken({ policies: ['payments/'], ttlSeconds: 0 });
    rotate(file, second);
    v.revoke(first);
    assert.equal((await b.read('payments/db'))?.data.password, 'p1');
    assert.equal(v.requestsTo('/v1/secret/data/').filter((r) => r.status === 403).length, 0, 'the new token was used at once');
    // A token whose policy does not cover the path: 403, the file read again, 403: denied.
    await failure(b.read('other/thing'), 'denied', /HTTP 403 \(permission denied\).*policy/);
    assert.equal(v.requestsTo('/v1/secret/data/other/thing').length, 2);
    // A 403 that echoes the token it refused: the backend forgets that token (it reads the file
    // again) before it makes the error, and the error must hide it all the same, whole or cut.
    for (const echo of [second, second.slice(0, 10)]) {
      // Enough for both tries and the token lookups the re-reads of the file start.
      v.failNext(403, 6, `permission denied: token=${echo}`);
      const err = await failure(b.read('payments/db'), 'denied');
      v.failNext(403, 0);
      assert.match(err.message, /permission denied: token=\[redacted\]/);
      assert.ok(!err.message.includes(second.slice(0, 8)), err.message);
    }
  } finally {
    await b.close();
  }
});

test('token auth: a renewable token is looked up and renewed before its lease ends (fake clock)', async () => {
  const clock = new FakeClock();
  const v = await vault({ now: () => clock.now() });
  const token = v.createToken({ policies: [''], ttlSeconds: 60, maxTtlSeconds: 600 });
  v.put('a/b', { k: 'v' });
  const events: VaultEvent[] = [];
  const b = backend(v, { auth: { method: 'token', file: tokenFile(token) }, clock }, events);
  try {
    await b.read('a/b');
    await waitFor(() => v.requestsTo('/v1/auth/token/lookup-self').length === 1 && clock.pending().length === 1, 'the lookup and the renewal timer');
    // 65% of 60 s (random 0.5 between 60% and 70%).
    assert.deepEqual(clock.pending(), [39_000]);
    for (let round = 1; round <= 3; round++) {
      clock.advance(39_000);
      assert.ok(v.ttlOf(token) > 0, 'renewed before it expired');
      await waitFor(() => b.stats().renewals === round, `renewal ${round}`);
      assert.equal(v.ttlOf(token), 60);
    }
    // 117 s in: without the renewals the token would have expired at 60 s.
    assert.equal((await b.read('a/b'))?.data.k, 'v');
    assert.equal(v.requestsTo('/v1/auth/token/renew-self').length, 3);
    assert.deepEqual(events.filter((e) => e.kind === 'renewed').map((e) => (e as { leaseSeconds: number }).leaseSeconds), [60, 60, 60]);
  } finally {
    await b.close();
  }
  assert.deepEqual(clock.pending(), [], 'close() stops the renewal timer');
});

const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6bm9pc2VtZXNoLXN5c3RlbTpnYXRld2F5In0.c2lnbmF0dXJlLW9mLXRoZS1rdWJlbGV0';

test('kubernetes auth: one login, renewals at 65% of the lease, and a fresh login when the max TTL shortens the lease (fake clock)', async () => {
  const clock = new FakeClock();
  const v = await vault({ now: () => clock.now() });
  v.addRole('gateway', { jwts: [JWT], policies: ['payments/'], ttlSeconds: 60, maxTtlSeconds: 100 });
  v.put('payments/db', { password: 'p' });
  const events: VaultEvent[] = [];
  const jwtFile = tokenFile(JWT);
  const b = backend(v, { auth: { method: 'kubernetes', role: 'gateway', mountPath: 'kubernetes', tokenFile: jwtFile }, clock }, events);
  try {
    // Concurrent first reads share one login.
    const values = await Promise.all([b.read('payments/db'), b.read('payments/db'), b.read('payments/db')]);
    assert.ok(values.every((x) => x?.data.password === 'p'));
    assert.equal(v.requestsTo('/v1/auth/kubernetes/login').length, 1);
    const first = v.issuedTokens.at(-1)!;
    credentials.push(first);
    assert.deepEqual(clock.pending(), [39_000]);
    clock.advance(39_000);
    await waitFor(() => b.stats().renewals === 1, 'the first renewal');
    assert.equal(v.ttlOf(first), 60); // min(60, 100 - 39)
    clock.advance(39_000);
    await waitFor(() => b.stats().renewals === 2, 'the second renewal');
    assert.equal(v.ttlOf(first), 22); // capped: 100 - 78
    // A shorter lease than before: the next step, at 65% of 22 s, is a login.
    assert.deepEqual(clock.pending(), [14_300]);
    clock.advance(14_300);
    await waitFor(() => b.stats().logins === 2, 'the fresh login');
    assert.ok(v.ttlOf(first) > 0, 'the new login came before the old token expired');
    credentials.push(v.issuedTokens.at(-1)!);
    assert.notEqual(v.issuedTokens.at(-1), first);
    assert.equal((await b.read('payments/db'))?.data.password, 'p');
    assert.equal(v.requestsTo('/v1/secret/data/').filter((r) => r.status !== 200).length, 0, 'no read ever went out with a dead token');
    assert.deepEqual(events.map((e) => e.kind), ['login', 'renewed', 'renewed', 'login']);
  } finally {
    await b.close();
  }
});

test('kubernetes auth: a failed renewal logs in again; a lease that ran out while idle logs in before the read', async () => {
  const clock = new FakeClock();
  const v = await vault({ now: () => clock.now() });
  v.addRole('gateway', { jwts: [JWT], policies: [''], ttlSeconds: 60 });
  v.put('x', { k: 'v' });
  const b = backend(v, { auth: { method: 'kubernetes', role: 'gateway', mountPath: 'kubernetes', tokenFile: tokenFile(JWT) }, clock });
  try {
    await b.read('x');
    credentials.push(v.issuedTokens.at(-1)!);
    v.revoke(v.issuedTokens.at(-1)!);
    clock.advance(39_000);
    await waitFor(() => b.stats().logins === 2, 'the login after the failed renewal');
    assert.equal(b.stats().renewalFailures, 1);
    credentials.push(v.issuedTokens.at(-1)!);
    assert.equal((await b.read('x'))?.data.k, 'v');
    assert.equal(v.requestsTo('/v1/secret/').filter((r) => r.status === 403).length, 0);
  } finally {
    await b.close();
  }
  // A lease that ran out while its timers could not run (a clock whose timers never fire:
  // a suspended process, say): the read logs in first rather than send a dead token.
  let now = Date.UTC(2026, 0, 1);
  const frozen = { now: () => now, setTimeout: () => 0, clearTimeout: () => {} };
  const v2 = await vault({ now: () => now });
  v2.addRole('gateway', { jwts: [JWT], policies: [''], ttlSeconds: 60 });
  v2.put('x', { k: 'v' });
  const b2 = backend(v2, { auth: { method: 'kubernetes', role: 'gateway', mountPath: 'kubernetes', tokenFile: tokenFile(JWT) }, clock: frozen });
  try {
    await b2.read('x');
    now += 59_500; // within the 1 s margin of the end of the lease
    assert.equal((await b2.read('x'))?.data.k, 'v');
    assert.equal(b2.stats().logins, 2);
    assert.deepEqual(v2.requestsTo('/v1/secret/').map((r) => r.status), [200, 200]);
    credentials.push(...v2.issuedTokens);
  } finally {
    await b2.close();
  }
});

test('403 on a read: the token is dropped, one login, the read again; a second 403 is denied', async () => {
  const v = await vault();
  v.addRole('gateway', { jwts: [JWT], policies: ['payments/'], ttlSeconds: 600 });
  v.put('payments/db', { password: 'p' });
  v.put('hr/salaries', { ceo: '1' });
  const b = backend(v, { auth: { method: 'kubernetes', role: 'gateway', mountPath: 'kubernetes', tokenFile: tokenFile(JWT) } });
  try {
    await b.read('payments/db');
    v.revoke(v.issuedTokens.at(-1)!);
    assert.equal((await b.read('payments/db'))?.data.password, 'p');
    assert.equal(b.stats().logins, 2);
    assert.deepEqual(v.requestsTo('/v1/secret/data/').map((r) => r.status), [200, 403, 200]);
    // Outside the role's policy: 403, a login, 403: denied, and no third try.
    await failure(b.read('hr/salaries'), 'denied', /read secret\/data\/hr\/salaries: HTTP 403/);
    assert.equal(v.requestsTo('/v1/secret/data/hr/salaries').length, 2);
    assert.equal(b.stats().logins, 3);
    credentials.push(...v.issuedTokens);
  } finally {
    await b.close();
  }
});

test('a refused login is denied: an unknown role, a JWT the role does not accept', async () => {
  const v = await vault();
  v.addRole('gateway', { jwts: [JWT], policies: [''], ttlSeconds: 600 });
  const wrongRole = backend(v, { auth: { method: 'kubernetes', role: 'nobody', mountPath: 'kubernetes', tokenFile: tokenFile(JWT) } });
  const otherJwt = `${JWT}x`;
  const wrongJwt = backend(v, { auth: { method: 'kubernetes', role: 'gateway', mountPath: 'kubernetes', tokenFile: tokenFile(otherJwt) } });
  const missingFile = backend(v, { auth: { method: 'kubernetes', role: 'gateway', mountPath: 'kubernetes', tokenFile: join(dir, 'absent') } });
  try {
    await failure(wrongRole.read('x'), 'denied', /login to auth\/kubernetes: HTTP 400 \(invalid role name "nobody"\): check the role nobody/);
    await failure(wrongJwt.read('x'), 'denied', /HTTP 403 \(permission denied\)/);
    assert.equal(v.requestsTo('/v1/auth/kubernetes/login').length, 2, 'a refused login is not retried');
    await failure(missingFile.read('x'), 'unavailable', /the token file .*absent cannot be read \(ENOENT\): mount the service-account token, or set gateway\.backend\.vault\.auth\.kubernetes\.tokenFile/);
  } finally {
    await wrongRole.close();
    await wrongJwt.close();
    await missingFile.close();
  }
});

test("kubernetes auth: a later error that echoes a piece of the login's JWT hides it, as it hides the tokens", async () => {
  const v = await vault();
  v.addRole('gateway', { jwts: [JWT], policies: ['payments/'], ttlSeconds: 60, maxTtlSeconds: 100 });
  v.put('payments/db', { password: 'p' });
  const b = backend(v, { auth: { method: 'kubernetes', role: 'gateway', mountPath: 'kubernetes', tokenFile: tokenFile(JWT) } });
  try {
    assert.equal((await b.read('payments/db'))?.data.password, 'p');
    v.failNext(500, 3, `your login jwt was ${JWT.slice(10, 40)}`);
    const echoed = await failure(b.read('payments/db'), 'unavailable');
    assert.match(echoed.message, /your login jwt was \[redacted\]/);
  } finally {
    await b.close();
    await v.close();
  }
});

test('5xx and network errors are retried with backoff, a bounded number of times', async () => {
  const v = await vault();
  const token = v.createToken({ policies: [''], ttlSeconds: 0 });
  v.put('a', { k: 'v' });
  const b = backend(v, { auth: { method: 'token', file: tokenFile(token) } });
  try {
    v.failNext(500, 2);
    assert.equal((await b.read('a'))?.data.k, 'v');
    assert.equal(b.stats().retries, 2);
    v.failNext(502, 10);
    const before = v.requestsTo('/v1/secret/').length;
    await failure(b.read('a'), 'unavailable', /read secret\/data\/a: HTTP 502 \(internal error\) \(after 3 tries\)/);
    assert.equal(v.requestsTo('/v1/secret/').length - before, 3);
    v.failNext(500, 0);
    // A broken server that echoes the token in its errors: the message never carries it.
    v.failNext(500, 3, `bad token ${token} from client`);
    const err = await failure(b.read('a'), 'unavailable');
    assert.match(err.message, /bad token \[redacted\] from client/);
    // Its prefix too: a piece of a token is as good as the token to a guesser.
    v.failNext(500, 3, `bad token ${token.slice(0, 10)} from client`);
    const cut = await failure(b.read('a'), 'unavailable');
    assert.match(cut.message, /bad token \[redacted\] from client/);
  } finally {
    await b.close();
  }
  await v.close();
  const down = backend(v, { auth: { method: 'token', file: tokenFile(token) } });
  try {
    await failure(down.read('a'), 'unavailable', /read secret\/data\/a: ECONNREFUSED \(after 3 tries\)/);
  } finally {
    await down.close();
  }
});

test('429: Retry-After is waited for when it is short, refused at once when it is long', async () => {
  const v = await vault();
  const token = v.createToken({ policies: [''], ttlSeconds: 0 });
  v.put('a', { k: 'v' });
  const b = backend(v, { auth: { method: 'token', file: tokenFile(token) }, maxRetryAfterSeconds: 2 });
  try {
    // The first read also starts the token's lookup-self; let it pass before limiting.
    await b.read('a');
    await waitFor(() => v.requestsTo('/v1/auth/token/lookup-self').length === 1, 'the lookup');
    v.rateLimit(1, 1);
    const start = Date.now();
    assert.equal((await b.read('a'))?.data.k, 'v');
    assert.ok(Date.now() - start >= 900, 'waited the second Retry-After asked for');
    v.rateLimit(1, 30);
    const before = v.requestsTo('/v1/secret/').length;
    await failure(b.read('a'), 'unavailable', /HTTP 429 .*rate limit quota exceeded.*retry later/);
    assert.equal(v.requestsTo('/v1/secret/').length - before, 1);
  } finally {
    await b.close();
  }
});

test('a hung Vault: each request ends at its deadline, the read fails as unavailable after its tries', async () => {
  const v = await vault();
  const token = v.createToken({ policies: [''], ttlSeconds: 0 });
  const b = backend(v, { auth: { method: 'token', file: tokenFile(token) }, timeoutSeconds: 0.3, retry: { attempts: 2, baseMs: 5, maxMs: 5 } });
  try {
    v.hang = true;
    const start = Date.now();
    await failure(b.read('a'), 'unavailable', /no answer within the timeout \(after 2 tries\)/);
    const took = Date.now() - start;
    assert.ok(took >= 550 && took < 5_000, `two 0.3 s deadlines, took ${took} ms`);
    // The caller's own signal ends a read sooner.
    const start2 = Date.now();
    await failure(b.read('a', AbortSignal.timeout(100)), 'unavailable', /aborted/);
    assert.ok(Date.now() - start2 < 2_000);
  } finally {
    v.hang = false;
    await b.close();
  }
});

test('a sealed Vault is unavailable at once, without retries, and serves again once unsealed', async () => {
  const v = await vault();
  const token = v.createToken({ policies: [''], ttlSeconds: 0 });
  v.put('a', { k: 'v' });
  const b = backend(v, { auth: { method: 'token', file: tokenFile(token) } });
  try {
    v.seal();
    const before = v.requestsTo('/v1/secret/').length;
    await failure(b.read('a'), 'unavailable', /^vault: read secret\/data\/a: HTTP 503 \(Vault is sealed\)$/);
    assert.equal(v.requestsTo('/v1/secret/').length - before, 1);
    v.unseal();
    assert.equal((await b.read('a'))?.data.k, 'v');
  } finally {
    await b.close();
  }
});

test('the namespace header goes with every request, the login included; without it the mount is not found', async () => {
  const v = await vault({ namespace: 'team-a' });
  v.addRole('gateway', { jwts: [JWT], policies: [''], ttlSeconds: 600 });
  v.put('a', { k: 'v' });
  const b = backend(v, { namespace: 'team-a', auth: { method: 'kubernetes', role: 'gateway', mountPath: 'kubernetes', tokenFile: tokenFile(JWT) } });
  try {
    assert.equal((await b.read('a'))?.data.k, 'v');
    assert.ok(v.requests.length >= 2);
    assert.ok(v.requests.every((r) => r.namespace === 'team-a'));
    credentials.push(...v.issuedTokens);
  } finally {
    await b.close();
  }
  const token = v.createToken({ policies: [''], ttlSeconds: 0 });
  const rootNamespace = backend(v, { auth: { method: 'token', file: tokenFile(token) } });
  try {
    await failure(rootNamespace.read('a'), 'unavailable', /no KV v2 mount at secret: check gateway\.backend\.vault\.mount/);
  } finally {
    await rootNamespace.close();
  }
});

test('TLS: Vault is trusted through caFile (a CA made with openssl), and refused without it', async () => {
  const pki = makePki(join(dir, 'pki'), 'fake-vault-ca', 'vault.vault.svc');
  const v = await vault({ tls: { cert: pki.cert, key: pki.key } });
  const token = v.createToken({ policies: [''], ttlSeconds: 0 });
  v.put('a', { k: 'over tls' });
  const trusted = backend(v, { auth: { method: 'token', file: tokenFile(token) }, caFile: pki.caFile });
  const untrusted = backend(v, { auth: { method: 'token', file: tokenFile(token) }, retry: { attempts: 1 } });
  try {
    assert.equal((await trusted.read('a'))?.data.k, 'over tls');
    await failure(untrusted.read('a'), 'unavailable', /(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)/);
  } finally {
    await trusted.close();
    await untrusted.close();
  }
  assert.throws(() => backend(v, { auth: { method: 'token', file: 'x' }, caFile: join(dir, 'no-ca.pem') }), /the CA bundle .*no-ca\.pem cannot be read \(ENOENT\): fix gateway\.backend\.vault\.caFile/);
});

test('an answer larger than maxResponseBytes is refused without being held', async () => {
  const v = await vault();
  const token = v.createToken({ policies: [''], ttlSeconds: 0 });
  v.put('big', { blob: 'x'.repeat(200_000) });
  const b = backend(v, { auth: { method: 'token', file: tokenFile(token) }, maxResponseBytes: 100_000 });
  try {
    await failure(b.read('big'), 'unavailable', /the answer is larger than 100000 bytes/);
  } finally {
    await b.close();
  }
});

test('gateway.backend.vault: every wrong key is reported with its path and fix; defaults fill the rest', () => {
  const r = new ConfigReader();
  const bad = parseVaultBackendConfig(
    { address: 'ftp://vault', mount: '/secret/', auth: { token: { file: '/t' }, kubernetes: { role: 'x' } }, namespace: 'a b', timeoutSeconds: 0, extra: 1 },
    'gateway.backend.vault',
    r,
  );
  assert.equal(bad, undefined);
  assert.deepEqual(r.problems.map((p) => p.path).sort(), [
    'gateway.backend.vault.address',
    'gateway.backend.vault.auth',
    'gateway.backend.vault.extra',
    'gateway.backend.vault.mount',
    'gateway.backend.vault.namespace',
    'gateway.backend.vault.timeoutSeconds',
  ]);
  assert.match(r.problems.find((p) => p.path.endsWith('.auth'))!.message, /has both token and kubernetes: keep one of them/);
  assert.match(r.problems.find((p) => p.path.endsWith('.address'))!.message, /http\(s\) URL/);

  const r2 = new ConfigReader();
  assert.equal(parseVaultBackendConfig({ address: 'http://127.0.0.1:8200', caFile: '/ca.pem', auth: { kubernetes: {} } }, 'v', r2), undefined);
  assert.deepEqual(r2.problems.map((p) => `${p.path}: ${p.message.split(':')[0]}`).sort(), ['v.auth.kubernetes.role: required', 'v.caFile: applies to an https address only', 'v.mount: required']);

  const r3 = new ConfigReader();
  assert.deepEqual(parseVaultBackendConfig({ address: 'https://vault.vault:8200/', mount: 'kv/team', auth: { kubernetes: { role: 'gateway' } } }, 'v', r3), {
    address: 'https://vault.vault:8200',
    mount: 'kv/team',
    auth: { method: 'kubernetes', role: 'gateway', mountPath: 'kubernetes', tokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token' },
    namespace: undefined,
    caFile: undefined,
    timeoutSeconds: 5,
  });
  assert.deepEqual(r3.problems, []);
  const r4 = new ConfigReader();
  assert.equal(parseVaultBackendConfig({ address: 'https://user:pw@vault', mount: 'secret', auth: { token: { file: '/t' } } }, 'v', r4), undefined);
  assert.match(r4.problems[0]!.message, /no user, password, query or fragment/);
  assert.doesNotMatch(r4.problems[0]!.message, /pw/);
});

test('no token or JWT appears in any error message or event of this suite', () => {
  assert.ok(messages.length >= 15, `${messages.length} messages checked`);
  const all = new Set([...credentials, ...doubles.flatMap((d) => d.issuedTokens), JWT]);
  assert.ok(all.size >= 10);
  for (const m of messages) for (const c of all) assert.ok(!m.includes(c), `a credential in: ${m}`);
});
