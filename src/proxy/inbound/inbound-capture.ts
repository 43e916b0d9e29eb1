/**
 * Plaintext that iptables redirected from an application port (PREROUTING) to the inbound
 * capture port: passed to the original port in `permissive` mode, refused in `strict` mode.
 * Excluded ports (probes) never reach here: iptables leaves them alone.
 */
import type { Socket } from 'node:net';
import { resetSocket } from '../session/socket-reset.js';
import { passThrough, type OriginalDestinationOf } from '../outbound/outbound-listeners.js';
import type { ProxyMetrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/logger.js';

export type InboundMode = 'permissive' | 'strict';

export function handleInboundCaptured(
  app: Socket,
  originalDestinationOf: OriginalDestinationOf,
  mode: InboundMode,
  targetHost: string,
  ownPorts: ReadonlySet<number>,
  metrics: ProxyMetrics,
  log: Logger,
): void {
  let port: number;
  try {
    port = originalDestinationOf(app).port;
  } catch (err) {
    log.warn({ event: 'inbound-refused', reason: (err as Error).message }, 'no original destination');
    resetSocket(app);
    return;
  }
  if (mode === 'strict' || ownPorts.has(port)) {
    metrics.passthrough.inc({ direction: 'inbound', result: 'refused' });
    log.info({ event: 'inbound-refused', port, remote: app.remoteAddress, reason: mode === 'strict' ? 'plaintext (strict)' : 'proxy port' }, 'plaintext refused');
    resetSocket(app);
    return;
  }
  void passThrough(app, targetHost, port, 'inbound', metrics);
}
