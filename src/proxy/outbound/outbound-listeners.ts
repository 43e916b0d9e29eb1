/**
 * Outbound entry points. The explicit listener knows its peer from configuration; the
 * capture listener learns the destination from iptables (SO_ORIGINAL_DST) and resolves it
 * through the registry: a meshed pod gets Noise, anything else passes through in plaintext
 * (permissive) or is refused (strict).
 */
import type { Socket } from 'node:net';
import { LIMITS, PROTOCOL } from '../protocol/index.js';
import { connectTcp } from '../session/connect.js';
import { relayPlain } from '../session/plain-relay.js';
import { resetSocket } from '../session/socket-reset.js';
import type { ProxyMetrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/logger.js';
import type { MeshPeer, PeerDirectory } from '../peers.js';
import type { MeshInitiator } from './mesh-initiator.js';

export interface OriginalDestination {
  readonly address: string;
  readonly port: number;
}

/** Finds where a redirected connection was going; replaceable so tests need no iptables. */
export type OriginalDestinationOf = (socket: Socket) => OriginalDestination;

export type OutboundMode = 'permissive' | 'strict';

export interface ExplicitRoute {
  readonly peer: string;
  readonly port: number;
}

/** Spreads connections over a peer's pods: agentId -> entries, round robin. */
export class PeerBalancer {
  private next = 0;
  pick(peers: readonly MeshPeer[]): MeshPeer | undefined {
    const usable = peers.filter((p) => p.addresses.length > 0);
    if (usable.length === 0) return undefined;
    return usable[this.next++ % usable.length];
  }
}

export function handleExplicit(
  app: Socket,
  route: ExplicitRoute,
  directory: PeerDirectory,
  initiator: MeshInitiator,
  balancer: PeerBalancer,
  metrics: ProxyMetrics,
  log: Logger,
): void {
  const peer = balancer.pick(directory.peersByAgentId(route.peer));
  if (peer === undefined) {
    metrics.handshakes.inc({ role: 'initiator', result: 'no-peer' });
    log.warn({ event: 'outbound-refused', peer: route.peer, reason: 'no valid registry entry with an address' }, 'no route to peer');
    resetSocket(app);
    return;
  }
  void initiator.open(app, {
    peer,
    host: peer.addresses[0]!,
    meshPort: peer.meshPort ?? PROTOCOL.defaultMeshPort,
    targetPort: route.port,
  });
}

export function handleCaptured(
  app: Socket,
  originalDestinationOf: OriginalDestinationOf,
  mode: OutboundMode,
  directory: PeerDirectory,
  initiator: MeshInitiator,
  metrics: ProxyMetrics,
  log: Logger,
): void {
  let destination: OriginalDestination;
  try {
    destination = originalDestinationOf(app);
  } catch (err) {
    // Reached the capture port directly, not through iptables: there is nowhere to go.
    log.warn({ event: 'outbound-refused', reason: (err as Error).message }, 'no original destination');
    resetSocket(app);
    return;
  }
  const resolved = directory.resolveAddress(destination.address);
  if (resolved.kind === 'refuse') {
    metrics.passthrough.inc({ direction: 'outbound', result: 'refused' });
    log.warn({ event: 'outbound-refused', port: destination.port, reason: resolved.reason }, 'meshed destination unusable');
    resetSocket(app);
    return;
  }
  if (resolved.kind === 'peer') {
    const { peer } = resolved;
    void initiator.open(app, {
      peer,
      host: destination.address,
      meshPort: peer.meshPort ?? PROTOCOL.defaultMeshPort,
      targetPort: destination.port,
    });
    return;
  }
  if (mode === 'strict') {
    metrics.passthrough.inc({ direction: 'outbound', result: 'refused' });
    log.info({ event: 'outbound-refused', port: destination.port, reason: 'not a meshed peer (strict)' }, 'plaintext refused');
    resetSocket(app);
    return;
  }
  void passThrough(app, destination.address, destination.port, 'outbound', metrics);
}

/** Plaintext to where the connection was going. The proxy's UID keeps it out of capture. */
export async function passThrough(app: Socket, host: string, port: number, direction: 'inbound' | 'outbound', metrics: ProxyMetrics): Promise<void> {
  app.pause();
  try {
    const upstream = await connectTcp(host, port, LIMITS.peerConnectTimeoutMs);
    metrics.passthrough.inc({ direction, result: 'passed' });
    relayPlain(app, upstream);
  } catch {
    metrics.passthrough.inc({ direction, result: 'unreachable' });
    resetSocket(app);
  }
}
