/**
 * What the k6 scripts of this folder share: the scenario (from scenarios.json, named by the
 * SCENARIO environment variable), its k6 options and thresholds, the metrics every script
 * records, and the handleSummary that writes a LoadSummary (contract.ts) as JSON: the same
 * summary `npm run bench -- load` prints.
 *
 * Environment: TARGET_URL (required; http://host:port of the target, through the mesh),
 * SCENARIO (a name in scenarios.json; default: the file's first of the script's kind),
 * SUMMARY_FILE (default summary.json), METRICS_URL (churn: a noisemesh admin /metrics whose
 * accepted handshakes are counted).
 *
 * Metrics: load_latency (successful requests only, from the request's start including any
 * connect: so a fast reset is never a fast request), load_errors (a Rate over every request),
 * and one counter per error kind. http_req_failed stays k6's own and is not used.
 */
import http, { type RefinedResponse, type ResponseType } from 'k6/http';
import { Counter, Rate, Trend } from 'k6/metrics';
import type { Options, Scenario as K6Scenario } from 'k6/options';
import type { LatencyMs, LoadSummary, Scenario, ScenarioFile, ScenarioKind, StepSummary, ThresholdResult } from './contract.ts';
import { kneeOf, rampProfile, scenarioSeconds } from './contract.ts';

const FILE = JSON.parse(open('./scenarios.json')) as ScenarioFile;

/** The scenario this run is for: SCENARIO, which must be of `kind`. */
export function pickScenario<K extends ScenarioKind>(kind: K): Extract<Scenario, { kind: K }> {
  const wanted = __ENV.SCENARIO;
  const found = FILE.scenarios.find((s) => (wanted === undefined || wanted === '' ? s.kind === kind : s.name === wanted));
  if (found === undefined) throw new Error(`scenarios.json has no scenario ${wanted ?? `of kind ${kind}`}`);
  if (found.kind !== kind) throw new Error(`scenario ${found.name} is of kind ${found.kind}; this script runs ${kind} scenarios`);
  return found as Extract<Scenario, { kind: K }>;
}

export function targetUrl(): string {
  const url = __ENV.TARGET_URL;
  if (url === undefined || !/^https?:\/\/[^/]+$/.test(url)) throw new Error('set TARGET_URL to http://host:port (no path)');
  return url;
}

export const latency = new Trend('load_latency', true);
export const errors = new Rate('load_errors');
const errorCounters = {
  status: new Counter('load_error_status'),
  body: new Counter('load_error_body'),
  network: new Counter('load_error_network'),
} as const;
export const handshakeCount = new Counter('load_handshakes');

const TREND_STATS = ['p(50)', 'p(99)', 'p(99.9)', 'max', 'count'];

/** The k6 options of a scenario: its executor, VUs from maxInFlight, and its thresholds. */
export function optionsFor(s: Scenario): Options {
  const thresholds: Record<string, string[]> = {
    load_latency: [`p(99)<${s.thresholds.p99Ms}`],
    load_errors: [`rate<=${s.thresholds.errorRate}`],
  };
  let executor: K6Scenario;
  if (s.kind === 'ramp') {
    const { stages, windows } = rampProfile(s);
    executor = {
      executor: 'ramping-arrival-rate',
      startRate: s.steps[0]!,
      timeUnit: '1s',
      stages: stages.map((st) => ({ duration: `${st.seconds}s`, target: st.target })),
      preAllocatedVUs: Math.min(s.maxInFlight, 50),
      maxVUs: s.maxInFlight,
    };
    // A threshold per step makes k6 keep (and handleSummary see) each step's sub-metrics.
    windows.forEach((_, i) => {
      thresholds[`load_latency{step:${i}}`] = [`p(99)<${s.thresholds.p99Ms}`];
      thresholds[`load_errors{step:${i}}`] = [`rate<=${s.thresholds.errorRate}`];
    });
  } else {
    executor = {
      executor: 'constant-arrival-rate',
      rate: s.rate,
      timeUnit: '1s',
      duration: `${s.durationSeconds}s`,
      preAllocatedVUs: Math.min(s.maxInFlight, Math.max(10, Math.ceil(s.rate / 20))),
      maxVUs: s.maxInFlight,
    };
  }
  return {
    scenarios: { [s.name]: executor },
    thresholds,
    summaryTrendStats: TREND_STATS,
    noConnectionReuse: s.kind === 'churn',
    discardResponseBodies: false,
  };
}

/** The index of the ramp step whose hold window holds `elapsedMs`, or -1 while climbing. */
export function stepAt(s: Scenario, elapsedMs: number): number {
  if (s.kind !== 'ramp') return -1;
  const t = elapsedMs / 1000;
  return rampProfile(s).windows.findIndex((w) => t >= w.fromSeconds && t < w.toSeconds);
}

/**
 * Records one request: an error unless its status is `expected` and (when `bodyBytes` is not
 * null) its body has that length. Latency counts the connect too: with a new connection per
 * request, that is where a handshake's time goes.
 */
export function record(res: RefinedResponse<ResponseType | undefined>, expected: number, bodyBytes: number | null, tags: Record<string, string>): void {
  let kind: keyof typeof errorCounters | null = null;
  if (res.status === 0) kind = 'network';
  else if (res.status !== expected) kind = 'status';
  else if (bodyBytes !== null && (typeof res.body === 'string' ? res.body.length : (res.body?.byteLength ?? 0)) !== bodyBytes) kind = 'body';
  errors.add(kind !== null, tags);
  if (kind !== null) {
    errorCounters[kind].add(1, tags);
    return;
  }
  const t = res.timings;
  latency.add(t.blocked + t.connecting + t.tls_handshaking + t.duration, tags);
}

/** Accepted handshakes in a noisemesh /metrics page (both roles), or null if unreachable. */
export function acceptedHandshakes(metricsUrl: string | undefined): number | null {
  if (metricsUrl === undefined || metricsUrl === '') return null;
  const res = http.get(metricsUrl, { timeout: '5s', tags: { name: 'metrics' } });
  if (res.status !== 200 || typeof res.body !== 'string') return null;
  let sum = 0;
  for (const line of res.body.split('\n')) {
    const m = /^noisemesh_handshakes_total\{([^}]*)\} (\d+)/.exec(line);
    if (m !== null && /result="accepted"/.test(m[1]!)) sum += Number(m[2]);
  }
  return sum;
}

/** The subset of k6's end-of-test data handleSummary reads. */
interface MetricData {
  readonly values: Readonly<Record<string, number>>;
}
export interface SummaryData {
  readonly metrics: Readonly<Record<string, MetricData | undefined>>;
}

function latencyOf(m: MetricData | undefined): LatencyMs | null {
  if (m === undefined || !((m.values.count ?? 0) > 0)) return null;
  return { p50: m.values['p(50)']!, p99: m.values['p(99)']!, p999: m.values['p(99.9)']!, max: m.values.max! };
}

function requestsOf(m: MetricData | undefined): { requests: number; errors: number } {
  const passes = m?.values.passes ?? 0;
  const fails = m?.values.fails ?? 0;
  // A Rate's passes are the true values: requests that failed.
  return { requests: passes + fails, errors: passes };
}

function threshold(limit: number, actual: number | null, ok: (a: number) => boolean): ThresholdResult {
  return { limit, actual, ok: actual !== null && ok(actual) };
}

/** k6's end-of-test data as a LoadSummary. */
export function summarize(s: Scenario, data: SummaryData): LoadSummary {
  const m = data.metrics;
  const total = requestsOf(m.load_errors);
  const lat = latencyOf(m.load_latency);
  const seconds = scenarioSeconds(s);
  const dropped = m.dropped_iterations?.values.count ?? 0;
  const errorRate = total.requests > 0 ? total.errors / total.requests : 0;
  const thresholds = {
    p99Ms: threshold(s.thresholds.p99Ms, lat?.p99 ?? null, (a) => a < s.thresholds.p99Ms),
    errorRate: threshold(s.thresholds.errorRate, total.requests > 0 ? errorRate : null, (a) => a <= s.thresholds.errorRate),
  };
  const errorKinds: Record<string, number> = {};
  for (const kind of Object.keys(errorCounters)) errorKinds[kind] = m[`load_error_${kind}`]?.values.count ?? 0;
  let extra: Partial<LoadSummary> = {};
  if (s.kind === 'ramp') {
    // dropped_iterations carries the scenario's tags only, and the ramp is one scenario (one
    // VU pool, one in-flight cap for every step, as the runner has): a run that dropped
    // nothing dropped nothing in any step; once it dropped anything, no step's count is known,
    // and a step whose thresholds held is then not ok but unknown (ok null, kneeOf).
    const stepDropped = dropped === 0 ? 0 : null;
    const steps: StepSummary[] = rampProfile(s).windows.map((w, i) => {
      const st = requestsOf(m[`load_errors{step:${i}}`]);
      const stLat = latencyOf(m[`load_latency{step:${i}}`]);
      const stRate = st.requests > 0 ? st.errors / st.requests : 0;
      const held = st.requests > 0 && stLat !== null && stLat.p99 < s.thresholds.p99Ms && stRate <= s.thresholds.errorRate;
      return {
        rate: w.rate,
        requests: st.requests,
        dropped: stepDropped,
        errors: st.errors,
        errorRate: stRate,
        latencyMs: stLat,
        ok: !held ? false : stepDropped === 0 ? true : null,
      };
    });
    extra = { steps, kneeRate: kneeOf(steps) };
  }
  if (s.kind === 'churn') {
    const count = m.load_handshakes?.values.count;
    extra = { handshakes: count === undefined ? null : { count, perSecond: count / seconds } };
  }
  return {
    scenario: s.name,
    kind: s.kind,
    generator: 'k6',
    targetRate: s.kind === 'ramp' ? s.steps[s.steps.length - 1]! : s.rate,
    durationSeconds: seconds,
    requests: total.requests,
    dropped,
    sentRate: total.requests / seconds,
    errors: total.errors,
    errorRate,
    errorKinds,
    latencyMs: lat,
    thresholds,
    ok: thresholds.p99Ms.ok && thresholds.errorRate.ok && dropped === 0,
    ...extra,
  };
}

/** handleSummary's result: the summary as JSON to SUMMARY_FILE and on stdout. */
export function summaryOutputs(s: Scenario, data: SummaryData): Record<string, string> {
  const json = JSON.stringify(summarize(s, data));
  return { stdout: `${json}\n`, [__ENV.SUMMARY_FILE || 'summary.json']: json };
}

/** `n` bytes of ASCII, the request body. */
export function payload(n: number): string {
  return 'x'.repeat(n);
}
