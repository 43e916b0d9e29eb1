// The YAML 1.1 tags the yaml library resolves by default (!!omap, !!pairs, !!set, !!binary)
// make objects that are no mapping: a Map, a Set, a Uint8Array. Every reader of hand-written
// YAML (the policy, the proxy's and the gateway's configuration, the registry) used to take
// them for a mapping with no keys, so a rule's `require: !!omap [...]` was dropped without a
// word and the rule allowed every caller, and `inbound: !!omap [...]` put the mesh listener on
// its defaults (every interface). Each is now refused with one line naming the field and fix.
// Real processes: the noisemesh command as a user runs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './helpers/paths.js';

const main = join(repoRoot, 'dist/src/cli/main.js');
const REGISTRY = join(repoRoot, 'examples/registry.yaml');

function noisemesh(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  // Bounded: a proxy that wrongly started would run until the timeout ends it.
  const r = spawnSync(process.execPath, [main, ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const TAGGED = /got (an !!omap or !!pairs \(write a plain mapping, without the tag\)|a !!set \(write a plain mapping or list, without the tag\)|!!binary data \(write the value without the tag\))$/;

test("a policy rule's requirements under !!omap, !!set or !!binary are refused, never dropped (the rule allowed everyone)", () => {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-yaml-tags-'));
  try {
    for (const require of ['!!omap [{clearance: secrets-only}, {authnStrength: hardware}]', '!!set {clearance}', '!!binary aGVsbG8=']) {
      const policy = join(dir, 'policy.yaml');
      writeFileSync(policy, `rules:\n  - id: db\n    paths: ["example/**"]\n    require: ${require}\n`);
      const r = noisemesh('explain', '--policy', policy, '--registry', REGISTRY, 'example/web', 'example/db');
      assert.equal(r.code, 2, `${require}: refused (exit 2), not decided: ${r.stdout}${r.stderr}`);
      assert.doesNotMatch(r.stdout, /ALLOW/);
      assert.match(r.stderr, /rules\[0\]\.require: must be a mapping of requirements/);
      assert.match(r.stderr.trim().split('\n').at(-1)!, TAGGED);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a configuration section, or the whole document, under a YAML 1.1 tag is one line naming it, exit 2, for proxy, gateway and secrets fetch', () => {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-yaml-tags-'));
  try {
    const base = `identity: {agentId: example/web}\nregistry: {file: ${REGISTRY}}\nadmin: {bind: 127.0.0.1, port: 1}\n`;
    const cases: [string, string, string, RegExp][] = [
      ['proxy', base + 'inbound: !!omap [{bind: 127.0.0.1}, {meshPort: 17992}]\n', 'inbound', /^noisemesh proxy: configuration refused: .*: inbound: must be a mapping with keys bind, meshPort, targetHost, capture; /],
      ['proxy', base + 'secrets: !!binary aGVsbG8=\n', 'secrets', /secrets: must be a mapping with keys gateway, project; /],
      ['secrets fetch', base + 'secrets: !!set {gateway, project}\n', 'secrets', /secrets: must be a mapping with keys gateway, project; /],
      ['proxy', '--- !!omap\n- identity: {agentId: example/web}\n', '(top level)', /\(top level\): must be a mapping with keys /],
      ['gateway', '--- !!omap\n- identity: {agentId: example/web}\n- gateway: {}\n', '(top level)', /\(top level\): must be a mapping with keys /],
    ];
    for (const [command, text, field, message] of cases) {
      const config = join(dir, 'config.yaml');
      writeFileSync(config, text);
      const r = noisemesh(...command.split(' '), '--config', config);
      assert.equal(r.code, 2, `${command} ${field}: exit 2: ${r.stdout}${r.stderr}`);
      assert.doesNotMatch(r.stdout + r.stderr, /"level"|listening|\n\s+at /, `${command} ${field}: nothing started, no stack`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `${command} ${field}: one line: ${r.stderr}`);
      assert.match(lines[0]!, message);
      assert.match(lines[0]!, TAGGED);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a registry attestation under !!omap is refused with its path and the tag named, not as missing fields', () => {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-yaml-tags-'));
  try {
    const file = join(dir, 'registry.yaml');
    writeFileSync(
      file,
      `apiVersion: noisemesh.io/v1alpha1
kind: ClearanceRegistry
metadata: {name: example, namespace: example}
spec:
  peers:
    - agentId: example/web
      installationId: 21f83718-6a13-4957-8d19-722b32f49e26
      publicKey: eZ4M8hfuLhpLj9NtM8cq/oMLEvjgEovjFpPPknAA6Xc=
      generation: 1
      attestation: !!omap [{authnStrength: hardware}, {attestedAt: "2026-01-01T00:00:00Z"}]
`,
    );
    const r = noisemesh('registry', 'validate', file);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const out = r.stdout + r.stderr;
    assert.match(out, /spec\.peers\[0\]\.attestation: must be a mapping .*got an !!omap or !!pairs \(write a plain mapping, without the tag\)/);
    assert.match(out, /0 peers loaded; 1 error/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
