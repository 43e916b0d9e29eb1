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

/** How long start-up waits for the first snapshot before listening anyway (not ready). */
const FIRST_SNAPSHOT_WAIT_MS = 10_000;

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
  registry.on('error', (err) =>
    log.error(
      { event: 'registry-error', file, error: err.message },
      registry.isReady ? 'registry not reloaded; the last good snapshot stays in force' : 'registry not loaded yet',
    ),
  );
  registry.start();

  let timer: NodeJS.Timeout | undefined;
  const loaded = await Promise.race([
    registry.ready().then(() => true, () => false),
    new Promise<boolean>((resolve) => (timer = setTimeout(resolve, FIRST_SNAPSHOT_WAIT_MS, false))),
  ]);
  clearTimeout(timer);
  if (!loaded) log.error({ event: 'registry-error', file }, 'no registry snapshot yet: the proxy listens but is not ready, and refuses every peer');

  return {
    directory,
    registry,
    attach(proxy) {
      const livePeers = (): number => index.entries().filter((e: RegistryEntry) => !e.revoked).length;
      proxy.setRegistryReady(registry.isReady);
      if (registry.isReady) proxy.metrics.registryReloads.inc({ result: 'ok' });
      proxy.metrics.registryPeers.set(livePeers());
      registry.on('snapshot', () => {
        proxy.setRegistryReady(true);
        proxy.metrics.registryReloads.inc({ result: 'ok' });
        proxy.metrics.registryPeers.set(livePeers());
      });
      registry.on('error', () => proxy.metrics.registryReloads.inc({ result: 'error' }));
      registry.on('revoked', (key, reason, previous) => {
        const since = process.hrtime.bigint();
        const aborted = proxy.revokeKey(key, since);
        log.info({ event: 'revocation', peer: previous.agentId, generation: String(previous.generation), reason, sessionsAborted: aborted }, 'key revoked');
      });
    },
    stop: () => registry.stop(),
  };
}
