/** What both handshake roles share: who we are, who the peers are, the suite, and where to report. */
import type { CryptoBackend, Protocol } from '../noise/index.js';
import type { SessionTable } from './session/session-table.js';
import type { MeshSocketLiveness } from './transport/index.js';
import type { ProxyMetrics } from './telemetry/metrics.js';
import type { Logger } from './telemetry/logger.js';
import type { Identity, PeerDirectory } from './peers.js';

export interface MeshContext {
  readonly identity: Identity;
  readonly directory: PeerDirectory;
  readonly protocol: Protocol;
  /** PROTOCOL.md section 2: binds the session to the mesh's trust domain. */
  readonly prologue: Uint8Array;
  readonly backend: CryptoBackend;
  /** The mesh-wide pre-shared key, for `Noise_IKpsk2_...` suites. */
  readonly psk?: Uint8Array;
  readonly sessions: SessionTable;
  readonly metrics: ProxyMetrics;
  readonly log: Logger;
  /** Keepalive and user timeout for every mesh socket, so a vanished peer is noticed. */
  readonly liveness: MeshSocketLiveness;
  /** PROTOCOL.md 4: 10 s per handshake message unless a test says otherwise. */
  readonly handshakeTimeoutMs?: number;
}
