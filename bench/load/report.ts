/**
 * The load benchmark's tables: per scenario and path, latency and what each path adds over
 * plain TCP measured in the same run, errors, each proxy's CPU per 1,000 requests/s and peak
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
}

/**
 * Of several rounds of one path, the one with the median p99 (a real run rather than a blend of
 * figures from different ones), carrying the range of p99 over all of them. A round with no
 * successful request ranks as the slowest.
 */
export function medianRun(runs: readonly PathRun[]): PathRun {
  if (runs.length === 0) throw new RangeError('no rounds');
  const p99 = (r: PathRun): number => r.summary.latencyMs?.p99 ?? Number.POSITIVE_INFINITY;
  const sorted = [...runs].sort((x, y) => p99(x) - p99(y));
  const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
  return runs.length === 1 ? median : { ...median, p99RangeMs: [p99(sorted[0]!), p99(sorted[sorted.length - 1]!)] };
}

export const GOALS = {
  /** Cores per proxy per 1,000 requests/s, and MB of RSS (Istio 1.24's sidecar at 1,000 requests/s). */
  coresPer1k: 0.2,
  rssMB: 60,
  goalRate: 2000,
} as const;

const ms = (v: number | undefined | null): string => (v == null || Number.isNaN(v) ? '-' : v.toFixed(2));
const signed = (v: number): string => `${v >= 0 ? '+' : ''}${v.toFixed(2)}`;
const MB = (kib: number): string => (kib / 1024).toFixed(1);

/**
 * Requests/s a path carried: those answered as planned, over the run. Not achievedRate, which
 * counts failed requests too (a proxy that resets everything fast would look cheap per request).
 */
export function carriedRate(s: LoadSummary): number {
  return (s.requests - s.errors) / s.durationSeconds;
}

/** CPU cores per 1,000 requests/s carried (carriedRate); NaN when none succeeded. */
export function coresPer1k(cost: ProcessCost, s: LoadSummary): number {
  const carried = carriedRate(s);
  return carried > 0 ? cost.cores / (carried / 1000) : Number.NaN;
}

/** The cost columns' legend, printed with the tables. */
export const COST_LEGEND =
  "CPU: cores a proxy used over the measured run, per 1,000 successful requests/s (answered as planned; failed requests and dropped arrivals are not carried; '-' when none succeeded); RSS: its peak over the run (sampled every 100 ms).";

function cores(cost: ProcessCost | undefined, s: LoadSummary): string {
  const per1k = cost === undefined ? Number.NaN : coresPer1k(cost, s);
  return Number.isNaN(per1k) ? '-' : per1k.toFixed(3);
}

function added(l: LatencyMs | null, base: LatencyMs | null, key: keyof LatencyMs): string {
  return l === null || base === null ? '-' : signed(l[key] - base[key]);
}

/** One table per constant-rate, churn or gateway scenario: a row per path. */
export function scenarioTable(runs: readonly PathRun[]): string {
  const plain = runs.find((r) => r.path === 'plain')?.summary.latencyMs ?? null;
  const churn = runs.some((r) => r.summary.kind === 'churn');
  return formatTable(
    [
      'path', 'req/s', 'errors', 'dropped', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms',
      'added p50', 'added p99', 'added p99.9', 'added max', 'p99 x plain', 'p99 range',
      'CPU/1k req/s A', 'B', 'peak RSS MiB A', 'B', ...(churn ? ['handshakes/s'] : []), 'gen lag p99', 'thresholds',
    ],
    runs.map((r) => {
      const s = r.summary;
      const l = s.latencyMs;
      const [ca, cb] = r.costs;
      return [
        r.name,
        s.achievedRate.toFixed(0),
        `${s.errors} (${(s.errorRate * 100).toFixed(2)}%)${s.errors > 0 ? ` ${Object.entries(s.errorKinds).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ')}` : ''}`,
        String(s.dropped),
        ms(l?.p50), ms(l?.p99), ms(l?.p999), ms(l?.max),
        added(l, plain, 'p50'), added(l, plain, 'p99'), added(l, plain, 'p999'), added(l, plain, 'max'),
        l === null || plain === null ? '-' : `${(l.p99 / plain.p99).toFixed(2)}x`,
        r.p99RangeMs === undefined ? '-' : `${ms(r.p99RangeMs[0])}-${ms(r.p99RangeMs[1])}`,
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

/** The knee of each path: the highest step before the first that failed, and every step's p99. */
export function kneeTable(runs: readonly PathRun[]): string {
  const steps = runs[0]?.summary.steps ?? [];
  return formatTable(
    ['path', 'knee req/s', ...steps.map((st) => `p99 ms @${st.rate}`), 'errors+dropped by step'],
    runs.map((r) => [
      r.name,
      r.summary.kneeRate == null ? 'none' : String(r.summary.kneeRate),
      ...(r.summary.steps ?? []).map((st) => `${ms(st.latencyMs?.p99)}${st.ok ? '' : '*'}`),
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
 * pair's; each proxy <= 0.20 core and <= 60 MB per 1,000 requests/s; no error at any rate
 * below the knee (the constant-rate scenarios and the ramp's steps).
 */
export function loadGoals(byScenario: ReadonlyMap<string, readonly PathRun[]>, goalScenario: string, kneeScenario: string | null): LoadGoal[] {
  const goals: LoadGoal[] = [];
  const at = byScenario.get(goalScenario) ?? [];
  const plain = at.find((r) => r.path === 'plain')?.summary.latencyMs;
  const haproxy = at.find((r) => r.path === 'haproxy')?.summary.latencyMs;
  const knees = kneeScenario === null ? [] : (byScenario.get(kneeScenario) ?? []);
  for (const r of at) {
    if (r.path !== 'chacha' && r.path !== 'aesgcm') continue;
    const l = r.summary.latencyMs;
    if (l && plain && haproxy) {
      const mine = l.p99 - plain.p99;
      const theirs = haproxy.p99 - plain.p99;
      // haproxy's added p99 can be zero or negative on a noisy host: the ratio is then no
      // verdict (a negative over a negative reads as a pass), so the figures decide.
      goals.push({ goal: `added p99 at ${GOALS.goalRate}/s <= haproxy pair's`, path: r.name, ratio: theirs > 0 ? mine / theirs : Number.NaN, met: mine <= theirs, detail: `${signed(mine)} ms against ${signed(theirs)} ms` });
    }
    for (const c of r.costs) {
      const per1k = coresPer1k(c, r.summary);
      goals.push({ goal: `CPU <= ${GOALS.coresPer1k} core per 1,000 req/s`, path: `${r.name}, ${c.label}`, ratio: per1k / GOALS.coresPer1k, met: per1k <= GOALS.coresPer1k, detail: Number.isNaN(per1k) ? `no request succeeded (${c.cores.toFixed(3)} cores)` : `${per1k.toFixed(3)} core per 1,000 req/s (${c.cores.toFixed(3)} cores at ${carriedRate(r.summary).toFixed(0)}/s carried)` });
      const rssMB = c.peakRssKiB / 1024;
      goals.push({ goal: `peak RSS <= ${GOALS.rssMB} MB at ${GOALS.goalRate}/s`, path: `${r.name}, ${c.label}`, ratio: rssMB / GOALS.rssMB, met: rssMB <= GOALS.rssMB, detail: `${rssMB.toFixed(1)} MiB` });
    }
    // Below the knee: every constant rate when the run had no ramp; below the knee when the
    // ramp found one; below its first step when even that failed (not every rate: those at or
    // above the first step were never shown to be below a knee).
    const ramp = knees.find((k) => k.path === r.path)?.summary;
    const firstStep = ramp?.steps?.[0]?.rate ?? 0;
    const bound = ramp === undefined ? Number.POSITIVE_INFINITY : (ramp.kneeRate ?? firstStep);
    const below = [...byScenario.values()].flat().filter((x) => x.path === r.path && x.summary.kind === 'constant' && x.summary.targetRate < bound);
    const failed = below.reduce((n, x) => n + x.summary.errors + x.summary.dropped, 0);
    const kneeText = ramp === undefined ? 'knee not measured' : ramp.kneeRate == null ? `no knee: the ramp's first step, ${firstStep}/s, failed` : `knee ${ramp.kneeRate}/s`;
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
