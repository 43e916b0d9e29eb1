/**
 * What a proxy process costs while a run lasts: the CPU time it used and the peak of its
 * resident set, sampled from /proc/<pid>/status every SAMPLE_MS (VmHWM would be the peak
 * since the process started, warm-ups included).
 *
 * CPU time is the sum over the process's threads of the first field of
 * /proc/<pid>/task/<tid>/schedstat, nanoseconds on a CPU: /proc/<pid>/stat's utime + stime
 * count whole clock ticks (10 ms at USER_HZ 100), which at 20 requests/s in a 30 s run is
 * 0.017 core per 1,000 requests/s per tick. A thread that exits leaves task/ and its time
 * with it; /proc/<pid>/stat keeps counting it (the kernel adds a dead thread's time to its
 * group's). So a watch takes both at its start and stop: where the ticks grew by more than the
 * live threads' sum beyond their own rounding (two ticks), a thread that ran in the watch
 * exited, and the ticks' figure is used; otherwise the threads' sum, to the nanosecond. Exact
 * while no thread exits (node's and haproxy's threads live as long as the process), within a
 * few ticks when some do (stunnel's thread per connection, under churn).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { rssKiB } from '../proxy/pods.js';

const SAMPLE_MS = 100;

/** Clock ticks per second, the unit of /proc/<pid>/stat's times (USER_HZ: 100 on Linux). */
const USER_HZ = 100;

/** CPU seconds of the process's threads, user and system, from /proc/<pid>/stat (whole ticks, dead threads included). */
export function statCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`unreadable /proc/${pid}/stat`);
  return (utime + stime) / USER_HZ;
}

/** CPU seconds of the threads alive now, from each one's schedstat (nanoseconds; exited threads missing). */
export function liveThreadsCpuSeconds(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8');
    } catch {
      // The thread exited between the listing and the read: /proc/<pid>/stat holds its time.
      continue;
    }
    const onCpu = Number(text.slice(0, text.indexOf(' ')));
    if (!Number.isSafeInteger(onCpu)) throw new Error(`unreadable /proc/${pid}/task/${tid}/schedstat`);
    ns += onCpu;
  }
  return ns / 1e9;
}

/** Both readings of a process's CPU time so far, seconds; throws when the process is gone. */
export interface CpuReading {
  /** The live threads' schedstat sum (ns resolution, exited threads missing). */
  readonly live: number;
  /** /proc/<pid>/stat's utime + stime (tick resolution, exited threads included). */
  readonly ticks: number;
}

export function readCpu(pid: number): CpuReading {
  return { live: liveThreadsCpuSeconds(pid), ticks: statCpuSeconds(pid) };
}

/**
 * CPU seconds used between two readings of one process: the live threads' growth, unless the
 * ticks grew by more than that plus their rounding (2 ticks: utime and stime each truncate),
 * which only a thread that exited in between can cause; then the ticks' growth.
 */
export function cpuBetween(from: CpuReading, to: CpuReading): number {
  const live = to.live - from.live;
  const ticks = to.ticks - from.ticks;
  return ticks - live > 2 / USER_HZ ? ticks : live;
}

export interface Watched {
  readonly label: string;
  readonly pid: number;
}

export interface ProcessCost {
  readonly label: string;
  /** CPU seconds the process used over the watch (cpuSeconds at stop minus at start). */
  readonly cpuSeconds: number;
  /** The watch's wall seconds: cpuSeconds over it is the cores in use on average. */
  readonly seconds: number;
  readonly peakRssKiB: number;
}

/** Watches processes from now until stop(). */
export class ResourceWatch {
  readonly #cpu0: CpuReading[];
  readonly #peak: number[];
  readonly #t0 = performance.now();
  readonly #timer: NodeJS.Timeout;

  constructor(private readonly processes: readonly Watched[]) {
    this.#cpu0 = processes.map((p) => readCpu(p.pid));
    this.#peak = processes.map((p) => rssKiB(p.pid));
    this.#timer = setInterval(() => this.#sample(), SAMPLE_MS);
  }

  #sample(): void {
    this.processes.forEach((p, i) => {
      try {
        this.#peak[i] = Math.max(this.#peak[i]!, rssKiB(p.pid));
      } catch {
        // The process ended; stop() reports it.
      }
    });
  }

  stop(): ProcessCost[] {
    clearInterval(this.#timer);
    this.#sample();
    const seconds = (performance.now() - this.#t0) / 1000;
    return this.processes.map((p, i) => ({ label: p.label, cpuSeconds: cpuBetween(this.#cpu0[i]!, readCpu(p.pid)), seconds, peakRssKiB: this.#peak[i]! }));
  }
}
