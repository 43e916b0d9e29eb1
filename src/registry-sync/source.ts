/**
 * Where snapshots come from. A source reads its backing store (a file now, the Kubernetes
 * API later) and emits a whole snapshot each time what it reads changes; the index does the
 * diffing. A source that cannot read emits an error and no snapshot, so the snapshot in force
 * stays: a broken update never revokes anything by itself.
 */
import type { Listener } from './emitter.js';
import type { RegistrySourceError } from './problems.js';
import type { RegistrySnapshot } from './snapshot.js';

export interface SourceStats {
  /** Snapshots emitted (content that changed and could be read). */
  readonly reloads: number;
  /** Failures emitted; the same failure repeated by polling is counted once. */
  readonly errors: number;
  /** False while the latest attempt to read failed (the previous snapshot is in force). */
  readonly healthy: boolean;
  /** Milliseconds since the Unix epoch of the last snapshot, or undefined. */
  readonly lastReloadAt: number | undefined;
  readonly lastErrorAt: number | undefined;
}

export interface RegistrySourceEvents {
  snapshot: [snapshot: RegistrySnapshot];
  error: [error: RegistrySourceError];
}

export interface RegistrySource {
  /** What it reads, for logs: e.g. `file /etc/noisemesh/registry.yaml`. */
  readonly origin: string;
  /** Starts reading and watching; the first snapshot (or error) follows asynchronously. */
  start(): void;
  /** Releases every watcher, timer and connection; no event follows once it resolves. */
  stop(): Promise<void>;
  on<K extends keyof RegistrySourceEvents>(event: K, listener: Listener<RegistrySourceEvents[K]>): () => void;
  stats(): SourceStats;
}
