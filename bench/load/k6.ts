/**
 * When a `k6` binary is on PATH the runner hands each run to the k6 scripts of bench/k6
 * instead of its own generator: same scenarios, same summary (their handleSummary writes a
 * LoadSummary). The scripts and the scenario file, with the run's overrides applied, are
 * copied into a directory of the run, so a shortened run is shortened for k6 too.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { repoRoot } from '../../test/helpers/paths.js';
import { isExecutable } from '../../test/helpers/executable.js';
import type { LoadSummary, Scenario } from '../k6/contract.js';
import { run, type Endpoint, type Pod, type PodNetwork } from '../proxy/pods.js';
import { K6_SCRIPTS } from './scenarios.js';

/** The k6 binary on PATH, or null. */
export function findK6(): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && isExecutable(join(dir, 'k6'))) return join(dir, 'k6');
  }
  return null;
}

/** Copies bench/k6's scripts into `dir` with a scenarios.json holding `scenarios`. */
export function stageScripts(dir: string, scenarios: readonly Scenario[]): void {
  mkdirSync(dir, { recursive: true });
  const source = join(repoRoot, 'bench/k6');
  for (const file of readdirSync(source)) if (file.endsWith('.ts')) copyFileSync(join(source, file), join(dir, file));
  writeFileSync(join(dir, 'scenarios.json'), JSON.stringify({ scenarios }, null, 2));
}

/** One k6 run in pod A against `to`; resolves to its handleSummary's LoadSummary. */
export async function runK6(net: PodNetwork, a: Pod, k6: string, dir: string, s: Scenario, to: Endpoint, metricsUrl: string | null): Promise<LoadSummary> {
  const out = join(dir, `summary-${s.name}-${Date.now()}.json`);
  const env = { TARGET_URL: `http://${to.host}:${to.port}`, SCENARIO: s.name, SUMMARY_FILE: out, ...(metricsUrl !== null && { METRICS_URL: metricsUrl }) };
  const args = ['run', '--quiet', '--no-usage-report', ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]), join(dir, K6_SCRIPTS[s.kind])];
  const seconds = s.kind === 'ramp' ? s.steps.length * (s.stepSeconds + 1) : s.durationSeconds;
  // k6 exits 99 when a threshold fails: a result, not a failure of the run.
  await run(net, a, 'sh', ['-c', `"$0" "$@"; code=$?; [ $code -eq 0 ] || [ $code -eq 99 ]`, k6, ...args], (seconds + 120) * 1000);
  return JSON.parse(readFileSync(out, 'utf8')) as LoadSummary;
}
