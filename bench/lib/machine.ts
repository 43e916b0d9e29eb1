/** What a benchmark run was measured on, printed above every run. */
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
