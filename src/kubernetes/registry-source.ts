/**
 * ClearanceRegistry objects from the API server, as snapshots for registry-sync: the
 * `RegistrySource` the file source is, fed by reflectors instead of a file.
 *
 * One reflector per configured namespace (or one across all namespaces) keeps the objects;
 * every change validates only the object that changed (validations are cached by
 * namespace/name and resourceVersion) and hands it to a RegistryState, the file source's own
 * checks across entries applied incrementally, so the namespace rule and conflicts (one key
 * claimed by two objects: both refused) apply exactly as they do to a file, and a change
 * costs O(that object), not a rebuild of every peer. Changes that arrive together (a
 * relist's diff) make one snapshot, whose delta the index applies.
 *
 * No snapshot is emitted until every reflector has listed once: a proxy that knew only some
 * namespaces would refuse the others' peers while claiming to be ready. After that the last
 * snapshot stays in force whatever the API server does (stale but serving); `syncStatus()`
 * says how stale, and a failed list is reported as a source error (once per distinct failure).
 */
import {
  API_GROUP,
  API_VERSION,
  Emitter,
  RegistryState,
  type RegistrySnapshot,
  type ValidatedObject,
  RegistrySourceError,
  buildSnapshot,
  validateClearanceRegistry,
  type Listener,
  type RegistryProblem,
  type RegistrySource,
  type RegistrySourceEvents,
  type SourceStats,
  type ValidationResult,
} from '../registry-sync/index.js';
import { ApiClient, ApiError, type ApiClientLimits, type ResourcePath } from './api-client.js';
import type { ClusterAccess } from './cluster.js';
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import { Reflector, combinedSyncStatus, objectKey, type KubeObject, type ListedInfo, type ListFailedInfo, type ReflectorOptions, type SyncStatus, type WatchLostInfo } from './reflector.js';

export type { SyncStatus } from './reflector.js';

/** The plural of ClearanceRegistry, as the CRD names it. */
export const CLEARANCE_REGISTRY_RESOURCE = 'clearanceregistries';

/** `{group: 'noisemesh.io', version: 'v1alpha1', resource: 'clearanceregistries'}`, in `namespace` or all. */
export function clearanceRegistryResource(namespace?: string): ResourcePath {
  return { group: API_GROUP, version: API_VERSION.slice(API_GROUP.length + 1), resource: CLEARANCE_REGISTRY_RESOURCE, ...(namespace !== undefined && { namespace }) };
}

/** Reflector tuning, for tests (fake clock, short watchdog); production takes the defaults. */
export type ReflectorTuning = Omit<ReflectorOptions, 'client' | 'resource' | 'handlers' | 'clock' | 'resyncMs'>;

export interface KubernetesSourceOptions {
  readonly access: ClusterAccess;
  /** Namespaces to watch, one watch each; empty: one watch across all namespaces. */
  readonly namespaces?: readonly string[];
  /** Periodic full relist; 0 or absent: none. */
  readonly resyncSeconds?: number;
  readonly clock?: Clock;
  readonly limits?: ApiClientLimits;
  readonly tuning?: ReflectorTuning;
}

export interface KubernetesSourceEvents extends RegistrySourceEvents {
  /** A reflector listed (first list, relist after 410, resync): one log line each. */
  listed: [info: ListedInfo & { readonly scope: string }];
  /** A watch ended (reason from a closed set): one log line each. */
  watchLost: [info: WatchLostInfo & { readonly scope: string }];
  listFailed: [info: ListFailedInfo & { readonly scope: string }];
}

export class KubernetesRegistrySource implements RegistrySource {
  readonly origin: string;
  readonly namespaces: readonly string[];
  readonly #access: ClusterAccess;
  readonly #clock: Clock;
  readonly #reflectors: { readonly scope: string; readonly reflector: Reflector }[];
  readonly #events = new Emitter<KubernetesSourceEvents>();
  /** Validation of each object at its resourceVersion, by namespace/name. */
  readonly #validated = new Map<string, { readonly resourceVersion: unknown; readonly result: ValidationResult }>();
  /** The checks across entries, kept up to date object by object. */
  readonly #state: RegistryState;
  /** Objects added, updated or deleted since the last snapshot, by namespace/name, with the reflector holding them. */
  readonly #dirty = new Map<string, Reflector>();
  #scheduled = false;
  #running = false;
  #emitted = false;
  #reloads = 0;
  #errors = 0;
  #lastReloadAt: number | undefined;
  #lastErrorAt: number | undefined;
  #lastFailure: string | undefined;

  constructor(options: KubernetesSourceOptions) {
    this.#access = options.access;
    this.#clock = options.clock ?? systemClock;
    this.namespaces = [...new Set(options.namespaces ?? [])];
    this.origin = `kubernetes ${options.access.server} (${this.namespaces.length === 0 ? 'all namespaces' : `namespaces ${this.namespaces.join(', ')}`})`;
    this.#state = new RegistryState(this.origin);
    const client = new ApiClient(options.access, options.limits);
    const scopes: (string | undefined)[] = this.namespaces.length === 0 ? [undefined] : [...this.namespaces];
    this.#reflectors = scopes.map((namespace) => {
      const scope = namespace === undefined ? 'all namespaces' : `namespace ${namespace}`;
      let reflector: Reflector;
      const changed = (object: KubeObject): void => {
        const key = objectKey(object);
        if (key === undefined) return;
        this.#dirty.set(key, reflector);
        this.#schedule();
      };
      reflector = new Reflector({
        ...options.tuning,
        client,
        resource: clearanceRegistryResource(namespace),
        clock: this.#clock,
        resyncMs: (options.resyncSeconds ?? 0) * 1000,
        handlers: { add: changed, update: (_, object) => changed(object), delete: changed },
      });
      reflector.on('listed', (info) => {
        this.#recovered();
        this.#schedule();
        this.#events.deliver('listed', { ...info, scope });
      });
      reflector.on('watchLost', (info) => this.#events.deliver('watchLost', { ...info, scope }));
      reflector.on('listFailed', (info) => {
        this.#fail(info, scope);
        this.#events.deliver('listFailed', { ...info, scope });
      });
      return { scope, reflector };
    });
  }

  on<K extends keyof KubernetesSourceEvents>(event: K, listener: Listener<KubernetesSourceEvents[K]>): () => void {
    return this.#events.on(event, listener);
  }

  stats(): SourceStats {
    return {
      reloads: this.#reloads,
      errors: this.#errors,
      healthy: this.#lastFailure === undefined && this.#reflectors.every((r) => r.reflector.status().listed),
      lastReloadAt: this.#lastReloadAt,
      lastErrorAt: this.#lastErrorAt,
    };
  }

  syncStatus(): SyncStatus {
    return combinedSyncStatus(this.#reflectors.map((r) => r.reflector));
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    for (const { reflector } of this.#reflectors) reflector.start();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#reflectors.map(({ reflector }) => reflector.stop()));
    await this.#access.close();
  }

  /** Coalesces the changes of one turn (a relist's whole diff) into one snapshot. */
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      if (this.#running) this.#publish();
    });
  }

  /**
   * Hands the objects changed since the last snapshot to the state and emits its snapshot:
   * O(the changed objects). The first one waits until every reflector has listed.
   */
  #publish(): void {
    if (!this.#reflectors.every((r) => r.reflector.status().listed)) return;
    for (const [key, reflector] of this.#dirty) {
      const object = reflector.store.get(key);
      if (object === undefined) {
        this.#validated.delete(key);
        this.#state.delete(key);
      } else this.#state.set(key, this.#validate(key, object));
    }
    this.#dirty.clear();
    // The same last-good rule as the file source: a peer that is now broken (an object the API
    // server admitted under an older CRD, say) keeps its last good entry; a removal, revoked:
    // true, a new generation or key are whole statements and apply. Objects arrive whole, so
    // unlike a file there is nothing to let settle.
    const snapshot = this.#state.commit();
    this.#reloads++;
    this.#lastReloadAt = this.#clock.now();
    this.#emitted = true;
    this.#events.deliver('snapshot', snapshot);
  }

  #validate(key: string, object: KubeObject): ValidationResult {
    const meta = object.metadata as Record<string, unknown> | undefined;
    const resourceVersion = meta?.resourceVersion;
    const cached = this.#validated.get(key);
    if (cached !== undefined && resourceVersion !== undefined && cached.resourceVersion === resourceVersion) return cached.result;
    const result = validateClearanceRegistry(object, { document: objectKey(object) ?? key });
    this.#validated.set(key, { resourceVersion, result });
    return result;
  }

  #recovered(): void {
    this.#lastFailure = undefined;
  }

  /** A failed list is a failed read: reported once per distinct failure, the snapshot kept. */
  #fail(info: ListFailedInfo, scope: string): void {
    const message = `cannot list ${CLEARANCE_REGISTRY_RESOURCE} in ${scope} (${info.reason}): ${info.message}; ${this.#emitted ? 'the previous registry is kept' : 'no registry yet'}, retrying in ${Math.round(info.retryInMs / 100) / 10} s`;
    const key = `${scope}:${info.reason}`;
    if (key === this.#lastFailure) return;
    this.#lastFailure = key;
    this.#errors++;
    this.#lastErrorAt = this.#clock.now();
    this.#events.deliver('error', new RegistrySourceError([{ code: 'REGISTRY_READ', severity: 'error', file: undefined, line: undefined, document: 'kubernetes', path: '', message }]));
  }
}

/** What `readRegistryOnce` reads at most, as a reflector holds at most (reflector.ts). */
const READ_ONCE_LIMITS = { maxObjects: 100_000, maxBytes: 128 * 1024 * 1024, timeoutMs: 120_000 } as const;

/**
 * One consistent read of the ClearanceRegistry objects, as a proxy with this access and these
 * namespaces would load them (`noisemesh registry get`). Throws ApiError when the API server
 * cannot be read, or answers more than a reflector would hold (`too_large`) or takes longer
 * than a reflector's list may (`timeout`).
 */
export async function readRegistryOnce(
  access: ClusterAccess,
  namespaces: readonly string[] = [],
  limits?: ApiClientLimits,
  bounds: { readonly maxObjects: number; readonly maxBytes: number; readonly timeoutMs: number } = READ_ONCE_LIMITS,
): Promise<RegistrySnapshot> {
  const client = new ApiClient(access, limits);
  const scopes: (string | undefined)[] = namespaces.length === 0 ? [undefined] : [...new Set(namespaces)];
  const objects: ValidatedObject[] = [];
  const problems: RegistryProblem[] = [];
  const signal = AbortSignal.timeout(bounds.timeoutMs);
  let items = 0;
  let bytes = 0;
  try {
    for (const namespace of scopes) {
      const resource = clearanceRegistryResource(namespace);
      let continueToken: string | undefined;
      do {
        const page = await client.listPage(resource, { limit: 500, continueToken }, signal);
        items += page.items.length;
        bytes += page.bytes ?? 0;
        if (items > bounds.maxObjects || bytes > bounds.maxBytes) {
          throw new ApiError('too_large', `list ${CLEARANCE_REGISTRY_RESOURCE}: more than ${bounds.maxObjects} objects or ${bounds.maxBytes} bytes, more than a proxy would hold`);
        }
        for (const item of page.items) {
          const key = typeof item === 'object' && item !== null ? objectKey(item as KubeObject) : undefined;
          const result = validateClearanceRegistry(item, { document: key ?? 'an object without a name' });
          problems.push(...result.problems);
          if (result.object !== undefined) objects.push(result.object);
        }
        continueToken = page.continueToken;
      } while (continueToken !== undefined);
    }
  } catch (err) {
    if (signal.aborted) throw new ApiError('timeout', `list ${CLEARANCE_REGISTRY_RESOURCE}: no complete answer in ${bounds.timeoutMs / 1000} s`);
    throw err;
  }
  return buildSnapshot(objects, { origin: `kubernetes ${access.server}` }, problems);
}
