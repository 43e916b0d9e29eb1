/**
 * Plaintext that iptables redirected from an application port (PREROUTING) to the inbound
 * capture port: passed to its original destination, address and port, in `permissive` mode,
 * refused in `strict` mode. Excluded ports (probes) never reach here: iptables leaves them
 * alone. The original destination is the pod's own address, so a server bound only to
 * 127.0.0.1 stays unreachable, as without the mesh; one that is not the pod's (a packet
 * addressed elsewhere) is refused, so the proxy never relays to another host. The proxy's
 * connection runs as its UID over `lo`: neither capture chain sees it, so nothing loops.
 */
import type { Socket } from 'node:net';
import { resetSocket } from '../session/socket-reset.js';
import type { PodAddresses } from './arrival-address.js';
import type { BuiltInServices } from './built-in-services.js';
import { passThrough, type OriginalDestinationOf } from '../outbound/outbound-listeners.js';
import type { ProxyMetrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/logger.js';

export type InboundMode = 'permissive' | 'strict';

export function handleInboundCaptured(
  app: Socket,
  originalDestinationOf: OriginalDestinationOf,
  mode: InboundMode,
  podAddresses: PodAddresses,
  ownPorts: ReadonlySet<number>,
  metrics: ProxyMetrics,
  log: Logger,
  services?: BuiltInServices,
): void {
  let address: string;
  let port: number;
  try {
    ({ address, port } = originalDestinationOf(app));
  } catch (err) {
    log.warn({ event: 'inbound-refused', reason: (err as Error).message }, 'no original destination');
    resetSocket(app);
    return;
  }
  // A built-in service answers itself and relays nowhere, so the pod-address check, which
  // keeps the proxy from relaying to another host, has nothing to guard there.
  const refusal =
    mode === 'strict' ? 'plaintext (strict)'
    : ownPorts.has(port) ? 'proxy port'
    : services !== undefined ? (services.takePlaintext(port, app) ? 'taken' : 'no built-in service on this port')
    : !podAddresses.has(address) ? "not this pod's address"
    : null;
  if (refusal === 'taken') {
    metrics.passthrough.inc({ direction: 'inbound', result: 'passed' });
    return;
  }
  if (refusal !== null) {
    metrics.passthrough.inc({ direction: 'inbound', result: 'refused' });
    log.info({ event: 'inbound-refused', port, remote: app.remoteAddress, reason: refusal }, 'plaintext refused');
    resetSocket(app);
    return;
  }
  void passThrough(app, address, port, 'inbound', metrics);
}
