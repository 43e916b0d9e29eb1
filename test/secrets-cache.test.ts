// The secrets cache (src/secrets/cache.ts) in fake time: TTL, single-flight, the concurrency
// limit and its bounded queue, stale serving up to maxStaleSeconds and then the error, denied
// never masked, bounded memory under a flood of paths, the counters; and the same over the
// real Vault backend against its test double while Vault is sealed.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { ConfigReader } from '../src/cli/config/config-reader.js';
import {
  DEFAULT_CACHE,
  parseCacheConfig,
  SecretsBackendError,
  SecretsCache,
  VaultBackend,
  type BackendFailure,
  type CacheOutcome,
  type SecretsBackend,
  type SecretValue,
} from '../src/secrets/index.js';
import { FakeClock } from './helpers/fake-clock.js';
import { FakeVault } from './helpers/fake-vault.js';

/**
 * An in-memory backend whose answers a test controls: a store of secrets, a failure mode, and
 * optionally a gate that holds every read until the test opens it.
 */
class MemoryBackend implements SecretsBackend {
  readonly name = 'memory';
  readonly store = new Map<string, Record<string, string>>();
  readonly versions = new Map<string, number>();
  failing: BackendFailure | undefined;
  gated = false;
  reads: string[] = [];
  inFlight = 0;
  maxInFlight = 0;
  readonly #waiting: (() => void)[] = [];

  set(path: string, data: Record<string, string>): void {
    this.store.set(path, data);
    this.versions.set(path, (this.versions.get(path) ?? 0) + 1);
  }

  /** Lets `n` held reads go on (all of them by default). */
  open(n = Infinity): void {
    for (let i = 0; i < n && this.#waiting.length > 0; i++) this.#waiting.shift()!();
  }

  get held(): number {
    return this.#waiting.length;
  }

  async read(path: string): Promise<SecretValue | null> {
    this.reads.push(path);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.gated) await new Promise<void>((resolve) => this.#waiting.push(resolve));
      if (this.failing !== undefined) throw new SecretsBackendError('memory', this.failing, `memory: ${this.failing}`);
      const data = this.store.get(path);
      return data === undefined ? null : { data: { ...data }, version: String(this.versions.get(path)) };
    } finally {
      this.inFlight--;
    }
  }

  async close(): Promise<void> {}
}

function setup(options: ConstructorParameters<typeof SecretsCache>[1] = {}): { clock: FakeClock; backend: MemoryBackend; cache: SecretsCache; outcomes: CacheOutcome[]; errors: BackendFailure[] } {
  const clock = new FakeClock();
  const backend = new MemoryBackend();
  const outcomes: CacheOutcome[] = [];
  const errors: BackendFailure[] = [];
  const cache = new SecretsCache(backend, {
    ttlSeconds: 30,
    maxStaleSeconds: 600,
    clock,
    hooks: { read: (o) => outcomes.push(o), backendError: (f) => errors.push(f) },
    ...options,
  });
  return { clock, backend, cache, outcomes, errors };
}

async function rejectsWith(p: Promise<unknown>, failure: BackendFailure, pattern?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof SecretsBackendError, String(err));
    assert.equal(err.failure, failure, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

test('a value is served from memory for its TTL, then read again; the cache takes its backend\'s name', async () => {
  const { clock, backend, cache, outcomes } = setup();
  assert.equal(cache.name, 'memory');
  backend.set('a', { k: '1' });
  assert.deepEqual(await cache.read('a'), { data: { k: '1' }, version: '1' });
  backend.set('a', { k: '2' });
  clock.advance(29_999);
  assert.equal((await cache.read('a'))?.data.k, '1');
  clock.advance(1);
  assert.equal((await cache.read('a'))?.data.k, '2');
  assert.deepEqual(backend.reads, ['a', 'a']);
  assert.deepEqual(outcomes, ['miss', 'hit', 'miss']);
  assert.deepEqual({ hits: cache.stats().hits, misses: cache.stats().misses, entries: cache.stats().entries }, { hits: 1, misses: 2, entries: 1 });
});

test('single-flight: concurrent misses of one path share one backend read; a caller that gives up leaves it to the others', async () => {
  const { backend, cache } = setup();
  backend.set('a', { k: 'v' });
  backend.gated = true;
  const quitter = new AbortController();
  const gaveUp = cache.read('a', quitter.signal);
  const readers = Array.from({ length: 20 }, () => cache.read('a'));
  await tick();
  assert.equal(backend.held, 1);
  quitter.abort();
  await rejectsWith(gaveUp, 'unavailable', /abandoned/);
  backend.open();
  const values = await Promise.all(readers);
  assert.ok(values.every((v) => v?.data.k === 'v'));
  assert.deepEqual(backend.reads, ['a']);
  assert.equal(cache.stats().misses, 1);
  // The shared read stored its answer: the next read is a hit.
  assert.equal((await cache.read('a'))?.data.k, 'v');
  assert.equal(backend.reads.length, 1);
});

test('the concurrency limit: at most maxConcurrent reads in flight, maxQueued waiting, the rest refused at once as unavailable', async () => {
  const { backend, cache, errors } = setup({ maxConcurrent: 2, maxQueued: 3 });
  for (let i = 0; i < 10; i++) backend.set(`p${i}`, { i: String(i) });
  backend.gated = true;
  const reads = Array.from({ length: 10 }, (_, i) => cache.read(`p${i}`).then((v) => v?.data.i, (e: SecretsBackendError) => `${e.failure}: ${e.message}`));
  await tick();
  assert.equal(backend.held, 2);
  assert.deepEqual({ inFlight: cache.stats().inFlight, queued: cache.stats().queued, overloaded: cache.stats().overloaded }, { inFlight: 2, queued: 3, overloaded: 5 });
  for (let round = 0; round < 10 && backend.held > 0; round++) {
    backend.open(1);
    await tick();
    await tick();
  }
  const results = await Promise.all(reads);
  assert.deepEqual(results.slice(0, 5), ['0', '1', '2', '3', '4']);
  for (const r of results.slice(5)) assert.match(String(r), /^unavailable: memory: overloaded: 2 reads in flight and 3 waiting \(cache\.maxConcurrent, cache\.maxQueued\)$/);
  assert.equal(backend.maxInFlight, 2);
  assert.deepEqual(backend.reads, ['p0', 'p1', 'p2', 'p3', 'p4'], 'queued reads run first come, first served');
  assert.equal(errors.filter((e) => e === 'unavailable').length, 5);
  assert.deepEqual({ inFlight: cache.stats().inFlight, queued: cache.stats().queued }, { inFlight: 0, queued: 0 });
});

test('while the backend is unavailable a value is served up to maxStaleSeconds past its TTL, then the error', async () => {
  const { clock, backend, cache, outcomes } = setup({ ttlSeconds: 30, maxStaleSeconds: 600 });
  backend.set('a', { k: 'v' });
  await cache.read('a');
  backend.failing = 'unavailable';
  clock.advance(30_000);
  assert.equal((await cache.read('a'))?.data.k, 'v');
  assert.equal(backend.reads.length, 2, 'the backend was asked first');
  // Within the pause after a failure, stale reads answer without asking again.
  clock.advance(4_000);
  assert.equal((await cache.read('a'))?.data.k, 'v');
  assert.equal(backend.reads.length, 2);
  clock.advance(1_000);
  assert.equal((await cache.read('a'))?.data.k, 'v');
  assert.equal(backend.reads.length, 3, 'asked again after the pause');
  // At exactly TTL + maxStale it is still served; a moment later the error is.
  clock.advance(630_000 - 35_000);
  assert.equal((await cache.read('a'))?.data.k, 'v');
  clock.advance(1);
  await rejectsWith(cache.read('a'), 'unavailable', /^memory: unavailable$/);
  assert.equal(cache.stats().staleServes, 4);
  assert.deepEqual(outcomes, ['miss', 'miss', 'stale', 'stale', 'miss', 'stale', 'miss', 'stale', 'miss']);
  // The backend back: a fresh value, fresh TTL.
  backend.failing = undefined;
  backend.set('a', { k: 'new' });
  assert.equal((await cache.read('a'))?.data.k, 'new');
});

test('denied is never masked: it is passed on, and the value is dropped rather than served stale later', async () => {
  const { clock, backend, cache, errors } = setup();
  backend.set('a', { k: 'v' });
  await cache.read('a');
  backend.failing = 'denied';
  clock.advance(30_000);
  await rejectsWith(cache.read('a'), 'denied');
  assert.equal(cache.stats().entries, 0);
  backend.failing = 'unavailable';
  await rejectsWith(cache.read('a'), 'unavailable');
  assert.deepEqual(errors, ['denied', 'unavailable']);
  assert.equal(cache.stats().staleServes, 0);
});

test('memory stays bounded: an LRU of values, and a smaller, separate one of "no such secret" that a flood of misses cannot push values out of', async () => {
  const { clock, backend, cache } = setup({ maxEntries: 50, maxNotFoundEntries: 20, notFoundTtlSeconds: 5 });
  for (let i = 0; i < 200; i++) backend.set(`s${i}`, { i: String(i) });
  for (let i = 0; i < 50; i++) await cache.read(`s${i}`);
  await cache.read('s0'); // most recently used now
  for (let i = 50; i < 60; i++) await cache.read(`s${i}`);
  assert.equal(cache.stats().entries, 50);
  const readsBefore = backend.reads.length;
  await cache.read('s0');
  assert.equal(backend.reads.length, readsBefore, 's0 was used recently: kept');
  await cache.read('s1');
  assert.equal(backend.reads.length, readsBefore + 1, 's1 was the least recently used: evicted');
  // A flood of paths that do not exist.
  for (let i = 0; i < 5_000; i++) assert.equal(await cache.read(`missing/${i}`), null);
  assert.equal(cache.stats().notFoundEntries, 20);
  assert.equal(cache.stats().entries, 50, 'no value was evicted by the misses');
  // A miss is remembered for notFoundTtlSeconds, then asked again.
  const n = backend.reads.length;
  assert.equal(await cache.read('missing/4999'), null);
  assert.equal(backend.reads.length, n);
  assert.equal(cache.stats().notFoundHits, 1);
  clock.advance(5_000);
  assert.equal(await cache.read('missing/4999'), null);
  assert.equal(backend.reads.length, n + 1);
  // A secret created meanwhile shows once its "not found" has expired.
  backend.set('missing/4999', { now: 'here' });
  clock.advance(5_000);
  assert.equal((await cache.read('missing/4999'))?.data.now, 'here');
  assert.equal(cache.stats().notFoundEntries, 19);
});

test('notFoundTtlSeconds 0 remembers no miss; a miss is not served stale', async () => {
  const { backend, cache } = setup({ notFoundTtlSeconds: 0 });
  assert.equal(await cache.read('x'), null);
  assert.equal(await cache.read('x'), null);
  assert.equal(backend.reads.length, 2);
  assert.equal(cache.stats().notFoundEntries, 0);
  const s = setup({ notFoundTtlSeconds: 1 });
  assert.equal(await s.cache.read('x'), null);
  s.backend.failing = 'unavailable';
  s.clock.advance(1_000);
  await rejectsWith(s.cache.read('x'), 'unavailable');
});

test('invalidate() and clear() forget; an answer in flight across them is not stored', async () => {
  const { backend, cache } = setup();
  backend.set('a', { k: '1' });
  await cache.read('a');
  backend.set('a', { k: '2' });
  cache.invalidate('a');
  assert.equal((await cache.read('a'))?.data.k, '2');
  backend.gated = true;
  cache.clear();
  const pending = cache.read('a');
  await tick();
  cache.clear();
  backend.open();
  assert.equal((await pending)?.data.k, '2');
  assert.equal(cache.stats().entries, 0);
});

test('gateway.cache: defaults, and every wrong key reported with its path', () => {
  const r = new ConfigReader();
  assert.deepEqual(parseCacheConfig(undefined, 'gateway.cache', r), DEFAULT_CACHE);
  assert.deepEqual(parseCacheConfig({ ttlSeconds: 30, maxStaleSeconds: 600 }, 'gateway.cache', r), DEFAULT_CACHE);
  assert.deepEqual(r.problems, []);
  const r2 = new ConfigReader();
  const c = parseCacheConfig({ ttlSeconds: -1, maxStaleSeconds: '600', maxEntries: 0.5, maxConcurrent: 0, ttlSecond: 3 }, 'gateway.cache', r2);
  assert.deepEqual(r2.problems.map((p) => p.path).sort(), ['gateway.cache.maxConcurrent', 'gateway.cache.maxEntries', 'gateway.cache.maxStaleSeconds', 'gateway.cache.ttlSecond', 'gateway.cache.ttlSeconds']);
  assert.match(r2.problems.find((p) => p.path === 'gateway.cache.maxStaleSeconds')!.message, /write numbers without quotes/);
  assert.match(r2.problems.find((p) => p.path === 'gateway.cache.ttlSecond')!.message, /did you mean 'ttlSeconds'/);
  assert.equal(c.ttlSeconds, 30);
});

test('over the Vault backend: a sealed Vault is served from the cache up to the staleness bound, then refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-cache-vault-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const clock = new FakeClock();
  const vault = await new FakeVault({ now: () => clock.now() }).start();
  const token = vault.createToken({ policies: [''], ttlSeconds: 0 });
  writeFileSync(join(dir, 'token'), token);
  vault.put('payments/db', { password: 'p' });
  const cache = new SecretsCache(new VaultBackend({ address: vault.url, mount: 'secret', auth: { method: 'token', file: join(dir, 'token') }, clock }), { ttlSeconds: 30, maxStaleSeconds: 60, clock });
  try {
    assert.equal((await cache.read('payments/db'))?.data.password, 'p');
    vault.seal();
    clock.advance(31_000);
    assert.equal((await cache.read('payments/db'))?.data.password, 'p');
    assert.equal(vault.requestsTo('/v1/secret/').at(-1)?.status, 503);
    clock.advance(60_000);
    await rejectsWith(cache.read('payments/db'), 'unavailable', /Vault is sealed/);
    assert.deepEqual(cache.stats().backendErrors, { unavailable: 2, denied: 0 });
    vault.unseal();
    clock.advance(5_000);
    assert.equal((await cache.read('payments/db'))?.data.password, 'p');
  } finally {
    await cache.close();
    await vault.close();
  }
});
