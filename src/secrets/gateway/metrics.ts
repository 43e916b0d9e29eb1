/**
 * The gateway's metrics, registered in the registry its proxy serves on /metrics. Labels
 * from closed sets: `decision` is one of DECISION_LABELS, `rule` a rule id of the policy in
 * force (bounded by the policy, at most 10,000) or `none`, `result` of whoami one of
 * WHOAMI_RESULTS, `backend` one of BACKEND_KINDS,
 * `failure` one of the backend interface's, `event`, `kind`, `state`, `operation` and
 * `result` the fixed lists below. Never an agentId, a path or a key.
 *
 * The cache's and the vault backend's counters are plain numbers in those libraries
 * (`stats()`); they are read when /metrics is scraped, so they cost the request path nothing.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { BackendFailure } from '../backend.js';
import type { CacheStats } from '../cache.js';
import type { VaultStats } from '../backends/vault.js';

/**
 * - `allow`, `deny`: a decision was made (whatever was then answered: 200, 404, 503);
 * - `invalid`: refused before any decision (a bad method, path or body: 4xx);
 * - `unavailable`: decided, but the audit sink could not be written: 503, nothing released.
 */
export const DECISION_LABELS = ['allow', 'deny', 'invalid', 'unavailable'] as const;
export type DecisionLabel = (typeof DECISION_LABELS)[number];

/** The `rule` label of a request no rule decided. */
export const NO_RULE = 'none';

/**
 * `GET /v1/whoami`, which no policy decides (it releases nothing but the caller's own view):
 * `answered` (200) or `refused` (403: the caller's key is not in the registry, or revoked).
 */
export const WHOAMI_RESULTS = ['answered', 'refused'] as const;
export type WhoamiResult = (typeof WHOAMI_RESULTS)[number];

/**
 * Why an audited answer was not taken by the transport (gateway.ts, UndeliveredReason):
 * the gateway reset its connection for too many requests pipelined or for a stalled caller,
 * or it closed otherwise.
 */
export const UNDELIVERED_REASONS = ['pipelined', 'stalled', 'closed'] as const;
export type UndeliveredReasonLabel = (typeof UNDELIVERED_REASONS)[number];

/** Why the gateway reset a connection: more than maxPipelined requests, or a caller that took no answer for stalledAnswerMs. */
export const RESET_REASONS = ['pipelined', 'stalled'] as const;
export type ResetReason = (typeof RESET_REASONS)[number];

export class GatewayMetrics {
  private readonly requests: Counter<'decision' | 'rule'>;
  private readonly seconds: Histogram<'decision'>;
  private readonly whoamis: Readonly<Record<WhoamiResult, { inc(): void }>>;
  readonly backendErrors: Counter<'backend' | 'failure'>;
  readonly auditFailures: Counter;
  private readonly undeliveredAnswers: Counter<'decision' | 'reason'>;
  private readonly resets: Counter<'reason'>;
  /** Children by label values: the hot path hashes no label object. */
  private readonly requestChildren = new Map<string, { inc(): void }>();
  private readonly secondsChildren = new Map<string, { observe(v: number): void }>();

  /**
   * `cache`: the stats of the cache in front of the backend, when there is one; `vault`: the
   * vault backend's, when that is the backend. Each adds its metrics only when given.
   */
  constructor(registry: Registry, sources: { readonly cache?: () => CacheStats; readonly vault?: () => VaultStats; readonly heldBytes?: () => number } = {}) {
    const registers = [registry];
    const heldBytes = sources.heldBytes;
    if (heldBytes !== undefined) {
      new Gauge({
        name: 'noisemesh_secret_answers_held_bytes',
        help: 'Bytes of answers built and not yet taken by the kernel or the mesh session, all connections together (at most http.maxHeldBytes and one connection\'s share)',
        registers,
        collect() {
          this.set(heldBytes());
        },
      });
    }
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
    const whoamis = new Counter({
      name: 'noisemesh_gateway_whoami_requests_total',
      help: 'GET /v1/whoami requests by result: answered (200) or refused (403: the caller is not in the registry, or revoked). No policy decides them: they are not in noisemesh_secret_requests_total',
      labelNames: ['result'],
      registers,
    });
    this.whoamis = { answered: whoamis.labels('answered'), refused: whoamis.labels('refused') };
    // Both series from the start: a dashboard sees 0, not a missing series.
    for (const result of WHOAMI_RESULTS) whoamis.inc({ result }, 0);
    this.backendErrors = new Counter({
      name: 'noisemesh_secret_backend_errors_total',
      help: 'Backend reads that failed, by backend and failure (unavailable, denied); with a cache, once per backend read, including those a stale value hid from the caller',
      labelNames: ['backend', 'failure'],
      registers,
    });
    this.auditFailures = new Counter({
      name: 'noisemesh_secret_audit_failures_total',
      help: 'Audit lines that could not be written (each request answered 503, nothing released)',
      registers,
    });
    this.undeliveredAnswers = new Counter({
      name: 'noisemesh_secret_answers_undelivered_total',
      help: 'Audited answers whose connection closed before the transport took them (each with a delivered:false audit line), by decision and reason: pipelined or stalled (the gateway reset the connection), closed (the caller, a revocation, the gateway closing)',
      labelNames: ['decision', 'reason'],
      registers,
    });
    this.resets = new Counter({
      name: 'noisemesh_gateway_connections_reset_total',
      help: 'Connections the gateway reset: pipelined (more than maxPipelined requests unanswered), stalled (answers held over their limit and none taken for stalledAnswerMs)',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of RESET_REASONS) this.resets.inc({ reason }, 0);
    const cache = sources.cache;
    if (cache !== undefined) {
      new Counter({
        name: 'noisemesh_secret_cache_events_total',
        help: 'Secret cache events: hit, not_found_hit (a remembered "no such secret"), miss (a backend read started), stale (served past its TTL while the backend is unavailable), overloaded (refused: maxConcurrent and maxQueued taken)',
        labelNames: ['event'],
        registers,
        collect() {
          const s = cache();
          this.reset();
          for (const [event, value] of [['hit', s.hits], ['not_found_hit', s.notFoundHits], ['miss', s.misses], ['stale', s.staleServes], ['overloaded', s.overloaded]] as const) {
            this.inc({ event }, value);
          }
        },
      });
      new Gauge({
        name: 'noisemesh_secret_cache_entries',
        help: 'Entries in the secret cache: value (secrets held) or not_found (remembered absences)',
        labelNames: ['kind'],
        registers,
        collect() {
          const s = cache();
          this.set({ kind: 'value' }, s.entries);
          this.set({ kind: 'not_found' }, s.notFoundEntries);
        },
      });
      new Gauge({
        name: 'noisemesh_secret_backend_reads',
        help: 'Backend reads now: in_flight (at most cache.maxConcurrent) or queued (at most cache.maxQueued)',
        labelNames: ['state'],
        registers,
        collect() {
          const s = cache();
          this.set({ state: 'in_flight' }, s.inFlight);
          this.set({ state: 'queued' }, s.queued);
        },
      });
    }
    const vault = sources.vault;
    if (vault !== undefined) {
      new Counter({
        name: 'noisemesh_secret_vault_auth_total',
        help: 'Vault authentications: operation login (kubernetes auth) or renewal (renew-self), result success or failure',
        labelNames: ['operation', 'result'],
        registers,
        collect() {
          const s = vault();
          this.reset();
          this.inc({ operation: 'login', result: 'success' }, s.logins);
          this.inc({ operation: 'login', result: 'failure' }, s.loginFailures);
          this.inc({ operation: 'renewal', result: 'success' }, s.renewals);
          this.inc({ operation: 'renewal', result: 'failure' }, s.renewalFailures);
        },
      });
      new Counter({
        name: 'noisemesh_secret_vault_retries_total',
        help: 'Vault requests sent again after a network error, a timeout, a 5xx or a 429',
        registers,
        collect() {
          this.reset();
          this.inc(vault().retries);
        },
      });
    }
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

  /** A whoami request: counted apart from the secrets requests, and not in their latency histogram. */
  whoami(result: WhoamiResult): void {
    this.whoamis[result].inc();
  }

  undelivered(decision: DecisionLabel, reason: UndeliveredReasonLabel): void {
    this.undeliveredAnswers.inc({ decision, reason });
  }

  connectionReset(reason: ResetReason): void {
    this.resets.inc({ reason });
  }

  backendError(backend: string, failure: BackendFailure): void {
    this.backendErrors.inc({ backend, failure });
  }
}
