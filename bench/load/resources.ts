/**
 * What a proxy process costs while a run lasts: CPU time from /proc/<pid>/stat (utime +
 * stime, all threads) and the peak of its resident set, sampled from /proc/<pid>/status
 * every SAMPLE_MS (VmHWM would be the peak since the process started, warm-ups included).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rssKiB } from '../proxy/pods.js';

const SAMPLE_MS = 100;

/** Clock ticks per second, the unit of /proc/<pid>/stat's times. */
export const CLK_TCK = ((): number => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 });
  const n = Number(r.stdout?.trim());
  return Number.isInteger(n) && n > 0 ? n : 100;
})();

/** CPU seconds a process has used so far, user and system, all its threads. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`unreadable /proc/${pid}/stat`);
  return (utime + stime) / CLK_TCK;
}

export interface Watched {
  readonly label: string;
  readonly pid: number;
}

export interface ProcessCost {
  readonly label: string;
  /** CPU seconds over the watch divided by its wall seconds: cores in use on average. */
  readonly cores: number;
  readonly peakRssKiB: number;
}

/** Watches processes from now until stop(). */
export class ResourceWatch {
  readonly #cpu0: number[];
  readonly #peak: number[];
  readonly #t0 = performance.now();
  readonly #timer: NodeJS.Timeout;

  constructor(private readonly processes: readonly Watched[]) {
    this.#cpu0 = processes.map((p) => cpuSeconds(p.pid));
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
    return this.processes.map((p, i) => ({ label: p.label, cores: (cpuSeconds(p.pid) - this.#cpu0[i]!) / seconds, peakRssKiB: this.#peak[i]! }));
  }
}
