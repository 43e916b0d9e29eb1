/**
 * Joins the registry (registry-sync) to a proxy: the proxy's view of peers, readiness,
 * revocations turned into session aborts, and registry metrics and log lines. registry-sync
 * knows nothing of sockets and the proxy nothing of YAML; this is where they meet. With the
 * Kubernetes source, Services join here too: the ServiceCatalog says which endpoints a
 * ClusterIP:port has, the index says which of them are meshed peers.
 */
import { FileRegistrySource, Registry, formatProblem, type RegistryIndex, type RegistrySource } from '../registry-sync/index.js';
import type { Clock, KubernetesRegistrySource, ReflectorTuning, ServiceCatalog, ServiceFrontend, SyncStatus } from '../kubernetes/index.js';
import type { AddressLookup, Logger, MeshPeer, PeerDirectory, PeerLookup, Proxy, ServiceEndpoint } from '../proxy/index.js';
import type { RegistryConfig } from './config/proxy-config.js';
import { UsageError } from './usage-error.js';

export interface OpenRegistry {
  readonly directory: PeerDirectory;
  readonly registry: Registry;
  /** Services and EndpointSlices, with the Kubernetes source only. */
  readonly services: ServiceCatalog | undefined;
  /** While no snapshot has loaded: why (the last read's error, or that none ended yet); then undefined. */
  notReadyReason(): string | undefined;
  attach(proxy: Proxy): void;
  stop(): Promise<void>;
}

/**
 * How long start-up waits for the first read of the registry to end, well or badly, before
 * listening anyway (not ready). A read ends in milliseconds, found or not; waiting for it
 * keeps a proxy from refusing peers in its first instant only because it had not read the
 * file yet. Only a hung filesystem reaches this bound, and /healthz must answer before a
 * liveness probe gives up.
 */
const FIRST_READ_WAIT_MS = 2_000;

/** For tests: a fake clock and reflector tuning, a fake in-cluster service account. */
export interface RegistryWiringOptions {
  readonly clock?: Clock;
  readonly tuning?: ReflectorTuning;
  readonly inClusterRoot?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Opens the configured source and waits (a bounded while) for its first snapshot. A
 * Kubernetes source whose access cannot be set up (no kubeconfig, no service account) throws
 * UsageError naming `registry.kubernetes`: every command refuses to start on it alike.
 */
export async function openRegistry(config: RegistryConfig, log: Logger, options: RegistryWiringOptions = {}): Promise<OpenRegistry> {
  let source: RegistrySource;
  let kube: KubernetesRegistrySource | undefined;
  let services: ServiceCatalog | undefined;
  /** The last failed list of Services or EndpointSlices, for /readyz until they are listed. */
  let servicesFailure: string | undefined;
  if (config.kubernetes !== undefined) {
    // Imported here, not with this module: a proxy with a file registry never loads
    // src/kubernetes (bench/README.md, load, "Where a proxy's memory went").
    const kubernetes = await import('../kubernetes/index.js');
    let access;
    try {
      access = await kubernetes.loadClusterAccess({
        kubeconfig: config.kubernetes.kubeconfig,
        ...(options.inClusterRoot !== undefined && { inClusterRoot: options.inClusterRoot }),
        ...(options.env !== undefined && { env: options.env }),
      });
    } catch (err) {
      if (err instanceof kubernetes.ClusterConfigError) throw new UsageError(`registry.kubernetes: ${err.message}`);
      throw err;
    }
    kube = new kubernetes.KubernetesRegistrySource({
      access,
      namespaces: config.kubernetes.namespaces,
      resyncSeconds: config.kubernetes.resyncSeconds,
      ...(options.clock !== undefined && { clock: options.clock }),
      ...(options.tuning !== undefined && { tuning: options.tuning }),
    });
    source = kube;
    // The same access (one token, one TLS setup); the registry source closes it at stop.
    services = new kubernetes.ServiceCatalog({
      access,
      namespaces: config.kubernetes.namespaces,
      resyncSeconds: config.kubernetes.resyncSeconds,
      ...(options.clock !== undefined && { clock: options.clock }),
      ...(options.tuning !== undefined && { tuning: options.tuning }),
    });
    log.info({ event: 'registry-source', source: kube.origin, access: access.description }, 'registry from the Kubernetes API');
    services.on('listed', (i) => {
      log.info({ event: 'services-relist', scope: i.scope, reason: i.reason, objects: i.objects, added: i.added, updated: i.updated, deleted: i.deleted }, `listed ${i.scope}`);
    });
    services.on('watchLost', (i) => {
      const fields = { event: 'services-watch-lost', scope: i.scope, reason: i.reason, retryInSeconds: i.retryInMs / 1000, relist: i.relist };
      if (i.reason === 'closed' && i.retryInMs === 0) log.debug(fields, i.message);
      else log.warn(fields, `${i.message}; the Services in force are kept`);
    });
    services.on('listFailed', (i) => {
      // The reflector's message is safe to serve on /readyz: no token, no object content.
      servicesFailure = `cannot list ${i.scope} (${i.reason}): ${i.message}`;
      log.warn({ event: 'services-list-failed', scope: i.scope, reason: i.reason, retryInSeconds: i.retryInMs / 1000 }, i.message);
    });
    // One line per relist and per lost watch; a server ending a watch on schedule is routine.
    kube.on('listed', (i) => {
      log.info({ event: 'registry-relist', scope: i.scope, reason: i.reason, objects: i.objects, added: i.added, updated: i.updated, deleted: i.deleted }, `listed clearanceregistries in ${i.scope}`);
    });
    kube.on('watchLost', (i) => {
      const fields = { event: 'registry-watch-lost', scope: i.scope, reason: i.reason, retryInSeconds: i.retryInMs / 1000, relist: i.relist };
      if (i.reason === 'closed' && i.retryInMs === 0) log.debug(fields, i.message);
      else log.warn(fields, `${i.message}; the registry in force is kept`);
    });
  } else {
    source = new FileRegistrySource(config.file);
  }
  const file = config.file ?? source.origin;
  const registry = new Registry(source);
  const { index } = registry;
  const resolvePeer = (address: string): PeerLookup => {
    const hit = index.resolveAddress(address);
    if (hit.kind === 'none') return hit;
    if (hit.kind === 'conflict') return { kind: 'refuse', reason: `address claimed by ${hit.claimants.length} registry entries` };
    if (hit.entry.revoked) return { kind: 'refuse', reason: `${hit.entry.agentId} is revoked` };
    return { kind: 'peer', peer: hit.entry satisfies MeshPeer };
  };
  const catalog = services;
  const serviceLookups = catalog === undefined ? undefined : new ServiceLookups(index, resolvePeer);
  const directory: PeerDirectory = {
    peerByKey: (key) => {
      const entry = index.byPublicKey(key);
      return entry === undefined || entry.revoked ? undefined : entry;
    },
    peersByAgentId: (agentId) => index.byAgentId(agentId),
    resolveAddress: (address, port): AddressLookup => {
      if (catalog !== undefined && port !== undefined) {
        const frontend = catalog.resolve(address, port);
        if (frontend !== undefined) return serviceLookups!.of(frontend);
      }
      return resolvePeer(address);
    },
  };

  registry.on('snapshot', (snapshot) => {
    for (const problem of snapshot.problems) log.warn({ event: 'registry-problem', file }, formatProblem(problem));
  });
  registry.on('changed', (s) => {
    log.info({ event: 'registry-reload', file, version: s.version, entries: s.entries, added: s.added, removed: s.removed, updated: s.updated, revoked: s.revoked, errors: s.errors }, 'registry reloaded');
  });
  /** Why the proxy is not ready while no snapshot has loaded, for /readyz. */
  let notReadyReason = `no registry loaded yet: ${file} has not been read`;
  registry.on('error', (err) => {
    if (registry.isReady) {
      log.error({ event: 'registry-error', file, error: err.message }, 'registry not reloaded; the last good snapshot stays in force');
    } else {
      notReadyReason = err.message;
      log.error({ event: 'registry-error', file, error: err.message }, 'no registry loaded: the proxy is not ready and refuses every peer until the registry loads');
    }
  });

  let timer: NodeJS.Timeout | undefined;
  let firstRead!: () => void;
  const settled = new Promise<void>((resolve) => (firstRead = resolve));
  const offSnapshot = registry.on('snapshot', () => firstRead());
  const offError = registry.on('error', () => firstRead());
  services?.start();
  registry.start();
  await Promise.race([settled, new Promise<void>((resolve) => (timer = setTimeout(resolve, FIRST_READ_WAIT_MS)))]);
  clearTimeout(timer);
  offSnapshot();
  offError();
  if (!registry.isReady && notReadyReason.endsWith('has not been read')) {
    log.error({ event: 'registry-error', file }, `no registry snapshot after ${FIRST_READ_WAIT_MS} ms: the proxy listens but is not ready, and refuses every peer, until the registry loads`);
  }

  return {
    directory,
    registry,
    services,
    notReadyReason: () => (registry.isReady ? undefined : notReadyReason),
    attach(proxy) {
      const livePeers = (): number => index.liveSize;
      proxy.setRegistryReady(registry.isReady, notReadyReason);
      if (registry.isReady) proxy.metrics.registryReloads.inc({ result: 'ok' });
      proxy.metrics.registryPeers.set(livePeers());
      registry.on('snapshot', () => {
        proxy.setRegistryReady(true);
        proxy.metrics.registryReloads.inc({ result: 'ok' });
        proxy.metrics.registryPeers.set(livePeers());
      });
      registry.on('error', () => {
        proxy.metrics.registryReloads.inc({ result: 'error' });
        if (!registry.isReady) proxy.setRegistryReady(false, notReadyReason);
      });
      if (kube !== undefined) {
        const k = kube;
        k.on('watchLost', (i) => proxy.metrics.registryWatchRestarts.inc({ resource: 'clearanceregistries', reason: i.reason }));
        catalog?.on('watchLost', (i) => proxy.metrics.registryWatchRestarts.inc({ resource: i.resource, reason: i.reason }));
        proxy.metrics.registrySync = () => [
          { resource: 'clearanceregistries', ...k.syncStatus() },
          ...(catalog === undefined ? [] : (['services', 'endpointslices'] as const).map((resource) => ({ resource, ...catalog.syncStatus(resource) }))),
        ];
        // Stale but serving: readiness stays with the first snapshot; the body says how stale.
        proxy.setRegistryDetails(() => ({ source: k.origin, ...syncDetails(k.syncStatus()) }));
      }
      if (catalog !== undefined) watchServicesReadiness(catalog, proxy, () => servicesFailure);
      registry.on('revoked', (key, reason, previous) => {
        const since = process.hrtime.bigint();
        const aborted = proxy.revokeKey(key, since);
        log.info({ event: 'revocation', peer: previous.agentId, generation: String(previous.generation), reason, sessionsAborted: aborted }, 'key revoked');
      });
    },
    async stop() {
      await services?.stop();
      await registry.stop();
    },
  };
}

/** A SyncStatus as /readyz shows it. */
function syncDetails(s: SyncStatus): Record<string, unknown> {
  return {
    synced: s.synced,
    stale: s.staleSeconds > 0,
    staleSeconds: Math.round(s.staleSeconds * 10) / 10,
    lastSyncAt: s.lastSyncAt === undefined ? null : new Date(s.lastSyncAt).toISOString(),
  };
}

/**
 * The `services` condition of /readyz: false until every Services and EndpointSlices
 * reflector has listed once (before that a ClusterIP is no Service's, and a connection to it
 * would be refused or passed in plaintext as no Service's), then true for good, as the
 * registry's: stale but serving, with the staleness in the body.
 */
function watchServicesReadiness(catalog: ServiceCatalog, proxy: Proxy, lastFailure: () => string | undefined): void {
  const update = (): void => {
    const failure = lastFailure();
    proxy.setReadinessCondition('services', {
      ready: catalog.synced,
      reason: `Services and EndpointSlices not listed yet${failure === undefined ? '' : `: ${failure}`}`,
      details: () => ({ ...syncDetails(catalog.syncStatus()), frontends: catalog.size }),
    });
  };
  update();
  catalog.on('listed', update);
  catalog.on('listFailed', update);
}

/**
 * A frontend's endpoints as the proxy sees them: each address resolved through the index.
 * Remembered per frontend object and index version, so a connection costs one lookup while
 * neither the Service nor the registry has changed (a frontend object is replaced, never
 * changed, when its Service or slices do).
 */
class ServiceLookups {
  readonly #cache = new WeakMap<ServiceFrontend, { readonly version: number; readonly lookup: AddressLookup }>();

  constructor(
    private readonly index: RegistryIndex,
    private readonly resolvePeer: (address: string) => PeerLookup,
  ) {}

  of(frontend: ServiceFrontend): AddressLookup {
    const cached = this.#cache.get(frontend);
    if (cached !== undefined && cached.version === this.index.version) return cached.lookup;
    const endpoints: ServiceEndpoint[] = frontend.endpoints.map((e) => Object.freeze({ address: e.address, port: e.port, lookup: this.resolvePeer(e.address) }));
    const lookup: AddressLookup = Object.freeze({ kind: 'service', service: frontend.service, endpoints: Object.freeze(endpoints) });
    this.#cache.set(frontend, { version: this.index.version, lookup });
    return lookup;
  }
}
