/**
 * The four measurements, each run by an unmodified client in pod A against an Endpoint, so
 * every path (plain, wireguard-go, stunnel, a Node relay, noisemesh) is measured by the same command.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { NODE, SCRIPTS, commOf, run, rssKiB, start, type Endpoint, type Pod, type PodNetwork } from './pods.js';

export interface Durations {
  /** Rounds: every path is measured once per round, in turn, so all see the same machine. */
  readonly rounds: number;
  /** iperf3 `-t` per round, after a 1 s `-O` warm-up that is not counted. */
  readonly throughputSeconds: number;
  /** Open-loop requests at LATENCY_RATE, per message size and round, including LATENCY_WARMUP_MS. */
  readonly latencySeconds: number;
  readonly connectWarmupMs: number;
  readonly connectMs: number;
}

/** Requests per second of the latency test: a fixed rate, far below any path's capacity. */
export const LATENCY_RATE = 1000;
export const LATENCY_SIZES = [64, 4096] as const;
export const LATENCY_WARMUP_MS = 500;
export const CONNECT_CONCURRENCY = 32;
export const IDLE_SESSIONS = 10_000;
const IDLE_CONCURRENCY = 64;
/** Sessions opened and closed before the baseline RSS, so one-time costs (JIT, pools) are not counted per session. */
export const IDLE_WARMUP = 1000;

/** iperf3, one TCP stream A -> B: what the receiver got, bits per second. */
export async function throughput(net: PodNetwork, a: Pod, to: Endpoint, seconds: number): Promise<number> {
  const r = await run(net, a, 'iperf3', ['-c', to.host, '-p', String(to.port), '-t', String(seconds), '-O', '1', '-J'], (seconds + 30) * 1000);
  const report = JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
  const bps = report.end?.sum_received?.bits_per_second;
  if (report.error !== undefined || bps === undefined || !(bps > 0)) throw new Error(`iperf3 to ${to.host}:${to.port}: ${report.error ?? 'no result'}`);
  return bps;
}

export interface Latency {
  readonly bytes: number;
  readonly samples: number;
  /** Round-trip times, microseconds (nearest rank over every round's samples pooled). */
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  /** Share of the machine's CPU time the hypervisor took during the rounds (null: unknown). */
  readonly stealShare?: number | null;
}

/**
 * One round of open-loop request/response at LATENCY_RATE requests/s over one connection to
 * B's echo server (latency-client.ts): the round trips of requests of `bytes`, µs, after a
 * LATENCY_WARMUP_MS warm-up.
 */
export async function latencyRound(net: PodNetwork, a: Pod, to: Endpoint, bytes: number, seconds: number): Promise<number[]> {
  const r = await run(
    net,
    a,
    NODE,
    [join(SCRIPTS, 'latency-client.js'), to.host, String(to.port), String(bytes), String(LATENCY_RATE), String(seconds), String(LATENCY_WARMUP_MS)],
    (seconds + 30) * 1000,
  );
  const result = JSON.parse(r.stdout) as { rate: number; samples: number[] };
  if (result.rate < LATENCY_RATE * 0.9) throw new Error(`latency client to ${to.host}:${to.port} sent only ${result.rate} requests/s of ${LATENCY_RATE}`);
  return result.samples;
}

/** Percentiles of pooled rounds. */
export function summarizeLatency(bytes: number, rounds: readonly (readonly number[])[]): Latency {
  const all = rounds.flat().sort((x, y) => x - y);
  if (all.length === 0) throw new Error(`no ${bytes}-byte latency samples`);
  const at = (q: number): number => all[Math.min(all.length - 1, Math.ceil(q * all.length) - 1)]!;
  return { bytes, samples: all.length, p50: at(0.5), p99: at(0.99), p999: at(0.999), max: all[all.length - 1]! };
}

export interface ConnectRate {
  readonly perSecond: number;
  readonly failed: number;
}

/** New connections per second (connect, one byte each way, close) with CONNECT_CONCURRENCY workers. */
export async function connectRate(net: PodNetwork, a: Pod, to: Endpoint, d: Durations): Promise<ConnectRate> {
  const r = await run(
    net,
    a,
    NODE,
    [join(SCRIPTS, 'conn-client.js'), to.host, String(to.port), String(CONNECT_CONCURRENCY), String(d.connectWarmupMs), String(d.connectMs)],
    d.connectWarmupMs + d.connectMs + 30_000,
  );
  const result = JSON.parse(r.stdout) as { completed: number; failed: number; seconds: number };
  if (result.completed === 0) throw new Error(`no connection to ${to.host}:${to.port} completed (${result.failed} failed)`);
  return { perSecond: result.completed / result.seconds, failed: result.failed };
}

export interface Resident {
  readonly label: string;
  readonly pid: number;
}

export interface IdleMemory {
  readonly sessions: number;
  /** How long opening them took, ms: both halves. */
  readonly openMs: number;
  readonly processes: readonly {
    label: string;
    /** VmRSS, KiB: before, with half the sessions open, with all of them. */
    beforeKiB: number;
    halfKiB: number;
    afterKiB: number;
    /** (after - before) / sessions: what the sessions cost, one-time growth included. */
    perSessionKiB: number;
    /** (after - half) / (sessions / 2): the cost of one more session once the process has grown. */
    marginalKiB: number;
  }[];
}

/**
 * RSS per idle session: warm up (open and close IDLE_WARMUP sessions), read each process's
 * VmRSS, open half the sessions (each has carried one byte both ways), read it again, open
 * the other half, read it again, after letting the processes settle each time. The total
 * difference over the session count is the cost the brief asks for; the second half's
 * difference is the marginal cost, free of one-time growth (a heap's young generation
 * enlarging under the handshakes' garbage, JIT code).
 */
export async function idleMemory(
  net: PodNetwork,
  a: Pod,
  to: Endpoint,
  processes: readonly Resident[],
  expectComm: RegExp,
  count: number = IDLE_SESSIONS,
): Promise<IdleMemory> {
  for (const p of processes) {
    const comm = commOf(p.pid);
    if (!expectComm.test(comm)) throw new Error(`pid ${p.pid} (${p.label}) is '${comm}', not the process to measure`);
  }
  const sample = (): number[] => processes.map((p) => rssKiB(p.pid));
  await (await openIdle(net, a, to, IDLE_WARMUP)).release();
  await sleep(1000);
  const before = sample();
  const half = Math.floor(count / 2);
  const first = await openIdle(net, a, to, half);
  try {
    await sleep(SETTLE_MS);
    const mid = sample();
    const second = await openIdle(net, a, to, count - half);
    try {
      await sleep(SETTLE_MS);
      const after = sample();
      return {
        sessions: count,
        openMs: first.openMs + second.openMs,
        processes: processes.map((p, i) => ({
          label: p.label,
          beforeKiB: before[i]!,
          halfKiB: mid[i]!,
          afterKiB: after[i]!,
          perSessionKiB: (after[i]! - before[i]!) / count,
          marginalKiB: (after[i]! - mid[i]!) / (count - half),
        })),
      };
    } finally {
      await second.release();
    }
  } finally {
    await first.release();
  }
}

/** Time for the processes to finish with the sessions just opened before RSS is read. */
const SETTLE_MS = 2000;

interface HeldSessions {
  readonly openMs: number;
  /** Closes them all (the client exits) and waits a moment for the proxies to see it. */
  release(): Promise<void>;
}

/** Opens `count` idle sessions from pod A and holds them; throws unless every one opened. */
async function openIdle(net: PodNetwork, a: Pod, to: Endpoint, count: number): Promise<HeldSessions> {
  const client = start(net, a, 'idle client', NODE, [join(SCRIPTS, 'idle-client.js'), to.host, String(to.port), String(count), String(IDLE_CONCURRENCY)]);
  const release = async (): Promise<void> => {
    const exited = new Promise<void>((resolve) => (client.exited ? resolve() : client.child.once('exit', () => resolve())));
    client.child.stdin!.end();
    const timer = setTimeout(() => client.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
    await sleep(1000);
  };
  try {
    await client.waitFor(/^\{"open".*\}$/m, 180_000);
    const result = JSON.parse(/^\{"open".*\}$/m.exec(client.tail)![0]) as { open: number; failed: number; ms: number };
    if (result.open !== count) throw new Error(`only ${result.open} of ${count} idle sessions to ${to.host}:${to.port} opened (${result.failed} failed)`);
    return { openMs: result.ms, release };
  } catch (err) {
    await release();
    throw err;
  }
}
