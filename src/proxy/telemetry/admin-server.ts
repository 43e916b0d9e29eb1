/**
 * The admin port: /metrics (Prometheus), /healthz (the process answers), /readyz (registry
 * loaded and listeners bound; when not, why), /debug/sessions (JSON; agentIds, ports, bytes,
 * age: no keys).
 */
import { createServer, type Server } from 'node:http';
import type { ProxyMetrics } from './metrics.js';
import type { SessionSummary } from '../session/secure-session.js';

export interface AdminSources {
  readonly metrics: ProxyMetrics;
  /** Each readiness condition by name; ready when all are true. */
  readiness(): Record<string, boolean>;
  /** For each condition, what it means when it is false: /readyz shows those of the false ones. */
  reasons?(): Record<string, string>;
  /** More for the /readyz body (e.g. the registry's staleness); never decides readiness. */
  readinessDetails?(): Record<string, unknown>;
  sessions(): SessionSummary[];
}

export function createAdminServer(sources: AdminSources): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    switch (path) {
      case '/healthz':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      case '/readyz': {
        const checks = sources.readiness();
        const ready = Object.values(checks).every(Boolean);
        const body: { ready: boolean; checks: Record<string, boolean>; reasons?: Record<string, string> } = { ready, checks };
        if (!ready) {
          const all = sources.reasons?.() ?? {};
          body.reasons = Object.fromEntries(Object.keys(checks).filter((c) => !checks[c]).map((c) => [c, all[c] ?? 'not ready']));
        }
        res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify({ ...body, ...sources.readinessDetails?.() })}\n`);
        return;
      }
      case '/metrics':
        sources.metrics.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': sources.metrics.registry.contentType }).end(text),
          () => res.writeHead(500).end(),
        );
        return;
      case '/debug/sessions':
        res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify({ sessions: sources.sessions() }, null, 2)}\n`);
        return;
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics /healthz /readyz /debug/sessions\n');
    }
  });
}
