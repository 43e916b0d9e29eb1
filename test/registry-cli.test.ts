// `noisemesh registry validate FILE...` as a user runs it: the real binary in a child process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './helpers/paths.js';
import { fixture, peer, registryDoc } from './fixtures/registry/make.js';
import { LOW_ORDER_X25519_B64 } from './helpers/low-order.js';

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
  assert.match(missing.stdout, /nope\.yaml does not exist: check the path\n/);
  assert.match(missing.stdout, /1 error, 0 warnings\n$/);

  const warned = run('validate', superseded);
  assert.equal(warned.code, 1);
  assert.match(warned.stdout, /superseded\.yaml:\d+: warning: payments\/payments: spec\.peers\[0\]\.generation: generation 1 is superseded by generation 2/);
  assert.match(warned.stdout, /2 peers loaded; 0 errors, 1 warning\n$/);
});

test('a low-order public key fails the run, each of the 14 named at its field, with the fix and no key', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-registry-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'low-order.yaml');
  const peers = LOW_ORDER_X25519_B64.map((publicKey, i) => peer('payments', `w${i}`, { publicKey }));
  writeFileSync(file, registryDoc('payments', [...peers, peer('payments', 'api')]));
  const r = run('validate', file);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 15);
  for (const [i, line] of lines.slice(0, -1).entries()) {
    assert.ok(line.startsWith(`${file}:`), line);
    assert.match(line.slice(file.length), new RegExp(`^:\\d+: payments/payments: spec\\.peers\\[${i}\\]\\.publicKey: is a low-order X25519 point`));
    assert.ok(line.includes("publish the peer's real public key"), line);
  }
  assert.equal(lines.at(-1), '1 file, 1 document, 1 peer loaded; 14 errors, 0 warnings');
  for (const key of LOW_ORDER_X25519_B64) assert.ok(!r.stdout.includes(key) && !r.stderr.includes(key), 'a key reached the output');
});

test('usage errors exit 2', () => {
  const none = run('validate');
  assert.equal(none.code, 2);
  assert.match(none.stderr, /name at least one file/);
  const unknown = run('check', 'x.yaml');
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown subcommand 'check'/);
});

test('every problem of a file in one run: a document without metadata still has its peers checked', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-registry-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'no-metadata.yaml');
  writeFileSync(file, [
    'apiVersion: noisemesh.io/v1alpha1',
    'kind: ClearanceRegistrry',
    'spec:',
    '  peers:',
    '    - agentId: Payments/API',
    '      installationId: 3f6f0c1e-1111-4222-8333-944455556666',
    '      publicKey: not-a-key',
    '      generation: 0',
    '    - agentId: payments/db',
    '      installationId: nope',
    '      publicKey: 4RKNfKtWlGbr3jih4Qenf7V57GnZDFWoSmsQeU5I4i0=',
    '      generation: 1',
    '      revokd: true',
    '',
  ].join('\n'));
  const r = run('validate', file);
  assert.equal(r.code, 1);
  const lines = r.stdout.trimEnd().split('\n');
  assert.deepEqual(lines.slice(0, -1).map((l) => l.split(': ').slice(0, 3)), [
    [`${file}:1`, 'document 1', 'metadata'],
    [`${file}:2`, 'document 1', 'kind'],
    [`${file}:5`, 'document 1', 'spec.peers[0].agentId'],
    [`${file}:7`, 'document 1', 'spec.peers[0].publicKey'],
    [`${file}:8`, 'document 1', 'spec.peers[0].generation'],
    [`${file}:13`, 'document 1', 'spec.peers[1].revokd'],
    [`${file}:10`, 'document 1', 'spec.peers[1].installationId'],
  ]);
  assert.equal(lines.at(-1), '1 file, 1 document, 0 peers loaded; 7 errors, 0 warnings');
  assert.ok(!r.stdout.includes('4RKNfKtWlGbr3jih4Qenf7V57GnZDFWoSmsQeU5I4i0='));
});

test('a YAML syntax error is printed once, with a hint that fits it', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-registry-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const head = 'apiVersion: noisemesh.io/v1alpha1\nkind: ClearanceRegistry\nmetadata: {name: a, namespace: a}\n';
  const cases: [string, string, RegExp][] = [
    ['sequence.yaml', `${head}spec:\n  peers: [\n`, /a flow sequence `\[` opened on this line or above is not closed: end it with `\]`/],
    ['nested.yaml', `${head}spec:\n  peers: [ {agentId: a/b\n`, /a flow mapping `\{` opened on this line or above is not closed: end it with `\}`/],
    ['quote.yaml', `${head}spec: {peers: []}\nstatus: "open\n`, /a double-quoted string is not closed: end it with `"`/],
    ['indent.yaml', `${head}spec:\n  peers:\n    - agentId: a/b\n   generation: 1\n`, /inconsistent indentation: align the keys of each mapping/],
    ['indent-item.yaml', `${head}spec:\n  peers:\n    - agentId: a/b\n     generation: 1\n`, /a line of a list item is indented differently from the lines above it, or lacks its `- `/],
    ['tab.yaml', `${head}spec:\n\tpeers: []\n`, /a tab used as indentation: indent with spaces/],
  ];
  for (const [name, text, hint] of cases) {
    writeFileSync(join(dir, name), text);
    const r = run('validate', join(dir, name));
    assert.equal(r.code, 1, name);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 2, `${name}: one problem line and the summary\n${r.stdout}`);
    assert.match(lines[0]!, /: document 1: YAML syntax error \([A-Z_]+\): /, name);
    assert.match(lines[0]!, hint, name);
    if (!name.startsWith('indent') && !name.startsWith('tab')) assert.doesNotMatch(lines[0]!, /indent/, `${name}: not an indentation problem`);
    assert.match(lines[0]!, /; the whole file is refused$/, name);
  }
});

test('YAML nested too deeply is named as such, not as an alias problem, in every reader of YAML', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-registry-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const deep = join(dir, 'deep.yaml');
  writeFileSync(deep, `${'['.repeat(20_000)}${']'.repeat(20_000)}\n`);
  const r = run('validate', deep);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /deep\.yaml:1: document 1: YAML syntax error \(RESOURCE_EXHAUSTION\): lists or mappings nested too deeply to read: flatten the YAML; the whole file is refused\n/);
  assert.doesNotMatch(r.stdout, /alias/);
  const policy = spawnSync(process.execPath, [main, 'explain', '--policy', deep, '--registry', deep, 'a/b', 'x'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(policy.status, 2, policy.stderr);
  assert.match(policy.stderr, /nested too deeply to read: flatten the YAML/);
  const proxy = spawnSync(process.execPath, [main, 'proxy', '--config', deep], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(proxy.status, 2, proxy.stderr);
  assert.match(proxy.stderr, /line 1: not valid YAML: lists or mappings nested too deeply to read: flatten the YAML/);
});
