// ClearanceRegistry validation: every field's errors name document, path and fix and never
// quote a key; bad peers and documents lose only themselves; syntax errors lose the file;
// checks across entries (namespace rule, conflicts, supersession) refuse towards safety.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  buildSnapshot,
  formatProblem,
  parseRegistryYaml,
  RegistryIndex,
  type RegistryEntry,
  type RegistryProblem,
  type RegistrySnapshot,
} from '../src/registry-sync/index.js';
import { fixture, newPublicKey, peer, registryDoc, registryFile, type Peer } from './fixtures/registry/make.js';
import { LOW_ORDER_X25519_B64 } from './helpers/low-order.js';

function load(text: string, file = 'registry.yaml'): { snapshot: RegistrySnapshot; ok: boolean; problems: readonly RegistryProblem[] } {
  const parsed = parseRegistryYaml(text, file);
  const snapshot = buildSnapshot(parsed.objects, { origin: `file ${file}` }, parsed.problems);
  return { snapshot, ok: parsed.ok, problems: parsed.ok ? snapshot.problems : parsed.problems };
}

function entry(s: RegistrySnapshot, agentId: string): RegistryEntry {
  const found = s.entries.filter((e) => e.agentId === agentId);
  assert.equal(found.length, 1, `exactly one entry for ${agentId}`);
  return found[0]!;
}

/** No problem text may contain any of these values (keys, or bad values that might be keys). */
function assertNoLeak(problems: readonly RegistryProblem[], secrets: readonly string[]): void {
  for (const p of problems) {
    const text = `${formatProblem(p)} ${JSON.stringify(p)}`;
    for (const s of secrets) {
      if (s.length < 8) continue;
      assert.ok(!text.includes(s), `problem text leaks a value: ${formatProblem(p)}`);
      // Nor a recognisable chunk of it.
      assert.ok(!text.includes(s.slice(0, 16)), `problem text leaks part of a value: ${formatProblem(p)}`);
    }
  }
}

test('valid.yaml: every field read, normalized and defaulted', () => {
  const { snapshot, ok, problems } = load(readFileSync(fixture('valid.yaml'), 'utf8'), fixture('valid.yaml'));
  assert.ok(ok);
  assert.deepEqual(problems.map(formatProblem), []);
  assert.equal(snapshot.objects, 2);
  assert.equal(snapshot.entries.length, 3);

  const api = entry(snapshot, 'payments/api');
  assert.equal(api.namespace, 'payments');
  assert.equal(api.workload, 'api');
  assert.equal(api.installationId, '0f8e2c1a-6f4e-4552-988c-b4aac7db0c55');
  assert.equal(api.publicKeyB64, '4RKNfKtWlGbr3jih4Qenf7V57GnZDFWoSmsQeU5I4i0=');
  assert.equal(api.publicKey.length, 32);
  assert.equal(Buffer.from(api.publicKey).toString('base64'), api.publicKeyB64);
  assert.equal(api.generation, 3n);
  assert.equal(api.clearance, 'internal');
  assert.deepEqual(api.addresses, ['10.0.3.7']);
  assert.equal(api.meshPort, 15443);
  assert.equal(api.serviceAccount, 'api');
  assert.equal(api.agentType, 'service');
  assert.equal(api.delegationDepth, 1);
  assert.equal(api.revoked, false);
  assert.equal(api.superseded, false);
  assert.deepEqual(api.attestation, {
    authnStrength: 'high',
    attestedAt: '2026-11-23T09:00:00.000Z',
    attestedAtMs: Date.UTC(2026, 10, 23, 9, 0, 0),
    imageDigest: 'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
    nodeName: 'node-a',
    bindingHash: '6d0a1d1e3b7f4c2a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29181716151413',
    devicePosture: 0.8,
  });
  assert.deepEqual(api.source, { namespace: 'payments', name: 'payments', peerIndex: 0, path: 'spec.peers[0]', file: fixture('valid.yaml'), line: 7 });
  assert.ok(Object.isFrozen(api));

  const db = entry(snapshot, 'payments/db');
  assert.deepEqual(db.addresses, ['2001:db8::7', '10.0.3.8'], 'IPv6 lowercased and compressed');
  // Defaults lean to least privilege.
  assert.equal(db.meshPort, undefined);
  assert.equal(db.serviceAccount, undefined);
  assert.equal(db.agentType, 'service');
  assert.equal(db.delegationDepth, 0);
  assert.equal(db.revoked, false);
  assert.equal(db.attestation, undefined);

  const web = entry(snapshot, 'frontend/web');
  assert.equal(web.installationId, '47e61bcf-56f3-48b8-878a-eb97caa2366f', 'UUID lowercased');
  assert.equal(web.generation, 9223372036854775807n, 'beyond 2^53, exact');
  assert.equal(web.clearance, 'open', 'default clearance is the lowest');
});

test('generation: the full u64 range, exactly', () => {
  const { snapshot, problems } = load(registryDoc('ns', [peer('ns', 'a', { generation: 18446744073709551615n })]));
  assert.deepEqual(problems, []);
  assert.equal(snapshot.entries[0]!.generation, 18446744073709551615n);
});

interface BadCase {
  readonly field: string;
  readonly value: unknown;
  /** Expected path after `spec.peers[0].` */
  readonly path: string;
  /** A fragment of the fix the message must contain. */
  readonly fix: string | RegExp;
  readonly code?: string;
}

const KEY = newPublicKey();
const keyBytes = Buffer.from(KEY, 'base64');
const NON_CANONICAL = KEY.slice(0, 42) + String.fromCharCode(KEY.charCodeAt(42) + 1) + '='; // padding bit set
const BAD: BadCase[] = [
  { field: 'publicKey', value: undefined, path: 'publicKey', fix: 'is required: standard base64 of 32 bytes' },
  { field: 'publicKey', value: keyBytes.subarray(0, 31).toString('base64'), path: 'publicKey', fix: 'must be standard base64 of 32 bytes' },
  { field: 'publicKey', value: Buffer.concat([keyBytes, Buffer.from([7])]).toString('base64'), path: 'publicKey', fix: 'must be standard base64 of 32 bytes' },
  { field: 'publicKey', value: KEY.replace(/[+/]/g, '-').replace(/=$/, '!') + 'zz', path: 'publicKey', fix: 'must be standard base64 of 32 bytes' },
  { field: 'publicKey', value: keyBytes.toString('base64url'), path: 'publicKey', fix: 'must be standard base64' },
  { field: 'publicKey', value: NON_CANONICAL, path: 'publicKey', fix: 'canonical form' },
  { field: 'publicKey', value: ` ${KEY}`, path: 'publicKey', fix: 'canonical form' },
  // All 14 encodings of a low-order point, all zeros among them (PROTOCOL.md section 2).
  ...LOW_ORDER_X25519_B64.map((value) => ({ field: 'publicKey', value, path: 'publicKey', fix: /^is a low-order X25519 point, .*all zeros.*: publish the peer's real public key/ })),
  { field: 'publicKey', value: 12345, path: 'publicKey', fix: '(got an integer)' },
  { field: 'agentId', value: undefined, path: 'agentId', fix: 'is required' },
  { field: 'agentId', value: 'api', path: 'agentId', fix: '<namespace>/<workload>' },
  { field: 'agentId', value: 'payments/API', path: 'agentId', fix: 'DNS-1123' },
  { field: 'agentId', value: 'payments/api/x', path: 'agentId', fix: 'one slash' },
  { field: 'agentId', value: 'frontend/web', path: 'agentId', fix: "publish it in a ClearanceRegistry of namespace 'frontend'", code: 'REGISTRY_NAMESPACE' },
  { field: 'installationId', value: undefined, path: 'installationId', fix: 'is required: a UUID' },
  { field: 'installationId', value: 'pod-1', path: 'installationId', fix: 'must be a UUID' },
  { field: 'installationId', value: '00000000-0000-0000-0000-000000000000', path: 'installationId', fix: 'nil UUID' },
  { field: 'generation', value: undefined, path: 'generation', fix: 'is required: a positive integer' },
  { field: 'generation', value: 0, path: 'generation', fix: 'below 1' },
  { field: 'generation', value: -3, path: 'generation', fix: 'below 1' },
  { field: 'generation', value: 18446744073709551616n, path: 'generation', fix: 'above 2^64-1' },
  { field: 'generation', value: 1.5, path: 'generation', fix: 'positive integer' },
  { field: 'generation', value: '3', path: 'generation', fix: '(got a string)' },
  { field: 'clearance', value: 'secret', path: 'clearance', fix: "one of open, internal, profile-scoped, secrets-only (got 'secret')" },
  { field: 'addresses', value: '10.0.3.7', path: 'addresses', fix: 'must be a list of pod IPs' },
  { field: 'addresses', value: ['10.0.3.0/24'], path: 'addresses[0]', fix: 'without prefix length' },
  { field: 'addresses', value: ['10.0.3.7', '10.0.3.7:80'], path: 'addresses[1]', fix: 'one IPv4 or IPv6 address' },
  { field: 'addresses', value: ['fe80::1%eth0'], path: 'addresses[0]', fix: 'zone' },
  { field: 'addresses', value: ['010.0.3.7'], path: 'addresses[0]', fix: 'one IPv4 or IPv6 address' },
  { field: 'addresses', value: ['0.0.0.0'], path: 'addresses[0]', fix: 'not the unspecified address' },
  { field: 'addresses', value: ['::'], path: 'addresses[0]', fix: 'not the unspecified address' },
  { field: 'meshPort', value: 0, path: 'meshPort', fix: 'integer 1 to 65535' },
  { field: 'meshPort', value: 65536, path: 'meshPort', fix: 'integer 1 to 65535' },
  { field: 'meshPort', value: '15443', path: 'meshPort', fix: 'integer 1 to 65535' },
  { field: 'serviceAccount', value: 'Default', path: 'serviceAccount', fix: 'service account name' },
  { field: 'agentType', value: 'robot', path: 'agentType', fix: "one of service, human, agent (got 'robot')" },
  { field: 'delegationDepth', value: -1, path: 'delegationDepth', fix: 'integer >= 0' },
  { field: 'revoked', value: 'true', path: 'revoked', fix: 'true or false, unquoted' },
  { field: 'revoked', value: 'yes', path: 'revoked', fix: 'true or false' },
  { field: 'revokd', value: true, path: 'revokd', fix: 'is not a field of a peer' },
  { field: 'attestation', value: 'high', path: 'attestation', fix: 'must be a mapping with authnStrength and attestedAt' },
  { field: 'attestation', value: { attestedAt: '2026-11-23T09:00:00Z' }, path: 'attestation.authnStrength', fix: 'is required in an attestation' },
  { field: 'attestation', value: { authnStrength: 'strong', attestedAt: '2026-11-23T09:00:00Z' }, path: 'attestation.authnStrength', fix: "one of none, low, medium, high, hardware (got 'strong')" },
  { field: 'attestation', value: { authnStrength: 'high' }, path: 'attestation.attestedAt', fix: 'is required in an attestation' },
  { field: 'attestation', value: { authnStrength: 'high', attestedAt: 'yesterday' }, path: 'attestation.attestedAt', fix: 'RFC 3339' },
  { field: 'attestation', value: { authnStrength: 'high', attestedAt: '2026-11-23T09:00:00' }, path: 'attestation.attestedAt', fix: 'with a zone' },
  { field: 'attestation', value: { authnStrength: 'high', attestedAt: '2026-11-23T09:00:00Z', devicePosture: 1.5 }, path: 'attestation.devicePosture', fix: 'from 0 to 1' },
  { field: 'attestation', value: { authnStrength: 'high', attestedAt: '2026-11-23T09:00:00Z', imageDigest: 'latest' }, path: 'attestation.imageDigest', fix: 'sha256:<64 lowercase hex>' },
  { field: 'attestation', value: { authnStrength: 'high', attestedAt: '2026-11-23T09:00:00Z', bindingHash: 'abc' }, path: 'attestation.bindingHash', fix: '64 hexadecimal digits' },
  { field: 'attestation', value: { authnStrength: 'high', attestedAt: '2026-11-23T09:00:00Z', nodeName: 'Node_A' }, path: 'attestation.nodeName', fix: 'node name' },
  { field: 'attestation', value: { authnStrength: 'high', attestedAt: '2026-11-23T09:00:00Z', posture: 1 }, path: 'attestation.posture', fix: 'is not a field of an attestation' },
];

for (const c of BAD) {
  test(`bad ${c.path} (${JSON.stringify(c.value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? 'missing'}): named, fixed, nothing leaked, sibling loads`, () => {
    const bad = peer('payments', 'api', { [c.field]: c.value });
    const good = peer('payments', 'db');
    const { snapshot, ok, problems } = load(registryDoc('payments', [bad, good]));
    assert.ok(ok);
    assert.equal(problems.length, 1, problems.map(formatProblem).join('\n'));
    const p = problems[0]!;
    assert.equal(p.code, c.code ?? 'REGISTRY_FIELD');
    assert.equal(p.severity, 'error');
    assert.equal(p.document, 'payments/payments');
    assert.equal(p.path, `spec.peers[0].${c.path}`);
    assert.equal(p.file, 'registry.yaml');
    assert.equal(typeof p.line, 'number');
    if (typeof c.fix === 'string') assert.ok(p.message.includes(c.fix), `message "${p.message}" lacks "${c.fix}"`);
    else assert.match(p.message, c.fix);
    assert.ok(formatProblem(p).startsWith(`registry.yaml:${p.line}: payments/payments: spec.peers[0].${c.path}: `));
    // Bad input loses nothing else: the sibling loads, the bad peer does not.
    assert.deepEqual(snapshot.entries.map((e) => e.agentId), ['payments/db']);
    const secrets = [bad.publicKey, good.publicKey].filter((v): v is string => typeof v === 'string');
    assertNoLeak(problems, secrets);
  });
}

test('every problem of one peer is reported, not only the first', () => {
  const bad = peer('payments', 'api', { publicKey: 'short', generation: 0, clearance: 'top', addresses: ['x'] });
  const { problems, snapshot } = load(registryDoc('payments', [bad]));
  assert.deepEqual(
    problems.map((p) => p.path),
    ['spec.peers[0].publicKey', 'spec.peers[0].generation', 'spec.peers[0].clearance', 'spec.peers[0].addresses[0]'],
  );
  assert.equal(snapshot.entries.length, 0);
});

test('partial.yaml: two bad peers reported with lines, the other two load', () => {
  const file = fixture('partial.yaml');
  const text = readFileSync(file, 'utf8');
  const { snapshot, problems } = load(text, file);
  assert.deepEqual(snapshot.entries.map((e) => e.agentId), ['payments/api', 'payments/db']);
  assert.deepEqual(
    problems.map((p) => [p.code, p.line, p.document, p.path]),
    [
      ['REGISTRY_FIELD', 15, 'payments/payments', 'spec.peers[1].publicKey'],
      ['REGISTRY_NAMESPACE', 17, 'payments/payments', 'spec.peers[2].agentId'],
    ],
  );
  const keys = [...text.matchAll(/publicKey: (\S+)/g)].map((m) => m[1]!);
  assert.equal(keys.length, 4);
  assertNoLeak(problems, keys);
});

test('document-level problems lose that document only, and name it even without metadata', () => {
  const good = registryDoc('payments', [peer('payments', 'api')]);
  const noNamespace = 'apiVersion: noisemesh.io/v1alpha1\nkind: ClearanceRegistry\nmetadata: {name: x}\nspec: {peers: []}\n';
  const wrongKind = registryDoc('other', [peer('other', 'a')]).replace('kind: ClearanceRegistry', 'kind: ClearanceRegistrry');
  const wrongVersion = registryDoc('third', [peer('third', 'a')]).replace('noisemesh.io/v1alpha1', 'noisemesh.io/v1');
  const noPeers = 'apiVersion: noisemesh.io/v1alpha1\nkind: ClearanceRegistry\nmetadata: {name: four, namespace: four}\nspec: {peer: []}\n';
  const notMapping = '- just\n- a list\n';
  const { snapshot, ok, problems } = load(registryFile(good, noNamespace, wrongKind, wrongVersion, noPeers, notMapping));
  assert.ok(ok);
  assert.deepEqual(snapshot.entries.map((e) => e.agentId), ['payments/api']);
  assert.deepEqual(
    problems.map((p) => [p.code, p.document, p.path]),
    [
      ['REGISTRY_DOCUMENT', 'document 2', 'metadata.namespace'],
      ['REGISTRY_DOCUMENT', 'other/other', 'kind'],
      ['REGISTRY_DOCUMENT', 'third/third', 'apiVersion'],
      ['REGISTRY_DOCUMENT', 'four/four', 'spec.peer'],
      ['REGISTRY_DOCUMENT', 'four/four', 'spec.peers'],
      ['REGISTRY_DOCUMENT', 'document 6', ''],
    ],
  );
  assert.ok(problems[1]!.message.includes("must be ClearanceRegistry (got 'ClearanceRegistrry')"));
  assert.ok(problems[4]!.message.includes('`peers: []`'));
});

test('a List of ClearanceRegistries (kubectl get -o yaml) is read item by item', () => {
  const a = peer('payments', 'api');
  const b = peer('frontend', 'web');
  const list = {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      { apiVersion: 'noisemesh.io/v1alpha1', kind: 'ClearanceRegistry', metadata: { name: 'p', namespace: 'payments', uid: 'x', resourceVersion: '7' }, spec: { peers: [a] }, status: {} },
      { apiVersion: 'noisemesh.io/v1alpha1', kind: 'ClearanceRegistry', metadata: { name: 'f', namespace: 'frontend' }, spec: { peers: [b, { ...b, agentId: 'payments/evil' }] } },
    ],
  };
  const { snapshot, problems } = load(JSON.stringify(list));
  assert.deepEqual(snapshot.entries.map((e) => e.agentId), ['payments/api', 'frontend/web']);
  assert.deepEqual(problems.map((p) => [p.code, p.document, p.path]), [['REGISTRY_NAMESPACE', 'frontend/f', 'items[1].spec.peers[1].agentId']]);
  assert.equal(entry(snapshot, 'frontend/web').source.path, 'items[1].spec.peers[0]');
});

test('a YAML syntax error refuses the whole file, with lines and without quoting the source', () => {
  const file = fixture('broken.yaml');
  const text = readFileSync(file, 'utf8');
  const parsed = parseRegistryYaml(text, file);
  assert.equal(parsed.ok, false);
  assert.deepEqual(parsed.objects, []);
  assert.ok(parsed.problems.length >= 1);
  for (const p of parsed.problems) {
    assert.equal(p.code, 'REGISTRY_SYNTAX');
    assert.equal(typeof p.line, 'number');
    assert.match(p.message, /^YAML syntax error \([A-Z_]+\): .*; the whole file is refused$/);
  }
  assertNoLeak(parsed.problems, ['4RKNfKtWlGbr3jih4Qenf7V57GnZDFWoSmsQeU5I4i0=']);
});

test('a key written twice in one mapping is a syntax error, not a silent last-wins', () => {
  const p = peer('payments', 'api');
  const text = registryDoc('payments', [p]).replace('generation: 1', 'generation: 1\n      generation: 9');
  assert.ok(text.includes('generation: 9'));
  const parsed = parseRegistryYaml(text);
  assert.equal(parsed.ok, false);
  assert.deepEqual(parsed.problems.map((x) => x.code), ['REGISTRY_SYNTAX']);
  assert.ok(parsed.problems[0]!.message.includes('DUPLICATE_KEY'));
});

test('a file with no document is refused (a truncated file must not revoke everything)', () => {
  for (const text of ['', '\n', '# only a comment\n', '---\n---\n']) {
    const parsed = parseRegistryYaml(text, 'r.yaml');
    assert.equal(parsed.ok, false, JSON.stringify(text));
    assert.equal(parsed.problems[0]!.code, 'REGISTRY_DOCUMENT');
    assert.ok(parsed.problems[0]!.message.includes('`peers: []`'));
  }
  // An explicit empty registry is fine.
  const { ok, snapshot, problems } = load(registryDoc('payments', []));
  assert.ok(ok);
  assert.deepEqual(problems, []);
  assert.equal(snapshot.entries.length, 0);
  assert.equal(snapshot.objects, 1);
});

test('unknown keys in spec or at the top are reported, the peers still load', () => {
  const text = registryDoc('payments', [peer('payments', 'api')]).replace('spec:\n', 'extra: 1\nspec:\n  peerz: []\n');
  const { snapshot, problems } = load(text);
  assert.equal(snapshot.entries.length, 1);
  assert.deepEqual(problems.map((p) => p.path).sort(), ['extra', 'spec.peerz']);
});

// ---- checks across entries ----

test('one public key claimed in two namespaces: both refused, neither message quotes it', () => {
  const key = newPublicKey();
  const text = registryFile(
    registryDoc('payments', [peer('payments', 'api', { publicKey: key }), peer('payments', 'db')]),
    registryDoc('evil', [peer('evil', 'copycat', { publicKey: key })]),
  );
  const { snapshot, problems } = load(text);
  assert.deepEqual(snapshot.entries.map((e) => e.agentId), ['payments/db']);
  assert.deepEqual(
    problems.map((p) => [p.code, p.document, p.path]),
    [
      ['REGISTRY_CONFLICT', 'payments/payments', 'spec.peers[0].publicKey'],
      ['REGISTRY_CONFLICT', 'evil/evil', 'spec.peers[0].publicKey'],
    ],
  );
  assert.ok(problems[0]!.message.includes('evil/evil spec.peers[0] (evil/copycat)'));
  assert.ok(problems[1]!.message.includes('payments/payments spec.peers[0] (payments/api)'));
  assertNoLeak(problems, [key]);
});

test('one address claimed by two live entries: reported, entries kept, the address resolves to a conflict', () => {
  const text = registryFile(
    registryDoc('payments', [peer('payments', 'api', { addresses: ['10.0.3.7', '2001:db8::1'] })]),
    registryDoc('evil', [peer('evil', 'x', { addresses: ['2001:DB8:0::1'] }), peer('evil', 'old', { addresses: ['10.0.3.7'], revoked: true })]),
  );
  const { snapshot, problems } = load(text);
  assert.equal(snapshot.entries.length, 3);
  assert.deepEqual(
    problems.map((p) => [p.code, p.document, p.path]),
    [
      ['REGISTRY_CONFLICT', 'payments/payments', 'spec.peers[0].addresses'],
      ['REGISTRY_CONFLICT', 'evil/evil', 'spec.peers[0].addresses'],
    ],
  );
  assert.ok(problems[0]!.message.includes('address 2001:db8::1 is also claimed by'));
  const index = new RegistryIndex();
  index.replace(snapshot);
  const conflict = index.resolveAddress('2001:db8:0:0:0:0:0:1');
  assert.equal(conflict.kind, 'conflict');
  assert.deepEqual(conflict.kind === 'conflict' ? conflict.claimants.map((e) => e.agentId) : [], ['payments/api', 'evil/x']);
  // A revoked entry never contests a live one's address.
  const live = index.resolveAddress('10.0.3.7');
  assert.equal(live.kind === 'peer' ? live.entry.agentId : live.kind, 'payments/api');
  assert.equal(index.verifyKey(entry(snapshot, 'payments/api').publicKeyB64, 1n).kind, 'valid', 'inbound stays valid');
});

test('a later generation of one installation supersedes the earlier: kept, revoked, warned', () => {
  const installationId = '93bb7f87-2278-4b54-94fb-bfa65662dce3';
  const old = peer('payments', 'api', { installationId, generation: 3 });
  const current = peer('payments', 'api', { installationId, generation: 4 });
  const { snapshot, problems } = load(registryDoc('payments', [old, current]));
  assert.equal(snapshot.entries.length, 2);
  const [a, b] = snapshot.entries as [RegistryEntry, RegistryEntry];
  assert.deepEqual([a.generation, a.revoked, a.superseded], [3n, true, true]);
  assert.deepEqual([b.generation, b.revoked, b.superseded], [4n, false, false]);
  assert.deepEqual(problems.map((p) => [p.code, p.severity, p.path]), [['REGISTRY_SUPERSEDED', 'warning', 'spec.peers[0].generation']]);
  assert.ok(problems[0]!.message.includes('superseded by generation 4'));
  assertNoLeak(problems, [old.publicKey as string, current.publicKey as string]);
});

test('one installation: same top generation twice, or two agentIds, refuses every claimant', () => {
  const installationId = 'e5f215ab-b605-4d8d-9e27-1f166a0bf888';
  const twice = load(registryDoc('payments', [
    peer('payments', 'api', { installationId, generation: 2 }),
    peer('payments', 'api', { installationId, generation: 5 }),
    peer('payments', 'api', { installationId: installationId.toUpperCase(), generation: 5 }),
  ]));
  assert.deepEqual(twice.snapshot.entries.map((e) => [e.generation, e.revoked]), [[2n, true]], 'the older one stays refused, never revived');
  assert.deepEqual(
    twice.problems.map((p) => [p.code, p.path]),
    [
      ['REGISTRY_CONFLICT', 'spec.peers[1].generation'],
      ['REGISTRY_CONFLICT', 'spec.peers[2].generation'],
      ['REGISTRY_SUPERSEDED', 'spec.peers[0].generation'],
    ],
  );
  const two = load(registryDoc('payments', [peer('payments', 'api', { installationId }), peer('payments', 'db', { installationId })]));
  assert.equal(two.snapshot.entries.length, 0);
  assert.deepEqual(two.problems.map((p) => [p.code, p.path]), [
    ['REGISTRY_CONFLICT', 'spec.peers[0].installationId'],
    ['REGISTRY_CONFLICT', 'spec.peers[1].installationId'],
  ]);
});

test('refusing a copied current key does not make the older generation current again', () => {
  const installationId = 'aaaaaaaa-2278-4b54-94fb-bfa65662dce3';
  const currentKey = newPublicKey();
  const text = registryFile(
    registryDoc('payments', [
      peer('payments', 'api', { installationId, generation: 3 }),
      peer('payments', 'api', { installationId, generation: 4, publicKey: currentKey }),
    ]),
    registryDoc('evil', [peer('evil', 'x', { publicKey: currentKey })]),
  );
  const { snapshot } = load(text);
  const api = snapshot.entries.filter((e) => e.agentId === 'payments/api');
  assert.deepEqual(api.map((e) => [e.generation, e.revoked]), [[3n, true]]);
});

test('one key under generations of one installation collapses to the latest', () => {
  const installationId = 'bbbbbbbb-2278-4b54-94fb-bfa65662dce3';
  const publicKey = newPublicKey();
  const { snapshot } = load(registryDoc('payments', [
    peer('payments', 'api', { installationId, publicKey, generation: 1 }),
    peer('payments', 'api', { installationId, publicKey, generation: 2 }),
  ]));
  assert.deepEqual(snapshot.entries.map((e) => [e.generation, e.revoked]), [[2n, false]]);
});

test('the same object twice in one file: both refused', () => {
  const { snapshot, problems } = load(registryFile(
    registryDoc('payments', [peer('payments', 'api')]),
    registryDoc('payments', [peer('payments', 'db')]),
    registryDoc('frontend', [peer('frontend', 'web')]),
  ));
  assert.deepEqual(snapshot.entries.map((e) => e.agentId), ['frontend/web']);
  assert.deepEqual(problems.map((p) => [p.code, p.document]), [
    ['REGISTRY_CONFLICT', 'payments/payments'],
    ['REGISTRY_CONFLICT', 'payments/payments'],
  ]);
});

test('the namespace rule holds for every form of agentId namespace', () => {
  const peers: Peer[] = [peer('payments', 'api'), { ...peer('payments', 'x'), agentId: 'kube-system/coredns' }, { ...peer('payments', 'y'), agentId: 'payments-evil/y' }];
  const { snapshot, problems } = load(registryDoc('payments', peers));
  assert.deepEqual(snapshot.entries.map((e) => e.agentId), ['payments/api']);
  assert.deepEqual(problems.map((p) => [p.code, p.path]), [
    ['REGISTRY_NAMESPACE', 'spec.peers[1].agentId'],
    ['REGISTRY_NAMESPACE', 'spec.peers[2].agentId'],
  ]);
});
