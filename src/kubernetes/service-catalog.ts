/**
 * Services and EndpointSlices from the API server: ClusterIP:port -> the frontend's endpoint
 * candidates (service-endpoints.ts), kept current by reflectors, one pair per namespace or
 * one pair across all, as the ClearanceRegistry source watches.
 *
 * A change is applied synchronously, in the reflector's handler, and touches only the
 * Service it concerns: its frontends are recomputed from its own slices and swapped into the
 * table before the handler returns. So once an EndpointSlice event has been applied, no new
 * connection is given an endpoint it removed. Live sessions to that endpoint are left alone:
 * leaving a slice is not a revocation.
 *
 * Two Services claiming one ClusterIP:port cannot happen in a real cluster (the allocator
 * hands out each IP once); if a broken or hostile server says so anyway, the frontend
 * resolves to neither: the connection is treated as no Service's.
 */
import { Emitter, type Listener } from '../registry-sync/index.js';
import { ApiClient, type ApiClientLimits, type ResourcePath } from './api-client.js';
import type { ClusterAccess } from './cluster.js';
import { systemClock, type Clock } from './clock.js';
import { Reflector, combinedSyncStatus, objectKey, type KubeObject, type ListedInfo, type ListFailedInfo, type SyncStatus, type WatchLostInfo } from './reflector.js';
import type { ReflectorTuning } from './registry-source.js';
import {
  frontendKey,
  parseEndpointSlice,
  parseService,
  serviceFrontends,
  type ParsedService,
  type ParsedSlice,
  type ServiceFrontend,
} from './service-endpoints.js';
import { normalizeAddress } from '../registry-sync/index.js';

/** core/v1 services, in `namespace` or all. */
export function servicesResource(namespace?: string): ResourcePath {
  return { group: '', version: 'v1', resource: 'services', ...(namespace !== undefined && { namespace }) };
}

/** discovery.k8s.io/v1 endpointslices, in `namespace` or all. */
export function endpointSlicesResource(namespace?: string): ResourcePath {
  return { group: 'discovery.k8s.io', version: 'v1', resource: 'endpointslices', ...(namespace !== undefined && { namespace }) };
}

export interface ServiceCatalogOptions {
  readonly access: ClusterAccess;
  /** Namespaces to watch; empty: all. */
  readonly namespaces?: readonly string[];
  readonly resyncSeconds?: number;
  readonly clock?: Clock;
  readonly limits?: ApiClientLimits;
  readonly tuning?: ReflectorTuning;
}

/** The resources a ServiceCatalog watches (a closed set: a metric label). */
export type ServiceCatalogResource = 'services' | 'endpointslices';

/** `scope`: the resource and its namespace or "all namespaces", for a log line. */
type Scoped<T> = T & { readonly scope: string; readonly resource: ServiceCatalogResource };

export interface ServiceCatalogEvents {
  listed: [info: Scoped<ListedInfo>];
  watchLost: [info: Scoped<WatchLostInfo>];
  listFailed: [info: Scoped<ListFailedInfo>];
}

export class ServiceCatalog {
  readonly origin: string;
  readonly #reflectors: Reflector[] = [];
  readonly #byResource: Record<ServiceCatalogResource, Reflector[]> = { services: [], endpointslices: [] };
  readonly #events = new Emitter<ServiceCatalogEvents>();
  readonly #services = new Map<string, ParsedService>();
  readonly #slices = new Map<string, ParsedSlice>();
  /** Service key -> its slices' keys. */
  readonly #slicesOf = new Map<string, Set<string>>();
  /** Service key -> the frontend keys it holds now. */
  readonly #frontendsOf = new Map<string, string[]>();
  /** Frontend key -> the claiming Services' frontends (more than one: a conflict). */
  readonly #frontends = new Map<string, Map<string, ServiceFrontend>>();
  #running = false;

  constructor(options: ServiceCatalogOptions) {
    const namespaces = [...new Set(options.namespaces ?? [])];
    this.origin = `kubernetes ${options.access.server} (${namespaces.length === 0 ? 'all namespaces' : `namespaces ${namespaces.join(', ')}`})`;
    const client = new ApiClient(options.access, options.limits);
    const scopes: (string | undefined)[] = namespaces.length === 0 ? [undefined] : namespaces;
    for (const namespace of scopes) {
      const scope = namespace === undefined ? 'all namespaces' : `namespace ${namespace}`;
      const common = { ...options.tuning, client, clock: options.clock ?? systemClock, resyncMs: (options.resyncSeconds ?? 0) * 1000 };
      const services = new Reflector({
        ...common,
        resource: servicesResource(namespace),
        handlers: {
          add: (o) => this.#putService(o),
          update: (_old, o) => this.#putService(o),
          delete: (o) => this.#deleteService(o),
        },
      });
      const slices = new Reflector({
        ...common,
        resource: endpointSlicesResource(namespace),
        handlers: {
          add: (o) => this.#putSlice(o),
          update: (_old, o) => this.#putSlice(o),
          delete: (o) => this.#deleteSlice(o),
        },
      });
      for (const [resource, reflector] of [['services', services], ['endpointslices', slices]] as const) {
        const what = `${resource} in ${scope}`;
        reflector.on('listed', (info) => this.#events.deliver('listed', { ...info, scope: what, resource }));
        reflector.on('watchLost', (info) => this.#events.deliver('watchLost', { ...info, scope: what, resource }));
        reflector.on('listFailed', (info) => this.#events.deliver('listFailed', { ...info, scope: what, resource }));
        this.#reflectors.push(reflector);
        this.#byResource[resource].push(reflector);
      }
    }
  }

  on<K extends keyof ServiceCatalogEvents>(event: K, listener: Listener<ServiceCatalogEvents[K]>): () => void {
    return this.#events.on(event, listener);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    for (const r of this.#reflectors) r.start();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#reflectors.map((r) => r.stop()));
  }

  /** Every reflector has listed once. Before that, a ClusterIP is no Service's yet. */
  get synced(): boolean {
    return this.syncStatus().synced;
  }

  /** Seconds the least current reflector has not been known current; 0 while all watch. */
  get staleSeconds(): number {
    return this.syncStatus().staleSeconds;
  }

  /** Services and EndpointSlices, together (readiness) or one of them (metrics), over every namespace watched. */
  syncStatus(resource?: ServiceCatalogResource): SyncStatus {
    return combinedSyncStatus(resource === undefined ? this.#reflectors : this.#byResource[resource]);
  }

  /** Frontends indexed (ClusterIP:port pairs). */
  get size(): number {
    return this.#frontends.size;
  }

  /**
   * The frontend `address:port` is, or undefined for an address that is no ClusterIP (a pod
   * IP, a headless Service's pod, anything outside the cluster). Any spelling of the address.
   * The object returned is replaced, never changed, when its Service or slices change.
   */
  resolve(address: string, port: number): ServiceFrontend | undefined {
    const claims = this.#frontends.get(frontendKey(address, port)) ?? this.#normalized(address, port);
    if (claims === undefined || claims.size !== 1) return undefined;
    return claims.values().next().value;
  }

  #normalized(address: string, port: number): Map<string, ServiceFrontend> | undefined {
    const normalized = normalizeAddress(address);
    if (normalized === undefined || normalized === address) return undefined;
    return this.#frontends.get(frontendKey(normalized, port));
  }

  #putService(object: KubeObject): void {
    const parsed = parseService(object);
    const key = objectKey(object);
    if (key === undefined) return;
    if (parsed === undefined) this.#services.delete(key);
    else this.#services.set(key, parsed);
    this.#recompute(key);
  }

  #deleteService(object: KubeObject): void {
    const key = objectKey(object);
    if (key === undefined) return;
    this.#services.delete(key);
    this.#recompute(key);
  }

  #putSlice(object: KubeObject): void {
    const key = objectKey(object);
    if (key === undefined) return;
    const before = this.#slices.get(key);
    const parsed = parseEndpointSlice(object);
    this.#unlinkSlice(key, before);
    if (parsed !== undefined) {
      this.#slices.set(key, parsed);
      let set = this.#slicesOf.get(parsed.service);
      if (set === undefined) this.#slicesOf.set(parsed.service, (set = new Set()));
      set.add(key);
      this.#recompute(parsed.service);
    }
    // A slice relabelled to another Service leaves its old one.
    if (before !== undefined && before.service !== parsed?.service) this.#recompute(before.service);
  }

  #deleteSlice(object: KubeObject): void {
    const key = objectKey(object);
    if (key === undefined) return;
    const before = this.#slices.get(key);
    this.#unlinkSlice(key, before);
    if (before !== undefined) this.#recompute(before.service);
  }

  #unlinkSlice(key: string, slice: ParsedSlice | undefined): void {
    if (slice === undefined) return;
    this.#slices.delete(key);
    const set = this.#slicesOf.get(slice.service);
    set?.delete(key);
    if (set?.size === 0) this.#slicesOf.delete(slice.service);
  }

  /** O(the Service's slices and endpoints): the only work a change costs. */
  #recompute(serviceKey: string): void {
    for (const fk of this.#frontendsOf.get(serviceKey) ?? []) {
      const claims = this.#frontends.get(fk);
      claims?.delete(serviceKey);
      if (claims?.size === 0) this.#frontends.delete(fk);
    }
    this.#frontendsOf.delete(serviceKey);
    const service = this.#services.get(serviceKey);
    if (service === undefined) return;
    const slices = [...(this.#slicesOf.get(serviceKey) ?? [])].map((k) => this.#slices.get(k)!);
    const keys: string[] = [];
    for (const frontend of serviceFrontends(service, slices)) {
      const fk = frontendKey(frontend.clusterIP, frontend.port);
      keys.push(fk);
      let claims = this.#frontends.get(fk);
      if (claims === undefined) this.#frontends.set(fk, (claims = new Map()));
      claims.set(serviceKey, Object.freeze(frontend));
    }
    this.#frontendsOf.set(serviceKey, keys);
  }
}
