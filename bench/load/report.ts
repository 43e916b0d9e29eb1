/**
 * The load benchmark's tables: per scenario and path, latency and what each path adds over
 * plain TCP measured in the same round, errors, each proxy's CPU per 1,000 requests/s and peak
 * RSS; the knee of each path; the goals as ratios (measured over target).
 */
import type { LatencyMs, LoadSummary } from '../k6/contract.js';
import { formatTable } from '../lib/table.js';
import type { ProcessCost } from './resources.js';

/** 'gateway': A's noisemesh proxy to `noisemesh gateway` in B (the gateway scenarios' one path). */
export type LoadPathKey = 'plain' | 'haproxy' | 'stunnel' | 'chacha' | 'aesgcm' | 'gateway';

/** One run of one scenario over one path. */
export interface PathRun {
  readonly path: LoadPathKey;
  readonly name: string;
  readonly summary: LoadSummary;
  /** The generator's lateness behind its schedule, ms (null under k6). */
  readonly lagMs: { readonly p99: number; readonly max: number } | null;
  /** Each proxy process of the path (none for plain), over the measured run. */
  readonly costs: readonly ProcessCost[];
  /** With several rounds: the lowest and highest p99 among them, ms. */
  readonly p99RangeMs?: readonly [number, number];
  /**
   * Plain TCP's latency in this run's own round (pairedRows), what the added columns subtract;
   * absent for a run not paired with one (plain itself, the gateway's path).
   */
  readonly baseline?: LatencyMs | null;
  /** With several rounds and a baseline: the lowest and highest added p99 among them, ms. */
  readonly addedP99RangeMs?: readonly [number, number];
}

/**
 * The middle of `runs` ranked by `key` (lower is better; NaN ranks as +Infinity, the worst),
 * and the lowest and highest key. With an even count the upper middle: the worse of the two
 * middle rounds, never the better (of two rounds, the worse one, not the best).
 */
function middle(runs: readonly PathRun[], key: (r: PathRun) => number): { run: PathRun; range: [number, number] } {
  if (runs.length === 0) throw new RangeError('no rounds');
  const k = (r: PathRun): number => {
    const v = key(r);
    return Number.isNaN(v) ? Number.POSITIVE_INFINITY : v;
  };
  const sorted = [...runs].sort((x, y) => k(x) - k(y));
  return { run: sorted[Math.floor(sorted.length / 2)]!, range: [k(sorted[0]!), k(sorted[sorted.length - 1]!)] };
}

const p99Of = (r: PathRun): number => r.summary.latencyMs?.p99 ?? Number.POSITIVE_INFINITY;

/**
 * Of several rounds of one path, the one with the median p99 (a real run rather than a blend of
 * figures from different ones; with an even count the worse middle one), carrying the range of
 * p99 over all of them. A round with no successful request ranks as the slowest.
 */
export function medianRun(runs: readonly PathRun[]): PathRun {
  const { run, range } = middle(runs, p99Of);
  return runs.length === 1 ? run : { ...run, p99RangeMs: range };
}

/**
 * One row per path from the rounds of one scenario (`rounds[i]`: every path's run in round i).
 * What a path adds is paired: its figure minus plain TCP's in the SAME round, so a burst of
 * load elsewhere on the host that lands on one round lands on both sides of the subtraction.
 * A path's row is its round with the median added p99 (even count: the upper middle, the
 * worse), carrying plain's latency of that round as its baseline; plain's own row, and every
 * row of a scenario without plain (the gateway's), is its median-p99 round. A round where the
 * path or plain had no successful request ranks as the worst. A row per key of `keys`, in order.
 */
export function pairedRows(keys: readonly LoadPathKey[], rounds: readonly ReadonlyMap<LoadPathKey, PathRun>[]): PathRun[] {
  if (rounds.length === 0) throw new RangeError('no rounds');
  return keys.map((key) => {
    const runs = rounds.map((round, i) => {
      const r = round.get(key);
      if (r === undefined) throw new RangeError(`round ${i + 1} has no run of ${key}`);
      return r;
    });
    const plains = rounds.map((round) => round.get('plain'));
    if (key === 'plain' || plains.some((p) => p === undefined)) return medianRun(runs);
    const paired = runs.map((r, i) => ({ ...r, baseline: plains[i]!.summary.latencyMs }));
    const added = (r: PathRun): number => (r.summary.latencyMs === null || r.baseline == null ? Number.POSITIVE_INFINITY : r.summary.latencyMs.p99 - r.baseline.p99);
    const { run, range } = middle(paired, added);
    return runs.length === 1 ? run : { ...run, p99RangeMs: middle(runs, p99Of).range, addedP99RangeMs: range };
  });
}

/** How the rows of several rounds are chosen, printed with the tables. */
export const ROUNDS_LEGEND =
  "Rows: each path's round with the median added p99 (its p99 minus plain TCP's in the same round; with an even count of rounds the worse of the two middle ones); every added column and 'p99 x plain' pairs the row with plain TCP's figures of that same round; plain TCP's own row (and the gateway's, which has no plain) is its median-p99 round. Ranges are over all rounds.";

export const GOALS = {
  /** Cores per proxy per 1,000 requests/s (Istio 1.24's sidecar at 1,000 requests/s: ~0.20 vCPU). */
  coresPer1k: 0.2,
  /** Peak RSS per proxy, bytes: Istio's "60 MB", decimal megabytes (57.2 MiB; the tables print MiB). */
  rssBytes: 60e6,
  goalRate: 2000,
} as const;

/** The RSS goal as the tables print it: "60 MB (57.2 MiB)". */
export const RSS_GOAL_TEXT = `${GOALS.rssBytes / 1e6} MB (${(GOALS.rssBytes / 2 ** 20).toFixed(1)} MiB)`;

const ms = (v: number | undefined | null): string => (v == null || Number.isNaN(v) ? '-' : v.toFixed(2));
const signed = (v: number): string => `${v >= 0 ? '+' : ''}${v.toFixed(2)}`;
const MB = (kib: number): string => (kib / 1024).toFixed(1);

/**
 * Requests/s a path carried: those answered as planned, over the run. Not sentRate, which
 * counts failed requests too (a proxy that resets everything fast would look cheap per request).
 */
export function carriedRate(s: LoadSummary): number {
  return (s.requests - s.errors) / s.durationSeconds;
}

/**
 * CPU cores per 1,000 requests/s carried; NaN when none succeeded. Computed as CPU seconds per
 * 1,000 requests carried: the proxy's CPU over the watch divided by every request carried in
 * it, so numerator and denominator cover the same span (cores over the watch, which also spans
 * the generator's start-up and the answers after the schedule, divided by requests per second
 * of the schedule alone would not).
 */
export function coresPer1k(cost: ProcessCost, s: LoadSummary): number {
  const carried = s.requests - s.errors;
  return carried > 0 ? (cost.cpuSeconds * 1000) / carried : Number.NaN;
}

/** The cost columns' legend, printed with the tables. */
export const COST_LEGEND =
  "CPU: a proxy's CPU seconds over the run (the sum of its threads' schedstat, ns) per 1,000 successful requests (answered as planned; failed requests and dropped arrivals are not carried; '-' when none succeeded), which is cores per 1,000 requests/s carried; RSS: its peak over the run (sampled every 100 ms), MiB. sent/s: requests written to a connection, per second of the longer of the scheduled run and the time until the last was written (below the offered rate, 'of N' says so: the generator did not keep the rate).";

function cores(cost: ProcessCost | undefined, s: LoadSummary): string {
  const per1k = cost === undefined ? Number.NaN : coresPer1k(cost, s);
  return Number.isNaN(per1k) ? '-' : per1k.toFixed(3);
}

function added(l: LatencyMs | null, base: LatencyMs | null | undefined, key: keyof LatencyMs): string {
  return l === null || base == null ? '-' : signed(l[key] - base[key]);
}

/** Requests sent per second; "N of M" when below 99% of the offered M. */
function sent(s: LoadSummary): string {
  return s.sentRate < 0.99 * s.targetRate ? `${s.sentRate.toFixed(0)} of ${s.targetRate}` : s.sentRate.toFixed(0);
}

/**
 * One table per constant-rate, churn or gateway scenario: a row per path. The added columns
 * subtract each row's baseline (plain TCP in the row's own round: pairedRows); a row without
 * one shows '-' there, never a figure from another round.
 */
export function scenarioTable(runs: readonly PathRun[]): string {
  const churn = runs.some((r) => r.summary.kind === 'churn');
  return formatTable(
    [
      'path', 'sent/s', 'errors', 'dropped', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms',
      'added p50', 'added p99', 'added p99.9', 'added max', 'p99 x plain', 'p99 range', 'added p99 range',
      'CPU/1k req/s A', 'B', 'peak RSS MiB A', 'B', ...(churn ? ['handshakes/s'] : []), 'gen lag p99', 'thresholds',
    ],
    runs.map((r) => {
      const s = r.summary;
      const l = s.latencyMs;
      const [ca, cb] = r.costs;
      const plain = r.baseline;
      return [
        r.name,
        sent(s),
        `${s.errors} (${(s.errorRate * 100).toFixed(2)}%)${s.errors > 0 ? ` ${Object.entries(s.errorKinds).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ')}` : ''}`,
        String(s.dropped),
        ms(l?.p50), ms(l?.p99), ms(l?.p999), ms(l?.max),
        added(l, plain, 'p50'), added(l, plain, 'p99'), added(l, plain, 'p999'), added(l, plain, 'max'),
        l === null || plain == null ? '-' : `${(l.p99 / plain.p99).toFixed(2)}x`,
        r.p99RangeMs === undefined ? '-' : `${ms(r.p99RangeMs[0])}-${ms(r.p99RangeMs[1])}`,
        r.addedP99RangeMs === undefined ? '-' : `${signed(r.addedP99RangeMs[0])} to ${signed(r.addedP99RangeMs[1])}`,
        cores(ca, s),
        cores(cb, s),
        ca ? MB(ca.peakRssKiB) : '-',
        cb ? MB(cb.peakRssKiB) : '-',
        ...(churn ? [s.handshakes == null ? '-' : s.handshakes.perSecond.toFixed(0)] : []),
        ms(r.lagMs?.p99),
        s.ok ? 'pass' : 'FAIL',
      ];
    }),
  );
}

/** A ramp's knee as the tables print it. */
function kneeText(k: number | null | 'unknown' | undefined): string {
  return k === 'unknown' ? 'unknown (drops not placed in steps)' : k == null ? 'none' : String(k);
}

/**
 * The knee of each path: the highest step before the first that failed, and every step's p99
 * ('*': the step failed; '?': its thresholds held but its drops are unknown, k6 only).
 */
export function kneeTable(runs: readonly PathRun[]): string {
  const steps = runs[0]?.summary.steps ?? [];
  return formatTable(
    ['path', 'knee req/s', ...steps.map((st) => `p99 ms @${st.rate}`), 'errors+dropped by step'],
    runs.map((r) => [
      r.name,
      kneeText(r.summary.kneeRate),
      ...(r.summary.steps ?? []).map((st) => `${ms(st.latencyMs?.p99)}${st.ok === true ? '' : st.ok === null ? '?' : '*'}`),
      (r.summary.steps ?? []).map((st) => `${st.errors}+${st.dropped ?? '?'}`).join(' '),
    ]),
  );
}

export interface LoadGoal {
  readonly goal: string;
  readonly path: string;
  /** Measured over target, for scale (NaN where the target is not a positive number). */
  readonly ratio: number;
  /** Whether the goal holds, decided on the figures themselves, not on the ratio. */
  readonly met: boolean;
  readonly detail: string;
}

/**
 * The issue's goals, for each noisemesh suite: at 2,000 requests/s, added p99 <= the haproxy
 * pair's, each side paired with plain TCP in its own row's round (pairedRows; a row without a
 * baseline gives no verdict); each proxy <= 0.20 core per 1,000 requests/s and a peak RSS
 * <= 60 MB (60e6 bytes, 57.2 MiB); no error at any rate below the knee (the constant-rate
 * scenarios and the ramp's steps).
 */
export function loadGoals(byScenario: ReadonlyMap<string, readonly PathRun[]>, goalScenario: string, kneeScenario: string | null): LoadGoal[] {
  const goals: LoadGoal[] = [];
  const at = byScenario.get(goalScenario) ?? [];
  const haproxy = at.find((r) => r.path === 'haproxy');
  const knees = kneeScenario === null ? [] : (byScenario.get(kneeScenario) ?? []);
  const addedP99 = (r: PathRun | undefined): number | null =>
    r?.summary.latencyMs == null || r.baseline == null ? null : r.summary.latencyMs.p99 - r.baseline.p99;
  for (const r of at) {
    if (r.path !== 'chacha' && r.path !== 'aesgcm') continue;
    const mine = addedP99(r);
    const theirs = addedP99(haproxy);
    if (mine !== null && theirs !== null) {
      // haproxy's added p99 can be zero or negative on a noisy host: the ratio is then no
      // verdict (a negative over a negative reads as a pass), so the figures decide.
      goals.push({ goal: `added p99 at ${GOALS.goalRate}/s <= haproxy pair's`, path: r.name, ratio: theirs > 0 ? mine / theirs : Number.NaN, met: mine <= theirs, detail: `${signed(mine)} ms against ${signed(theirs)} ms (each against plain TCP in its own round)` });
    }
    for (const c of r.costs) {
      const per1k = coresPer1k(c, r.summary);
      goals.push({ goal: `CPU <= ${GOALS.coresPer1k} core per 1,000 req/s`, path: `${r.name}, ${c.label}`, ratio: per1k / GOALS.coresPer1k, met: per1k <= GOALS.coresPer1k, detail: Number.isNaN(per1k) ? `no request succeeded (${c.cpuSeconds.toFixed(3)} CPU s)` : `${per1k.toFixed(3)} core per 1,000 req/s (${c.cpuSeconds.toFixed(3)} CPU s for ${r.summary.requests - r.summary.errors} requests carried)` });
      const rssBytes = c.peakRssKiB * 1024;
      goals.push({ goal: `peak RSS <= ${RSS_GOAL_TEXT} at ${GOALS.goalRate}/s`, path: `${r.name}, ${c.label}`, ratio: rssBytes / GOALS.rssBytes, met: rssBytes <= GOALS.rssBytes, detail: `${MB(c.peakRssKiB)} MiB (${(rssBytes / 1e6).toFixed(1)} MB)` });
    }
    // Below the knee: every constant rate when the run had no ramp; below the knee when the
    // ramp found one; below its first step when even that failed (not every rate: those at or
    // above the first step were never shown to be below a knee). A knee k6 could not place
    // (drops not attributed to steps) is at most the first step that failed on its figures:
    // every rate below that counts, the stricter reading.
    const ramp = knees.find((k) => k.path === r.path)?.summary;
    const firstStep = ramp?.steps?.[0]?.rate ?? 0;
    const firstFailed = ramp?.steps?.find((st) => st.ok === false)?.rate ?? Number.POSITIVE_INFINITY;
    const bound = ramp === undefined ? Number.POSITIVE_INFINITY : ramp.kneeRate === 'unknown' ? firstFailed : (ramp.kneeRate ?? firstStep);
    const below = [...byScenario.values()].flat().filter((x) => x.path === r.path && x.summary.kind === 'constant' && x.summary.targetRate < bound);
    const failed = below.reduce((n, x) => n + x.summary.errors + x.summary.dropped, 0);
    const kneeText =
      ramp === undefined ? 'knee not measured'
      : ramp.kneeRate === 'unknown' ? `knee unknown: drops not placed in steps; counted below ${Number.isFinite(firstFailed) ? `${firstFailed}/s, the first step that failed` : 'every step'}`
      : ramp.kneeRate == null ? `no knee: the ramp's first step, ${firstStep}/s, failed` : `knee ${ramp.kneeRate}/s`;
    goals.push({
      goal: 'no error below the knee',
      path: r.name,
      ratio: failed === 0 ? 0 : Number.POSITIVE_INFINITY,
      met: failed === 0,
      detail: `${failed} errors+dropped in ${below.map((x) => x.summary.scenario).join(', ') || 'no scenario'} (${kneeText})`,
    });
  }
  return goals;
}

export function goalsTable(goals: readonly LoadGoal[]): string {
  return formatTable(
    ['goal', 'path', 'measured / target', 'met', 'detail'],
    goals.map((g) => [g.goal, g.path, Number.isFinite(g.ratio) ? g.ratio.toFixed(2) : Number.isNaN(g.ratio) ? '-' : String(g.ratio), g.met ? 'yes' : 'NO', g.detail]),
  );
}
