// A key written with no value (`key:`, `key: ~`, `key: null`) in any file we read (the
// policy, the registry, the proxy's and the gateway's configuration, the secrets file) is
// refused with the key named and the fix, never read as "absent": read so, `agents: ~`
// selected every caller, `require: {authnStrength: }` required nothing and `revoked:` left a
// peer live. Also: values rendered faithfully (.inf, 1e400, .nan, never "null"), a hint only
// where it is true, and every unsupported YAML tag named with its line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ConfigError } from '../src/cli/config/config-reader.js';
import { parseGatewayConfig } from '../src/cli/config/gateway-config.js';
import { loadProxyConfig, parseProxyConfig } from '../src/cli/config/proxy-config.js';
import { parseSecretsSection } from '../src/cli/config/secrets-config.js';
import { parseRegistryYaml, validateClearanceRegistry } from '../src/registry-sync/index.js';
import { SecretsFileError, parseSecretsFile } from '../src/secrets/index.js';
import { PolicyError, compilePolicy, parsePolicy } from '../src/trust-vector/index.js';
import { peer, registryDoc } from './fixtures/registry/make.js';
import { repoRoot } from './helpers/paths.js';

const NULL = 'is empty (null): remove the key to use its default, or give it a value';
const main = join(repoRoot, 'dist/src/cli/main.js');

function policyProblems(text: string): string[] {
  try {
    parsePolicy(text, 'policy.yaml');
  } catch (err) {
    assert.ok(err instanceof PolicyError, String(err));
    return err.message.split('\n').slice(1).map((l) => l.trim());
  }
  return [];
}

function configProblems(document: unknown, gateway = false): string[] {
  try {
    if (gateway) parseGatewayConfig(document);
    else parseProxyConfig(document, 'config', undefined, parseSecretsSection);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
  return [];
}

const RULE = { id: 'a', paths: ['pay/**'], agents: ['pay/*'], mode: 'enforce', description: 'd', require: { clearance: 'secrets-only' } };
const REQUIRE = { clearance: 'secrets-only', authnStrength: 'high', maxFreshnessSeconds: 60, maxDelegationDepth: 1, minDevicePosture: 0.5, networkExposure: 'encrypted', agentTypes: ['service'] };

test('policy: every key written empty is refused with its path, in YAML and as plain data; one problem each', () => {
  assert.deepEqual(policyProblems('rules:\n'), ['policy.yaml:1: rules: ' + NULL]);
  for (const key of Object.keys(RULE)) {
    const rule = stringify({ rules: [{ ...RULE, [key]: null }] });
    assert.deepEqual(policyProblems(rule), [`policy.yaml:${rule.split('\n').findIndex((l) => l.includes(`${key}:`)) + 1}: rules[0].${key}: ${NULL}`], key);
    assert.throws(() => compilePolicy({ rules: [{ ...RULE, [key]: null }] }), (err: PolicyError) => err.problems.length === 1 && err.problems[0]!.path === `rules[0].${key}`);
  }
  for (const key of Object.keys(REQUIRE)) {
    // `key:` with nothing after it, as a template that rendered nothing leaves it.
    const text = `rules:\n  - id: a\n    paths: ["pay/**"]\n    require:\n      ${key}:\n`;
    assert.deepEqual(policyProblems(text), [`policy.yaml:5: rules[0].require.${key}: ${NULL}`], key);
  }
  // A list item left empty is no glob and no agent type.
  assert.match(policyProblems('rules: [{id: a, paths: [~]}]\n')[0]!, /rules\[0\]\.paths\[0\]: .*got nothing \(null\)$/);
  assert.match(policyProblems('rules: [{id: a, paths: [x], require: {agentTypes: [~]}}]\n')[0]!, /rules\[0\]\.require\.agentTypes\[0\]: must be one of service, human, agent; got nothing \(null\)$/);
});

test('policy: values are shown as written (.inf, 1e400, .nan, -.inf), never as JSON null; long text cut', () => {
  const shown = (value: string, key = 'maxFreshnessSeconds'): string => policyProblems(`rules: [{id: a, paths: [x], require: {${key}: ${value}}}]\n`)[0]!;
  assert.match(shown('.inf'), /got \.inf \(infinity, or a number too large to hold\)$/);
  assert.match(shown('1e400'), /got \.inf \(infinity, or a number too large to hold\)$/);
  assert.match(shown('-.inf', 'maxDelegationDepth'), /got -\.inf /);
  assert.match(shown('.nan', 'minDevicePosture'), /minDevicePosture: must be a number from 0 to 1, e\.g\. 0\.5; got \.nan \(not a number\)$/);
  assert.match(shown(`"${'x'.repeat(200)}"`, 'clearance'), /got "x{57}\.\.\."$/);
  for (const v of ['.inf', '1e400', '.nan']) assert.doesNotMatch(shown(v, 'minDevicePosture'), /got null/);
});

test('registry: a peer, attestation or spec field written empty is refused; `revoked:` is never a live peer, nor kept at a last good version', () => {
  const fields = { clearance: 'internal', addresses: ['10.0.0.1'], meshPort: 15443, serviceAccount: 'api', agentType: 'service', delegationDepth: 0, revoked: false };
  for (const key of [...Object.keys(fields), 'agentId', 'installationId', 'publicKey', 'generation', 'attestation']) {
    const parsed = parseRegistryYaml(registryDoc('pay', [peer('pay', 'api', { ...fields, [key]: null })]), 'r.yaml');
    assert.equal(parsed.objects[0]!.entries.length, 0, `${key}: no entry`);
    assert.deepEqual(parsed.problems.map((p) => p.path), [`spec.peers[0].${key}`], key);
    assert.match(parsed.problems[0]!.message, /^is empty \(null\): remove the key to use its default, or give it a value/);
  }
  const revoked = parseRegistryYaml(registryDoc('pay', [peer('pay', 'api', { revoked: null })]), 'r.yaml');
  assert.equal(revoked.objects[0]!.broken[0]!.mayRevoke, true, 'an empty revoked may have meant true: the last good version is not kept');
  assert.match(revoked.problems[0]!.message, /\(true or false\); the peer is refused, and not kept at a last good version$/);
  for (const key of ['authnStrength', 'attestedAt', 'imageDigest', 'nodeName', 'bindingHash', 'devicePosture']) {
    const attestation = { authnStrength: 'high', attestedAt: '2026-01-01T00:00:00Z', [key]: null };
    const parsed = parseRegistryYaml(registryDoc('pay', [peer('pay', 'api', { attestation })]), 'r.yaml');
    assert.deepEqual(parsed.problems.map((p) => `${p.path}: ${p.message}`), [`spec.peers[0].attestation.${key}: ${NULL}`], key);
  }
  // `peers:` empty is not "no peers", which would revoke every one: the document is refused (and its last good entries kept).
  const spec = parseRegistryYaml('apiVersion: noisemesh.io/v1alpha1\nkind: ClearanceRegistry\nmetadata: {name: pay, namespace: pay}\nspec:\n  peers:\n', 'r.yaml');
  assert.equal(spec.objects.length, 0);
  assert.deepEqual(spec.refusedObjects, ['pay/pay']);
  assert.match(spec.problems[0]!.message, /^is empty \(null\).*write `peers: \[\]` for a namespace without peers$/);
  // The Kubernetes source hands the same checks JSON objects: the same refusal.
  const json = JSON.parse(JSON.stringify({ apiVersion: 'noisemesh.io/v1alpha1', kind: 'ClearanceRegistry', metadata: { name: 'pay', namespace: 'pay' }, spec: { peers: [peer('pay', 'api', { revoked: null })] } })) as unknown;
  const k8s = validateClearanceRegistry(json, { document: 'pay/pay' });
  assert.equal(k8s.object!.entries.length, 0);
  assert.equal(k8s.object!.broken[0]!.mayRevoke, true);
});

test('registry validate (the real CLI): an entry with `revoked:` and no value is an error, 0 peers loaded', () => {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-empty-'));
  try {
    const file = join(dir, 'registry.yaml');
    writeFileSync(file, registryDoc('pay', [peer('pay', 'api')]).replace(/generation: 1\n/, 'generation: 1\n      revoked:\n'));
    const r = spawnSync(process.execPath, [main, 'registry', 'validate', file], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /spec\.peers\[0\]\.revoked: is empty \(null\)/);
    assert.match(r.stdout + r.stderr, /0 peers loaded; 1 error/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('proxy and gateway configuration: a key or list item written empty is refused with its path, not defaulted', () => {
  const base = { identity: { agentId: 'pay/api' }, registry: { file: '/r.yaml' } };
  assert.deepEqual(configProblems({ ...base, inbound: { meshPort: null, capture: null } }), [`inbound.meshPort: ${NULL}`, `inbound.capture: ${NULL}`]);
  assert.deepEqual(configProblems({ ...base, outbound: { mode: null } }), [`outbound.mode: ${NULL}`]);
  assert.deepEqual(configProblems({ ...base, admin: null }), [`admin: ${NULL}`]);
  assert.deepEqual(configProblems({ identity: { agentId: null }, registry: { file: '/r.yaml' } }), [`identity.agentId: ${NULL}`], 'one problem, not also "required"');
  assert.deepEqual(configProblems({ ...base, outbound: { explicit: [null] } }), ['outbound.explicit[0]: is empty (null): remove the item, or give it a value ({listen, peer, port})']);
  assert.deepEqual(configProblems({ ...base, inbound: { capture: { excludePorts: [15020, null] } } }), ['inbound.capture.excludePorts[1]: is empty (null): remove the item, or give it a value (ports)']);
  const secrets = { gateway: { peer: 'sys/gw' }, project: { dir: '/s', items: [{ path: 'a/b', file: 'f', env: null }], notify: null } };
  assert.deepEqual(configProblems({ ...base, secrets }), [`secrets.project.notify: ${NULL}`, `secrets.project.items[0].env: ${NULL}`]);
  const gateway = { policy: null, backend: { vault: { address: 'https://v:8200', mount: 'secret', auth: { token: { file: '/t' } }, caFile: null } }, audit: { stdout: true } };
  assert.deepEqual(configProblems({ ...base, gateway }, true), [`gateway.policy: ${NULL}`, `gateway.backend.vault.caFile: ${NULL}`]);
});

test('configuration values: a hint only where it is true (fileMode must be quoted), numbers shown as written', async () => {
  const base = { identity: { agentId: 'pay/api' }, registry: { file: '/r.yaml' } };
  const project = (extra: object) => ({ ...base, secrets: { gateway: { peer: 'sys/gw' }, project: { dir: '/s', items: [{ path: 'a/b', file: 'f' }], ...extra } } });
  const fileMode = configProblems(project({ fileMode: '0o440' }));
  assert.deepEqual(fileMode, ['secrets.project.fileMode: must be an octal mode in quotes, e.g. "0400" (or "0440" with fsGroup); got "0o440"']);
  assert.match(configProblems({ ...base, admin: { port: '15020' } })[0]!, /admin\.port: .*got the string "15020" \(write numbers without quotes\)$/);
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-empty-'));
  try {
    const file = join(dir, 'proxy.yaml');
    writeFileSync(file, 'identity: {agentId: pay/api}\nregistry: {file: /r.yaml}\nkeepalive: {idleSeconds: .inf, probes: 1e400}\nshutdown: {drainSeconds: .nan}\n');
    await assert.rejects(loadProxyConfig(file), (err: ConfigError) => {
      assert.deepEqual(err.problems.map((p) => `${p.path}: ${p.message}`), [
        'keepalive.idleSeconds: must be an integer from 1 to 32767; got .inf (infinity, or a number too large to hold)',
        'keepalive.probes: must be an integer from 1 to 127; got .inf (infinity, or a number too large to hold)',
        'shutdown.drainSeconds: must be a number from 0 to 3600; got .nan (not a number)',
      ]);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('secrets file: an empty secret or value is refused with its path and the fix, never a value', () => {
  const problems = (text: string): string[] => {
    try {
      parseSecretsFile(text, 's.yaml');
    } catch (err) {
      assert.ok(err instanceof SecretsFileError);
      return err.problems.map((p) => `${p.line}: ${p.path}: ${p.message}`);
    }
    return [];
  };
  assert.deepEqual(problems('pay/db:\n  user: "app"\n  password:\n'), ['3: pay/db.password: is empty (null): give it a value in quotes ("" for an empty one), or remove the key']);
  assert.deepEqual(problems('pay/db: ~\n'), ['1: pay/db: is empty (null): give it a mapping of keys to string values, e.g. {password: "..."}, or remove the secret']);
  assert.deepEqual(problems('pay/db: {password: ""}\n'), [], 'an empty string is a value');
});

test('every loader names an unsupported YAML tag and its line: policy, registry, configuration, secrets file', async () => {
  const tag = (name: string) => new RegExp(`unsupported YAML tag ${name.replace(/[!<>]/g, (c) => `\\${c}`)} \\(`);
  // The reviewer's case: a !!set written as a mapping (the library's error names no tag).
  const set = policyProblems('rules:\n  - id: a\n    paths: [x]\n    require: !!set {clearance: secrets-only}\n');
  assert.deepEqual(set, ['policy.yaml:4: unsupported YAML tag !!set (!!set takes keys without values): remove the tag and write a plain mapping, list or value']);
  // A tag the library only warns about used to be dropped: the value was read as a plain string.
  assert.match(policyProblems('rules:\n  - id: a\n    paths: [x]\n    agents: [!custom pay/api]\n')[0]!, /^policy\.yaml:4: unsupported YAML tag !custom \(/);
  assert.match(policyProblems('rules:\n  - id: a\n    paths: [x]\n    require: {maxDelegationDepth: !!int x}\n')[0]!, /^policy\.yaml:4: unsupported YAML tag !!int \(/);
  assert.match(policyProblems('rules:\n  - id: a\n    paths: [x]\n    require: !!omap {clearance: open}\n')[0]!, /^policy\.yaml:4: unsupported YAML tag !!omap \(!!omap does not fit this kind of value\)/);

  const registry = parseRegistryYaml(registryDoc('pay', [peer('pay', 'api')]).replace('generation: 1', 'generation: !!int one\n      revoked: !custom false'), 'r.yaml');
  assert.equal(registry.ok, false);
  assert.deepEqual(registry.problems.map((p) => [p.line, p.message.match(/unsupported YAML tag (\S+)/)?.[1]]), [[11, '!!int'], [12, '!custom']]);

  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-empty-'));
  try {
    const file = join(dir, 'proxy.yaml');
    writeFileSync(file, 'identity: {agentId: pay/api}\nregistry: {file: /r.yaml}\ninbound: {capture: !!set {port: 15006}}\n');
    await assert.rejects(loadProxyConfig(file), (err: ConfigError) => {
      assert.equal(err.problems.length, 1);
      assert.match(err.problems[0]!.message, /^line 3: not valid YAML: unsupported YAML tag !!set \(/);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  assert.throws(() => parseSecretsFile('pay/db:\n  password: !vault hunter2\n', 's.yaml'), (err: SecretsFileError) => {
    assert.match(err.message, tag('!vault'));
    assert.match(err.message, /line 2: /);
    assert.doesNotMatch(err.message, /hunter2/);
    return true;
  });
});
