/**
 * The cache in front of a secrets backend (DESIGN.md, Secret fetch): a SecretsBackend that
 * wraps another.
 *
 * - A value is served from memory for `ttlSeconds` after it was read; then the next read asks
 *   the backend again. Concurrent reads of one path that miss share ONE backend read
 *   (single-flight), and a caller that gives up (its signal aborts) leaves the shared read
 *   running for the others.
 * - At most `maxConcurrent` backend reads are in flight; up to `maxQueued` more wait for a
 *   slot, first come first served; a read beyond that fails at once as `unavailable`, so a
 *   slow backend cannot gather an unbounded queue of requests and their memory.
 * - While the backend is `unavailable` (down, sealed, timing out, or the queue is full), a
 *   value is still served up to `maxStaleSeconds` past its TTL, then the error is. After a
 *   failure the path is not retried for `min(ttl, 5 s)`: stale reads meanwhile answer at
 *   once instead of each waiting out the backend's timeouts and retries.
 * - `denied` is never masked: it is passed on, and the path's entry is dropped, so a value
 *   the backend now refuses is not served from memory either.
 * - A "no such secret" (null) is remembered for `notFoundTtlSeconds` (0: not at all) in its
 *   own, smaller LRU (`maxNotFoundEntries`), so a flood of reads of paths that do not exist
 *   can neither grow memory nor evict the real values; it is not served stale.
 * - Values are held in an LRU of `maxEntries`; the least recently used goes first.
 *
 * Counters (hits, misses, stale serves, backend errors by failure, overload) are plain
 * numbers read with `stats()`, and optional callbacks: the gateway exports them as it likes;
 * the library has no metrics dependency. Time comes from an injected clock.
 */
import { systemClock, type Clock } from '../kubernetes/index.js';
import { SecretsBackendError, type BackendFailure, type SecretsBackend, type SecretValue } from './backend.js';
import { DEFAULT_CACHE, type CacheConfig } from './config.js';
import { raceAbort } from './retry.js';

/** What the cache did for one read, for metrics. */
export type CacheOutcome = 'hit' | 'not_found_hit' | 'miss' | 'stale';

export interface CacheHooks {
  /** Each read, by how it was answered (a miss is counted when the backend read starts). */
  read?(outcome: CacheOutcome): void;
  /**
   * Each failed backend read, by failure (an overload counts as `unavailable`), once per
   * backend read however many callers shared it, and whether or not a stale value then
   * hid it from them. `error`'s message is safe to log.
   */
  backendError?(failure: BackendFailure, error: SecretsBackendError): void;
}

/** A read and how the cache answered it (readTraced). */
export interface TracedRead {
  readonly value: SecretValue | null;
  /**
   * `hit`/`not_found_hit`: from memory; `stale`: past its TTL, served because the backend is
   * unavailable; `miss`: the backend was asked, by this read or by another whose answer this
   * one shared.
   */
  readonly outcome: CacheOutcome;
}

export interface SecretsCacheOptions extends Partial<CacheConfig> {
  readonly clock?: Clock;
  readonly hooks?: CacheHooks;
}

export interface CacheStats {
  readonly hits: number;
  readonly notFoundHits: number;
  readonly misses: number;
  readonly staleServes: number;
  readonly backendErrors: Readonly<Record<BackendFailure, number>>;
  /** Reads refused because maxConcurrent + maxQueued were taken. */
  readonly overloaded: number;
  readonly entries: number;
  readonly notFoundEntries: number;
  readonly inFlight: number;
  readonly queued: number;
}

interface Entry {
  readonly value: SecretValue;
  /** Epoch ms when it was read from the backend. */
  readonly fetchedAt: number;
  /** Epoch ms before which the backend is not asked again after a failure. */
  retryAt: number;
}

/** How long a path rests after a failed backend read (capped by the TTL). */
const FAILURE_PAUSE_MS = 5_000;

export class SecretsCache implements SecretsBackend {
  readonly #backend: SecretsBackend;
  readonly #ttlMs: number;
  readonly #maxStaleMs: number;
  readonly #maxEntries: number;
  readonly #notFoundTtlMs: number;
  readonly #maxNotFound: number;
  readonly #maxConcurrent: number;
  readonly #maxQueued: number;
  readonly #clock: Clock;
  readonly #hooks: CacheHooks;
  /** LRU: Map iteration order is insertion order; a hit re-inserts. */
  readonly #entries = new Map<string, Entry>();
  /** Path -> epoch ms until which it is known not to exist. */
  readonly #notFound = new Map<string, number>();
  readonly #flights = new Map<string, Promise<SecretValue | null>>();
  readonly #queue: (() => void)[] = [];
  #inFlight = 0;
  /** Bumped by invalidate/clear: a read that started before does not store its answer. */
  #epoch = 0;
  readonly #stats = { hits: 0, notFoundHits: 0, misses: 0, staleServes: 0, overloaded: 0, backendErrors: { unavailable: 0, denied: 0 } };

  constructor(backend: SecretsBackend, options: SecretsCacheOptions = {}) {
    const c = { ...DEFAULT_CACHE, ...options };
    this.#backend = backend;
    this.#ttlMs = c.ttlSeconds * 1000;
    this.#maxStaleMs = c.maxStaleSeconds * 1000;
    this.#maxEntries = c.maxEntries;
    this.#notFoundTtlMs = c.notFoundTtlSeconds * 1000;
    this.#maxNotFound = c.maxNotFoundEntries;
    this.#maxConcurrent = c.maxConcurrent;
    this.#maxQueued = c.maxQueued;
    this.#clock = options.clock ?? systemClock;
    this.#hooks = options.hooks ?? {};
  }

  /** The backend's name: the cache is transparent in logs and metric labels. */
  get name(): string {
    return this.#backend.name;
  }

  stats(): CacheStats {
    const s = this.#stats;
    return {
      ...s,
      backendErrors: { ...s.backendErrors },
      entries: this.#entries.size,
      notFoundEntries: this.#notFound.size,
      inFlight: this.#inFlight,
      queued: this.#queue.length,
    };
  }

  async read(path: string, signal?: AbortSignal): Promise<SecretValue | null> {
    return (await this.readTraced(path, signal)).value;
  }

  /** As read, and says how the read was answered (the gateway's audit line records it). */
  async readTraced(path: string, signal?: AbortSignal): Promise<TracedRead> {
    const now = this.#clock.now();
    const entry = this.#entries.get(path);
    if (entry !== undefined) {
      if (now < entry.fetchedAt + this.#ttlMs) return this.#served(path, entry, 'hit');
      // Past its TTL, the backend failed a moment ago, and the value is still within bound:
      // answer now rather than wait for the backend's timeouts again.
      if (now < entry.retryAt && now <= entry.fetchedAt + this.#ttlMs + this.#maxStaleMs) return this.#served(path, entry, 'stale');
    } else {
      const until = this.#notFound.get(path);
      if (until !== undefined) {
        if (now < until) {
          this.#stats.notFoundHits++;
          this.#hooks.read?.('not_found_hit');
          return { value: null, outcome: 'not_found_hit' };
        }
        this.#notFound.delete(path);
      }
    }
    let flight = this.#flights.get(path);
    if (flight === undefined) {
      this.#stats.misses++;
      this.#hooks.read?.('miss');
      flight = this.#fetch(path).finally(() => this.#flights.delete(path));
      this.#flights.set(path, flight);
    }
    const shared = signal === undefined ? flight : raceAbort(flight, signal, () => new SecretsBackendError(this.name, 'unavailable', `${this.name}: read of ${path} abandoned (the request was aborted)`));
    try {
      return { value: await shared, outcome: 'miss' };
    } catch (err) {
      if (!(err instanceof SecretsBackendError) || err.failure !== 'unavailable' || signal?.aborted) throw err;
      // The backend is unavailable: the value as it was, if it is not too old.
      const stale = this.#entries.get(path);
      if (stale !== undefined && this.#clock.now() <= stale.fetchedAt + this.#ttlMs + this.#maxStaleMs) return this.#served(path, stale, 'stale');
      throw err;
    }
  }

  /** Forgets `path` (a caller learned it changed); a read in flight does not store its answer. */
  invalidate(path: string): void {
    this.#entries.delete(path);
    this.#notFound.delete(path);
    this.#epoch++;
  }

  /** Forgets everything. */
  clear(): void {
    this.#entries.clear();
    this.#notFound.clear();
    this.#epoch++;
  }

  async close(): Promise<void> {
    this.clear();
    for (const wake of this.#queue.splice(0)) wake();
    await this.#backend.close();
  }

  #served(path: string, entry: Entry, outcome: 'hit' | 'stale'): TracedRead {
    this.#entries.delete(path);
    this.#entries.set(path, entry);
    if (outcome === 'hit') this.#stats.hits++;
    else this.#stats.staleServes++;
    this.#hooks.read?.(outcome);
    return { value: entry.value, outcome };
  }

  /** One backend read within the concurrency limit; stores what it learns. */
  async #fetch(path: string): Promise<SecretValue | null> {
    const epoch = this.#epoch;
    let value: SecretValue | null;
    try {
      await this.#acquire();
    } catch (err) {
      this.#failed(path, err as SecretsBackendError, epoch);
      throw err;
    }
    try {
      value = await this.#backend.read(path);
    } catch (err) {
      const failure = err instanceof SecretsBackendError ? err : new SecretsBackendError(this.name, 'unavailable', `${this.name}: read of ${path} failed`);
      this.#failed(path, failure, epoch);
      throw failure;
    } finally {
      this.#release();
    }
    if (epoch !== this.#epoch) return value;
    const now = this.#clock.now();
    if (value === null) {
      this.#entries.delete(path);
      if (this.#notFoundTtlMs > 0) {
        this.#notFound.delete(path);
        this.#notFound.set(path, now + this.#notFoundTtlMs);
        evict(this.#notFound, this.#maxNotFound);
      }
    } else {
      this.#notFound.delete(path);
      this.#entries.delete(path);
      this.#entries.set(path, { value, fetchedAt: now, retryAt: 0 });
      evict(this.#entries, this.#maxEntries);
    }
    return value;
  }

  #failed(path: string, err: SecretsBackendError, epoch: number): void {
    this.#stats.backendErrors[err.failure]++;
    this.#hooks.backendError?.(err.failure, err);
    if (epoch !== this.#epoch) return;
    const entry = this.#entries.get(path);
    if (entry === undefined) return;
    if (err.failure === 'denied') this.#entries.delete(path);
    else entry.retryAt = this.#clock.now() + Math.min(this.#ttlMs, FAILURE_PAUSE_MS);
  }

  #acquire(): Promise<void> {
    if (this.#inFlight < this.#maxConcurrent) {
      this.#inFlight++;
      return Promise.resolve();
    }
    if (this.#queue.length >= this.#maxQueued) {
      this.#stats.overloaded++;
      return Promise.reject(
        new SecretsBackendError(this.name, 'unavailable', `${this.name}: overloaded: ${this.#inFlight} reads in flight and ${this.#queue.length} waiting (cache.maxConcurrent, cache.maxQueued)`),
      );
    }
    // The slot is handed over by #release: inFlight stays counted across the hand-over.
    return new Promise((resolve) => this.#queue.push(resolve));
  }

  #release(): void {
    const next = this.#queue.shift();
    if (next !== undefined) next();
    else this.#inFlight--;
  }
}

/** Drops the least recently used entries until `map` holds at most `max`. */
function evict(map: Map<string, unknown>, max: number): void {
  for (const key of map.keys()) {
    if (map.size <= max) return;
    map.delete(key);
  }
}
