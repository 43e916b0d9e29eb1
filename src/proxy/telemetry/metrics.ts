/**
 * The proxy's Prometheus metrics, all prefixed `noisemesh_`. Each proxy has its own
 * registry, so several proxies can live in one process (tests, the demo). Labels take
 * values from closed sets only: never a key, an address or an agentId.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AbortReason, Direction, SessionEnd } from '../session/secure-session.js';
import type { SessionTable } from '../session/session-table.js';
import type { ShedReason } from '../inbound/pending-handshakes.js';

export type HandshakeRole = 'initiator' | 'responder';

/** What a registry source watches on a server: the `resource` label's closed set. */
export type WatchedResource = 'clearanceregistries' | 'services' | 'endpointslices';

/** One watched resource's sync with its server, read at scrape time. */
export interface WatchedResourceSync {
  readonly resource: WatchedResource;
  /** Ms since the epoch; undefined before its first list. */
  readonly lastSyncAt: number | undefined;
  readonly staleSeconds: number;
}

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly handshakes: Counter<'role' | 'result'>;
  readonly handshakeSeconds: Histogram<'role'>;
  readonly handshakesShed: Counter<'reason'>;
  readonly handshakesPending: Gauge;
  readonly sessionAborts: Counter<'reason'>;
  readonly sessionsClosed: Counter<'direction' | 'result'>;
  readonly passthrough: Counter<'direction' | 'result'>;
  readonly registryPeers: Gauge;
  readonly registryReloads: Counter<'result'>;
  readonly revocations: Counter;
  readonly revocationAbortSeconds: Histogram;
  readonly registryLastSync: Gauge<'resource'>;
  readonly registryStaleSeconds: Gauge<'resource'>;
  readonly registryWatchRestarts: Counter<'resource' | 'reason'>;
  /** Set by a registry source that tracks its sync with a server (Kubernetes); read at scrape time. */
  registrySync: (() => readonly WatchedResourceSync[]) | undefined;
  // Bytes of sessions that have ended; live sessions are added at scrape time.
  private readonly endedBytes = new Map<string, number>();

  constructor(sessions: SessionTable) {
    const registers = [this.registry];
    this.handshakes = new Counter({
      name: 'noisemesh_handshakes_total',
      help: 'NMP/1 handshakes by role and result (accepted, a P2 status name, or a local failure)',
      labelNames: ['role', 'result'],
      registers,
    });
    this.handshakeSeconds = new Histogram({
      name: 'noisemesh_handshake_duration_seconds',
      help: 'Time from accepting or opening a connection to the end of the handshake',
      labelNames: ['role'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers,
    });
    new Gauge({
      name: 'noisemesh_sessions_active',
      help: 'Sessions carrying traffic now',
      labelNames: ['direction'],
      registers,
      collect() {
        const counts = { inbound: 0, outbound: 0 };
        for (const s of sessions.summaries()) counts[s.direction]++;
        this.set({ direction: 'inbound' }, counts.inbound);
        this.set({ direction: 'outbound' }, counts.outbound);
      },
    });
    const endedBytes = this.endedBytes;
    new Counter({
      name: 'noisemesh_session_bytes_total',
      help: 'Application bytes carried by sessions, by direction and flow (from_app = sent to the peer)',
      labelNames: ['direction', 'flow'],
      registers,
      collect() {
        const totals = new Map(endedBytes);
        for (const s of sessions.summaries()) {
          add(totals, `${s.direction}/from_app`, s.bytesFromApp);
          add(totals, `${s.direction}/to_app`, s.bytesToApp);
        }
        this.reset();
        for (const [key, value] of totals) {
          const [direction, flow] = key.split('/') as [string, string];
          this.inc({ direction, flow }, value);
        }
      },
    });
    this.handshakesShed = new Counter({
      name: 'noisemesh_handshakes_shed_total',
      help: 'Mesh-port connections closed unanswered to admit a newer one, by the cap that was reached (source-cap, total-cap)',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of ['source-cap', 'total-cap'] satisfies ShedReason[]) this.handshakesShed.inc({ reason }, 0);
    this.handshakesPending = new Gauge({
      name: 'noisemesh_handshakes_pending',
      help: 'Mesh-port connections whose message 1 has not arrived yet',
      registers,
    });
    this.sessionAborts = new Counter({
      name: 'noisemesh_session_aborts_total',
      help: 'Sessions aborted (both connections reset), by reason',
      labelNames: ['reason'],
      registers,
    });
    this.sessionsClosed = new Counter({
      name: 'noisemesh_sessions_total',
      help: 'Sessions that have ended, by direction and result (closed or aborted)',
      labelNames: ['direction', 'result'],
      registers,
    });
    this.passthrough = new Counter({
      name: 'noisemesh_plaintext_connections_total',
      help: 'Connections that bypassed Noise (no meshed peer), by direction and result (passed or refused)',
      labelNames: ['direction', 'result'],
      registers,
    });
    this.registryPeers = new Gauge({ name: 'noisemesh_registry_peers', help: 'Valid peers in the registry index', registers });
    this.registryReloads = new Counter({
      name: 'noisemesh_registry_reloads_total',
      help: 'Registry snapshots applied (ok) or rejected (error)',
      labelNames: ['result'],
      registers,
    });
    this.revocations = new Counter({
      name: 'noisemesh_revocations_total',
      help: 'Keys revoked by registry changes',
      registers,
    });
    // By resource (clearanceregistries, services, endpointslices): one family for every watch,
    // so that a sum or max over them means something; only resources listed once have a value.
    this.registryLastSync = new Gauge({
      name: 'noisemesh_registry_last_sync_timestamp_seconds',
      help: 'When each watched resource was last known current with its server (Unix seconds; now while its watches are open)',
      labelNames: ['resource'],
      registers,
      collect: () => {
        for (const s of this.registrySync?.() ?? []) if (s.lastSyncAt !== undefined) this.registryLastSync.set({ resource: s.resource }, s.lastSyncAt / 1000);
      },
    });
    this.registryStaleSeconds = new Gauge({
      name: 'noisemesh_registry_stale_seconds',
      help: 'How long each watched resource in force has not been known current (0 while its watches are open)',
      labelNames: ['resource'],
      registers,
      collect: () => {
        for (const s of this.registrySync?.() ?? []) if (s.lastSyncAt !== undefined) this.registryStaleSeconds.set({ resource: s.resource }, s.staleSeconds);
      },
    });
    this.registryWatchRestarts = new Counter({
      name: 'noisemesh_registry_watch_restarts_total',
      help: 'Watches of the registry source that ended and were restarted, by resource and reason (closed, watchdog, resync, gone, network, ...)',
      labelNames: ['resource', 'reason'],
      registers,
    });
    this.revocationAbortSeconds = new Histogram({
      name: 'noisemesh_revocation_abort_seconds',
      help: 'Time from applying a registry change (its new index in force) to the abort of the last session it revoked; the delay before the proxy reads the change is not included',
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
      registers,
    });
  }

  /** One session ended, or `count` sessions that ended alike (bytes summed in `end`). */
  sessionEnded(direction: Direction, end: Pick<SessionEnd, 'result' | 'reason' | 'bytesFromApp' | 'bytesToApp'>, count = 1): void {
    add(this.endedBytes, `${direction}/from_app`, end.bytesFromApp);
    add(this.endedBytes, `${direction}/to_app`, end.bytesToApp);
    this.sessionsClosed.inc({ direction, result: end.result }, count);
    if (end.reason !== null) this.sessionAborts.inc({ reason: end.reason satisfies AbortReason }, count);
  }
}

function add(map: Map<string, number>, key: string, value: number): void {
  map.set(key, (map.get(key) ?? 0) + value);
}
