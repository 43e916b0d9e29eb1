/**
 * A reflector: keeps a local store of one resource in step with the API server by listing it,
 * then watching from the listed resourceVersion, and tells its handlers of every add, update
 * and delete. Generic over the resource (namespaced or cluster-wide, any group), so the
 * ClearanceRegistry source, Services and EndpointSlices all stand on it.
 *
 * The model is client-go's tools/cache reflector.go (ListAndWatch) and shared_informer.go;
 * what it adds over `@kubernetes/client-node` 1.4.0's Watch/ListWatch is what that lacks:
 * - any failure but 410 (refused, reset, 5xx, 401, a broken line) is retried, with capped
 *   exponential backoff and jitter (1 s doubling to 30 s, each wait drawn from 80-120% of the
 *   step and kept within 1-30 s); client-node stops for good;
 * - watches ask for bookmarks (`allowWatchBookmarks=true`) and a server-side
 *   `timeoutSeconds` (5-10 min, randomized as client-go does, so that a fleet of proxies does
 *   not rewatch in step); a watchdog ends a watch that delivers neither an event nor a
 *   bookmark for `watchIdleMs` (the API server sends a bookmark to such a watch at least once
 *   a minute), or that outlives its timeout by 30 s: a hung connection is caught, not kept;
 * - 410 Gone (an HTTP status, or an ERROR event carrying a Status with code 410) relists at
 *   once; the relist is diffed against the store, so every object deleted meanwhile gets its
 *   delete, and objects that did not change (same resourceVersion) cost nothing. A 410 again
 *   before a watch has stayed open `healthyWatchMs` waits out the backoff first: a server that
 *   answers every watch with 410 gets a list per backoff step, not a list per round trip;
 * - a line that is not a well-formed event, or a bigger one than allowed, ends the watch and
 *   relists: an event may have been lost with it;
 * - a `resyncMs` full relist, as informers resync;
 * - the store is bounded (`maxObjects`, `maxStoreBytes` of JSON as received): a list past
 *   either bound fails as `too_large` and the store keeps its last state; a watch event past
 *   it ends the watch, and an object whose new version cannot be held is dropped rather than
 *   kept at its old one (the change may be a revocation).
 *
 * Lists are consistent reads (no resourceVersion, so never a stale cache) in pages of
 * `pageSize`; a continue token that expires mid-list (410) restarts the list in one piece.
 * Handlers run synchronously, in event order; one that throws is a program bug and surfaces
 * as an uncaught exception, not as a broken watch.
 */
import { Emitter, type Listener } from '../registry-sync/index.js';
import { ApiError, describeResource, type ApiClient, type ApiFailure, type ResourcePath, type WatchEvent } from './api-client.js';
import { systemClock, type Clock } from './clock.js';

export type KubeObject = Readonly<Record<string, unknown>>;

export interface ReflectorHandlers {
  add?(object: KubeObject): void;
  update?(previous: KubeObject, object: KubeObject): void;
  /** `object` is its last state (the DELETED event's, or the store's when a relist found it gone). */
  delete?(object: KubeObject): void;
}

/** Why a list happened: the first one, a 410, a broken stream, the periodic resync. */
export type ListReason = 'initial' | 'gone' | 'decode' | 'resync';

/**
 * Why a watch ended (closed set, a metric label): `closed` (the server ended it, normally
 * after timeoutSeconds), `watchdog` (idle or overdue), `resync`, or an ApiFailure.
 */
export type WatchEndReason = ApiFailure | 'closed' | 'watchdog' | 'resync';

export const WATCH_END_REASONS: readonly WatchEndReason[] = [
  'closed', 'watchdog', 'resync', 'gone', 'unauthorized', 'forbidden', 'not_found', 'server_error', 'http_error', 'network', 'timeout', 'decode', 'too_large',
];

export interface ListedInfo {
  readonly reason: ListReason;
  readonly objects: number;
  readonly added: number;
  readonly updated: number;
  readonly deleted: number;
  readonly resourceVersion: string;
}

export interface WatchLostInfo {
  readonly reason: WatchEndReason;
  /** Safe to log: no token, no object content. */
  readonly message: string;
  /** How long until the next attempt (0: at once). */
  readonly retryInMs: number;
  /** True when the next attempt is a relist. */
  readonly relist: boolean;
}

export interface ListFailedInfo {
  readonly reason: ApiFailure;
  readonly message: string;
  readonly retryInMs: number;
}

export interface ReflectorEvents {
  listed: [info: ListedInfo];
  watchLost: [info: WatchLostInfo];
  listFailed: [info: ListFailedInfo];
}

export interface ReflectorStatus {
  /** A list has succeeded at least once: the store holds real data. */
  readonly listed: boolean;
  /** A watch is open: the store is current. */
  readonly watching: boolean;
  /** Milliseconds since the epoch when the store was last known current (now, while watching). */
  readonly lastSyncAt: number | undefined;
  /** How long the store has not been known current: 0 while watching or before the first list. */
  readonly staleMs: number;
}

/** Several reflectors' status as one: the least current of them decides. */
export interface SyncStatus {
  /** Every reflector has listed once. */
  readonly synced: boolean;
  /** When all were last known current (the oldest of the reflectors), ms since epoch; undefined until synced. */
  readonly lastSyncAt: number | undefined;
  /** Seconds the least current reflector has not been known current; 0 while all watch, and until synced. */
  readonly staleSeconds: number;
}

/** The SyncStatus of a set of reflectors (one per namespace, say). */
export function combinedSyncStatus(reflectors: readonly Reflector[]): SyncStatus {
  const all = reflectors.map((r) => r.status());
  if (!all.every((s) => s.listed)) return { synced: false, lastSyncAt: undefined, staleSeconds: 0 };
  return {
    synced: true,
    lastSyncAt: Math.min(...all.map((s) => s.lastSyncAt ?? 0)),
    staleSeconds: Math.max(0, ...all.map((s) => s.staleMs)) / 1000,
  };
}

export interface ReflectorOptions {
  readonly client: ApiClient;
  readonly resource: ResourcePath;
  readonly handlers: ReflectorHandlers;
  readonly clock?: Clock;
  /** In [0, 1); default Math.random. */
  readonly random?: () => number;
  /** Objects per list page. Default 500 (client-go's pager default). */
  readonly pageSize?: number;
  /** Server-side watch timeout is drawn from [this, 2x this). Default 300 s. */
  readonly minWatchTimeoutSeconds?: number;
  /** The watchdog: longest a watch may deliver nothing, bookmarks included. Default 150 s. */
  readonly watchIdleMs?: number;
  /** Longest a list (all its pages) may take. Default 120 s. */
  readonly listTimeoutMs?: number;
  /** Backoff steps. Default 1 s and 30 s. */
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** A watch that stayed open this long resets the backoff. Default 10 s. */
  readonly healthyWatchMs?: number;
  /** Periodic full relist; 0 or absent: none. */
  readonly resyncMs?: number;
  /** Most objects the store holds. Default 100,000. */
  readonly maxObjects?: number;
  /** Most bytes of JSON (as received) the store holds. Default 128 MiB. */
  readonly maxStoreBytes?: number;
}

interface Listed {
  readonly items: Map<string, KubeObject>;
  readonly sizes: Map<string, number>;
  readonly resourceVersion: string;
}

interface WatchEnd {
  readonly reason: WatchEndReason;
  readonly message: string;
  readonly relist: ListReason | undefined;
  readonly backoff: boolean;
}

function metadataOf(object: KubeObject): { name: string | undefined; namespace: string | undefined; resourceVersion: string | undefined } {
  const m = object.metadata;
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return { name: undefined, namespace: undefined, resourceVersion: undefined };
  const meta = m as Record<string, unknown>;
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  return { name: str(meta.name), namespace: str(meta.namespace), resourceVersion: str(meta.resourceVersion) };
}

/** `namespace/name`, or `name` for a cluster-scoped object: the store key, as client-go's. */
export function objectKey(object: KubeObject): string | undefined {
  const { name, namespace } = metadataOf(object);
  if (name === undefined) return undefined;
  return namespace === undefined ? name : `${namespace}/${name}`;
}

export class Reflector {
  readonly resource: ResourcePath;
  readonly #client: ApiClient;
  readonly #handlers: ReflectorHandlers;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #pageSize: number;
  readonly #minWatchTimeoutSeconds: number;
  readonly #watchIdleMs: number;
  readonly #listTimeoutMs: number;
  readonly #backoffInitialMs: number;
  readonly #backoffMaxMs: number;
  readonly #healthyWatchMs: number;
  readonly #resyncMs: number;
  readonly #maxObjects: number;
  readonly #maxStoreBytes: number;
  readonly #events = new Emitter<ReflectorEvents>();

  #store = new Map<string, KubeObject>();
  /** Bytes of each stored object's JSON, and their sum (maxStoreBytes). */
  #sizes = new Map<string, number>();
  #storeBytes = 0;
  /** 410s since a watch last stayed open healthyWatchMs: the second in a row backs off. */
  #goneInARow = 0;
  #resourceVersion = '';
  #running = false;
  #loop: Promise<void> | undefined;
  #current: { controller: AbortController; why: 'watchdog' | 'resync' | 'timeout' | 'stop' | undefined } | undefined;
  #wake: (() => void) | undefined;
  #resyncTimer: unknown;
  #failures = 0;
  #listed = false;
  #watching = false;
  #lastSyncAt: number | undefined;

  constructor(options: ReflectorOptions) {
    this.resource = options.resource;
    this.#client = options.client;
    this.#handlers = options.handlers;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#pageSize = options.pageSize ?? 500;
    this.#minWatchTimeoutSeconds = options.minWatchTimeoutSeconds ?? 300;
    this.#watchIdleMs = options.watchIdleMs ?? 150_000;
    this.#listTimeoutMs = options.listTimeoutMs ?? 120_000;
    this.#backoffInitialMs = options.backoffInitialMs ?? 1000;
    this.#backoffMaxMs = options.backoffMaxMs ?? 30_000;
    this.#healthyWatchMs = options.healthyWatchMs ?? 10_000;
    this.#resyncMs = options.resyncMs ?? 0;
    this.#maxObjects = options.maxObjects ?? 100_000;
    this.#maxStoreBytes = options.maxStoreBytes ?? 128 * 1024 * 1024;
  }

  on<K extends keyof ReflectorEvents>(event: K, listener: Listener<ReflectorEvents[K]>): () => void {
    return this.#events.on(event, listener);
  }

  /** The objects as last seen, by `namespace/name`. Do not modify. */
  get store(): ReadonlyMap<string, KubeObject> {
    return this.#store;
  }

  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  status(): ReflectorStatus {
    const now = this.#clock.now();
    if (this.#watching) return { listed: this.#listed, watching: true, lastSyncAt: now, staleMs: 0 };
    return {
      listed: this.#listed,
      watching: false,
      lastSyncAt: this.#lastSyncAt,
      staleMs: this.#lastSyncAt === undefined ? 0 : Math.max(0, now - this.#lastSyncAt),
    };
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#scheduleResync();
    this.#loop = this.#run();
  }

  /** Ends the watch or list in flight and every timer; resolves when nothing more will happen. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#resyncTimer !== undefined) this.#clock.clearTimeout(this.#resyncTimer);
    this.#resyncTimer = undefined;
    this.#abort('stop');
    this.#wake?.();
    await this.#loop;
  }

  async #run(): Promise<void> {
    let listReason: ListReason | undefined = 'initial';
    while (this.#running) {
      if (listReason !== undefined) {
        try {
          await this.#list(listReason);
          listReason = undefined;
        } catch (err) {
          if (!this.#running) return;
          const e = this.#asApiError(err, `list ${describeResource(this.resource)}`);
          const wait = this.#nextBackoff();
          this.#events.deliver('listFailed', { reason: e.reason, message: e.message, retryInMs: wait });
          await this.#sleep(wait);
          continue;
        }
      }
      if (!this.#running) return;
      const end = await this.#watch();
      if (!this.#running) return;
      const wait = end.backoff ? this.#nextBackoff() : 0;
      if (end.relist !== undefined) listReason = end.relist;
      this.#events.deliver('watchLost', { reason: end.reason, message: end.message, retryInMs: wait, relist: end.relist !== undefined });
      if (wait > 0) await this.#sleep(wait);
    }
  }

  /** Lists every page, then puts the result in force with one diff against the store. */
  async #list(reason: ListReason): Promise<void> {
    const current = { controller: new AbortController(), why: undefined as 'watchdog' | 'resync' | 'timeout' | 'stop' | undefined };
    this.#current = current;
    const deadline = this.#clock.setTimeout(() => this.#abort('timeout', current), this.#listTimeoutMs);
    try {
      let pages: Listed;
      try {
        pages = await this.#listPages(this.#pageSize, current.controller.signal);
      } catch (err) {
        // An expired continue token: the list cannot be resumed; take it in one piece.
        if (!(err instanceof ApiError && err.reason === 'gone') || !this.#running || current.controller.signal.aborted) throw err;
        pages = await this.#listPages(undefined, current.controller.signal);
      }
      if (!this.#running) return;
      this.#replace(pages, reason);
    } catch (err) {
      if (current.why === 'timeout') throw new ApiError('timeout', `list ${describeResource(this.resource)}: no complete answer in ${Math.round(this.#listTimeoutMs / 1000)} s`);
      throw err;
    } finally {
      this.#clock.clearTimeout(deadline);
      if (this.#current === current) this.#current = undefined;
    }
  }

  async #listPages(limit: number | undefined, signal: AbortSignal): Promise<Listed> {
    const items = new Map<string, KubeObject>();
    const sizes = new Map<string, number>();
    let bytes = 0;
    let continueToken: string | undefined;
    let resourceVersion = '';
    // Bounded: each page is bounded in bytes, the whole list by maxObjects and maxStoreBytes,
    // and a server that hands out continue tokens forever is cut off by the list deadline.
    do {
      const page = await this.#client.listPage(this.resource, { ...(limit !== undefined && { limit }), continueToken }, signal);
      bytes += page.bytes ?? 0;
      // A page's bytes, shared among its items: what each costs to hold, near enough.
      const each = page.items.length === 0 ? 0 : Math.ceil((page.bytes ?? 0) / page.items.length);
      for (const item of page.items) {
        if (typeof item !== 'object' || item === null || Array.isArray(item)) continue;
        const object = item as KubeObject;
        const key = this.#keyOf(object);
        if (key === undefined) continue;
        items.set(key, object);
        sizes.set(key, each);
      }
      if (items.size > this.#maxObjects || bytes > this.#maxStoreBytes) throw this.#tooLarge(`list ${describeResource(this.resource)}`, items.size, bytes);
      resourceVersion = page.resourceVersion;
      continueToken = page.continueToken;
    } while (continueToken !== undefined && this.#running);
    return { items, sizes, resourceVersion };
  }

  #tooLarge(what: string, objects: number, bytes: number): ApiError {
    const over = objects > this.#maxObjects ? `more than ${this.#maxObjects} objects` : `more than ${this.#maxStoreBytes} bytes`;
    return new ApiError('too_large', `${what}: ${over} (${objects} objects, ${bytes} bytes): refused; the objects in force are kept`);
  }

  /** A usable key for an object of this reflector, or undefined for one that is not ours. */
  #keyOf(object: KubeObject): string | undefined {
    const { name, namespace } = metadataOf(object);
    if (name === undefined) return undefined;
    // A namespaced watch only ever holds its namespace's objects, whatever the server says.
    if (this.resource.namespace !== undefined && namespace !== this.resource.namespace) return undefined;
    return objectKey(object);
  }

  #replace(listed: Listed, reason: ListReason): void {
    const { items, resourceVersion } = listed;
    const previous = this.#store;
    this.#store = items;
    this.#sizes = listed.sizes;
    this.#storeBytes = [...listed.sizes.values()].reduce((a, b) => a + b, 0);
    this.#resourceVersion = resourceVersion;
    this.#listed = true;
    this.#lastSyncAt = this.#clock.now();
    let added = 0;
    let updated = 0;
    let deleted = 0;
    for (const [key, old] of previous) {
      if (items.has(key)) continue;
      deleted++;
      this.#call(() => this.#handlers.delete?.(old));
    }
    for (const [key, object] of items) {
      const old = previous.get(key);
      if (old === undefined) {
        added++;
        this.#call(() => this.#handlers.add?.(object));
      } else {
        const rv = metadataOf(object).resourceVersion;
        if (rv !== undefined && rv === metadataOf(old).resourceVersion) continue;
        updated++;
        this.#call(() => this.#handlers.update?.(old, object));
      }
    }
    this.#events.deliver('listed', { reason, objects: items.size, added, updated, deleted, resourceVersion });
  }

  async #watch(): Promise<WatchEnd> {
    const current = { controller: new AbortController(), why: undefined as 'watchdog' | 'resync' | 'timeout' | 'stop' | undefined };
    this.#current = current;
    const timeoutSeconds = Math.floor(this.#minWatchTimeoutSeconds * (1 + this.#random()));
    const startedAt = this.#clock.now();
    let openedAt: number | undefined;
    let delivered = 0;
    let idle: unknown;
    const arm = (): void => {
      if (idle !== undefined) this.#clock.clearTimeout(idle);
      idle = this.#clock.setTimeout(() => this.#abort('watchdog', current), this.#watchIdleMs);
    };
    const overdue = this.#clock.setTimeout(() => this.#abort('watchdog', current), timeoutSeconds * 1000 + 30_000);
    arm();
    const what = `watch ${describeResource(this.resource)}`;
    try {
      await this.#client.watch(
        this.resource,
        { resourceVersion: this.#resourceVersion, timeoutSeconds },
        {
          opened: () => {
            openedAt = this.#clock.now();
            this.#watching = true;
            arm();
          },
          event: (e) => {
            delivered++;
            arm();
            this.#apply(e, what);
          },
        },
        current.controller.signal,
      );
      // A server that closes a fresh watch at once, again and again, must not be hammered.
      const short = delivered === 0 && this.#clock.now() - startedAt < 1000;
      if (!short) this.#healthy(openedAt, delivered);
      return { reason: 'closed', message: `${what}: the server ended the watch`, relist: undefined, backoff: short };
    } catch (err) {
      this.#healthy(openedAt, delivered);
      if (current.why === 'watchdog') {
        return { reason: 'watchdog', message: `${what}: no event or bookmark for ${Math.round(this.#watchIdleMs / 1000)} s, or open past its timeout: rewatching`, relist: undefined, backoff: true };
      }
      if (current.why === 'resync') return { reason: 'resync', message: `${what}: periodic resync`, relist: 'resync', backoff: false };
      const e = this.#asApiError(err, what);
      if (e.reason === 'gone') return { reason: 'gone', message: e.message, relist: 'gone', backoff: this.#goneInARow++ > 0 };
      if (e.reason === 'decode' || e.reason === 'too_large') return { reason: e.reason, message: e.message, relist: 'decode', backoff: true };
      return { reason: e.reason, message: e.message, relist: undefined, backoff: true };
    } finally {
      if (idle !== undefined) this.#clock.clearTimeout(idle);
      this.#clock.clearTimeout(overdue);
      if (this.#watching) {
        this.#watching = false;
        this.#lastSyncAt = this.#clock.now();
      }
      if (this.#current === current) this.#current = undefined;
    }
  }

  /** A watch that was open long enough, or delivered anything, resets the backoff. */
  #healthy(openedAt: number | undefined, delivered: number): void {
    if (openedAt === undefined) return;
    const lasted = this.#clock.now() - openedAt >= this.#healthyWatchMs;
    if (lasted) this.#goneInARow = 0;
    if (delivered > 0 || lasted) this.#failures = 0;
  }

  #apply(e: WatchEvent, what: string): void {
    const rv = metadataOf(e.object).resourceVersion;
    if (e.type === 'BOOKMARK') {
      if (rv !== undefined) this.#resourceVersion = rv;
      return;
    }
    const key = this.#keyOf(e.object);
    if (key === undefined) {
      // Not skipped: dropping a DELETED could leave a revoked key valid. Relist instead.
      throw new ApiError('decode', `${what}: an ${e.type} event for an object without metadata.name in this scope`);
    }
    if (rv !== undefined) this.#resourceVersion = rv;
    const old = this.#store.get(key);
    if (e.type === 'DELETED') {
      if (old === undefined) return;
      this.#forget(key);
      this.#call(() => this.#handlers.delete?.(e.object));
      return;
    }
    const size = e.bytes ?? 0;
    const objects = this.#store.size + (old === undefined ? 1 : 0);
    const bytes = this.#storeBytes - (this.#sizes.get(key) ?? 0) + size;
    if (objects > this.#maxObjects || bytes > this.#maxStoreBytes) {
      // Not kept at its old version: the change we cannot hold may be a revocation.
      if (old !== undefined) {
        this.#forget(key);
        this.#call(() => this.#handlers.delete?.(old));
      }
      throw this.#tooLarge(what, objects, bytes);
    }
    this.#storeBytes = bytes;
    this.#sizes.set(key, size);
    this.#store.set(key, e.object);
    if (old === undefined) this.#call(() => this.#handlers.add?.(e.object));
    else this.#call(() => this.#handlers.update?.(old, e.object));
  }

  #forget(key: string): void {
    this.#store.delete(key);
    this.#storeBytes -= this.#sizes.get(key) ?? 0;
    this.#sizes.delete(key);
  }

  #asApiError(err: unknown, what: string): ApiError {
    if (err instanceof ApiError) return err;
    return new ApiError('network', `${what}: ${(err as { code?: string }).code ?? 'failed'}`);
  }

  #abort(why: 'watchdog' | 'resync' | 'timeout' | 'stop', current = this.#current): void {
    if (current === undefined || current.controller.signal.aborted) return;
    current.why = why;
    current.controller.abort();
  }

  /** 1 s, 2 s, 4 s ... 30 s, each drawn from 80-120% of its step, kept within [initial, max]. */
  #nextBackoff(): number {
    const step = Math.min(this.#backoffMaxMs, this.#backoffInitialMs * 2 ** Math.min(this.#failures, 30));
    this.#failures++;
    const jittered = step * (0.8 + 0.4 * this.#random());
    return Math.round(Math.min(this.#backoffMaxMs, Math.max(this.#backoffInitialMs, jittered)));
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (!this.#running) return resolve();
      const timer = this.#clock.setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        this.#clock.clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
    });
  }

  #scheduleResync(): void {
    if (this.#resyncMs <= 0 || !this.#running) return;
    this.#resyncTimer = this.#clock.setTimeout(() => {
      // Only a watch is interrupted; a list or a backoff in progress leads to a list anyway.
      if (this.#watching) this.#abort('resync');
      this.#scheduleResync();
    }, this.#resyncMs);
  }

  #call(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      process.nextTick(() => {
        throw error;
      });
    }
  }
}
