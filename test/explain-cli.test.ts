// `noisemesh explain` as an operator runs it: the real binary in a child process, real
// registry and policy files, every exit status.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './helpers/paths.js';
import { peer, registryDoc, registryFile } from './fixtures/registry/make.js';

const main = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const NOW = '2026-11-23T09:30:00Z';

function run(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [main, 'explain', ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.error, undefined, `could not run ${main}: ${r.error?.message}`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const POLICY = `rules:
  - id: tighter
    mode: dry-run
    paths: ["payments/*"]
    require: {authnStrength: hardware}
  - id: payments-db
    paths: ["payments/*"]
    agents: ["payments/*"]
    require:
      clearance: internal
      authnStrength: high
      maxFreshnessSeconds: 3600
      minDevicePosture: 0.5
  - id: public
    paths: ["public/**"]
    require: {networkExposure: plaintext}
`;

const attestation = (authnStrength: string, devicePosture: number) => ({ authnStrength, attestedAt: '2026-11-23T09:00:00Z', devicePosture });

function setup(t: { after(fn: () => void): void }): { dir: string; policy: string; registry: string } {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-explain-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const policy = join(dir, 'policy.yaml');
  const registry = join(dir, 'registry.yaml');
  writeFileSync(policy, POLICY);
  writeFileSync(
    registry,
    registryFile(
      registryDoc('payments', [
        peer('payments', 'api', { installationId: '11111111-1111-4111-8111-111111111111', clearance: 'internal', attestation: attestation('high', 0.8) }),
        peer('payments', 'batch', { installationId: '22222222-2222-4222-8222-222222222222', clearance: 'internal', attestation: attestation('high', 0.9) }),
        peer('payments', 'batch', { installationId: '33333333-3333-4333-8333-333333333333', clearance: 'internal', attestation: attestation('high', 0.2) }),
        peer('payments', 'gone', { revoked: true, clearance: 'internal', attestation: attestation('high', 0.8) }),
      ]),
    ),
  );
  return { dir, policy, registry };
}

test('an allowed caller: the rule, the vector, every requirement with both values; exit 0', (t) => {
  const { policy, registry } = setup(t);
  const r = run('--policy', policy, '--registry', registry, '--now', NOW, 'payments/api', 'payments/db');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const lines = r.stdout.split('\n');
  assert.equal(lines[0], `payments/api -> payments/db: ALLOW by rule payments-db (${policy}:6)`);
  assert.match(lines[1]!, new RegExp(`^  registry entry: installation 11111111-1111-4111-8111-111111111111, generation 1 \\(${registry}:\\d+ payments/payments spec\\.peers\\[0\\]\\)$`));
  assert.ok(r.stdout.includes('    authzFreshness   1800 s\n'));
  assert.ok(r.stdout.includes('    clearance        internal\n'));
  const table = lines.slice(lines.indexOf('  requirements of rule payments-db:') + 1, lines.indexOf('  requirements of rule payments-db:') + 7);
  assert.deepEqual(table.map((l) => l.trim().split(/\s{2,}/)), [
    ['requirement', 'required', 'actual', 'result'],
    ['clearance', 'internal', 'internal', 'ok'],
    ['authnStrength', 'high', 'high', 'ok'],
    ['maxFreshnessSeconds', '3600', '1800', 'ok'],
    ['minDevicePosture', '0.5', '0.8', 'ok'],
    ['networkExposure', 'encrypted', 'encrypted', 'ok'],
  ]);
  // The dry-run rule is reported, not enforced.
  assert.ok(r.stdout.includes('  dry-run rule tighter (not enforced) would deny:\n    - authnStrength high is below the required hardware\n'));
  assert.equal(r.stderr, '');
});

test('a denied caller: FAILED rows and why; exit 1. Several pods: each entry evaluated, one denial fails the run', (t) => {
  const { policy, registry } = setup(t);
  const stale = run('--policy', policy, '--registry', registry, '--now', '2026-11-23T10:00:01Z', 'payments/api', 'payments/db');
  assert.equal(stale.code, 1);
  assert.match(stale.stdout, /^payments\/api -> payments\/db: DENY by rule payments-db/);
  assert.match(stale.stdout, /\n {4}maxFreshnessSeconds +3600 +3601 +FAILED\n/);
  assert.ok(stale.stdout.includes('  why:\n    - attested 3601 s ago, more than the 3600 s allowed\n'));

  const batch = run('--policy', policy, '--registry', registry, '--now', NOW, 'payments/batch', 'payments/db');
  assert.equal(batch.code, 1);
  assert.match(batch.stdout, /payments\/batch -> payments\/db: ALLOW by rule payments-db[^\n]*\n {2}registry entry: installation 22222222-/);
  assert.match(batch.stdout, /payments\/batch -> payments\/db: DENY by rule payments-db[^\n]*\n {2}registry entry: installation 33333333-/);
  assert.ok(batch.stdout.includes('    - device posture 0.2 is below the required 0.5\n'));
  assert.ok(batch.stdout.includes('note: payments/batch has 2 valid registry entries (one per pod); each was evaluated\n'));
});

test('--json: one document with the decision as the gateway returns it', (t) => {
  const { policy, registry } = setup(t);
  const r = run('--policy', policy, '--registry', registry, '--now', NOW, '--json', 'frontend/web', 'payments/db');
  assert.equal(r.code, 1);
  const doc = JSON.parse(r.stdout);
  assert.equal(doc.allow, false);
  assert.equal(doc.now, '2026-11-23T09:30:00.000Z');
  assert.deepEqual(doc.decisions, [
    {
      entry: null,
      decision: {
        allow: false,
        ruleId: null,
        reasons: [{ requirement: 'identity', required: 'a valid registry entry', actual: 'unknown', message: 'the caller has no registry entry: its key is unknown to the gateway' }],
        dryRunDenied: false,
        dryRun: [],
        trustVector: null,
      },
      checks: [],
    },
  ]);
  assert.deepEqual(doc.notes, ['note: the registry has no entry for frontend/web: a mesh request from it would come from an unknown key']);

  const ok = JSON.parse(run('--policy', policy, '--registry', registry, '--now', NOW, '--json', 'payments/api', 'payments/db').stdout);
  assert.equal(ok.allow, true);
  assert.equal(ok.decisions[0].entry.installationId, '11111111-1111-4111-8111-111111111111');
  assert.equal(ok.decisions[0].entry.generation, '1');
  assert.equal(ok.decisions[0].decision.dryRunDenied, true);
  assert.equal(ok.decisions[0].checks.length, 5);
});

test('revoked callers, plaintext callers and traversal paths are denied as the gateway would', (t) => {
  const { policy, registry } = setup(t);
  const gone = run('--policy', policy, '--registry', registry, '--now', NOW, 'payments/gone', 'payments/db');
  assert.equal(gone.code, 1);
  assert.match(gone.stdout, /DENY \(no rule decided\)\n {2}registry entry: installation [0-9a-f-]+, generation 1, revoked/);
  assert.ok(gone.stdout.includes("    - the caller's key (payments/gone, generation 1) is revoked: it is refused\n"));

  const plain = run('--policy', policy, '--registry', registry, '--network-exposure', 'plaintext', 'payments/api', 'payments/db');
  assert.equal(plain.code, 1);
  assert.match(plain.stdout, /^anonymous plaintext caller -> payments\/db: DENY \(no rule decided\)/);
  const publicKey = run('--policy', policy, '--registry', registry, '--network-exposure', 'plaintext', 'payments/api', 'public/ca.pem');
  assert.equal(publicKey.code, 0, publicKey.stdout);

  const traversal = run('--policy', policy, '--registry', registry, 'payments/api', 'payments/../admin');
  assert.equal(traversal.code, 1);
  assert.ok(traversal.stdout.includes('    - the requested path has a . or .. segment: no rule can match it\n'));
});

test('usage and file errors: exit 2, one clear line on stderr, no stack trace', (t) => {
  const { dir, policy, registry } = setup(t);
  const badPolicy = join(dir, 'bad-policy.yaml');
  writeFileSync(badPolicy, 'rules:\n  - id: a\n    paths: ["x"]\n    require: {clearance: secret}\n');
  const badRegistry = join(dir, 'bad-registry.yaml');
  writeFileSync(badRegistry, 'apiVersion: [\n');
  const fifo = join(dir, 'policy.fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo (coreutils)');
  const cases: [string[], RegExp][] = [
    [['--registry', registry, 'payments/api', 'x'], /^noisemesh explain: --policy FILE is required; usage: noisemesh explain --policy FILE/],
    [['--policy', policy, 'payments/api', 'x'], /^noisemesh explain: --registry FILE is required/],
    [['--policy', policy, '--registry', registry, 'payments/api'], /^noisemesh explain: name an AGENT and a PATH/],
    [['--policy', join(dir, 'none.yaml'), '--registry', registry, 'payments/api', 'x'], /^noisemesh explain: --policy: \S+none\.yaml does not exist: create it, or fix --policy\n$/],
    [['--policy', dir, '--registry', registry, 'payments/api', 'x'], /^noisemesh explain: --policy: \S+ is a directory, not a regular file: point --policy at a regular file \(a symlink to one is fine\)\n$/],
    // A FIFO would block a plain open(2) for good: refused at once, as every file the CLI reads.
    [['--policy', fifo, '--registry', registry, 'payments/api', 'x'], /^noisemesh explain: --policy: \S+policy\.fifo is a FIFO \(named pipe\), not a regular file: point --policy at a regular file/],
    [['--policy', policy, '--registry', join(dir, 'none.yaml'), 'payments/api', 'x'], /^noisemesh explain: --registry: \S+none\.yaml does not exist: create it, or fix --registry\n$/],
    [
      ['--policy', badPolicy, '--registry', registry, 'payments/api', 'x'],
      /^noisemesh explain: invalid policy \S+bad-policy\.yaml: 1 problem\n {2}\S+bad-policy\.yaml:4: rules\[0\]\.require\.clearance: must be one of open, internal, profile-scoped, secrets-only; got "secret"\n$/,
    ],
    [['--policy', policy, '--registry', badRegistry, 'payments/api', 'x'], /^noisemesh explain: invalid registry: \S+bad-registry\.yaml:\d+: document 1: YAML syntax error/],
    [['--policy', policy, '--registry', registry, '--network-exposure', 'wifi', 'payments/api', 'x'], /^noisemesh explain: --network-exposure must be one of loopback, encrypted, plaintext; got "wifi"\n$/],
    [['--policy', policy, '--registry', registry, '--now', 'yesterday', 'payments/api', 'x'], /^noisemesh explain: --now must be an RFC 3339 time/],
    [['--policy', policy, '--registry', registry, 'Payments/API', 'x'], /^noisemesh explain: AGENT must be <namespace>\/<workload> in lower case/],
    [['--policy', policy, '--registry', registry, '--verbose', 'payments/api', 'x'], /^noisemesh explain: unknown option '--verbose'\n\nusage: noisemesh explain /],
  ];
  for (const [args, expected] of cases) {
    const r = run(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, expected);
    assert.equal(r.stdout, '');
    assert.ok(!/\n\s+at /.test(r.stderr), `a stack trace: ${r.stderr}`);
  }
  const help = run('--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Exit status: 0 allowed \(every entry\), 1 denied \(any entry, or no valid entry\),\n2 usage error/);
});

test("the reviewer's policy with empty keys (agents: ~, authnStrength:, clearance: null, agentTypes: null, require: null) is refused, never ALLOW", (t) => {
  const { dir, registry } = setup(t);
  const cases: [string, string][] = [
    ['rules: [{id: a, paths: ["payments/**"], agents: ~, require: {authnStrength: }}]\n', 'rules[0].agents'],
    ['rules: [{id: a, paths: ["payments/**"], agents: ["payments/*"], require: {authnStrength: }}]\n', 'rules[0].require.authnStrength'],
    ['rules: [{id: a, paths: ["payments/**"], require: {clearance: null}}]\n', 'rules[0].require.clearance'],
    ['rules: [{id: a, paths: ["payments/**"], require: {agentTypes: null}}]\n', 'rules[0].require.agentTypes'],
    ['rules: [{id: a, paths: ["payments/**"], require: null}]\n', 'rules[0].require'],
  ];
  for (const [text, field] of cases) {
    const policy = join(dir, 'empty.yaml');
    writeFileSync(policy, text);
    const r = run('--policy', policy, '--registry', registry, '--now', NOW, 'payments/api', 'payments/db');
    assert.equal(r.code, 2, `${text}: refused, not decided: ${r.stdout}`);
    assert.equal(r.stdout, '');
    assert.ok(r.stderr.includes(`${field}: is empty (null): remove the key to use its default, or give it a value`), r.stderr);
  }
});

test('loopback: only the gateway itself arrives over it (--gateway required, AGENT must be it); plaintext takes PATH alone or any AGENT', (t) => {
  const { policy, registry } = setup(t);
  const open = ['--policy', policy, '--registry', registry, '--now', NOW];
  const noGateway = run(...open, '--network-exposure', 'loopback', 'payments/api', 'public/ca');
  assert.equal(noGateway.code, 2);
  assert.match(noGateway.stderr, /^noisemesh explain: --network-exposure loopback: only the gateway's own pod reaches its loopback listener .*--gateway AGENT\n$/);
  // The reviewer's case: another agent "over loopback" was ALLOWed; the gateway never sees such a request.
  const other = run(...open, '--network-exposure', 'loopback', '--gateway', 'payments/batch', 'payments/api', 'public/ca');
  assert.equal(other.code, 2, other.stdout);
  assert.equal(other.stdout, '');
  assert.match(other.stderr, /a loopback request comes only from the gateway's own pod \(payments\/batch\), never from payments\/api/);
  const own = run(...open, '--network-exposure', 'loopback', '--gateway', 'payments/api', 'public/ca');
  assert.equal(own.code, 0, own.stderr);
  assert.match(own.stdout, /^payments\/api \(the gateway's own pod, over loopback\) -> public\/ca: ALLOW by rule public/);
  assert.match(own.stdout, /networkExposure {2}loopback/);
  const same = run(...open, '--network-exposure', 'loopback', '--gateway', 'payments/api', 'payments/api', 'public/ca');
  assert.equal(same.code, 0, same.stderr);
  assert.equal(run(...open, '--gateway', 'payments/api', 'payments/api', 'public/ca').code, 2, '--gateway without loopback is a usage error');

  // The help says AGENT is not used with plaintext: left out, or anything at all.
  for (const args of [['public/ca'], ['none', 'public/ca'], ['Not An Agent', 'public/ca']]) {
    const r = run(...open, '--network-exposure', 'plaintext', ...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /^anonymous plaintext caller -> public\/ca: ALLOW by rule public/);
  }
  assert.match(run(...open, 'public/ca').stderr, /name an AGENT and a PATH \(PATH alone with --network-exposure plaintext\)/);
});

test('an entry refused by the registry (a key conflict, an empty field) is named with why, not "has no entry"', (t) => {
  const { dir, policy } = setup(t);
  const registry = join(dir, 'conflict.yaml');
  const shared = peer('payments', 'api', { clearance: 'internal', attestation: attestation('high', 0.8) });
  writeFileSync(
    registry,
    registryFile(registryDoc('payments', [shared, peer('payments', 'batch', { publicKey: shared.publicKey, installationId: '22222222-2222-4222-8222-222222222222' }), peer('payments', 'web', { revoked: null })])),
  );
  const r = run('--policy', policy, '--registry', registry, '--now', NOW, 'payments/api', 'payments/db');
  assert.equal(r.code, 1);
  assert.doesNotMatch(r.stdout, /has no entry/);
  assert.match(r.stdout, /note: the registry's entry for payments\/api was refused, so a mesh request from it would come from an unknown key:\n {2}\S+conflict\.yaml:\d+: payments\/payments: spec\.peers\[0\]\.publicKey: is also claimed by .*payments\/batch/);
  const web = run('--policy', policy, '--registry', registry, '--now', NOW, 'payments/web', 'payments/db');
  assert.equal(web.code, 1);
  assert.match(web.stdout, /was refused.*\n {2}\S+: payments\/payments: spec\.peers\[2\]\.revoked: is empty \(null\)/);
  const nobody = run('--policy', policy, '--registry', registry, '--now', NOW, 'payments/nobody', 'payments/db');
  assert.match(nobody.stdout, /note: the registry has no entry for payments\/nobody/);
});
