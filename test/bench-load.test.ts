// The load harness (bench/k6, bench/load): the k6 scripts type-check against the pinned
// @types/k6 and render as a Kubernetes Job with kustomize; the runner's own logic (arrival
// schedule, percentiles, the summary) holds against real servers with known delays; an open
// model keeps its arrival rate when the server slows, where a closed loop does not; and a short
// run end to end on loopback, through two real proxies, fills every field of the summary and
// counts a resetting target's requests as errors. No timing bound here is about speed: each is
// a margin around a delay the test server itself imposes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { isDenied, rampProfile, type ConstantScenario, type GatewayScenario, type LoadSummary, type RampScenario, type Scenario } from '../bench/k6/contract.js';
import { closedLoop, openLoop, OUTCOMES, type RawRun } from '../bench/load/generator.js';
import { K6_SCRIPTS, loadScenarios, parseScenarios } from '../bench/load/scenarios.js';
import { constantArrivals, rampArrivals, arrivalsFor } from '../bench/load/schedule.js';
import { k6Percentile, lagSummary, latencySummary, summarizeRun } from '../bench/load/summary.js';
import { planFor } from '../bench/load/client.js';
import { ResourceWatch } from '../bench/load/resources.js';
import { medianRun, scenarioTable, type PathRun } from '../bench/load/report.js';
import { gatewayAvailable, gatewayLine } from '../bench/load.js';
import { gatewayFiles } from '../bench/load/gateway.js';
import { commands } from '../src/cli/commands/index.js';
import { isExecutable } from './helpers/executable.js';
import { twoProxies } from './helpers/mesh.js';
import { startGatewayFixture } from './helpers/gateway.js';
import { repoRoot } from './helpers/paths.js';

const K6_DIR = join(repoRoot, 'bench/k6');
const TSC = join(repoRoot, 'node_modules/.bin/tsc');
const SERVER = join(repoRoot, 'dist/bench/load/http-server.js');
const CLIENT = join(repoRoot, 'dist/bench/load/client.js');

function constant(over: Partial<ConstantScenario> = {}): ConstantScenario {
  return {
    name: 'test',
    kind: 'constant',
    description: 'test',
    rate: 50,
    durationSeconds: 1,
    requestBytes: 1024,
    responseBytes: 1024,
    maxInFlight: 200,
    thresholds: { p99Ms: 1000, errorRate: 0 },
    ...over,
  };
}

/** bench/load/http-server.js on a free loopback port; resolves once it listens. */
async function startServer(...args: string[]): Promise<{ port: number; child: ChildProcess; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [SERVER, '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /^ready (\d+)$/m.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`http-server exited (${code}) before listening`)));
  });
  return {
    port,
    child,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Runs the runner's client process once; resolves to its summary. */
function runClient(scenario: Scenario, port: number, warmupSeconds = 0): Promise<{ summary: LoadSummary; lagMs: unknown }> {
  const spec = { scenario, host: '127.0.0.1', port, timeoutMs: 5000, warmupSeconds };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLIENT, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`client exited ${code}: ${err}`));
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line === undefined) return reject(new Error(`client printed no summary: ${out}`));
      resolve(JSON.parse(line) as { summary: LoadSummary; lagMs: unknown });
    });
  });
}

// --- the k6 scripts ---

function typeCheck(project: string): { status: number | null; output: string } {
  const r = spawnSync(TSC, ['--noEmit', '-p', project], { encoding: 'utf8', timeout: 120_000 });
  if (r.error) assert.fail(`could not run ${TSC} (npm ci installs typescript): ${r.error.message}`);
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

test('the k6 scripts type-check against @types/k6 (tsc --noEmit -p bench/k6/tsconfig.json)', () => {
  const r = typeCheck(join(K6_DIR, 'tsconfig.json'));
  assert.equal(r.status, 0, r.output);
});

test('the type check catches a wrong call into the k6 API', () => {
  // A copy of the scripts with one call made wrong must fail the same check.
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-k6-typecheck-'));
  try {
    cpSync(K6_DIR, dir, { recursive: true });
    symlinkSync(join(repoRoot, 'node_modules'), join(dir, 'node_modules'));
    const http = readFileSync(join(dir, 'http.ts'), 'utf8');
    const broken = http.replace("http.post(url, body, { timeout: '10s'", "http.post(url, body, { timeout: '10s', redirects: 'none'");
    assert.notEqual(broken, http, 'the edit must apply');
    writeFileSync(join(dir, 'http.ts'), broken);
    const r = typeCheck(join(dir, 'tsconfig.json'));
    assert.notEqual(r.status, 0, 'a type error must fail the check');
    assert.match(r.output, /http\.ts\(\d+,\d+\): error TS2322/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('@types/k6 is pinned exactly, and the Job runs the k6 release it describes', () => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
  const types = pkg.devDependencies['@types/k6'];
  assert.match(types ?? '', /^\d+\.\d+\.\d+$/, '@types/k6 must be an exact version');
  const job = parse(readFileSync(join(K6_DIR, 'deploy/job.yaml'), 'utf8')) as { spec: { template: { spec: { containers: { image: string }[] } } } };
  const image = job.spec.template.spec.containers[0]!.image;
  const tag = /^grafana\/k6:(\d+)\.(\d+)\.\d+$/.exec(image);
  assert.ok(tag, `${image} must be grafana/k6 at a pinned release`);
  assert.equal(`${tag[1]}.${tag[2]}`, types!.split('.').slice(0, 2).join('.'), 'the types describe the image\'s major.minor');
});

test('every scenario of scenarios.json has a k6 script of its kind', () => {
  const file = loadScenarios();
  assert.ok(file.scenarios.length > 0);
  for (const s of file.scenarios) {
    const script = readFileSync(join(K6_DIR, K6_SCRIPTS[s.kind]), 'utf8');
    assert.match(script, new RegExp(`pickScenario\\('${s.kind}'\\)`), `${K6_SCRIPTS[s.kind]} runs ${s.kind} scenarios`);
  }
  const kinds = new Set(file.scenarios.map((s) => s.kind));
  for (const kind of ['constant', 'ramp', 'churn', 'gateway'] as const) assert.ok(kinds.has(kind), `a ${kind} scenario`);
  const rates = file.scenarios.filter((s): s is ConstantScenario => s.kind === 'constant').map((s) => s.rate);
  assert.deepEqual(rates, [20, 200, 2000]);
});

test('a broken scenario file is refused with the field and what it must be', () => {
  const good = JSON.parse(readFileSync(join(K6_DIR, 'scenarios.json'), 'utf8')) as { scenarios: Record<string, unknown>[] };
  const cases: [(s: Record<string, unknown>[]) => void, RegExp][] = [
    [(s) => (s[0]!.rate = -1), /scenarios\[0\]\.rate: must be an integer from 1/],
    [(s) => delete s[1]!.thresholds, /scenarios\[1\]\.thresholds: missing/],
    [(s) => (s[2]!.kind = 'soak'), /scenarios\[2\]\.kind: must be one of/],
    [(s) => (s[3]!.steps = [100, 50]), /scenarios\[3\]\.steps: rates must ascend/],
    [(s) => (s[5]!.deniedPaths = ['../etc']), /scenarios\[5\]\.deniedPaths: must be a non-empty list of secret paths/],
    [(s) => (s[1]!.name = s[0]!.name), /scenarios\[1\]\.name: "http-20" is already used/],
    // k6 refuses any other scenario name, and the runner puts names in file names.
    [(s) => (s[2]!.name = 'http 2000'), /scenarios\[2\]\.name: must be 1 to 64 letters, digits, '_' or '-' \(k6's rule for scenario names\), not "http 2000"/],
    [(s) => (s[4]!.name = '../../x'), /scenarios\[4\]\.name: must be 1 to 64 letters/],
    // A field the scenario does not have is named, not ignored.
    [(s) => (s[3]!.durationSeconds = 30), /scenarios\[3\]\.durationSeconds: not a field of a ramp scenario \(its fields: name, description, thresholds, maxInFlight, kind, steps, stepSeconds, requestBytes, responseBytes\)/],
    [(s) => ((s[0]!.thresholds as Record<string, unknown>).p95Ms = 5), /scenarios\[0\]\.thresholds\.p95Ms: not a field of thresholds/],
    [(s) => (s[1]!['max in flight'] = 5), /scenarios\[1\]\["max in flight"\]: not a field of a constant scenario/],
    [(s) => (s[0]!.name = 'x'.repeat(100_000)), /scenarios\[0\]\.name: must be 1 to 64 letters, digits, '_' or '-' \(k6's rule for scenario names\), not "x{76}\.\.\.$/],
  ];
  for (const [mutate, message] of cases) {
    const copy = structuredClone(good);
    mutate(copy.scenarios);
    assert.throws(() => parseScenarios(JSON.stringify(copy)), message);
  }
  assert.throws(() => parseScenarios('{'), /not JSON/);
  assert.throws(() => parseScenarios(JSON.stringify({ ...good, scenario: [] })), /\(top level\)\.scenario: not a field of the scenario file \(its fields: scenarios\)/);
});

// --- the kubernetes manifests ---

test('bench/k6 renders with kubectl kustomize: a k6 Job with every script in its ConfigMap', () => {
  const kubectl = ['/usr/bin', '/usr/local/bin', ...(process.env.PATH ?? '').split(':')].map((d) => join(d, 'kubectl')).find(isExecutable);
  if (kubectl === undefined) assert.fail('kubectl is missing: install the Debian package kubernetes-client');
  const r = spawnSync(kubectl, ['kustomize', K6_DIR], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as { kind: string; metadata: { name: string; namespace?: string }; data?: Record<string, string>; spec?: any });
  const cm = docs.find((d) => d.kind === 'ConfigMap');
  const job = docs.find((d) => d.kind === 'Job');
  assert.ok(cm && job, 'a ConfigMap and a Job');
  assert.equal(job.metadata.namespace, 'noisemesh-bench');
  // Every file k6 loads is in the ConfigMap, as it is in the repository.
  const files = readdirSync(K6_DIR).filter((f) => f.endsWith('.ts') || f === 'scenarios.json');
  assert.deepEqual(Object.keys(cm.data!).sort(), files.sort());
  for (const f of files) assert.equal(cm.data![f], readFileSync(join(K6_DIR, f), 'utf8'), `${f} verbatim`);
  const pod = job.spec.template.spec;
  const volume = pod.volumes.find((v: { configMap?: { name: string } }) => v.configMap !== undefined);
  assert.equal(volume.configMap.name, cm.metadata.name, 'the Job mounts the generated (hashed) ConfigMap');
  const container = pod.containers[0];
  const env = Object.fromEntries(container.env.map((e: { name: string; value: string }) => [e.name, e.value]));
  assert.ok(env.SCRIPT in cm.data!, `SCRIPT ${env.SCRIPT} is a mounted file`);
  const scenario = loadScenarios().scenarios.find((s) => s.name === env.SCENARIO);
  assert.ok(scenario, `SCENARIO ${env.SCENARIO} is in scenarios.json`);
  assert.equal(K6_SCRIPTS[scenario.kind], env.SCRIPT);
  assert.deepEqual(container.args, ['run', '--no-usage-report', '/scripts/$(SCRIPT)']);
  assert.equal(pod.restartPolicy, 'Never');
  // Memory holds the largest maxVUs (a scenario's maxInFlight) at k6's worst case for simple
  // tests, "~1-5MB per VU" (k6 docs, running large tests), above k6's own base: a Job that
  // ran out of memory as VUs piled up behind a stalled target would lose the run's summary.
  const need = K6_BASE_MIB * MIB + maxVUs() * K6_MIB_PER_VU * MIB;
  const limit = bytes(container.resources?.limits?.memory);
  const request = bytes(container.resources?.requests?.memory);
  assert.ok(need <= limit, `k6 may need ${need / MIB} MiB (${K6_BASE_MIB} + ${maxVUs()} VUs x ${K6_MIB_PER_VU} MiB) but the Job's memory limit is ${limit / MIB} MiB: raise it in deploy/job.yaml or lower maxInFlight in scenarios.json`);
  assert.ok(need <= request, `the Job requests ${request / MIB} MiB of memory, less than the ${need / MIB} MiB k6 may need: the scheduler would not reserve it`);
  // The quantity is the arithmetic itself, and job.yaml's comment and bench/README.md give it.
  assert.equal(limit, need, `the Job's memory is ${limit / MIB} MiB where ${K6_BASE_MIB} + ${maxVUs()} x ${K6_MIB_PER_VU} = ${need / MIB} MiB: make them agree (job.yaml's comment, bench/README.md)`);
  const shown = (need / MIB).toLocaleString('en-US');
  assert.match(readFileSync(join(K6_DIR, 'deploy/job.yaml'), 'utf8'), new RegExp(`${K6_BASE_MIB} \\+ ${maxVUs()} x ${K6_MIB_PER_VU} = ${shown} MiB`));
  assert.match(readFileSync(join(repoRoot, 'bench/README.md'), 'utf8'), new RegExp(`${shown} MiB`));
});

const MIB = 1024 * 1024;
/** k6's own memory (the binary, its runtime, every Trend sample it keeps), MiB. */
const K6_BASE_MIB = 256;
/** The top of the k6 docs' "~1-5MB per VU" for simple tests, MiB. */
const K6_MIB_PER_VU = 5;

/** The largest maxVUs any k6 script asks for: every scenario's maxVUs is its maxInFlight. */
function maxVUs(): number {
  return Math.max(...loadScenarios().scenarios.map((s) => s.maxInFlight));
}

/** A Kubernetes memory quantity (`2256Mi`, `2Gi`, `500M`, `1073741824`) in bytes. */
function bytes(quantity: unknown): number {
  const m = /^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(quantity));
  assert.ok(m, `memory quantity ${String(quantity)}: expected a whole number with an optional unit`);
  const unit = { '': 1, Ki: 1024, Mi: MIB, Gi: 1024 * MIB, Ti: 1024 * 1024 * MIB, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2] ?? '']!;
  return Number(m[1]) * unit;
}

test('memory quantities read as Kubernetes reads them; every in-flight cap holds what Little\'s law needs at its thresholds', () => {
  assert.equal(bytes('1Gi'), 1024 * MIB);
  assert.equal(bytes('2256Mi'), 2256 * MIB);
  assert.equal(bytes('500M'), 500e6);
  assert.equal(bytes('1073741824'), 1024 * MIB);
  assert.throws(() => bytes('1.5Gi'), /expected a whole number/);
  // In flight at once = rate x time in flight: at the top rate and a p99 at its limit, the cap
  // must hold at least that, or a run that meets its thresholds would still drop arrivals.
  for (const s of loadScenarios().scenarios) {
    const top = s.kind === 'ramp' ? s.steps[s.steps.length - 1]! : s.rate;
    assert.ok(s.maxInFlight >= (top * s.thresholds.p99Ms) / 1000, `${s.name}: maxInFlight ${s.maxInFlight} < ${top}/s x ${s.thresholds.p99Ms} ms`);
  }
});

// --- the runner's logic ---

test('arrival schedule: constant rate and a ramp give the rate k6 would at every moment', () => {
  const c = constantArrivals(2000, 2);
  assert.equal(c.length, 4000);
  assert.equal(c[0], 0);
  assert.equal(c[1], 0.5);
  assert.equal(c[3999], 1999.5);

  const ramp: RampScenario = { name: 'r', kind: 'ramp', description: 'r', steps: [100, 300, 600], stepSeconds: 2, requestBytes: 1, responseBytes: 1, maxInFlight: 10, thresholds: { p99Ms: 1, errorRate: 0 } };
  const times = arrivalsFor(ramp);
  for (let i = 1; i < times.length; i++) assert.ok(times[i]! > times[i - 1]!, 'strictly ascending');
  const { windows, stages } = rampProfile(ramp);
  assert.deepEqual(windows.map((w) => [w.rate, w.fromSeconds, w.toSeconds]), [[100, 0, 2], [300, 3, 5], [600, 6, 8]]);
  const count = (from: number, to: number): number => times.filter((t) => t >= from * 1000 && t < to * 1000).length;
  // Each hold: rate x seconds (to one arrival at the edges); each 1 s climb: the mean of its ends.
  for (const w of windows) assert.ok(Math.abs(count(w.fromSeconds, w.toSeconds) - w.rate * 2) <= 1, `step ${w.rate}`);
  assert.ok(Math.abs(count(2, 3) - 200) <= 1);
  assert.ok(Math.abs(count(5, 6) - 450) <= 1);
  assert.equal(times.length, Math.round(200 + 200 + 600 + 450 + 1200));
  // A flat ramp is the constant schedule.
  assert.deepEqual(Array.from(rampArrivals(50, [{ seconds: 2, target: 50 }])), Array.from(constantArrivals(50, 2)));
  assert.equal(stages.length, 5);
});

// k6's Trend p(N) (TrendSink.P): rank N/100 x (n - 1), linear between the two closest ranks.
// Each figure below is worked by hand from that definition.
test("percentiles are k6's p(N): interpolated between the two closest ranks, small counts and ties included; no values, no latency", () => {
  const close = (actual: number, expected: number, what: string): void => assert.ok(Math.abs(actual - expected) < 1e-9, `${what}: ${actual}, not ${expected}`);
  const values = Array.from({ length: 1000 }, (_, i) => 1000 - i); // 1..1000, unsorted
  const l = latencySummary(values)!;
  // p50: rank 499.5, between 500 and 501; p99: rank 989.01, 990 + 0.01; p99.9: rank 998.001, 999 + 0.001.
  close(l.p50, 500.5, 'p50 of 1..1000');
  close(l.p99, 990.01, 'p99 of 1..1000');
  close(l.p999, 999.001, 'p99.9 of 1..1000');
  assert.equal(l.max, 1000);
  // One value: every percentile is it (k6 answers values[0]).
  assert.deepEqual(latencySummary([7]), { p50: 7, p99: 7, p999: 7, max: 7 });
  // Two values: p50 halfway, p99 at 0.99 of the way, p99.9 at 0.999 (nearest rank gave 10, 20, 20).
  const two = latencySummary([20, 10])!;
  close(two.p50, 15, 'p50 of 10, 20');
  close(two.p99, 19.9, 'p99 of 10, 20');
  close(two.p999, 19.99, 'p99.9 of 10, 20');
  // Four values: p50 at rank 1.5, between 2 and 3 (nearest rank gave 2).
  close(k6Percentile([1, 2, 3, 4], 50), 2.5, 'p50 of 1..4');
  close(k6Percentile([1, 2, 3, 4], 99), 3.97, 'p99 of 1..4');
  // Ties: between two equal values the percentile is that value; past the last tie, interpolated.
  close(k6Percentile([5, 5, 5, 9], 50), 5, 'p50 of 5, 5, 5, 9');
  close(k6Percentile([5, 5, 5, 9], 99), 5 + 4 * 0.97, 'p99 of 5, 5, 5, 9');
  close(k6Percentile([3, 3, 3, 3, 3], 99.9), 3, 'p99.9 of five 3s');
  assert.throws(() => k6Percentile([], 50), /no values/);
  assert.equal(latencySummary([]), null);
});

test('a p(99) threshold judges the same samples as k6 does: 98 fast, one at 24.99 ms, one at 1 s fails p(99)<25', () => {
  // Nearest rank read p99 as the 99th of 100 values (24.99 ms: a pass); k6 reads rank 98.01,
  // 24.99 + 0.01 x (1000 - 24.99) = 34.74 ms: a fail. The runner must fail it too.
  const n = 100;
  const raw: RawRun = {
    schedule: Float64Array.from({ length: n }, (_, i) => i * 10),
    outcome: new Uint8Array(n).fill(OUTCOMES.indexOf('ok')),
    latencyMs: Float64Array.from({ length: n }, (_, i) => (i < 98 ? 1 : i === 98 ? 24.99 : 1000)),
    lagMs: new Float64Array(n),
    sentMs: Float64Array.from({ length: n }, (_, i) => i * 10),
    elapsedMs: 1000,
  };
  const summary = summarizeRun(constant({ rate: 100, durationSeconds: 1, thresholds: { p99Ms: 25, errorRate: 0 } }), raw);
  assert.ok(Math.abs(summary.latencyMs!.p99 - 34.7401) < 1e-9, `p99 ${summary.latencyMs!.p99}`);
  assert.equal(summary.thresholds.p99Ms.actual, summary.latencyMs!.p99);
  assert.equal(summary.thresholds.p99Ms.ok, false);
  assert.equal(summary.ok, false);
});

test('of several rounds, the one with the median p99, with the range; a round with no answer ranks last', () => {
  const round = (p99: number | null): PathRun => ({
    path: 'chacha',
    name: String(p99),
    summary: { latencyMs: p99 === null ? null : { p50: 1, p99, p999: p99, max: p99 } } as LoadSummary,
    lagMs: null,
    costs: [],
  });
  const m = medianRun([round(9), round(null), round(3)]);
  assert.equal(m.name, '9');
  assert.deepEqual(m.p99RangeMs, [3, Number.POSITIVE_INFINITY]);
  assert.equal(medianRun([round(4)]).p99RangeMs, undefined);
  // An even count: the worse of the two middle rounds, never the best.
  assert.equal(medianRun([round(50), round(5)]).name, '50');
  assert.equal(medianRun([round(1), round(4), round(2), round(3)]).name, '3');
});

test('the gateway mix is exact and the same on both sides', () => {
  for (const share of [0, 0.2, 0.5, 1]) {
    let denied = 0;
    for (let i = 0; i < 1000; i++) if (isDenied(i, share)) denied++;
    assert.equal(denied, Math.round(1000 * share));
  }
  const plan = planFor({ name: 'g', kind: 'gateway', description: 'g', rate: 1, durationSeconds: 1, deniedShare: 0.2, allowedPaths: ['a/x'], deniedPaths: ['b/y'], maxInFlight: 1, thresholds: { p99Ms: 1, errorRate: 0 } });
  const asked = Array.from({ length: 10 }, (_, i) => plan(i));
  assert.deepEqual(asked.filter((p) => p.expectStatus === 403).map((p) => p.path), ['/v1/secrets/b/y', '/v1/secrets/b/y']);
  assert.ok(asked.every((p) => p.method === 'GET' && (p.expectStatus === 200) === (p.path === '/v1/secrets/a/x')));
});

test('against a server that answers after 20 ms, p50 is 20 ms and up; the summary counts every request', async () => {
  const server = await startServer('--delay-ms', '20');
  try {
    const s = constant({ rate: 40, durationSeconds: 2 });
    const raw = await openLoop({
      target: { host: '127.0.0.1', port: server.port },
      schedule: arrivalsFor(s),
      plan: planFor(s),
      body: Buffer.alloc(1024),
      newConnectionPerRequest: false,
      maxInFlight: 100,
      timeoutMs: 5000,
    });
    const summary = summarizeRun(s, raw);
    assert.equal(summary.requests, 80);
    assert.equal(summary.errors, 0);
    assert.equal(summary.dropped, 0);
    const l = summary.latencyMs!;
    assert.ok(l.p50 >= 20, `p50 ${l.p50} ms cannot beat the server's 20 ms`);
    assert.ok(l.p50 < 120, `p50 ${l.p50} ms: 20 ms plus a generous margin`);
    assert.ok(l.p50 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max);
    assert.equal(summary.thresholds.p99Ms.ok, l.p99 < 1000);
    // A threshold below the server's delay fails, and the run with it.
    const strict = summarizeRun(constant({ rate: 40, durationSeconds: 2, thresholds: { p99Ms: 15, errorRate: 0 } }), raw);
    assert.equal(strict.thresholds.p99Ms.ok, false);
    assert.equal(strict.ok, false);
  } finally {
    await server.stop();
  }
});

test('an open model keeps its arrival rate when the server slows; a closed loop does not', async () => {
  const server = await startServer('--delay-ms', '200');
  try {
    const s = constant({ rate: 50, durationSeconds: 2 });
    const options = { target: { host: '127.0.0.1', port: server.port }, plan: planFor(s), body: Buffer.alloc(1024), newConnectionPerRequest: false, timeoutMs: 5000 };
    const raw = await openLoop({ ...options, schedule: arrivalsFor(s), maxInFlight: 100 });
    const summary = summarizeRun(s, raw);
    // Every arrival was sent on its schedule, ten or so waiting at a time, and each waited 200 ms.
    assert.equal(summary.requests, 100);
    assert.equal(summary.errors, 0);
    // Sent on time: 100 over the 2 s (or a little more, by the last start's lag).
    assert.ok(summary.sentRate > 40 && summary.sentRate <= 50, `sent ${summary.sentRate}/s`);
    const lag = lagSummary(raw)!;
    // A closed loop of two would fall seconds behind (100 requests, 200 ms each, two at a time).
    assert.ok(lag.p99 < 500, `requests started ${lag.p99} ms behind schedule: the arrivals waited for answers`);
    assert.ok(summary.latencyMs!.p50 >= 200);
    // Two connections in a closed loop: at most one request per 200 ms each, ~10/s, whatever the target rate.
    const closed = await closedLoop({ ...options, concurrency: 2, durationMs: 2000 });
    assert.ok(closed.requests <= 24, `a closed loop sent ${closed.requests}`);
    assert.ok(closed.requests / (closed.elapsedMs / 1000) < 25);
    // And with too few requests allowed in flight, the open model drops and counts, never queues.
    const capped = summarizeRun(s, await openLoop({ ...options, schedule: arrivalsFor(s), maxInFlight: 4 }));
    assert.ok(capped.dropped > 50, `${capped.dropped} dropped`);
    assert.equal(capped.requests + capped.dropped, 100);
    assert.equal(capped.ok, false);
  } finally {
    await server.stop();
  }
});

test('a client that cannot keep the offered rate says so: sent/s is what went on the wire, not what was due', async () => {
  // 200/s for 3 s against a server that answers after 500 ms: the client's 64 keep-alive
  // connections carry at most 64 / 0.5 s = 128 requests/s, so the 600 arrivals queue in the
  // client for a free connection (none dropped: 400 may be in flight) and go out over ~4.5 s.
  const server = await startServer('--delay-ms', '500');
  try {
    const s = constant({ name: 'slow', rate: 200, durationSeconds: 3, maxInFlight: 1000 });
    const { summary } = await runClient(s, server.port);
    assert.equal(summary.requests, 600);
    assert.equal(summary.dropped, 0);
    assert.equal(summary.errors, 0, JSON.stringify(summary.errorKinds));
    // The bound is the server's delay, not the host's speed: 64 at once, then 64 more every
    // 500 ms at most, so the 600th goes out no sooner than (600 / 64 - 1) x 0.5 s = 4.19 s:
    // ~143/s at most, where the due rate was 200.
    const bound = 600 / ((600 / 64 - 1) * 0.5);
    assert.ok(summary.sentRate <= bound, `sent ${summary.sentRate}/s through 64 connections at 500 ms each (at most ${bound.toFixed(1)})`);
    assert.ok(summary.sentRate > 0);
    // The table says it: "N of 200".
    const table = scenarioTable([{ path: 'plain', name: 'plain TCP', summary, lagMs: null, costs: [] }]);
    assert.match(table, new RegExp(`plain TCP +${Math.round(summary.sentRate)} of 200 `));
  } finally {
    await server.stop();
  }
});

test('the CPU sampler counts a process\'s CPU to well under a clock tick, and a thread that exited in the watch too', async () => {
  // The child burns CPU in bounded loops and reports its own getrusage (all its threads, µs)
  // around each burn; the watch's figure must agree. Phase 1: the main thread, 300 ms (threads
  // all alive: the schedstat sum, to the nanosecond). Phase 2: a worker thread burns 200 ms,
  // idles 300 ms and exits before the watch stops (its schedstat is gone, but the watch's
  // samples kept it: as exact). Phase 3: a worker burns 200 ms and exits at once (what it used
  // after the last sample only /proc/<pid>/stat has: within a few ticks).
  const script = `
    const { Worker } = await import('node:worker_threads');
    const used = () => { const u = process.cpuUsage(); return u.user + u.system; };
    const burn = (ms) => { const start = used(); const deadline = Date.now() + 20000; while (used() - start < ms * 1000 && Date.now() < deadline) {} };
    const lines = (await import('node:readline')).createInterface({ input: process.stdin });
    console.log('at ' + used());
    for await (const line of lines) {
      if (line === 'main') burn(300);
      const worker = (idleMs) => new Promise((resolve) => new Worker(${JSON.stringify('(' + String.raw`() => { const used = () => { const u = process.cpuUsage(); return u.user + u.system; }; const s = used(); const d = Date.now() + 20000; while (used() - s < 200000 && Date.now() < d) {} Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, IDLE_MS); }` + ')()')}.replace('IDLE_MS', String(idleMs)), { eval: true }).once('exit', resolve));
      if (line === 'idle-worker') await worker(300);
      if (line === 'worker') await worker(0);
      if (line === 'end') break;
      console.log('at ' + used());
    }
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((r) => child.once('exit', r));
  // The child's reports, CPU seconds so far, in order; next() waits for the following one.
  const reports: number[] = [];
  let buffered = '';
  let wake: (() => void) | null = null;
  child.stdout!.on('data', (c: Buffer) => {
    buffered += c.toString();
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const m = /^at (\d+)$/.exec(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
      if (m) reports.push(Number(m[1]) / 1e6);
    }
    wake?.();
  });
  let read = 0;
  const next = async (): Promise<number> => {
    // Bounded: 600 waits of at most 100 ms.
    for (let i = 0; i < 600 && reports.length <= read; i++) await new Promise<void>((r) => ((wake = r), setTimeout(r, 100)));
    if (reports.length <= read) throw new Error('no report from the child within 60 s');
    return reports[read++]!;
  };
  let watch: ResourceWatch | null = null;
  try {
    let before = await next();
    for (const [phase, burnt, tolerance] of [['main', 0.3, 0.005], ['idle-worker', 0.2, 0.005], ['worker', 0.2, 0.045]] as const) {
      watch = new ResourceWatch([{ label: 'child', pid: child.pid! }]);
      child.stdin!.write(`${phase}\n`);
      const after = await next();
      const [cost] = watch.stop();
      watch = null;
      const own = after - before;
      assert.ok(own >= burnt, `${phase}: the child used ${own} s`);
      assert.ok(Math.abs(cost!.cpuSeconds - own) < tolerance, `${phase}: the watch counted ${cost!.cpuSeconds} s, the child's getrusage ${own} s`);
      if (phase !== 'worker') {
        // Not whole ticks: the figure has the schedstat sum's resolution (ns), not /proc/<pid>/stat's 10 ms.
        assert.ok(Math.abs(cost!.cpuSeconds * 100 - Math.round(cost!.cpuSeconds * 100)) > 1e-9, `${cost!.cpuSeconds} s is a whole number of ticks`);
      }
      before = after;
    }
  } finally {
    try {
      watch?.stop();
    } catch {
      // The child is gone: nothing to report.
    }
    child.stdin!.end('end\n');
    // Bounded: a child stuck in a phase is killed after 10 s.
    const stuck = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(stuck);
  }
});

// --- end to end on loopback ---

const SUMMARY_FIELDS = ['scenario', 'kind', 'generator', 'targetRate', 'durationSeconds', 'requests', 'dropped', 'sentRate', 'errors', 'errorRate', 'errorKinds', 'latencyMs', 'thresholds', 'ok'];

test('end to end through two proxies on loopback: every field of the summary, and a resetting target is all errors', async () => {
  const app = await startServer();
  const resetting = await startServer('--reset');
  const mesh = await twoProxies(app.port);
  try {
    const s = constant({ name: 'e2e', rate: 100, durationSeconds: 1 });
    const { summary, lagMs } = await runClient(s, mesh.entryPort, 1);
    for (const f of SUMMARY_FIELDS) assert.ok(f in summary, `summary.${f}`);
    assert.deepEqual(Object.keys(summary.latencyMs!).sort(), ['max', 'p50', 'p99', 'p999']);
    assert.deepEqual(Object.keys(summary.errorKinds).sort(), ['body', 'other', 'refused', 'reset', 'status', 'timeout']);
    assert.equal(summary.generator, 'node-open-model');
    assert.equal(summary.requests, 100);
    assert.equal(summary.errors, 0, JSON.stringify(summary.errorKinds));
    assert.ok(lagMs !== null);

    // A new connection per request through the mesh: each one a Noise handshake.
    const churn = await runClient({ ...s, name: 'e2e-churn', kind: 'churn', rate: 50 }, mesh.entryPort);
    assert.equal(churn.summary.requests, 50);
    assert.equal(churn.summary.errors, 0);
    assert.ok('handshakes' in churn.summary);

    const bad = await runClient(constant({ name: 'reset', rate: 50, durationSeconds: 1 }), resetting.port);
    assert.equal(bad.summary.requests, 50);
    assert.equal(bad.summary.errors, 50, 'every reset is an error');
    assert.equal(bad.summary.errorKinds.reset, 50);
    assert.equal(bad.summary.errorRate, 1);
    assert.equal(bad.summary.latencyMs, null, 'a reset is not a fast request');
    assert.equal(bad.summary.thresholds.errorRate.ok, false);
    assert.equal(bad.summary.ok, false);

    // A 404 is the wrong answer, not a success.
    const { requestBytes: _req, responseBytes: _res, ...common } = constant({ name: 'gw', rate: 20, durationSeconds: 1 });
    const wrong = await runClient({ ...common, kind: 'gateway', deniedShare: 0, allowedPaths: ['a/b'], deniedPaths: ['c/d'] } as Scenario, app.port);
    assert.equal(wrong.summary.errorKinds.status, 20);

    // The runner prints these summaries as its tables.
    const runs: PathRun[] = [
      { path: 'plain', name: 'plain TCP', summary: bad.summary, lagMs: null, costs: [] },
      { path: 'chacha', name: 'noisemesh', summary, lagMs: null, costs: [{ label: 'A', cpuSeconds: 0.01, seconds: 1, peakRssKiB: 51200 }, { label: 'B', cpuSeconds: 0.02, seconds: 1, peakRssKiB: 40960 }] },
    ];
    const table = scenarioTable(runs);
    assert.match(table, /plain TCP .* 50 \(100\.00%\) reset 50/);
    assert.match(table, /noisemesh .* 0 \(0\.00%\)/);
    assert.match(table, /50\.0 +40\.0/);
  } finally {
    await mesh.close();
    await app.stop();
    await resetting.stop();
  }
});

test('end to end through a real secrets gateway on loopback: the runner\'s policy answers its plan, 403 on a denied path is no error', async () => {
  const mixed = loadScenarios().scenarios.find((x): x is GatewayScenario => x.kind === 'gateway' && x.deniedShare > 0)!;
  // The bench's client: bench/a at the clearance its registry entry has there.
  const f = await startGatewayFixture({ ...gatewayFiles(mixed, 'bench/a', 'internal'), callers: [{ agentId: 'bench/a', clearance: 'internal' }] });
  try {
    const s: GatewayScenario = { ...mixed, name: 'e2e-gateway', rate: 50, durationSeconds: 1 };
    const { summary } = await runClient(s, f.callers.get('bench/a')!.entryPort);
    assert.equal(summary.requests, 50);
    assert.equal(summary.errors, 0, JSON.stringify(summary.errorKinds));
    assert.ok(summary.latencyMs !== null, 'the 403s and 200s are answers, with latencies');
    const lines = readFileSync(f.auditFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { decision: string; ruleId: string; status: number; failed: { requirement: string }[] });
    assert.equal(lines.filter((l) => l.decision === 'allow' && l.status === 200 && l.ruleId === 'bench-allowed').length, 40);
    const denied = lines.filter((l) => l.decision === 'deny');
    assert.equal(denied.length, 10, 'one in five denied');
    assert.ok(denied.every((l) => l.status === 403 && l.ruleId === 'bench-denied' && l.failed[0]?.requirement === 'clearance'));

    // The same client with deniedShare 0 asking for the denied path expects 200: every answer is a status error.
    const wrong = await runClient({ ...s, name: 'e2e-gateway-wrong', rate: 20, deniedShare: 0, allowedPaths: mixed.deniedPaths }, f.callers.get('bench/a')!.entryPort);
    assert.equal(wrong.summary.errors, 20);
    assert.equal(wrong.summary.errorKinds.status, 20);
  } finally {
    await f.close();
  }
});

test('the runner\'s gateway policy refuses a scenario whose allowed and denied paths share a family', () => {
  const mixed = loadScenarios().scenarios.find((x): x is GatewayScenario => x.kind === 'gateway')!;
  assert.throws(() => gatewayFiles({ ...mixed, deniedPaths: ['bench/secret'] }, 'bench/a', 'internal'), /bench\/\*\* holds allowed and denied paths/);
});

test('gateway scenarios are measured when the CLI has a gateway command, reported "not available" otherwise', () => {
  const s = loadScenarios().scenarios.find((x) => x.kind === 'gateway')!;
  // The command list the CLI prints is the one the runner checks.
  const usage = spawnSync(process.execPath, [join(repoRoot, 'dist/src/cli/main.js')], { encoding: 'utf8' }).stderr;
  assert.equal(/^\s+gateway\s/m.test(usage), gatewayAvailable());
  assert.equal(gatewayAvailable(), 'gateway' in commands);
  assert.equal(gatewayAvailable(), true, 'this build has `noisemesh gateway`');
  assert.equal(gatewayLine(s, {}), `${s.name}: gateway: not available in this build`);
  assert.equal(gatewayLine(s), null, 'measured: no line instead of its table');
});
