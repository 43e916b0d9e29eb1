/**
 * The load harness's contract, shared by the k6 scripts of this folder and the runner in
 * bench/load/: the shape of scenarios.json (the one source of truth for rates, durations,
 * payloads and thresholds) and of the summary both write, and the few pure functions both
 * sides must compute alike (a ramp's profile, the gateway mix). No imports: k6 loads it as
 * it is, and the Node project compiles it with everything else.
 */

/** What a scenario does; each kind has one k6 script (`http.ts`, `ramp.ts`, `churn.ts`, `gateway.ts`). */
export type ScenarioKind = 'constant' | 'ramp' | 'churn' | 'gateway';

/** Pass or fail conditions, as k6 thresholds: on successful requests' latency and on errors. */
export interface Thresholds {
  /** The 99th percentile of successful requests' latency must stay below this, ms. */
  readonly p99Ms: number;
  /** Failed requests over all requests started must stay at or below this (0: none may fail). */
  readonly errorRate: number;
}

interface ScenarioBase {
  /** Unique; what `SCENARIO` names for a k6 script and what the runner prints. */
  readonly name: string;
  readonly kind: ScenarioKind;
  readonly description: string;
  readonly thresholds: Thresholds;
  /**
   * Requests allowed in flight at once (k6: maxVUs; the runner: its cap). An arrival beyond
   * it is dropped and counted (k6's dropped_iterations), never queued without bound.
   */
  readonly maxInFlight: number;
}

/** HTTP through the mesh at a fixed arrival rate, keep-alive connections. */
export interface ConstantScenario extends ScenarioBase {
  readonly kind: 'constant';
  /** Requests per second. */
  readonly rate: number;
  readonly durationSeconds: number;
  /** POST body size; the target answers with a body of responseBytes. */
  readonly requestBytes: number;
  readonly responseBytes: number;
}

/** A staircase of arrival rates, each held for stepSeconds: the knee is the last step that passes. */
export interface RampScenario extends ScenarioBase {
  readonly kind: 'ramp';
  /** Requests per second of each step, ascending. */
  readonly steps: readonly number[];
  readonly stepSeconds: number;
  readonly requestBytes: number;
  readonly responseBytes: number;
}

/** A new TCP connection per request, hence a new Noise handshake per request. */
export interface ChurnScenario extends ScenarioBase {
  readonly kind: 'churn';
  readonly rate: number;
  readonly durationSeconds: number;
  readonly requestBytes: number;
  readonly responseBytes: number;
}

/**
 * Secret fetches from the secrets gateway (issue 11's API): `GET /v1/secrets/{path}`, 200 for
 * a path the caller's policy allows, 403 for one it denies. Any other answer is an error.
 */
export interface GatewayScenario extends ScenarioBase {
  readonly kind: 'gateway';
  readonly rate: number;
  readonly durationSeconds: number;
  /** Share of requests for a denied path, 0..1, spread evenly over the run. */
  readonly deniedShare: number;
  readonly allowedPaths: readonly string[];
  readonly deniedPaths: readonly string[];
}

export type Scenario = ConstantScenario | RampScenario | ChurnScenario | GatewayScenario;

export interface ScenarioFile {
  readonly scenarios: readonly Scenario[];
}

/**
 * Latency of successful requests, ms. Percentiles as k6's Trend computes `p(N)` (TrendSink.P):
 * at rank N/100 x (n - 1) of the ascending values, interpolated linearly between the two
 * closest ranks; the runner computes them the same way (bench/load/summary.ts, k6Percentile).
 */
export interface LatencyMs {
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

export interface ThresholdResult {
  readonly limit: number;
  /** null: nothing to measure (no successful request). */
  readonly actual: number | null;
  readonly ok: boolean;
}

/** One step of a ramp. */
export interface StepSummary {
  readonly rate: number;
  readonly requests: number;
  /**
   * Arrivals of the step not started (maxInFlight outstanding). null where unknown: k6 counts
   * dropped_iterations per scenario, and a ramp is one scenario, so once its run dropped any
   * arrival k6 cannot say in which step (bench/k6/lib.ts, summarize).
   */
  readonly dropped: number | null;
  readonly errors: number;
  readonly errorRate: number;
  readonly latencyMs: LatencyMs | null;
  /**
   * Its thresholds held, it had requests, and it dropped nothing: true; any of those failed:
   * false; its thresholds held but its drops are unknown: null (never reported ok).
   */
  readonly ok: boolean | null;
}

/**
 * What one run of one scenario against one target produced: the JSON a k6 script's
 * handleSummary writes and the runner's client prints.
 */
export interface LoadSummary {
  readonly scenario: string;
  readonly kind: ScenarioKind;
  /** Who made the load: 'k6', or the runner's open-model generator on node:http. */
  readonly generator: 'k6' | 'node-open-model';
  /** Offered rate, requests/s (a ramp: its top step). */
  readonly targetRate: number;
  readonly durationSeconds: number;
  /** Requests started (answered or failed). */
  readonly requests: number;
  /** Arrivals not started because maxInFlight requests were outstanding. */
  readonly dropped: number;
  /**
   * Requests actually sent per second. The runner: requests written to a connection, over the
   * longer of the scheduled run and the time until the last was written (a request queued in
   * the client for a free connection counts when it is written, not when it was due). k6:
   * requests its iterations made (an iteration starts only on a free VU), over the run's
   * seconds. Below targetRate the generator did not keep the offered rate.
   */
  readonly sentRate: number;
  readonly errors: number;
  /** errors / requests (0 when no request started). */
  readonly errorRate: number;
  /** Errors by kind: status, body, reset, refused, timeout, other (k6: status or network). */
  readonly errorKinds: Readonly<Record<string, number>>;
  /** null when no request succeeded. */
  readonly latencyMs: LatencyMs | null;
  readonly thresholds: { readonly p99Ms: ThresholdResult; readonly errorRate: ThresholdResult };
  /** Every threshold met and nothing dropped. */
  readonly ok: boolean;
  /**
   * Ramp only: each step, and the knee (kneeOf): the highest step rate before the first step
   * that is not ok (null: the first step already failed; 'unknown': the first step not ok is
   * one whose drops are unknown).
   */
  readonly steps?: readonly StepSummary[];
  readonly kneeRate?: number | null | 'unknown';
  /** Churn only, when the proxy's metrics were reachable: accepted Noise handshakes. */
  readonly handshakes?: { readonly count: number; readonly perSecond: number } | null;
}

/** Seconds a ramp takes to climb from one step to the next; not counted in either step. */
export const RAMP_CLIMB_SECONDS = 1;

/** One piece of a ramp's rate profile: the rate goes linearly to `target` over `seconds` (k6's stages). */
export interface RateStage {
  readonly seconds: number;
  readonly target: number;
}

/** Where a ramp holds one step's rate: [fromSeconds, toSeconds) after the start. */
export interface StepWindow {
  readonly rate: number;
  readonly fromSeconds: number;
  readonly toSeconds: number;
}

/**
 * A ramp's profile, for k6's ramping-arrival-rate (startRate = steps[0]) and for the runner's
 * schedule alike: hold the first step, then for each next step climb for RAMP_CLIMB_SECONDS
 * and hold it for stepSeconds. Pure, so both sides compute the same windows.
 */
export function rampProfile(s: RampScenario): { readonly stages: RateStage[]; readonly windows: StepWindow[] } {
  const stages: RateStage[] = [];
  const windows: StepWindow[] = [];
  let t = 0;
  s.steps.forEach((rate, i) => {
    if (i > 0) {
      stages.push({ seconds: RAMP_CLIMB_SECONDS, target: rate });
      t += RAMP_CLIMB_SECONDS;
    }
    stages.push({ seconds: s.stepSeconds, target: rate });
    windows.push({ rate, fromSeconds: t, toSeconds: t + s.stepSeconds });
    t += s.stepSeconds;
  });
  return { stages, windows };
}

/**
 * The knee of a ramp's steps, computed alike by the runner and the k6 scripts: the rate of the
 * last step before the first one that misses a threshold, drops or errs (ok false); null when
 * that is the first step; 'unknown' when the first step that is not ok is one whose drops are
 * unknown (ok null): the knee is then below that step, by how much no one can say.
 */
export function kneeOf(steps: readonly StepSummary[]): number | null | 'unknown' {
  const firstBad = steps.findIndex((st) => st.ok !== true);
  if (firstBad === -1) return steps.length > 0 ? steps[steps.length - 1]!.rate : null;
  if (steps[firstBad]!.ok === null) return 'unknown';
  return firstBad === 0 ? null : steps[firstBad - 1]!.rate;
}

/** The whole length of a scenario, seconds. */
export function scenarioSeconds(s: Scenario): number {
  if (s.kind !== 'ramp') return s.durationSeconds;
  return rampProfile(s).stages.reduce((sum, stage) => sum + stage.seconds, 0);
}

/**
 * Whether the gateway scenario's request number `i` asks for a denied path: exactly
 * round(n * deniedShare) of the first n are, spread evenly (no randomness, so a k6 run and a
 * runner run ask for the same mix).
 */
export function isDenied(i: number, deniedShare: number): boolean {
  return Math.floor((i + 1) * deniedShare) > Math.floor(i * deniedShare);
}
