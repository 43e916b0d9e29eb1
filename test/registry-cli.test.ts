// `noisemesh registry validate FILE...` as a user runs it: the real binary in a child process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './helpers/paths.js';
import { fixture, peer, registryDoc } from './fixtures/registry/make.js';

const main = join(repoRoot, 'dist', 'src', 'cli', 'main.js');

function run(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [main, 'registry', ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.error, undefined, `could not run ${main}: ${r.error?.message}`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('valid files: no problem, a summary, exit 0', () => {
  const r = run('validate', fixture('valid.yaml'), fixture('design-example.yaml'));
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(r.stdout, '2 files, 3 documents, 4 peers loaded; 0 errors, 0 warnings\n');
});

test('problems: one line each with file, line, document, path and fix; no key; exit 1', () => {
  const file = fixture('partial.yaml');
  const r = run('validate', file);
  assert.equal(r.code, 1);
  const lines = r.stdout.trimEnd().split('\n');
  assert.deepEqual(lines.slice(0, -1).map((l) => l.split(': ').slice(0, 3)), [
    [`${file}:15`, 'payments/payments', 'spec.peers[1].publicKey'],
    [`${file}:17`, 'payments/payments', 'spec.peers[2].agentId'],
  ]);
  assert.ok(lines[0]!.includes('must be standard base64 of 32 bytes'));
  assert.ok(lines[1]!.includes("publish it in a ClearanceRegistry of namespace 'frontend'"));
  assert.equal(lines.at(-1), '1 file, 1 document, 2 peers loaded; 2 errors, 0 warnings');
  for (const key of readFileSync(file, 'utf8').matchAll(/publicKey: (\S+)/g)) {
    assert.ok(!r.stdout.includes(key[1]!) && !r.stderr.includes(key[1]!), 'a key reached the output');
  }
});

test('a syntax error, a missing file and a warning each fail the run', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-registry-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const installationId = '3f6f0c1e-1111-4222-8333-944455556666';
  const superseded = join(dir, 'superseded.yaml');
  writeFileSync(superseded, registryDoc('payments', [peer('payments', 'api', { installationId, generation: 1 }), peer('payments', 'api', { installationId, generation: 2 })]));

  const broken = run('validate', fixture('broken.yaml'));
  assert.equal(broken.code, 1);
  assert.match(broken.stdout, /broken\.yaml:\d+: document 1: YAML syntax error \(/);
  assert.ok(!broken.stdout.includes('4RKNfKtWlGbr3jih4Qenf7V57GnZDFWoSmsQeU5I4i0='));

  const missing = run('validate', join(dir, 'nope.yaml'));
  assert.equal(missing.code, 1);
  assert.match(missing.stdout, /nope\.yaml: cannot be read: no such file or directory \(ENOENT\)/);
  assert.match(missing.stdout, /1 error, 0 warnings\n$/);

  const warned = run('validate', superseded);
  assert.equal(warned.code, 1);
  assert.match(warned.stdout, /superseded\.yaml:\d+: warning: payments\/payments: spec\.peers\[0\]\.generation: generation 1 is superseded by generation 2/);
  assert.match(warned.stdout, /2 peers loaded; 0 errors, 1 warning\n$/);
});

test('usage errors exit 2', () => {
  const none = run('validate');
  assert.equal(none.code, 2);
  assert.match(none.stderr, /name at least one file/);
  const unknown = run('check', 'x.yaml');
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown subcommand 'check'/);
});
