/**
 * Joins the registry (registry-sync) to a proxy: the proxy's view of peers, readiness,
 * revocations turned into session aborts, and registry metrics and log lines. registry-sync
 * knows nothing of sockets and the proxy nothing of YAML; this is where they meet.
 */
import { Registry, formatProblem, type RegistryEntry } from '../registry-sync/index.js';
import type { AddressLookup, Logger, MeshPeer, PeerDirectory, Proxy } from '../proxy/index.js';

export interface OpenRegistry {
  readonly directory: PeerDirectory;
  readonly registry: Registry;
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

export async function openRegistry(file: string, log: Logger): Promise<OpenRegistry> {
  const registry = Registry.fromFile(file);
  const { index } = registry;
  const directory: PeerDirectory = {
    peerByKey: (key) => {
      const entry = index.byPublicKey(key);
      return entry === undefined || entry.revoked ? undefined : entry;
    },
    peersByAgentId: (agentId) => index.byAgentId(agentId),
    resolveAddress: (address): AddressLookup => {
      const hit = index.resolveAddress(address);
      if (hit.kind === 'none') return hit;
      if (hit.kind === 'conflict') return { kind: 'refuse', reason: `address claimed by ${hit.claimants.length} registry entries` };
      if (hit.entry.revoked) return { kind: 'refuse', reason: `${hit.entry.agentId} is revoked` };
      return { kind: 'peer', peer: hit.entry satisfies MeshPeer };
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
      log.error({ event: 'registry-error', file, error: err.message }, 'no registry loaded: the proxy is not ready and refuses every peer until the file loads');
    }
  });

  let timer: NodeJS.Timeout | undefined;
  let firstRead!: () => void;
  const settled = new Promise<void>((resolve) => (firstRead = resolve));
  const offSnapshot = registry.on('snapshot', () => firstRead());
  const offError = registry.on('error', () => firstRead());
  registry.start();
  await Promise.race([settled, new Promise<void>((resolve) => (timer = setTimeout(resolve, FIRST_READ_WAIT_MS)))]);
  clearTimeout(timer);
  offSnapshot();
  offError();
  if (!registry.isReady && notReadyReason.endsWith('has not been read')) {
    log.error({ event: 'registry-error', file }, `no registry snapshot after ${FIRST_READ_WAIT_MS} ms: the proxy listens but is not ready, and refuses every peer, until the file loads`);
  }

  return {
    directory,
    registry,
    attach(proxy) {
      const livePeers = (): number => index.entries().filter((e: RegistryEntry) => !e.revoked).length;
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
      registry.on('revoked', (key, reason, previous) => {
        const since = process.hrtime.bigint();
        const aborted = proxy.revokeKey(key, since);
        log.info({ event: 'revocation', peer: previous.agentId, generation: String(previous.generation), reason, sessionsAborted: aborted }, 'key revoked');
      });
    },
    stop: () => registry.stop(),
  };
}
