/**
 * Load at fixed arrival rates, as meshes are compared in public (wrk2 at fixed RPS in the
 * service-mesh-benchmark; fortio at 1,000 RPS with 1 KiB in Istio's): the scenarios of
 * bench/k6/scenarios.json, run by an open-model generator (bench/load/generator.ts; the k6
 * scripts themselves when a `k6` binary is on PATH) in pod A against an unmodified HTTP/1.1
 * server in pod B, over every path in the same run: plain TCP, a TLS 1.3 mutual-certificate
 * pair of haproxy and of stunnel, and noisemesh with ChaChaPoly and with AESGCM (iptables
 * capture, as bench/proxy.ts sets it up). bench/README.md, section load, explains every figure.
 *
 *   npm run bench -- load                      (root; about 45 minutes with the file's durations)
 *   npm run bench -- load --quick              (one round, 3 s per rate, 2 s per ramp step: checks the bench itself)
 *   npm run bench -- load --seconds=10 --step-seconds=5 --rounds=3 --only=http-2000,knee --out=FILE
 *
 * Scenarios run one after another, the ramp last; within a scenario every path in turn, in
 * `--rounds` rounds (default 3; the ramp once), so a burst of load elsewhere on the machine
 * lands on all of them; what a path adds over plain TCP is paired in the same round, and each
 * path's row is its round with the median added p99 (report.ts, pairedRows). noisemesh's rules are installed only for
 * its turns. The secrets-gateway scenarios have one path: `noisemesh gateway` in B (B's
 * identity, the registry, a policy and file backend from bench/load/gateway.ts, an audit
 * file) reached from A's client through A's proxy over Noise, with ChaChaPoly; they run after
 * the other constant-rate scenarios and before the ramp. A build without the command reports
 * them as not available rather than measured.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { outputFileOption, type BenchModule } from './lib/module.js';
import { exitOnInterrupt } from './lib/interrupt.js';
import { describeLoad, describeMachine } from './lib/machine.js';
import type { ConstantScenario, GatewayScenario, LoadSummary, Scenario } from './k6/contract.js';
import { scenarioSeconds } from './k6/contract.js';
import { commands } from '../src/cli/commands/index.js';
import { startHaproxy, type HaproxyPath } from './proxy/haproxy.js';
import { GATEWAY_PORT, NoisemeshPair, type GatewayFiles } from './proxy/noisemesh.js';
import { LOAD_TOOLS, NODE, PodNetwork, requireBenchTools, start, tunePod, type Endpoint, type Pod, type Running } from './proxy/pods.js';
import { SUITES } from './proxy/report.js';
import { startStunnel, type StunnelPath } from './proxy/stunnel.js';
import { gatewayFiles } from './load/gateway.js';
import { findK6, runK6, stageScripts } from './load/k6.js';
import { COST_LEGEND, GOALS, goalsTable, kneeTable, loadGoals, pairedRows, ROUNDS_LEGEND, scenarioTable, type LoadPathKey, type PathRun } from './load/report.js';
import { ResourceWatch, type ProcessCost, type Watched } from './load/resources.js';
import { loadScenarios } from './load/scenarios.js';
import { repoRoot } from '../test/helpers/paths.js';

/** B's HTTP server: one for the baselines, one for noisemesh (captured and uncaptured connections never share a 4-tuple, as in bench/proxy). */
const HTTP_PORT = 8080;
const MESH_HTTP_PORT = 8081;
const SCRIPTS = join(repoRoot, 'dist/bench/load');
const REQUEST_TIMEOUT_MS = 10_000;
/** The generator's own warm-up before each measured run, at the scenario's first rate. */
const WARMUP_SECONDS = 2;
/** A path's warm-up after its daemons (re)start, not counted. */
const PATH_WARMUP: ConstantScenario = {
  name: 'warm-up', kind: 'constant', description: 'warm-up', rate: 1000, durationSeconds: 3,
  requestBytes: 1024, responseBytes: 1024, maxInFlight: 2000, thresholds: { p99Ms: 1000, errorRate: 1 },
};

function log(line: string): void {
  process.stderr.write(`[load bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

/** Whether this build's CLI has the secrets gateway (issue 11): its command list, not a flag. */
export function gatewayAvailable(cli: Readonly<Record<string, unknown>> = commands): boolean {
  return Object.hasOwn(cli, 'gateway');
}

/**
 * The line a gateway scenario gets instead of its table, or null when it is measured (the
 * build has `noisemesh gateway`). Without the command there is nothing to measure, and a
 * number from anything else would be a fake.
 */
export function gatewayLine(s: Scenario, cli: Readonly<Record<string, unknown>> = commands): string | null {
  return gatewayAvailable(cli) ? null : `${s.name}: gateway: not available in this build`;
}

interface Options {
  readonly quick: boolean;
  readonly seconds: number | null;
  readonly stepSeconds: number | null;
  readonly only: readonly string[] | null;
  readonly out: string | null;
  readonly rounds: number;
}

const LOAD_OPTIONS = ['--quick', '--seconds=', '--step-seconds=', '--only=', '--out=', '--rounds='];

/**
 * The load module's options; a wrong one throws one line naming it and what it takes, before
 * anything is started (run.ts prints the message alone). `--out` is opened here as the run
 * will open it (outputFileOption): a path that cannot be written would otherwise fail only
 * after the whole run.
 */
export function parseOptions(args: readonly string[]): Options {
  const known = LOAD_OPTIONS;
  for (const a of args) if (!known.some((k) => (k.endsWith('=') ? a.startsWith(k) : a === k))) throw new Error(`unknown option ${a} (load takes ${known.join(' ')})`);
  for (const k of known) if (args.filter((a) => (k.endsWith('=') ? a.startsWith(k) : a === k)).length > 1) throw new Error(`${k.replace(/=$/, '')} is given more than once`);
  const value = (name: string): string | null => {
    const a = args.find((x) => x.startsWith(`--${name}=`));
    return a === undefined ? null : a.slice(name.length + 3);
  };
  const whole = (name: string, unit: string, max: number): number | null => {
    const v = value(name);
    if (v === null) return null;
    const n = /^\d+$/.test(v) ? Number(v) : Number.NaN;
    if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`--${name}=${v}: must be ${unit} from 1 to ${max}`);
    return n;
  };
  const only = value('only')?.split(',') ?? null;
  if (only !== null) {
    if (only.some((n) => n === '')) throw new Error(`--only=${value('only')}: a comma-separated list of scenario names, with no empty item`);
    const twice = only.find((n, i) => only.indexOf(n) !== i);
    if (twice !== undefined) throw new Error(`--only: ${twice} is named twice`);
  }
  const out = outputFileOption(args, 'out', 'the file to write every summary to') ?? null;
  const quick = args.includes('--quick');
  return {
    quick,
    seconds: whole('seconds', 'whole seconds', 3600) ?? (quick ? 3 : null),
    stepSeconds: whole('step-seconds', 'whole seconds', 3600) ?? (quick ? 2 : null),
    only,
    out,
    rounds: whole('rounds', 'a whole number', 100) ?? (quick ? 1 : 3),
  };
}

function shorten(s: Scenario, o: Options): Scenario {
  if (s.kind === 'ramp') return o.stepSeconds === null ? s : { ...s, stepSeconds: o.stepSeconds };
  return o.seconds === null ? s : { ...s, durationSeconds: o.seconds };
}

interface PathUnderTest {
  readonly key: LoadPathKey;
  readonly name: string;
  readonly endpoint: Endpoint;
  /** The path's proxy processes, A's then B's (none for plain). */
  processes(): Watched[];
  /** Before its turn at `s`; resolves true when its daemons were (re)started and need a warm-up. */
  enter(s: Scenario): Promise<boolean>;
  /** The warm-up after a (re)start, not counted. */
  readonly warmup: Scenario;
  leave(): Promise<void>;
}

/** A request from pod A through `to` answered 200: the path carries HTTP end to end. */
async function httpAnswers(net: PodNetwork, a: Pod, to: Endpoint): Promise<boolean> {
  const script =
    `const s=require('net').connect(${to.port},'${to.host}');s.setTimeout(2000,()=>process.exit(1));s.on('error',()=>process.exit(1));` +
    `s.on('connect',()=>s.write('GET /load?bytes=1 HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'));let d='';s.on('data',(c)=>{d+=c;if(/^HTTP\\/1\\.1 200/.test(d))process.exit(0)});`;
  const r = await net.exec(a, NODE, ['-e', script], { timeoutMs: 5_000 });
  return r.code === 0;
}

/** One measured run with the runner's client in pod A; the watch spans the measured part only. */
async function runClient(net: PodNetwork, a: Pod, dir: string, s: Scenario, to: Endpoint, watched: readonly Watched[], onMeasuring: () => Promise<void>) {
  const out = join(dir, `client-${s.name}-${Date.now()}.json`);
  const spec = { scenario: s, host: to.host, port: to.port, timeoutMs: REQUEST_TIMEOUT_MS, warmupSeconds: WARMUP_SECONDS, out, waitForGo: true };
  const client: Running = start(net, a, `load client (${s.name})`, NODE, [join(SCRIPTS, 'client.js'), JSON.stringify(spec)]);
  const exited = new Promise<void>((resolve) => client.child.once('exit', () => resolve()));
  await client.waitFor(/^measuring$/m, (WARMUP_SECONDS + 60) * 1000);
  await onMeasuring();
  const watch = new ResourceWatch(watched);
  client.child.stdin!.write('go\n');
  const limit = setTimeout(() => client.child.kill('SIGKILL'), (scenarioSeconds(s) + 60) * 1000);
  await exited;
  clearTimeout(limit);
  const costs = watch.stop();
  if (client.child.exitCode !== 0) throw new Error(`load client (${s.name}) to ${to.host}:${to.port} failed (${client.child.exitCode ?? client.child.signalCode}):\n${client.tail}`);
  const result = JSON.parse(readFileSync(out, 'utf8')) as { summary: LoadSummary; lagMs: { p99: number; max: number } | null };
  return { ...result, costs };
}

/**
 * The scenarios `--only=` names (all when absent), shortened by the options; one line for a
 * name scenarios.json lacks, or for an option that shortens no chosen scenario
 * (`--step-seconds` without the ramp, `--seconds` with the ramp alone): it would be ignored.
 */
function chooseScenarios(o: Options, args: readonly string[] = []): Scenario[] {
  const all = loadScenarios().scenarios.map((s) => shorten(s, o));
  const chosen = o.only === null ? all : all.filter((s) => o.only!.includes(s.name));
  if (o.only !== null && chosen.length !== o.only.length) throw new Error(`--only: no scenario ${o.only.filter((n) => !all.some((s) => s.name === n)).join(', ')} in scenarios.json (it has ${all.map((s) => s.name).join(', ')})`);
  const given = (name: string): boolean => args.some((a) => a.startsWith(`--${name}=`));
  if (given('step-seconds') && !chosen.some((s) => s.kind === 'ramp')) throw new Error(`--step-seconds: no ramp scenario among ${chosen.map((s) => s.name).join(', ')}: it would change nothing`);
  const onlyRamps = chosen.every((s) => s.kind === 'ramp');
  if (given('seconds') && onlyRamps) throw new Error(`--seconds: ${chosen.map((s) => s.name).join(', ')} is a ramp, timed by --step-seconds: it would change nothing`);
  if (given('rounds') && onlyRamps) throw new Error(`--rounds: ${chosen.map((s) => s.name).join(', ')} is a ramp, run once: it would change nothing`);
  // --quick only sets defaults: with every one it would set given, it would change nothing.
  const hasRamp = chosen.some((s) => s.kind === 'ramp');
  if (o.quick && (onlyRamps || (given('seconds') && given('rounds'))) && (!hasRamp || given('step-seconds'))) {
    throw new Error('--quick: --seconds, --step-seconds and --rounds already set all it would (for the chosen scenarios): it would change nothing');
  }
  return chosen;
}

/**
 * For the estimate, seconds measured on this host (a run of http-20, 3 s, one round: 71 s):
 * setting up and tearing down the pods and daemons; around each run beyond its warm-up and
 * scenario (the client's start, the counters); a noisemesh restart before its warm-up.
 */
const SETUP_SECONDS = 12;
const RUN_OVERHEAD_SECONDS = 1;
const RESTART_SECONDS = 2;

/** Roughly how long a run with these options takes, seconds: the sum of its scenarios, warm-ups and restarts. */
export function estimateSeconds(args: readonly string[]): number {
  const o = parseOptions(args);
  const chosen = chooseScenarios(o, args);
  const warmUp = PATH_WARMUP.durationSeconds + WARMUP_SECONDS + RUN_OVERHEAD_SECONDS;
  // Every path is warmed up once at the start.
  let total = SETUP_SECONDS + 5 * warmUp;
  for (const s of chosen) {
    if (s.kind === 'gateway' && gatewayLine(s) !== null) continue;
    const rounds = s.kind === 'ramp' ? 1 : o.rounds;
    const paths = s.kind === 'gateway' ? 1 : 5;
    total += rounds * paths * (WARMUP_SECONDS + scenarioSeconds(s) + RUN_OVERHEAD_SECONDS);
    // The suites alternate, so each round restarts the proxies once (the gateway: once per scenario).
    total += (s.kind === 'gateway' ? 1 : rounds) * (RESTART_SECONDS + warmUp);
  }
  return total;
}

async function run(args: readonly string[]): Promise<void> {
  const o = parseOptions(args);
  const chosen = chooseScenarios(o, args);
  requireBenchTools(LOAD_TOOLS);
  const unmeasured = chosen.filter((s) => s.kind === 'gateway' && gatewayLine(s) !== null);
  // The ramp goes last: its top steps overload every path, and what follows would be measured on
  // proxies still working off that backlog.
  const measured = [
    ...chosen.filter((s) => s.kind !== 'gateway' && s.kind !== 'ramp'),
    ...chosen.filter((s) => s.kind === 'gateway' && !unmeasured.includes(s)),
    ...chosen.filter((s) => s.kind === 'ramp'),
  ];
  const k6 = findK6();
  log(k6 === null ? 'generator: the runner\'s open model (no k6 on PATH)' : `generator: ${k6} with bench/k6's scripts`);

  const net = await PodNetwork.create(2);
  const [a, b] = net.pods as [Pod, Pod];
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-bench-load-'));
  chmodSync(dir, 0o755);
  const onExit = (): void => rmSync(dir, { recursive: true, force: true });
  const stopExitingOnInterrupt = exitOnInterrupt();
  process.once('exit', onExit);
  const began = Date.now();
  const byScenario = new Map<string, PathRun[]>();
  const servers: Running[] = [];
  try {
    for (const pod of [a, b]) await tunePod(net, pod);
    for (const port of [HTTP_PORT, MESH_HTTP_PORT]) {
      const server = start(net, b, `http server :${port}`, NODE, [join(SCRIPTS, 'http-server.js'), String(port), '--host', '0.0.0.0']);
      servers.push(server);
      await server.waitFor(/^ready/m);
    }
    if (k6 !== null) stageScripts(join(dir, 'k6'), chosen);
    log('starting the haproxy and stunnel pairs and the noisemesh proxies');
    const ready = (e: Endpoint): Promise<boolean> => httpAnswers(net, a, e);
    const haproxy: HaproxyPath<'http'> = await startHaproxy(net, a, b, dir, { http: HTTP_PORT }, ready);
    const stunnel: StunnelPath<'http'> = await startStunnel(net, a, b, dir, { http: HTTP_PORT }, ready);
    const mesh = await NoisemeshPair.install(net, a, b, dir);
    await mesh.start(SUITES.chacha);
    const nothing = async (): Promise<void> => {};
    const already = async (): Promise<boolean> => false;
    const pair = (daemons: readonly [Running, Running]) => (): Watched[] => [
      { label: 'A', pid: daemons[0].pid },
      { label: 'B', pid: daemons[1].pid },
    ];
    const noisemesh = (key: 'chacha' | 'aesgcm'): PathUnderTest => ({
      key,
      name: `noisemesh ${SUITES[key].replace('Noise_IK_25519_', '')}`,
      endpoint: { host: b.ipv4, port: MESH_HTTP_PORT },
      processes: () => mesh.proxies.map((p, i) => ({ label: i === 0 ? 'A' : 'B', pid: p.pid })),
      warmup: PATH_WARMUP,
      enter: async () => {
        const restart = mesh.suite !== SUITES[key] || mesh.gateway;
        if (restart) await mesh.start(SUITES[key]);
        await mesh.capture(true);
        return restart;
      },
      leave: () => mesh.capture(false),
    });
    const paths: PathUnderTest[] = [
      { key: 'plain', name: 'plain TCP', endpoint: { host: b.ipv4, port: HTTP_PORT }, processes: () => [], warmup: PATH_WARMUP, enter: already, leave: nothing },
      { key: 'haproxy', name: 'haproxy TLS 1.3 mTLS', endpoint: haproxy.endpoint('http'), processes: pair(haproxy.daemons), warmup: PATH_WARMUP, enter: already, leave: nothing },
      { key: 'stunnel', name: 'stunnel TLS 1.3 mTLS', endpoint: stunnel.endpoint('http'), processes: pair(stunnel.daemons), warmup: PATH_WARMUP, enter: already, leave: nothing },
      noisemesh('chacha'),
      noisemesh('aesgcm'),
    ];
    // The gateway's one path: B runs `noisemesh gateway` with B's identity; A's proxy is the client's.
    let served = '';
    const gatewayPath = (s: GatewayScenario): PathUnderTest => ({
      key: 'gateway',
      name: `noisemesh gateway ${SUITES.chacha.replace('Noise_IK_25519_', '')}`,
      endpoint: { host: b.ipv4, port: GATEWAY_PORT },
      processes: () => mesh.proxies.map((p, i) => ({ label: i === 0 ? 'A' : 'B', pid: p.pid })),
      warmup: { ...s, name: 'warm-up', durationSeconds: PATH_WARMUP.durationSeconds, thresholds: PATH_WARMUP.thresholds },
      enter: async () => {
        const files: GatewayFiles = gatewayFiles(s, `bench/${a.name}`, 'internal');
        const restart = !mesh.gateway || mesh.suite !== SUITES.chacha || served !== JSON.stringify(files);
        if (restart) {
          await mesh.start(SUITES.chacha, files);
          served = JSON.stringify(files);
        }
        await mesh.capture(true);
        return restart;
      },
      leave: () => mesh.capture(false),
    });
    const pathsFor = (s: Scenario, round: number): PathUnderTest[] => {
      if (s.kind === 'gateway') return [gatewayPath(s)];
      // The suites alternate which goes first, so each round restarts the proxies once.
      return round % 2 === 0 ? paths : [...paths.slice(0, 3), paths[4]!, paths[3]!];
    };
    const warmUp = async (path: PathUnderTest): Promise<void> => {
      await runClient(net, a, dir, path.warmup, path.endpoint, [], nothing);
    };
    log('warming up every path (not counted)');
    for (const path of paths) {
      await path.enter(PATH_WARMUP);
      try {
        await warmUp(path);
      } finally {
        await path.leave();
      }
    }
    const measureOne = async (path: PathUnderTest, s: Scenario): Promise<PathRun> => {
      const fresh = await path.enter(s);
      try {
        if (fresh) {
          log(`${path.name}: restarted, warming up (not counted)`);
          await warmUp(path);
        }
        const isMesh = path.key === 'chacha' || path.key === 'aesgcm';
        let handshakesBefore = 0;
        let decisionsBefore = { allow: 0, deny: 0 };
        let summary: LoadSummary;
        let lagMs: PathRun['lagMs'] = null;
        let costs: ProcessCost[];
        const t0 = performance.now();
        if (k6 !== null) {
          if (isMesh) handshakesBefore = await mesh.acceptedHandshakes();
          if (path.key === 'gateway') decisionsBefore = await mesh.secretDecisions();
          // The watch spans k6's start-up and its graceful stop too; coresPer1k divides its CPU
          // by every request carried in it, not by a rate over the scenario's seconds alone.
          const watch = new ResourceWatch(path.processes());
          summary = await runK6(net, a, k6, join(dir, 'k6'), s, path.endpoint, isMesh && s.kind === 'churn' ? `http://${b.ipv4}:15020/metrics` : null);
          costs = watch.stop();
        } else {
          const r = await runClient(net, a, dir, s, path.endpoint, path.processes(), async () => {
            if (isMesh) handshakesBefore = await mesh.acceptedHandshakes();
            if (path.key === 'gateway') decisionsBefore = await mesh.secretDecisions();
          });
          summary = r.summary;
          lagMs = r.lagMs;
          costs = r.costs;
          if (isMesh && s.kind === 'churn') {
            const count = (await mesh.acceptedHandshakes()) - handshakesBefore;
            summary = { ...summary, handshakes: { count, perSecond: count / summary.durationSeconds } };
          }
        }
        if (isMesh && s.kind === 'churn') {
          // Proof the turn went through Noise: B's proxy accepted a handshake per answered connection.
          const handshakes = (await mesh.acceptedHandshakes()) - handshakesBefore;
          if (handshakes < summary.requests - summary.errors) {
            throw new Error(`${path.name}: B's proxy accepted ${handshakes} handshakes for ${summary.requests - summary.errors} answered connections: traffic bypassed Noise`);
          }
        }
        if (path.key === 'gateway') {
          // Proof the answers were the gateway's decisions: one per request answered as planned.
          const after = await mesh.secretDecisions();
          const decided = after.allow - decisionsBefore.allow + (after.deny - decisionsBefore.deny);
          if (decided < summary.requests - summary.errors) {
            throw new Error(`${path.name}: the gateway decided ${decided} requests for ${summary.requests - summary.errors} answered as planned: answers came from elsewhere`);
          }
        }
        log(`${path.name}: sent ${summary.sentRate.toFixed(0)}/s of ${summary.targetRate}/s offered, generator lag p99 ${lagMs?.p99.toFixed(2) ?? '-'} ms, p99 ${summary.latencyMs?.p99.toFixed(2) ?? '-'} ms, ${summary.errors} errors, ${summary.dropped} dropped (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
        return { path: path.key, name: path.name, summary, lagMs, costs };
      } finally {
        await path.leave();
      }
    };
    let switches = 0;
    for (const s of measured) {
      const rounds = s.kind === 'ramp' ? 1 : o.rounds;
      const keys = pathsFor(s, 0).map((p) => p.key);
      // One map per round, so that what a path adds is taken against plain TCP of its own round.
      const collected: Map<LoadPathKey, PathRun>[] = [];
      for (let round = 0; round < rounds; round++) {
        const thisRound = new Map<LoadPathKey, PathRun>();
        for (const path of pathsFor(s, switches++)) {
          log(`${s.name} (${scenarioSeconds(s)} s), round ${round + 1}/${rounds}: ${path.name}`);
          thisRound.set(path.key, await measureOne(path, s));
        }
        collected.push(thisRound);
      }
      byScenario.set(s.name, pairedRows(keys, collected));
    }
    await mesh.stop();
    await haproxy.stop();
    await stunnel.stop();
  } finally {
    stopExitingOnInterrupt();
    await Promise.all(servers.map((s) => s.stop()));
    await net.destroy();
    onExit();
    process.off('exit', onExit);
  }

  const minutes = ((Date.now() - began) / 60_000).toFixed(1);
  console.log(`Pods A and B: network namespaces on a veth bridge; ${minutes} min; ${describeLoad()}.`);
  console.log(
    k6 === null
      ? `Generator: open model on raw-socket HTTP/1.1 (bench/load), latency from each request's scheduled start; ${WARMUP_SECONDS} s warm-up per run at its first rate, not counted.`
      : 'Generator: k6 with the scripts of bench/k6.',
  );
  console.log(`Rounds: ${o.rounds} per scenario (the ramp: 1), paths interleaved. ${ROUNDS_LEGEND}`);
  console.log("Latency: p50, p99 and p99.9 as k6's Trend computes p(N) (rank N/100 x (n - 1), interpolated between the two closest ranks), over successful requests.");
  console.log(`${COST_LEGEND}\n`);
  for (const s of measured) {
    const runs = byScenario.get(s.name)!;
    console.log(`## ${s.name}: ${s.description} (${scenarioSeconds(s)} s; thresholds p99 < ${s.thresholds.p99Ms} ms, error rate <= ${s.thresholds.errorRate})\n`);
    console.log(s.kind === 'ramp' ? kneeTable(runs) : scenarioTable(runs));
    console.log('');
  }
  for (const s of unmeasured) console.log(gatewayLine(s));
  const goalScenario = measured.find((s) => s.kind === 'constant' && s.rate === GOALS.goalRate);
  if (goalScenario !== undefined) {
    const knee = measured.find((s) => s.kind === 'ramp')?.name ?? null;
    console.log('\n## Goals (measured / target, for scale; met is decided on the figures)\n');
    console.log(goalsTable(loadGoals(byScenario, goalScenario.name, knee)));
  }
  if (o.out !== null) {
    writeFileSync(o.out, JSON.stringify({ machine: describeMachine(), generator: k6 ?? 'node-open-model', scenarios: Object.fromEntries(byScenario) }, null, 2));
    console.log(`\nEvery summary: ${o.out}`);
  }
}

export const loadBench: BenchModule = {
  name: 'load',
  options: LOAD_OPTIONS,
  check: (args) => void chooseScenarios(parseOptions(args), args),
  requires: () => requireBenchTools(LOAD_TOOLS),
  estimateSeconds,
  description: 'HTTP at fixed arrival rates (open model) through plain TCP, haproxy and stunnel TLS 1.3 mTLS pairs, and noisemesh (ChaChaPoly, AESGCM)',
  run,
};
