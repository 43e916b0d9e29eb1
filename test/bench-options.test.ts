// bench/run.ts: every option is checked against the modules about to run, before the first
// one starts, so that a mistake costs one line and no benchmark's minutes (a misspelt option
// used to be ignored, or refused only when its module's turn came, after the others had run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './helpers/paths.js';

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
