/**
 * The gateway's metrics, registered in the registry its proxy serves on /metrics. Labels
 * from closed sets: `decision` is one of DECISION_LABELS, `rule` a rule id of the policy in
 * force (bounded by the policy, at most 10,000) or `none`, `backend` and `failure` from the
 * backend interface. Never an agentId, a path or a key.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { BackendFailure } from '../backend.js';

/**
 * - `allow`, `deny`: a decision was made (whatever was then answered: 200, 404, 503);
 * - `invalid`: refused before any decision (a bad method, path or body: 4xx);
 * - `unavailable`: decided, but the audit sink could not be written: 503, nothing released.
 */
export const DECISION_LABELS = ['allow', 'deny', 'invalid', 'unavailable'] as const;
export type DecisionLabel = (typeof DECISION_LABELS)[number];

/** The `rule` label of a request no rule decided. */
export const NO_RULE = 'none';

export class GatewayMetrics {
  private readonly requests: Counter<'decision' | 'rule'>;
  private readonly seconds: Histogram<'decision'>;
  readonly backendErrors: Counter<'backend' | 'failure'>;
  readonly auditFailures: Counter;
  /** Children by label values: the hot path hashes no label object. */
  private readonly requestChildren = new Map<string, { inc(): void }>();
  private readonly secondsChildren = new Map<string, { observe(v: number): void }>();

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'noisemesh_secret_requests_total',
      help: 'Secrets API requests by decision (allow, deny, invalid, unavailable) and the rule that decided (none: no rule)',
      labelNames: ['decision', 'rule'],
      registers,
    });
    this.seconds = new Histogram({
      name: 'noisemesh_secret_request_duration_seconds',
      help: 'Time from a request to its answer (decision, backend read, audit line), by decision',
      labelNames: ['decision'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5],
      registers,
    });
    this.backendErrors = new Counter({
      name: 'noisemesh_secret_backend_errors_total',
      help: 'Backend reads that failed, by backend and failure (unavailable, denied)',
      labelNames: ['backend', 'failure'],
      registers,
    });
    this.auditFailures = new Counter({
      name: 'noisemesh_secret_audit_failures_total',
      help: 'Audit lines that could not be written (each request answered 503, nothing released)',
      registers,
    });
  }

  request(decision: DecisionLabel, rule: string | null, seconds: number): void {
    const ruleLabel = rule ?? NO_RULE;
    const key = `${decision}\u0000${ruleLabel}`;
    let counter = this.requestChildren.get(key);
    if (counter === undefined) this.requestChildren.set(key, (counter = this.requests.labels(decision, ruleLabel)));
    counter.inc();
    let histogram = this.secondsChildren.get(decision);
    if (histogram === undefined) this.secondsChildren.set(decision, (histogram = this.seconds.labels(decision)));
    histogram.observe(seconds);
  }

  backendError(backend: string, failure: BackendFailure): void {
    this.backendErrors.inc({ backend, failure });
  }
}
