// The load runner's own edges (bench/load.ts, bench/load/report.ts, bench/lib/interrupt.ts):
// a wrong option is one line naming it before anything starts; an interrupted run still runs
// its exit handlers (PodNetwork's cleanup) on every catchable signal that would end it; and the
// goals table decides each goal on the figures, also when the haproxy baseline adds a negative
// p99 or the ramp found no knee at all; and a daemon a benchmark started dies with it even when
// it is SIGKILLed. Real processes; one network namespace, for the last (root, as CI runs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import type { LoadSummary } from '../bench/k6/contract.js';
import { INTERRUPTS } from '../bench/lib/interrupt.js';
import { COST_LEGEND, coresPer1k, goalsTable, loadGoals, pairedRows, ROUNDS_LEGEND, RSS_GOAL_TEXT, scenarioTable, type LoadPathKey, type PathRun } from '../bench/load/report.js';
import { requireTools, sweepStaleNamespaces } from './helpers/netns.js';
import { repoRoot } from './helpers/paths.js';

const RUN = join(repoRoot, 'dist/bench/run.js');

test('a wrong load option is one line naming it, exit 1, before anything starts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-load-options-'));
  writeFileSync(join(dir, 'a-file'), 'x');
  // Root's, mode 0755: another user cannot write in it (the permission case runs as nobody).
  mkdirSync(join(dir, 'read-only'), { mode: 0o755 });
  chmodSync(dir, 0o755);
  try {
    const cases: [string[], RegExp][] = [
      [['--bogus'], /^unknown option --bogus \(load takes /],
      [['--rounds=0'], /^--rounds=0: must be a whole number from 1 to 100$/],
      [['--seconds=1.5'], /^--seconds=1\.5: must be whole seconds from 1 to 3600$/],
      [['--step-seconds=1e1'], /^--step-seconds=1e1: must be whole seconds from 1 to 3600$/],
      [['--seconds=3', '--seconds=5'], /^--seconds is given more than once$/],
      [['--only='], /^--only=: a comma-separated list of scenario names, with no empty item$/],
      [['--only=http-20,'], /^--only=http-20,: a comma-separated list/],
      [['--only=http-20,http-20'], /^--only: http-20 is named twice$/],
      [['--out='], /^--out=: give the file to write every summary to$/],
      // The file is opened as the run will open it: every way that fails is found now.
      [[`--out=${join(dir, 'missing', 'x.json')}`], /^--out=.*missing\/x\.json: cannot write it: a directory on its path does not exist$/],
      [[`--out=${join(dir, 'newdir')}/`], /^--out=.*newdir\/: names a directory; give a file$/],
      [[`--out=${join(dir, 'a-file', 'x')}`], /^--out=.*a-file\/x: cannot write it: a part of its path is not a directory$/],
      [[`--out=${dir}`], /^--out=.*: cannot write it: is a directory; give a file$/],
      // An option that would change nothing among the chosen scenarios.
      [['--only=http-20', '--step-seconds=5'], /^--step-seconds: no ramp scenario among http-20: it would change nothing$/],
      [['--only=knee', '--seconds=5'], /^--seconds: knee is a ramp, timed by --step-seconds: it would change nothing$/],
      [['--only=knee', '--rounds=2'], /^--rounds: knee is a ramp, run once: it would change nothing$/],
      [['--only=http-20', '--quick', '--seconds=5', '--rounds=2'], /^--quick: --seconds, --step-seconds and --rounds already set all it would/],
    ];
    for (const [args, message] of cases) {
      // Bounded: a wrong option that slipped through would start a run; the timeout ends it.
      const r = spawnSync(process.execPath, [RUN, 'load', ...args], { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGTERM' });
      assert.equal(r.status, 1, `${args.join(' ')}: exit 1 (${r.signal ?? ''}); stderr ${r.stderr}`);
      const lines = r.stderr.split('\n').filter((l) => l !== '');
      assert.equal(lines.length, 1, `${args.join(' ')}: one line, no stack: ${r.stderr}`);
      assert.match(lines[0]!, message);
      assert.doesNotMatch(r.stdout, /load bench|starting/, `${args.join(' ')}: nothing started`);
    }
    // No permission: checked before root is (the options first), so as nobody it is this line.
    const denied = spawnSync(process.execPath, [RUN, 'load', `--out=${join(dir, 'read-only', 'x.json')}`], { encoding: 'utf8', timeout: 60_000, uid: 65534, gid: 65534 });
    assert.equal(denied.status, 1, denied.stderr);
    assert.deepEqual(denied.stderr.split('\n').filter((l) => l !== ''), [`--out=${join(dir, 'read-only', 'x.json')}: cannot write it: permission denied`]);
    // A file that exists is opened and left as it was; one the check made is removed again.
    const kept = join(dir, 'kept.json');
    writeFileSync(kept, 'earlier');
    const fresh = join(dir, 'fresh.json');
    for (const file of [kept, fresh]) {
      // --rounds=0 fails after --out is checked: nothing starts, and the file is as it was.
      const r = spawnSync(process.execPath, [RUN, 'load', `--out=${file}`, '--rounds=0'], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /^--rounds=0:/);
    }
    assert.equal(readFileSync(kept, 'utf8'), 'earlier');
    assert.equal(existsSync(fresh), false, 'the probe leaves no file behind');
    // Not root: one line that says so, and names no other benchmark's needs.
    const user = spawnSync(process.execPath, [RUN, 'load', '--quick'], { encoding: 'utf8', timeout: 60_000, uid: 65534, gid: 65534 });
    assert.equal(user.status, 1, user.stderr);
    assert.deepEqual(user.stderr.split('\n').filter((l) => l !== ''), ['load: this benchmark needs root: it creates network namespaces, iptables rules and, for proxy, wg interfaces (run it as root)']);
    assert.equal(user.stdout, '', 'nothing started or printed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an interrupted bench runs its exit handlers on SIGHUP, SIGINT, SIGQUIT and SIGTERM, exiting 128 + the signal', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-interrupt-'));
  try {
    const helper = pathToFileURL(join(repoRoot, 'dist/bench/lib/interrupt.js')).href;
    for (const signal of INTERRUPTS) {
      const marker = join(dir, signal);
      // What a bench does: the handlers, an exit handler that cleans up, then a long wait.
      const script =
        `const { exitOnInterrupt } = await import(${JSON.stringify(helper)});` +
        `const { writeFileSync } = await import('node:fs');` +
        `exitOnInterrupt();` +
        `process.once('exit', (code) => writeFileSync(${JSON.stringify(marker)}, 'cleaned ' + code));` +
        `setTimeout(() => {}, 60_000);` +
        `console.log('ready');`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await new Promise<void>((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error('the child did not print ready within 20 s')), 20_000);
        child.stdout!.on('data', (c: Buffer) => {
          out += c.toString();
          if (out.includes('ready')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      child.kill(signal);
      const code = await exit;
      const expected = 128 + constants.signals[signal];
      assert.equal(code, expected, `${signal}: exit ${expected}`);
      assert.equal(readFileSync(marker, 'utf8'), `cleaned ${expected}`, `${signal}: the exit handlers ran`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function run(path: PathRun['path'], scenario: string, over: Partial<LoadSummary>): PathRun {
  const summary = {
    scenario,
    kind: 'constant',
    generator: 'node-open-model',
    targetRate: 2000,
    durationSeconds: 10,
    requests: 20_000,
    dropped: 0,
    sentRate: 2000,
    errors: 0,
    errorRate: 0,
    errorKinds: {},
    latencyMs: { p50: 1, p99: 10, p999: 12, max: 15 },
    thresholds: { p99Ms: { limit: 25, actual: 10, ok: true }, errorRate: { limit: 0, actual: 0, ok: true } },
    ok: true,
    ...over,
  } as LoadSummary;
  // 0.2 cores over the 10 s run: 2 CPU seconds each.
  const costs = path === 'plain' ? [] : [{ label: 'A', cpuSeconds: 2, seconds: 10, peakRssKiB: 50 * 1024 }, { label: 'B', cpuSeconds: 2, seconds: 10, peakRssKiB: 50 * 1024 }];
  return { path, name: path, summary, lagMs: null, costs };
}

const latency = (p99: number): LoadSummary['latencyMs'] => ({ p50: 1, p99, p999: p99, max: p99 });

test('CPU per 1,000 req/s divides by the requests carried (answered as planned), not those attempted; none carried is "-"', () => {
  // 10 s: 20,000 requests started (2,000/s attempted), half of them failed, 3,000 more arrivals
  // dropped: 1,000/s carried. Each proxy used 0.2 cores: 0.2 per 1,000 carried, not 0.1.
  const half = run('chacha', 'http-2000', { requests: 20_000, errors: 10_000, errorRate: 0.5, dropped: 3_000, sentRate: 2000 });
  assert.equal(coresPer1k(half.costs[0]!, half.summary), 0.2);
  assert.match(scenarioTable([half]), / 0\.200 +0\.200 +50\.0 +50\.0 /);
  const cpuGoal = (r: PathRun) => loadGoals(new Map([['http-2000', [r]]]), 'http-2000', null).find((g) => g.goal.startsWith('CPU') && g.path.endsWith(', A'))!;
  assert.equal(cpuGoal(half).met, true);
  assert.match(cpuGoal(half).detail, /^0\.200 core per 1,000 req\/s \(2\.000 CPU s for 10000 requests carried\)$/);
  // The same CPU over a watch twice as long (k6's start-up and graceful stop, the answers after
  // the schedule) is the same CPU for the same requests: the figure does not depend on the span.
  const longer = { ...half, costs: half.costs.map((c) => ({ ...c, seconds: 20 })) };
  assert.equal(coresPer1k(longer.costs[0]!, longer.summary), 0.2);
  // Nothing succeeded: no figure, and the goal is not met.
  const none = run('aesgcm', 'http-2000', { requests: 20_000, errors: 20_000, errorRate: 1, latencyMs: null });
  assert.ok(Number.isNaN(coresPer1k(none.costs[0]!, none.summary)));
  const table = scenarioTable([none]);
  assert.match(table, / - +- +50\.0 +50\.0 /);
  assert.doesNotMatch(table, /NaN/);
  assert.equal(cpuGoal(none).met, false);
  assert.match(cpuGoal(none).detail, /^no request succeeded/);
  // The legend printed with the tables says what the figure divides by.
  assert.match(COST_LEGEND, /per 1,000 successful requests/);
  assert.match(COST_LEGEND, /'-' when none succeeded/);
});

/** Rows paired as the runner pairs them, from one map per round. */
function rows(...rounds: PathRun[][]): PathRun[] {
  const keys = rounds[0]!.map((r) => r.path);
  return pairedRows(keys, rounds.map((round) => new Map<LoadPathKey, PathRun>(round.map((r) => [r.path, r]))));
}

test('goals: added p99 against a haproxy pair that added a negative p99 is decided on the figures', () => {
  const at2000 = new Map<string, PathRun[]>([
      ['http-2000', rows([
        run('plain', 'http-2000', { latencyMs: latency(50) }),
        run('haproxy', 'http-2000', { latencyMs: latency(20) }), // -30 ms: the host, not haproxy
        run('chacha', 'http-2000', { latencyMs: latency(1000) }),
        run('aesgcm', 'http-2000', { latencyMs: latency(10) }),
      ])],
  ]);
  const goals = loadGoals(at2000, 'http-2000', null).filter((g) => g.goal.startsWith('added p99'));
  assert.deepEqual(goals.map((g) => [g.path, g.met]), [['chacha', false], ['aesgcm', true]]);
  const table = goalsTable(goals);
  assert.match(table, /chacha +- +NO +\+950\.00 ms against -30\.00 ms/);
  assert.match(table, /aesgcm +- +yes +-40\.00 ms against -30\.00 ms/);
  // A positive baseline still gives the ratio, and met agrees with it.
  const positive = loadGoals(new Map([['http-2000', rows([run('plain', 'http-2000', { latencyMs: latency(10) }), run('haproxy', 'http-2000', { latencyMs: latency(20) }), run('chacha', 'http-2000', { latencyMs: latency(25) })])]]), 'http-2000', null);
  const added = positive.find((g) => g.goal.startsWith('added p99'))!;
  assert.equal(added.ratio, 1.5);
  assert.equal(added.met, false);
});

test('added latency is paired in the same round: the row is the median round by added p99 (even count: the worse), and the goal uses it', () => {
  // Three rounds. Plain's p99 swings with the host (5, 50, 10 ms); chacha adds +3, +2, +40;
  // haproxy adds +20, +1, +4. Unpaired (each path's median-p99 round against plain's
  // median-p99 round, 10 ms) would give chacha 50 - 10 = +40 against haproxy 25 - 10 = +15: a
  // miss. Paired, chacha's median added p99 is +3 (round 1) and haproxy's +4 (round 3): met;
  // and each row carries plain's figures of its own round.
  const r = (path: LoadPathKey, p99: number): PathRun => run(path, 'http-2000', { latencyMs: latency(p99) });
  const three = rows(
    [r('plain', 5), r('haproxy', 25), r('chacha', 8)],
    [r('plain', 50), r('haproxy', 51), r('chacha', 52)],
    [r('plain', 10), r('haproxy', 14), r('chacha', 50)],
  );
  const [plain, haproxy, chacha] = three as [PathRun, PathRun, PathRun];
  assert.equal(plain.summary.latencyMs!.p99, 10, "plain's own row: its median-p99 round");
  assert.equal(plain.baseline, undefined);
  assert.equal(chacha.summary.latencyMs!.p99, 8, "chacha's row: round 1, its median added p99 (+3)");
  assert.equal(chacha.baseline!.p99, 5, "paired with plain's round 1, not plain's median round");
  assert.deepEqual(chacha.addedP99RangeMs, [2, 40]);
  assert.deepEqual(chacha.p99RangeMs, [8, 52]);
  assert.equal(haproxy.summary.latencyMs!.p99, 14);
  assert.equal(haproxy.baseline!.p99, 10);
  const goal = loadGoals(new Map([['http-2000', three]]), 'http-2000', null).find((g) => g.goal.startsWith('added p99'))!;
  assert.equal(goal.detail, '+3.00 ms against +4.00 ms (each against plain TCP in its own round)');
  assert.equal(goal.met, true);
  assert.match(scenarioTable(three), /chacha +2000 .* \+3\.00 .* 1\.60x +8\.00-52\.00 +\+2\.00 to \+40\.00 /);

  // Two rounds: the worse of the two middle ones. Paired, chacha adds +45 in round 1 and +0 in
  // round 2: its row is round 1 (+45), never the best; haproxy adds +1 and +2: round 2. The
  // goal fails, where taking the best round (or pairing chacha's 50 with plain's 50) would pass.
  const two = rows([r('plain', 5), r('haproxy', 6), r('chacha', 50)], [r('plain', 50), r('haproxy', 52), r('chacha', 50)]);
  assert.equal(two[2]!.baseline!.p99, 5);
  assert.equal(two[1]!.baseline!.p99, 50);
  const even = loadGoals(new Map([['http-2000', two]]), 'http-2000', null).find((g) => g.goal.startsWith('added p99'))!;
  assert.equal(even.detail, '+45.00 ms against +2.00 ms (each against plain TCP in its own round)');
  assert.equal(even.met, false);
  // A row without a baseline (not paired) shows no added figure, and gives no verdict.
  const unpaired = [run('plain', 'http-2000', { latencyMs: latency(5) }), run('chacha', 'http-2000', { latencyMs: latency(8) })];
  assert.match(scenarioTable(unpaired), /chacha +2000 +0 \(0\.00%\) +0 +1\.00 +8\.00 +8\.00 +8\.00 +- +- +- +- +- /);
  assert.equal(loadGoals(new Map([['http-2000', unpaired]]), 'http-2000', null).filter((g) => g.goal.startsWith('added p99')).length, 0);
  assert.match(ROUNDS_LEGEND, /same round/);
  assert.match(ROUNDS_LEGEND, /worse of the two middle ones/);
});

test('the RSS goal is 60 MB, 60e6 bytes (57.2 MiB): 58 MiB misses it, 57 MiB meets it', () => {
  assert.equal(RSS_GOAL_TEXT, '60 MB (57.2 MiB)');
  const rss = (mib: number) => {
    const r = run('chacha', 'http-2000', {});
    const at = { ...r, costs: r.costs.map((c) => ({ ...c, peakRssKiB: mib * 1024 })) };
    return loadGoals(new Map([['http-2000', [at]]]), 'http-2000', null).find((g) => g.goal.startsWith('peak RSS') && g.path.endsWith(', A'))!;
  };
  const over = rss(58);
  assert.equal(over.met, false, '58 MiB is 60.8 MB');
  assert.equal(over.goal, 'peak RSS <= 60 MB (57.2 MiB) at 2000/s');
  assert.equal(over.detail, '58.0 MiB (60.8 MB)');
  assert.equal(rss(57).met, true);
});

test('goals: a ramp whose first step failed counts the rates below that step, and says so', () => {
  const knee = (kneeRate: number | null): PathRun =>
    run('chacha', 'knee', { kind: 'ramp', kneeRate, steps: [500, 1000, 2000].map((rate) => ({ rate, requests: 1, dropped: 0, errors: 0, errorRate: 0, latencyMs: latency(1), ok: false })) });
  const scenarios = (k: PathRun | null): Map<string, PathRun[]> => {
    const m = new Map<string, PathRun[]>([
      ['http-200', [run('chacha', 'http-200', { targetRate: 200 })]],
      ['http-2000', [run('chacha', 'http-2000', { targetRate: 2000, dropped: 226 })]],
    ]);
    if (k !== null) m.set('knee', [k]);
    return m;
  };
  const goal = (m: Map<string, PathRun[]>): { met: boolean; detail: string } => loadGoals(m, 'http-2000', m.has('knee') ? 'knee' : null).find((g) => g.goal === 'no error below the knee')!;
  // No knee at all: below the first step (500/s) only http-200 counts; http-2000's drops are above it.
  const none = goal(scenarios(knee(null)));
  assert.equal(none.met, true);
  assert.equal(none.detail, "0 errors+dropped in http-200 (no knee: the ramp's first step, 500/s, failed)");
  // A knee at 1,000/s: the same.
  assert.equal(goal(scenarios(knee(1000))).detail, '0 errors+dropped in http-200 (knee 1000/s)');
  // A knee at 4,000/s: http-2000 is below it, and its drops fail the goal.
  const high = goal(scenarios(knee(4000)));
  assert.equal(high.met, false);
  assert.equal(high.detail, '226 errors+dropped in http-200, http-2000 (knee 4000/s)');
  // No ramp in the run: every constant rate counts.
  assert.equal(goal(scenarios(null)).detail, '226 errors+dropped in http-200, http-2000 (knee not measured)');
});

test('a daemon a benchmark started dies with the benchmark, even when it is SIGKILLed (no exit handler runs)', async () => {
  requireTools(['ip', 'prlimit', 'setpriv', 'sleep']);
  const pods = pathToFileURL(join(repoRoot, 'dist/bench/proxy/pods.js')).href;
  // A benchmark in miniature: one pod, one daemon started as the runner starts haproxy or a proxy.
  const script =
    `const { PodNetwork, start } = await import(${JSON.stringify(pods)});` +
    `const net = await PodNetwork.create(1);` +
    `const daemon = start(net, net.pods[0], 'sleep', 'sleep', ['600']);` +
    `await new Promise((r) => setTimeout(r, 500));` +
    `console.log('daemon ' + daemon.pid);` +
    `setTimeout(() => {}, 60_000);`;
  const bench = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => bench.once('exit', () => resolve()));
  let daemon = 0;
  try {
    daemon = await new Promise<number>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`no daemon pid within 30 s: ${out}`)), 30_000);
      bench.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /^daemon (\d+)$/m.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      bench.once('exit', (code) => reject(new Error(`the bench exited (${code}) first: ${out}`)));
    });
    assert.equal(readFileSync(`/proc/${daemon}/comm`, 'utf8').trim(), 'sleep', 'the pid is the daemon itself');
    bench.kill('SIGKILL');
    await exited;
    // Bounded: the kernel sends the signal as the parent dies; 10 s is margin for a loaded host.
    let alive = true;
    for (let i = 0; i < 100 && alive; i++) {
      alive = existsSync(`/proc/${daemon}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${daemon}/status`, 'utf8'));
      if (alive) await sleep(100);
    }
    assert.equal(alive, false, `the daemon ${daemon} outlived the SIGKILLed bench`);
  } finally {
    if (bench.exitCode === null && bench.signalCode === null) bench.kill('SIGKILL');
    if (daemon > 0 && existsSync(`/proc/${daemon}`)) process.kill(daemon, 'SIGKILL');
    await exited;
    // The bench's pid is gone: its namespaces are stale, and this sweep deletes them.
    sweepStaleNamespaces();
  }
});
