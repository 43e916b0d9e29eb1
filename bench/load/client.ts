/**
 * One run of one scenario against one target, as a process (run in pod A by the runner, and
 * on loopback by the tests):
 *   node client.js '<json: {"scenario": Scenario, "host", "port", "timeoutMs", "warmupSeconds", "out"?, "waitForGo"?}>'
 * First a warm-up, not counted: warmupSeconds at the scenario's first rate on the same
 * connection pool (a fresh node process runs its first second far slower, and keep-alive
 * connections are opened there, not in the measured run). Then the scenario.
 * Prints `measuring` when the warm-up ends (and with "waitForGo" waits for a line on stdin), then one JSON line, {"summary": LoadSummary,
 * "lagMs": {p99, max} | null}, to stdout or, with "out", to that file.
 */
import { writeFileSync } from 'node:fs';
import type { Scenario } from '../k6/contract.js';
import { isDenied } from '../k6/contract.js';
import { MAX_CONNECTIONS, makePool, openLoop, type RequestPlan } from './generator.js';
import { arrivalsFor, constantArrivals } from './schedule.js';
import { parseScenarios } from './scenarios.js';
import { lagSummary, summarizeRun } from './summary.js';

interface ClientSpec {
  readonly scenario: Scenario;
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
  readonly warmupSeconds: number;
  readonly out?: string;
  /** After `measuring`, wait for a line on stdin before starting (the runner reads counters first). */
  readonly waitForGo?: boolean;
}

function lineOnStdin(): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdin.on('data', (chunk: Buffer) => {
      if (chunk.includes(0x0a)) {
        // An open stdin would keep the process alive after the run.
        process.stdin.destroy();
        resolve();
      }
    });
    process.stdin.once('end', () => reject(new Error('stdin closed before the go line')));
  });
}

/** The request number i of a scenario: the same paths and expectations as its k6 script. */
export function planFor(s: Scenario): (i: number) => RequestPlan {
  if (s.kind === 'gateway') {
    return (i) => {
      const denied = isDenied(i, s.deniedShare);
      const paths = denied ? s.deniedPaths : s.allowedPaths;
      return { method: 'GET', path: `/v1/secrets/${paths[i % paths.length]!}`, expectStatus: denied ? 403 : 200, bodyBytes: null };
    };
  }
  const plan: RequestPlan = { method: 'POST', path: `/load?bytes=${s.responseBytes}`, expectStatus: 200, bodyBytes: s.responseBytes };
  return () => plan;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '') as ClientSpec;
  // The scenario is checked as the file's would be: a runner override must not slip past.
  const [scenario] = parseScenarios(JSON.stringify({ scenarios: [spec.scenario] }), 'client argument').scenarios as [Scenario];
  const options = {
    target: { host: spec.host, port: spec.port },
    plan: planFor(scenario),
    body: Buffer.alloc(scenario.kind === 'gateway' ? 0 : scenario.requestBytes, 0x78),
    newConnectionPerRequest: scenario.kind === 'churn',
    maxInFlight: scenario.maxInFlight,
    timeoutMs: spec.timeoutMs,
  };
  const common = { ...options, pool: makePool(options, Math.min(scenario.maxInFlight, MAX_CONNECTIONS)) };
  if (spec.warmupSeconds > 0) {
    const firstRate = scenario.kind === 'ramp' ? scenario.steps[0]! : scenario.rate;
    await openLoop({ ...common, schedule: constantArrivals(firstRate, spec.warmupSeconds) });
  }
  console.log('measuring');
  if (spec.waitForGo === true) await lineOnStdin();
  const raw = await openLoop({ ...common, schedule: arrivalsFor(scenario) });
  common.pool.close();
  const result = JSON.stringify({ summary: summarizeRun(scenario, raw), lagMs: lagSummary(raw) });
  if (spec.out === undefined) console.log(result);
  else writeFileSync(spec.out, `${result}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().then(() => process.exit(0), (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
