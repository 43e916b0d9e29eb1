/**
 * Outbound entry points. The explicit listener knows its peer from configuration; the
 * capture listener learns the destination from iptables (SO_ORIGINAL_DST) and resolves it
 * through the registry: a meshed pod gets Noise, anything else passes through in plaintext
 * (permissive) or is refused (strict). A Service's ClusterIP:port goes to one of its meshed
 * endpoints, picked by the ServiceBalancer, with up to MAX_SERVICE_TRIES tries.
 */
import type { Socket } from 'node:net';
import { LIMITS, PROTOCOL } from '../protocol/index.js';
import { connectTcp } from '../session/connect.js';
import { relayPlain } from '../session/plain-relay.js';
import { resetSocket } from '../session/socket-reset.js';
import type { ProxyMetrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/logger.js';
import type { MeshPeer, PeerDirectory, ServiceEndpoint } from '../peers.js';
import type { MeshInitiator } from './mesh-initiator.js';
import type { MeshEndpoint, ServiceBalancer } from './service-balancer.js';

/** Endpoints tried for one connection to a Service before the application's is reset. */
export const MAX_SERVICE_TRIES = 3;

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
  balancer: ServiceBalancer,
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
  const resolved = directory.resolveAddress(destination.address, destination.port);
  if (resolved.kind === 'service') {
    void openService(app, destination, resolved.service, resolved.endpoints, mode, initiator, balancer, metrics, log);
    return;
  }
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

/**
 * A connection to a Service's ClusterIP:port. Its meshed endpoints (valid registry entries)
 * take it over Noise, picked by power of two choices; a try that fails before the session
 * starts (no connection, no answer, P2 status 1, 2, 5 or 7) moves to another endpoint, at
 * most MAX_SERVICE_TRIES in all, and then the application's connection is reset. The
 * application's bytes are not read until a handshake succeeds, so a retry loses nothing.
 *
 * Meshed endpoints are preferred whenever there is one: a connection to a Service is never
 * downgraded to plaintext because an unmeshed pod backs it too. With none:
 * - an endpoint that is meshed but unusable (revoked, an address two entries claim) makes
 *   the connection refused in either mode, as such a pod IP is: plaintext could reach it;
 * - otherwise (unmeshed endpoints only, or none at all) the outbound mode decides:
 *   permissive passes it in plaintext to the ClusterIP, where the node's Service rules
 *   (kube-proxy's DNAT, which our UID is not exempt from) pick the endpoint as they would
 *   without a mesh; strict refuses it.
 */
async function openService(
  app: Socket,
  destination: OriginalDestination,
  service: string,
  endpoints: readonly ServiceEndpoint[],
  mode: OutboundMode,
  initiator: MeshInitiator,
  balancer: ServiceBalancer,
  metrics: ProxyMetrics,
  log: Logger,
): Promise<void> {
  const meshed: MeshEndpoint[] = [];
  let refused: string | undefined;
  for (const e of endpoints) {
    if (e.lookup.kind === 'peer') meshed.push({ peer: e.lookup.peer, address: e.address, port: e.port });
    else if (e.lookup.kind === 'refuse') refused ??= e.lookup.reason;
  }
  if (meshed.length === 0) {
    if (refused !== undefined || mode === 'strict') {
      metrics.passthrough.inc({ direction: 'outbound', result: 'refused' });
      const reason = refused ?? (endpoints.length === 0 ? 'no ready endpoint (strict)' : 'no meshed endpoint (strict)');
      log.info({ event: 'outbound-refused', service, port: destination.port, reason }, 'service connection refused');
      resetSocket(app);
      return;
    }
    await passThrough(app, destination.address, destination.port, 'outbound', metrics);
    return;
  }
  const tried = new Set<MeshEndpoint>();
  for (let i = 0; i < MAX_SERVICE_TRIES; i++) {
    const endpoint = balancer.pick(meshed, tried);
    if (endpoint === undefined) break;
    tried.add(endpoint);
    const done = balancer.begin(endpoint.peer);
    let outcome;
    try {
      outcome = await initiator.attempt(app, {
        peer: endpoint.peer,
        host: endpoint.address,
        meshPort: endpoint.peer.meshPort ?? PROTOCOL.defaultMeshPort,
        targetPort: endpoint.port,
      });
    } finally {
      done();
    }
    if (outcome.ok) return;
    if (outcome.appGone) return resetSocket(app);
    if (!outcome.retryable) break;
  }
  log.warn({ event: 'outbound-refused', service, port: destination.port, tries: tried.size, reason: 'no endpoint accepted the connection' }, 'service connection reset');
  resetSocket(app);
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
