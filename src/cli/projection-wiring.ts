/**
 * Joins the secrets projection (src/secrets/projection) to a proxy: the proxy is the mesh
 * client that carries each fetch to the gateway peer (Proxy.openSession, the path an
 * explicit listener's connections take), its metrics registry holds the projection's
 * metrics, and /readyz has a `secrets` condition, false with the reason until the first
 * projection is on disk. `noisemesh proxy` and `noisemesh secrets fetch` both build the
 * projector here.
 */
import { SecretsProjector, type ProjectionConfig } from '../secrets/index.js';
import type { Logger, Proxy } from '../proxy/index.js';

export function projectorFor(config: ProjectionConfig, proxy: Proxy, log: Logger, withReadiness: boolean): SecretsProjector {
  const projector: SecretsProjector = new SecretsProjector({
    config,
    dial: (app, agentId, port) => proxy.openSession(app, agentId, port),
    log,
    metrics: proxy.metrics.registry,
    ...(withReadiness && {
      onState: (state) => proxy.setReadinessCondition('secrets', { ...state, details: () => projector.details() }),
    }),
  });
  if (withReadiness) proxy.setReadinessCondition('secrets', { ready: false, reason: 'fetching the secrets from the gateway', details: () => projector.details() });
  return projector;
}
