// bench/run.ts: every option is checked against the modules about to run, before the first
// one starts, so that a mistake costs one line and no benchmark's minutes (a misspelt option
// used to be ignored, or refused only when its module's turn came, after the others had run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './helpers/paths.js';
import { estimateLine } from '../bench/lib/module.js';
import { loadBench } from '../bench/load.js';

const RUN = join(repoRoot, 'dist/bench/run.js');

test('a wrong benchmark or option is one line, exit 1, before any benchmark starts or prints', () => {
  const cases: [string[], RegExp][] = [
    // Every module runs when none is named: an option none of them takes is refused at once.
    [['--bogus'], /^unknown option --bogus \(noise takes --only=; proxy takes --quick; trust takes no option; gateway takes --ms= .*; load takes .*; revocation takes --only= --sessions=\)$/],
    [['trust', '--quick'], /^unknown option --quick \(trust takes no option\)$/],
    [['proxy', '--quik'], /^unknown option --quik \(proxy takes --quick\)$/],
    [['noise', '--only=transport,crypto'], /^unknown noise section 'crypto': choose from transport, handshake, crossover$/],
    [['noise', '--only='], /^--only=: a comma-separated list of sections/],
    [['revocation', '--only=sesions'], /^--only=sesions: choose sessions or index$/],
    [['revocation', '--sessions=many'], /^--sessions=many: must be a number of sessions from 1 to 100000$/],
    // A later module's mistake is found before an earlier module runs.
    [['trust', 'gateway', '--ms=fast'], /^--ms=fast: must be milliseconds from 100 to 3600000$/],
    [['trust', 'load', '--only=nonsense'], /^--only: no scenario nonsense in scenarios\.json/],
    // A module named twice would run twice: refused like a repeated option.
    [['noise', 'noise'], /^benchmark noise is named more than once$/],
    // A value after a space is taken for a module's name: the line says how options take values.
    [['load', '--seconds', '5'], /^unknown benchmark '5': choose from .* \(options take their value after '=': --seconds=5\)$/],
    [['load', '--seconds'], /^unknown option --seconds \(load takes .*\): options take their value after '=' \(--seconds=VALUE\)$/],
    // An option that does not apply to what was selected would be ignored: refused instead.
    [['revocation', '--only=index', '--sessions=5'], /^--sessions: the index part has no sessions; it would change nothing/],
    [['load', '--only=http-20,churn', '--step-seconds=5'], /^--step-seconds: no ramp scenario among http-20, churn: it would change nothing$/],
    // Names are the modules', not an object's inherited properties.
    [['constructor'], /^unknown benchmark 'constructor': choose from noise, proxy, trust, gateway, load, revocation \(or none for all\)$/],
  ];
  for (const [args, message] of cases) {
    // Bounded: an option that slipped through would start a run; the timeout ends it.
    const r = spawnSync(process.execPath, [RUN, ...args], { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGTERM' });
    assert.equal(r.status, 1, `${args.join(' ')}: exit 1 (${r.signal ?? ''}); stderr ${r.stderr}`);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, `${args.join(' ')}: one line, no stack: ${r.stderr}`);
    assert.match(lines[0]!, message);
    assert.equal(r.stdout, '', `${args.join(' ')}: nothing started or printed`);
  }
});

test('--help prints every module and its options on stdout, exit 0, and starts nothing', () => {
  for (const flag of ['--help', '-h']) {
    const r = spawnSync(process.execPath, [RUN, 'load', flag], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, /^usage: npm run bench -- \[MODULE \.\.\.\]/);
    for (const name of ['noise', 'proxy', 'trust', 'gateway', 'load', 'revocation']) assert.match(r.stdout, new RegExp(`^  ${name}: `, 'm'));
    assert.match(r.stdout, /^ {6}options: --quick --seconds=VALUE --step-seconds=VALUE --only=VALUE --out=VALUE --rounds=VALUE$/m);
    assert.match(r.stdout, /^ {6}options: none$/m, 'trust takes none');
    assert.doesNotMatch(r.stdout, /^# /m, 'no module ran');
  }
});

test("every selected module's needs are checked before the first starts: one line naming all that is missing", () => {
  // As nobody: noise needs nothing and would run first; load and proxy need root. Neither runs.
  const r = spawnSync(process.execPath, [RUN, 'noise', 'proxy', 'load'], { encoding: 'utf8', timeout: 60_000, uid: 65534, gid: 65534 });
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^proxy: this benchmark needs root: .*; load: this benchmark needs root: .*\(run it as root\)$/);
  assert.equal(r.stdout, '', 'noise did not start');
});

test('the estimated duration: the load module sums its scenarios, warm-ups and restarts; the line says what is not estimated', () => {
  const est = (...args: string[]): number => loadBench.estimateSeconds!(args)!;
  const one = est('--only=http-20', '--seconds=3', '--rounds=1');
  // Five paths, each 2 s of warm-up and 3 s measured, at the least.
  assert.ok(one >= 5 * (2 + 3), `${one} s`);
  assert.ok(est('--only=http-20', '--seconds=3', '--rounds=3') > one, 'more rounds take longer');
  assert.ok(est('--only=http-20', '--seconds=30', '--rounds=1') > one, 'longer runs take longer');
  // The whole file's durations: the ~45 minutes bench/README.md gives, within a factor of 1.5.
  const all = est();
  assert.ok(all > 30 * 60 && all < 70 * 60, `${all / 60} min`);
  assert.equal(estimateLine([{ name: 'load', seconds: 125 }]), 'Estimated duration: about 2 min');
  assert.equal(estimateLine([{ name: 'noise', seconds: null }, { name: 'load', seconds: 40 }, { name: 'proxy', seconds: 420 }]), 'Estimated duration: about 8 min (load 40 s, proxy 7 min), plus noise (not estimated)');
  assert.equal(estimateLine([{ name: 'trust', seconds: null }]), 'Estimated duration: not estimated (trust)');
});
