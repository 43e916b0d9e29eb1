/**
 * A run's raw record (generator.ts) as a LoadSummary (bench/k6/contract.ts), the shape a k6
 * script's handleSummary writes too. Latency percentiles are k6's (k6Percentile) over
 * successful requests only: a request that failed fast (a reset) is an error, never a fast request.
 */
import { kneeOf, rampProfile, scenarioSeconds, type LatencyMs, type LoadSummary, type Scenario, type StepSummary, type ThresholdResult } from '../k6/contract.js';
import { quantile } from '../lib/stats.js';
import { OUTCOMES, outcomeOf, type RawRun } from './generator.js';

/**
 * k6's `p(percent)` of an ascending array, as a k6 threshold or summary computes it (its Trend's
 * TrendSink.P, given percent / 100): at rank percent/100 x (n - 1), interpolated linearly
 * between the values at the two closest ranks. So a threshold `p(99)<25` judges the runner's
 * samples exactly as k6 would judge the same samples.
 */
export function k6Percentile(sorted: ArrayLike<number>, percent: number): number {
  if (sorted.length === 0) throw new RangeError('no values');
  return quantile(sorted, percent / 100);
}

/** p50, p99, p99.9 (k6Percentile) and max of some latencies, ms; null when there are none. */
export function latencySummary(values: readonly number[] | Float64Array): LatencyMs | null {
  const sorted = Float64Array.from(values).sort();
  if (sorted.length === 0) return null;
  return { p50: k6Percentile(sorted, 50), p99: k6Percentile(sorted, 99), p999: k6Percentile(sorted, 99.9), max: sorted[sorted.length - 1]! };
}

interface Tally {
  requests: number;
  dropped: number;
  errors: number;
  kinds: Record<string, number>;
  latencies: number[];
}

function tally(raw: RawRun, from: number, to: number): Tally {
  const t: Tally = { requests: 0, dropped: 0, errors: 0, kinds: {}, latencies: [] };
  for (const o of OUTCOMES) if (o !== 'ok' && o !== 'dropped') t.kinds[o] = 0;
  for (let i = from; i < to; i++) {
    const outcome = outcomeOf(raw.outcome[i]!);
    if (outcome === 'dropped') {
      t.dropped++;
      continue;
    }
    t.requests++;
    if (outcome === 'ok') t.latencies.push(raw.latencyMs[i]!);
    else {
      t.errors++;
      t.kinds[outcome]!++;
    }
  }
  return t;
}

function threshold(limit: number, actual: number | null, ok: (a: number) => boolean): ThresholdResult {
  return { limit, actual, ok: actual !== null && ok(actual) };
}

/** First index whose scheduled time is at or after `ms`. */
function indexAt(schedule: Float64Array, ms: number): number {
  let lo = 0;
  let hi = schedule.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (schedule[mid]! < ms) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Requests written to a connection per second: over the scheduled `seconds`, or until the last
 * was written when that is later (requests that waited in the client for a free connection
 * went out after their time, and the rate is what went out, not what was due).
 */
export function sentRate(raw: RawRun, seconds: number): number {
  let sent = 0;
  let last = 0;
  for (const t of raw.sentMs) {
    if (Number.isNaN(t)) continue;
    sent++;
    if (t > last) last = t;
  }
  return sent / Math.max(seconds, last / 1000);
}

export function summarizeRun(s: Scenario, raw: RawRun): LoadSummary {
  const n = raw.schedule.length;
  const all = tally(raw, 0, n);
  const seconds = scenarioSeconds(s);
  const lat = latencySummary(all.latencies);
  const errorRate = all.requests > 0 ? all.errors / all.requests : 0;
  const thresholds = {
    p99Ms: threshold(s.thresholds.p99Ms, lat?.p99 ?? null, (a) => a < s.thresholds.p99Ms),
    errorRate: threshold(s.thresholds.errorRate, all.requests > 0 ? errorRate : null, (a) => a <= s.thresholds.errorRate),
  };
  let extra: Partial<LoadSummary> = {};
  if (s.kind === 'ramp') {
    const steps: StepSummary[] = rampProfile(s).windows.map((w) => {
      const t = tally(raw, indexAt(raw.schedule, w.fromSeconds * 1000), indexAt(raw.schedule, w.toSeconds * 1000));
      const stLat = latencySummary(t.latencies);
      const stRate = t.requests > 0 ? t.errors / t.requests : 0;
      return {
        rate: w.rate,
        requests: t.requests,
        dropped: t.dropped,
        errors: t.errors,
        errorRate: stRate,
        latencyMs: stLat,
        ok: t.requests > 0 && t.dropped === 0 && stLat !== null && stLat.p99 < s.thresholds.p99Ms && stRate <= s.thresholds.errorRate,
      };
    });
    extra = { steps, kneeRate: kneeOf(steps) };
  }
  if (s.kind === 'churn') extra = { handshakes: null };
  return {
    scenario: s.name,
    kind: s.kind,
    generator: 'node-open-model',
    targetRate: s.kind === 'ramp' ? s.steps[s.steps.length - 1]! : s.rate,
    durationSeconds: seconds,
    requests: all.requests,
    dropped: all.dropped,
    sentRate: sentRate(raw, seconds),
    errors: all.errors,
    errorRate,
    errorKinds: all.kinds,
    latencyMs: lat,
    thresholds,
    ok: thresholds.p99Ms.ok && thresholds.errorRate.ok && all.dropped === 0,
    ...extra,
  };
}

/** The generator's own lateness: p99 and max of how far behind schedule requests started, ms. */
export function lagSummary(raw: RawRun): { p99: number; max: number } | null {
  const lags = Array.from(raw.lagMs).filter((v) => !Number.isNaN(v));
  const l = latencySummary(lags);
  return l === null ? null : { p99: l.p99, max: l.max };
}
