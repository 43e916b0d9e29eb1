/**
 * The runner's load generator: HTTP/1.1 (http1.ts, raw sockets), open model. Every request starts at its
 * scheduled time (schedule.ts) whether or not earlier ones have been answered, and its latency
 * is measured from that scheduled time, as wrk2 does: when the target stalls, the requests
 * that should have been sent meanwhile are late, and their lateness is counted rather than
 * hidden. Arrivals are never queued without bound: with `maxInFlight` requests outstanding,
 * one more is dropped and counted (k6's dropped_iterations).
 *
 * Why our own and not autocannon: autocannon is a closed loop (each connection sends its next
 * request when the previous answer is back); its rate options only slow that loop down, so
 * when the target slows the arrival rate falls with it. `closedLoop` below is that model,
 * kept as the contrast the tests hold the open model against.
 *
 * Pacing: a timer armed for the next due arrival, and every request due at each wake-up is
 * sent then (timers fire ~1 ms late at best; nothing spins, so on a 2-core machine the
 * generator does not take a core from the proxies it measures). The lag of each start
 * behind its schedule is recorded.
 */
import { Http1Pool, OUTCOMES, type Outcome, type RequestPlan, type Target } from './http1.js';

export { OUTCOMES, type Outcome, type RequestPlan, type Target };
const CODE: Readonly<Record<Outcome, number>> = Object.fromEntries(OUTCOMES.map((o, i) => [o, i])) as Record<Outcome, number>;

export interface GeneratorOptions {
  readonly target: Target;
  readonly plan: (i: number) => RequestPlan;
  /** POST body. */
  readonly body: Buffer;
  /** A new TCP connection per request (Connection: close) instead of keep-alive. */
  readonly newConnectionPerRequest: boolean;
  readonly timeoutMs: number;
}

export interface OpenOptions extends GeneratorOptions {
  /** Due times, ms after the start, ascending. */
  readonly schedule: Float64Array;
  readonly maxInFlight: number;
  /** A pool to use and leave open (a warm-up's, say); by default one of the run's own, closed at its end. */
  readonly pool?: Http1Pool;
}

/** Every request of a run, by index. */
export interface RawRun {
  readonly schedule: Float64Array;
  /** Index into OUTCOMES. */
  readonly outcome: Uint8Array;
  /** Scheduled time to the last byte of the answer, ms (NaN unless ok). */
  readonly latencyMs: Float64Array;
  /** Actual start behind scheduled start, ms (NaN if dropped). */
  readonly lagMs: Float64Array;
  /**
   * When it was written to a connection, ms after the start (NaN if dropped, or if it timed
   * out waiting for a free connection). Later than its start when it waited for one.
   */
  readonly sentMs: Float64Array;
  /** First scheduled start to the last answer, ms. */
  readonly elapsedMs: number;
}

export function outcomeOf(code: number): Outcome {
  return OUTCOMES[code]!;
}

/**
 * Keep-alive connections a run may open. An open model with an unbounded pool opens a new
 * connection for every request that finds none free, so one stall turns into a storm of
 * connects (and, through a mesh, of handshakes) that feeds the stall: seen here as a fresh
 * proxy's accept queue holding ~800 connections. Clients keep bounded pools; requests beyond
 * it wait in order, their wait counted in their latency. (k6 opens a connection per VU, up to
 * maxVUs: the one way its keep-alive runs differ from ours.)
 */
export const MAX_CONNECTIONS = 64;

/** The connection pool of a run (http1.ts), at most `maxConnections` keep-alive connections. */
export function makePool(o: GeneratorOptions, maxConnections: number): Http1Pool {
  return new Http1Pool({ target: o.target, maxConnections, newConnectionPerRequest: o.newConnectionPerRequest, timeoutMs: o.timeoutMs, body: o.body });
}

/** Runs the schedule, open model; resolves once every started request has ended. */
export async function openLoop(o: OpenOptions): Promise<RawRun> {
  const n = o.schedule.length;
  const outcome = new Uint8Array(n);
  const latencyMs = new Float64Array(n).fill(Number.NaN);
  const lagMs = new Float64Array(n).fill(Number.NaN);
  const sentMs = new Float64Array(n).fill(Number.NaN);
  const pool = o.pool ?? makePool(o, Math.min(o.maxInFlight, MAX_CONNECTIONS));
  const pending = new Set<Promise<void>>();
  let inFlight = 0;
  let lastEnd = 0;
  const t0 = performance.now();

  const launch = (i: number): void => {
    if (inFlight >= o.maxInFlight) {
      outcome[i] = CODE.dropped;
      return;
    }
    const due = t0 + o.schedule[i]!;
    lagMs[i] = performance.now() - due;
    inFlight++;
    const p = pool.request(o.plan(i)).then(({ outcome: result, sentAt, endedAt }) => {
      inFlight--;
      outcome[i] = CODE[result];
      sentMs[i] = sentAt - t0;
      if (result === 'ok') latencyMs[i] = endedAt - due;
      lastEnd = Math.max(lastEnd, endedAt);
      pending.delete(p);
    });
    pending.add(p);
  };

  await new Promise<void>((resolve) => {
    let next = 0;
    const tick = (): void => {
      const now = performance.now() - t0;
      while (next < n && o.schedule[next]! <= now) launch(next++);
      if (next < n) setTimeout(tick, Math.max(0, o.schedule[next]! - (performance.now() - t0)));
      else resolve();
    };
    tick();
  });
  // Bounded: every request ends within timeoutMs of its start.
  while (pending.size > 0) await Promise.all([...pending]);
  if (o.pool === undefined) pool.close();
  return { schedule: o.schedule, outcome, latencyMs, lagMs, sentMs, elapsedMs: Math.max(lastEnd - t0, n > 0 ? o.schedule[n - 1]! : 0) };
}

export interface ClosedOptions extends GeneratorOptions {
  /** Connections, each sending its next request only when its previous answer is back. */
  readonly concurrency: number;
  readonly durationMs: number;
}

/**
 * The closed model, for contrast only (what autocannon and wrk do): `concurrency` workers in
 * a loop. Its arrival rate is whatever the target's latency allows.
 */
export async function closedLoop(o: ClosedOptions): Promise<{ requests: number; ok: number; latencyMs: number[]; elapsedMs: number }> {
  const pool = makePool(o, o.concurrency);
  const latencies: number[] = [];
  let requests = 0;
  let ok = 0;
  let i = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    // Bounded by the clock: each request ends within timeoutMs.
    while (performance.now() - t0 < o.durationMs) {
      const start = performance.now();
      const r = await pool.request(o.plan(i++));
      requests++;
      if (r.outcome === 'ok') {
        ok++;
        latencies.push(r.endedAt - start);
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  pool.close();
  return { requests, ok, latencyMs: latencies, elapsedMs: performance.now() - t0 };
}
