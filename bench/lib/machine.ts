/** What a benchmark run was measured on, printed above every run. */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';

export function describeMachine(): string {
  const cpu = cpus();
  const model = cpu[0]?.model.trim() ?? 'unknown CPU';
  return `${model}, ${cpu.length} cores; node ${process.versions.node}, OpenSSL ${process.versions.openssl}; ${new Date().toISOString()}; ${describeLoad()}`;
}

/**
 * Other work on the machine moves every absolute figure; ratios to a same-run baseline
 * move far less. The load average says which kind of run this was.
 */
export function describeLoad(): string {
  const [one, five] = loadavg();
  return `load average ${one?.toFixed(2)} (1 min), ${five?.toFixed(2)} (5 min)`;
}

/** CPU time in clock ticks, summed over all CPUs: all of it, and the part the hypervisor took. */
export interface CpuTicks {
  readonly total: number;
  /** /proc/stat's `steal`: time a virtual CPU wanted to run and the host ran something else. */
  readonly steal: number;
}

/** The machine's CPU ticks so far, from /proc/stat's first line; null where there is none. */
export function cpuTicks(): CpuTicks | null {
  let line: string | undefined;
  try {
    line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  } catch {
    return null;
  }
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice
  const fields = line?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  if (fields.length < 8 || fields.some((f) => !Number.isFinite(f))) return null;
  // guest and guest_nice are already counted in user and nice.
  const total = fields.slice(0, 8).reduce((sum, f) => sum + f, 0);
  return { total, steal: fields[7]! };
}

/** The ticks between two readings (null if either is). */
export function ticksBetween(before: CpuTicks | null, after: CpuTicks | null): CpuTicks | null {
  if (before === null || after === null) return null;
  return { total: after.total - before.total, steal: after.steal - before.steal };
}

/**
 * Stolen share of the CPU time over several spans: the noise floor of a latency figure on a
 * VM, since a stolen slice stalls whatever was running on that virtual CPU for its length.
 */
export function stealShare(spans: readonly (CpuTicks | null)[]): number | null {
  let total = 0;
  let steal = 0;
  for (const span of spans) {
    if (span === null) return null;
    total += span.total;
    steal += span.steal;
  }
  return total > 0 ? steal / total : null;
}
