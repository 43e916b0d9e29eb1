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
 * group's). So a watch reads every thread at each sample and keeps what a thread had used by
 * its last one (CpuTracker), and where the ticks grew by more than that sum beyond their own
 * rounding (two ticks), the ticks' figure is used. Exact while threads live or exit idle
 * (node's and haproxy's live as long as the process; stunnel's connection threads end with
 * their connections), within a few ticks when threads that worked come and go between samples
 * (stunnel's thread per connection, under churn).
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

/** Each live thread's CPU seconds so far, by thread id, from its schedstat (nanoseconds). */
export function threadCpuSeconds(pid: number): Map<string, number> {
  const threads = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8');
    } catch {
      // The thread exited between the listing and the read: its last sample, or the ticks, hold its time.
      continue;
    }
    const onCpu = Number(text.slice(0, text.indexOf(' ')));
    if (!Number.isSafeInteger(onCpu)) throw new Error(`unreadable /proc/${pid}/task/${tid}/schedstat`);
    threads.set(tid, onCpu / 1e9);
  }
  return threads;
}

/**
 * One process's CPU time from now on: every thread's schedstat at the start and at each
 * sample(), each thread counted from its first reading (0 for one born later) to its last, so a
 * thread that exits keeps what it had used by the sample before (stunnel's connection threads
 * exit as the client closes its connections, before the watch stops). What a thread used after
 * its last sample, or a thread that lived and died between two samples, only the ticks see:
 * where /proc/<pid>/stat grew by more than the threads' sum plus its own rounding (two ticks:
 * utime and stime each truncate), the ticks' growth is the figure.
 */
export class CpuTracker {
  readonly #first = new Map<string, number>();
  readonly #last = new Map<string, number>();
  readonly #ticks0: number;

  constructor(readonly pid: number) {
    this.#ticks0 = statCpuSeconds(pid);
    for (const [tid, v] of threadCpuSeconds(pid)) {
      this.#first.set(tid, v);
      this.#last.set(tid, v);
    }
  }

  /** Reads every thread again; throws when the process is gone. */
  sample(): void {
    for (const [tid, v] of threadCpuSeconds(this.pid)) {
      if (!this.#first.has(tid)) this.#first.set(tid, 0);
      this.#last.set(tid, v);
    }
  }

  /** CPU seconds since the start, reading once more; throws when the process is gone. */
  seconds(): number {
    this.sample();
    let threads = 0;
    for (const [tid, last] of this.#last) threads += last - this.#first.get(tid)!;
    const ticks = statCpuSeconds(this.pid) - this.#ticks0;
    return ticks - threads > 2 / USER_HZ ? ticks : threads;
  }
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
  readonly #cpu: CpuTracker[];
  readonly #peak: number[];
  readonly #t0 = performance.now();
  readonly #timer: NodeJS.Timeout;

  constructor(private readonly processes: readonly Watched[]) {
    this.#cpu = processes.map((p) => new CpuTracker(p.pid));
    this.#peak = processes.map((p) => rssKiB(p.pid));
    // Sampling alone must not keep a process alive: whoever made the watch stops it.
    this.#timer = setInterval(() => this.#sample(), SAMPLE_MS).unref();
  }

  #sample(): void {
    this.processes.forEach((p, i) => {
      try {
        this.#peak[i] = Math.max(this.#peak[i]!, rssKiB(p.pid));
        this.#cpu[i]!.sample();
      } catch {
        // The process ended; stop() reports it.
      }
    });
  }

  stop(): ProcessCost[] {
    clearInterval(this.#timer);
    this.#sample();
    const seconds = (performance.now() - this.#t0) / 1000;
    return this.processes.map((p, i) => ({ label: p.label, cpuSeconds: this.#cpu[i]!.seconds(), seconds, peakRssKiB: this.#peak[i]! }));
  }
}
