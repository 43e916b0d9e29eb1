// crds/clearanceregistry.yaml against what the API server would do with it, and against the
// index (src/registry-sync/validate.ts), so that the two cannot drift apart:
// - the CRD is accepted by the API server: its schema is structural (test/helpers/structural-schema.ts);
// - every ClearanceRegistry example in the repository, and DESIGN.md's, is admitted;
// - whatever the index refuses for a field reason, the schema refuses too (a table of mutations
//   of a valid peer, checked to exercise every field check in validate.ts, and generated
//   spellings of addresses, times and agentIds); the refusals only the index can make are listed
//   with the reason OpenAPI cannot express them;
// - the 14 encodings of low-order X25519 points are refused (PROTOCOL.md section 2);
// - defaults: the API server stores what the index would read.
// The API server is emulated around ajv in test/helpers/kube-crd.ts (decoding, pruning with
// strict field validation, defaulting, formats as kube-openapi checks them, list types).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffieHellman, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import {
  AGENT_TYPES,
  AUTHN_STRENGTHS,
  CLEARANCES,
  buildSnapshot,
  parseRegistryYaml,
  validateClearanceRegistry,
  type RegistryProblem,
  type ValidatedObject,
} from '../src/registry-sync/index.js';
import { CustomResourceAdmission, isKubeDateTime, type Crd, type JsonSchemaProps } from './helpers/kube-crd.js';
import { goParseIP, goParseIPSloppy, isKubeIPv4, isKubeIPv6 } from './helpers/go-ip.js';
import { structuralProblems } from './helpers/structural-schema.js';
import { repoRoot, sharedPath } from './helpers/paths.js';
import { fixture } from './fixtures/registry/make.js';

const CRD_FILE = join(repoRoot, 'crds', 'clearanceregistry.yaml');
const crdDocs = parseAllDocuments(readFileSync(CRD_FILE, 'utf8'));
const crd = crdDocs[0]!.toJS() as Crd;
const api = new CustomResourceAdmission(crd);
const root = api.schema;
const peerSchema = root.properties!.spec!.properties!.peers!.items!;

type Obj = Record<string, unknown>;

/** A real X25519 public key. */
function newKey(): string {
  const der = generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32).toString('base64');
}

/** A peer with every field set, valid in namespace `payments`. */
function fullPeer(publicKey = newKey()): Obj {
  return {
    agentId: 'payments/api',
    installationId: '0f8e2c1a-93bb-4b54-94fb-bfa65662dce3',
    publicKey,
    generation: 3,
    clearance: 'internal',
    addresses: ['10.0.3.7', '2001:db8::7'],
    meshPort: 15443,
    serviceAccount: 'api',
    agentType: 'service',
    delegationDepth: 1,
    revoked: false,
    attestation: {
      authnStrength: 'high',
      imageDigest: `sha256:${'2c'.repeat(32)}`,
      nodeName: 'node-a',
      bindingHash: 'af'.repeat(32),
      devicePosture: 0.8,
      attestedAt: '2026-11-23T09:00:00Z',
    },
  };
}

function registry(peers: unknown[], namespace = 'payments', name = namespace): Obj {
  return { apiVersion: 'noisemesh.io/v1alpha1', kind: 'ClearanceRegistry', metadata: { name, namespace }, spec: { peers } };
}

/** The index's verdict on one object: its problems, document and field level. */
function indexProblems(obj: unknown): RegistryProblem[] {
  return validateClearanceRegistry(obj, { document: 'test' }).problems;
}

/** The index's verdict on objects together, with the checks across entries and objects. */
function snapshotProblems(objs: unknown[]): RegistryProblem[] {
  const objects: ValidatedObject[] = [];
  const problems: RegistryProblem[] = [];
  for (const o of objs) {
    const r = validateClearanceRegistry(o, { document: 'test' });
    problems.push(...r.problems);
    if (r.object !== undefined) objects.push(r.object);
  }
  return [...buildSnapshot(objects, { origin: 'test' }, problems).problems];
}

/** A copy of `obj` with `path` (dot-separated) set to `value`, or removed when undefined. */
function withField(obj: Obj, path: string, value: unknown): Obj {
  const copy = structuredClone(obj);
  const keys = path.split('.');
  let at: Obj = copy;
  for (const k of keys.slice(0, -1)) at = at[k] as Obj;
  if (value === undefined) delete at[keys.at(-1)!];
  else at[keys.at(-1)!] = value;
  return copy;
}

const INDEX_ONLY_CODES = new Set(['REGISTRY_NAMESPACE', 'REGISTRY_CONFLICT', 'REGISTRY_SUPERSEDED']);

// ---------------------------------------------------------------------------------------------
// The CRD itself

test('the CRD is one YAML document: clearanceregistries.noisemesh.io, namespaced, v1alpha1, creg', () => {
  assert.equal(crdDocs.length, 1);
  assert.deepEqual(crdDocs[0]!.errors, []);
  assert.equal(crd.apiVersion, 'apiextensions.k8s.io/v1');
  assert.equal(crd.kind, 'CustomResourceDefinition');
  // The API server: "must be spec.names.plural+"."+spec.group".
  assert.equal(crd.metadata.name, `${crd.spec.names.plural}.${crd.spec.group}`);
  assert.equal(crd.metadata.name, 'clearanceregistries.noisemesh.io');
  assert.equal(crd.spec.scope, 'Namespaced');
  assert.equal(crd.spec.names.kind, 'ClearanceRegistry');
  assert.equal(crd.spec.names.listKind, 'ClearanceRegistryList');
  assert.ok(crd.spec.names.shortNames?.includes('creg'));
  assert.equal(crd.spec.versions.length, 1);
  const version = crd.spec.versions[0]!;
  assert.deepEqual([version.name, version.served, version.storage], ['v1alpha1', true, true]);
  // Printer columns: a type the API server knows and a JSONPath starting with '.'.
  assert.deepEqual(version.additionalPrinterColumns?.map((c) => c.name), ['Agents', 'Revoked', 'Age']);
  for (const c of version.additionalPrinterColumns ?? []) {
    assert.ok(['integer', 'number', 'string', 'boolean', 'date'].includes(c.type), c.name);
    assert.match(c.jsonPath, /^\./);
  }
});

test('the schema is structural, as apiextensions v1 requires', () => {
  assert.deepEqual(structuralProblems(root), []);
});

test('the structural checker refuses each kind of breach it claims to find', () => {
  const ok = (extra: JsonSchemaProps): JsonSchemaProps => ({
    type: 'object',
    properties: { metadata: { type: 'object' }, spec: { type: 'object', properties: { a: { type: 'string' }, l: { type: 'array', items: { type: 'object', required: ['k'], properties: { k: { type: 'string' } } } } }, ...extra } },
  });
  assert.deepEqual(structuralProblems(ok({})), [], 'the base is structural');
  const cases: [string, JsonSchemaProps, RegExp][] = [
    ['a field without type', { properties: { a: { type: 'string' }, b: {} } }, /properties\.b: type must not be empty/],
    ['type inside anyOf', { anyOf: [{ type: 'string' }] }, /anyOf\[0\]\.type: type must not be set within/],
    ['description inside not', { not: { description: 'x' } }, /not\.description: description must not be set/],
    ['default inside allOf', { allOf: [{ default: 1 }] }, /allOf\[0\]\.default/],
    ['a field only inside a junctor', { anyOf: [{ properties: { z: { maxLength: 1 } } }] }, /properties\.z: is specified in a junctor but not outside it/],
    ['list-type inside a junctor', { anyOf: [{ 'x-kubernetes-list-type': 'set' }] }, /x-kubernetes-list-type must not be set within/],
    ['preserve-unknown-fields false', { 'x-kubernetes-preserve-unknown-fields': false }, /must be true or undefined/],
    ['list-type on a string', { properties: { a: { type: 'string', 'x-kubernetes-list-type': 'set' } } }, /list-type may only be used on type array/],
    ['a map key neither required nor defaulted', { properties: { a: { type: 'string' }, l: { type: 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['k'], items: { type: 'object', properties: { k: { type: 'string' } } } } } }, /k must be required or have a default/],
    ['map keys without list-type map', { properties: { a: { type: 'string' }, l: { type: 'array', 'x-kubernetes-list-map-keys': ['k'], items: { type: 'object', required: ['k'], properties: { k: { type: 'string' } } } } } }, /needs x-kubernetes-list-type map/],
    ['a set of objects', { properties: { a: { type: 'string' }, l: { type: 'array', 'x-kubernetes-list-type': 'set', items: { type: 'object', required: ['k'], properties: { k: { type: 'string' } } } } } }, /set needs scalar/],
    ['an invalid default', { properties: { a: { type: 'string', enum: ['x'], default: 'y' } } }, /default "y" does not validate/],
    ['an unpruned default', { properties: { a: { type: 'object', properties: { b: { type: 'string' } }, default: { c: 1 } } } }, /default is not pruned: \.c/],
    ['uniqueItems', { properties: { a: { type: 'array', items: { type: 'string' }, uniqueItems: true } } }, /uniqueItems cannot be set to true/],
    ['$ref', { properties: { a: { $ref: '#/x' } as JsonSchemaProps } }, /\$ref is not supported/],
    ['an unknown format', { properties: { a: { type: 'string', format: 'ip' } } }, /format ip is not checked/],
    ['an array without items', { properties: { a: { type: 'array' } } }, /items must be specified/],
    ['a lookahead', { properties: { a: { type: 'string', pattern: '^(?!x)' } } }, /lookaround/],
    ['int-or-string with a type', { properties: { a: { type: 'string', 'x-kubernetes-int-or-string': true } } }, /type must be empty/],
    ['an enum member of another type', { properties: { a: { type: 'string', enum: [1] } } }, /member 1 is not of type string/],
  ];
  for (const [what, extra, expected] of cases) {
    const problems = structuralProblems(ok(extra));
    assert.ok(problems.some((p) => expected.test(p)), `${what}: ${JSON.stringify(problems)}`);
  }
  // Root rules.
  assert.ok(structuralProblems({ type: 'array', items: { type: 'string' } }).some((p) => /type must be object at the root/.test(p)));
  assert.ok(structuralProblems({ type: 'object', properties: { metadata: { type: 'object', properties: { namespace: { type: 'string' } } } } }).some((p) => /anything other than name and generateName/.test(p)));
  assert.ok(structuralProblems({ type: 'object', additionalProperties: { type: 'string' } }).some((p) => /not be used at the root/.test(p)));
  assert.ok(structuralProblems({ type: 'object', properties: { a: { type: 'object', anyOf: [{ properties: { metadata: { maxProperties: 1 } } }], properties: { metadata: { type: 'object' } } } } }).some((p) => /nested context/.test(p)));
});

// ---------------------------------------------------------------------------------------------
// Examples

/** Every YAML document in the repository's YAML files and Markdown code blocks. */
function repositoryYaml(): { where: string; text: string }[] {
  const skip = new Set(['node_modules', 'dist', 'build', '.git']);
  const found: { where: string; text: string }[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (skip.has(entry.name)) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.ya?ml$/.test(entry.name)) found.push({ where: relative(repoRoot, path), text: readFileSync(path, 'utf8') });
      else if (entry.name.endsWith('.md')) found.push(...markdownYaml(path, relative(repoRoot, path)));
    }
  };
  walk(repoRoot);
  return found;
}

function markdownYaml(path: string, where: string): { where: string; text: string }[] {
  const blocks: { where: string; text: string }[] = [];
  const re = /^```ya?ml[^\n]*\n([\s\S]*?)^```/gm;
  for (const m of readFileSync(path, 'utf8').matchAll(re)) blocks.push({ where: `${where} code block at offset ${m.index}`, text: m[1]! });
  return blocks;
}

/** The documents of kind ClearanceRegistry in `text` (items of a List too), as the API would get them. */
function clearanceRegistries(text: string): { objects: Obj[]; yamlErrors: boolean } {
  const objects: Obj[] = [];
  let yamlErrors = false;
  for (const doc of parseAllDocuments(text, { intAsBigInt: true })) {
    if (doc.errors.length > 0) {
      yamlErrors = yamlErrors || /kind:\s*ClearanceRegistry\b/.test(text);
      continue;
    }
    const v = doc.toJS() as unknown;
    if (typeof v !== 'object' || v === null) continue;
    const o = v as Obj;
    if (o.kind === 'ClearanceRegistry') objects.push(o);
    if ((o.kind === 'List' || o.kind === 'ClearanceRegistryList') && Array.isArray(o.items)) {
      for (const item of o.items as Obj[]) if (item?.kind === 'ClearanceRegistry') objects.push(item);
    }
  }
  return { objects, yamlErrors };
}

test('every ClearanceRegistry in the repository: admitted exactly when the index has no field or document problem', () => {
  const seen: string[] = [];
  for (const { where, text } of repositoryYaml()) {
    const { objects, yamlErrors } = clearanceRegistries(text);
    // A file the YAML parser refuses is refused whole by the index too; kubectl would not send it.
    if (yamlErrors) assert.equal(parseRegistryYaml(text).ok, false, `${where}: YAML errors, but the index reads it`);
    objects.forEach((obj, i) => {
      const label = `${where} #${i + 1}`;
      seen.push(label);
      const fieldProblems = snapshotProblems([obj]).filter((p) => !INDEX_ONLY_CODES.has(p.code) && p.severity === 'error');
      const verdict = api.admit(obj);
      if (fieldProblems.length === 0) assert.deepEqual(verdict.errors, [], `${label}: the index loads it, the API server would refuse it`);
      else assert.equal(verdict.ok, false, `${label}: the index refuses ${fieldProblems.map((p) => p.path).join(', ')}, the API server would admit it`);
    });
  }
  // The scan reaches the fixtures (a scan that finds nothing would prove nothing).
  for (const f of ['valid.yaml #1', 'valid.yaml #2', 'design-example.yaml #1', 'partial.yaml #1']) {
    assert.ok(seen.some((s) => s.endsWith(f)), `not found: ${f} (found ${seen.join(', ')})`);
  }
});

test("DESIGN.md's example, placeholders filled from the fixture, is the fixture and is admitted", () => {
  const design = sharedPath('DESIGN.md');
  assert.ok(existsSync(design), `${design} is missing: the tests read ../shared beside the clone (or $NOISEMESH_SHARED), as CI lays it out`);
  const blocks = markdownYaml(design, 'DESIGN.md').flatMap((b) => clearanceRegistries(b.text).objects);
  assert.equal(blocks.length, 1, 'DESIGN.md has one ClearanceRegistry example');
  const example = blocks[0]!;
  const filled = clearanceRegistries(readFileSync(fixture('design-example.yaml'), 'utf8')).objects[0]!;
  // `0f8e2c1a-...`, `<base64 of 32 bytes>`, `sha256:...`: placeholders, taken from the fixture.
  const isPlaceholder = (v: unknown): boolean => typeof v === 'string' && (v.includes('...') || /^<.*>$/.test(v));
  const fill = (d: unknown, f: unknown): unknown => {
    if (isPlaceholder(d)) return f;
    if (Array.isArray(d)) return d.map((x, i) => fill(x, (f as unknown[])[i]));
    if (typeof d === 'object' && d !== null) return Object.fromEntries(Object.entries(d).map(([k, x]) => [k, fill(x, (f as Obj)[k])]));
    return d;
  };
  const completed = fill(example, filled) as Obj;
  assert.deepEqual(completed, filled, 'test/fixtures/registry/design-example.yaml differs from DESIGN.md beyond its placeholders');
  assert.deepEqual(api.admit(completed).errors, []);
  assert.deepEqual(snapshotProblems([completed]), []);
});

// ---------------------------------------------------------------------------------------------
// Field refusals: the index's, and the schema's

/**
 * Mutations of a valid peer (`fullPeer`), one field each, as `[field, value]`; `undefined`
 * removes the field. Each is refused by the index for a field reason, and must be refused by
 * the schema at the same field.
 */
const PEER_MUTATIONS: [string, unknown][] = [
  ['agentId', undefined],
  ['agentId', 42],
  ['agentId', 'api'],
  ['agentId', 'Payments/api'],
  ['agentId', 'payments/'],
  ['agentId', '/api'],
  ['agentId', 'payments/api/v2'],
  ['agentId', 'payments/-api'],
  ['agentId', `${'p'.repeat(64)}/api`],
  ['agentId', `payments/${'a'.repeat(254)}`],
  ['installationId', undefined],
  ['installationId', 12],
  ['installationId', 'pod-1'],
  ['installationId', '{0f8e2c1a-93bb-4b54-94fb-bfa65662dce3}'],
  ['installationId', '0f8e2c1a93bb4b5494fbbfa65662dce3'],
  ['installationId', '00000000-0000-0000-0000-000000000000'],
  ['publicKey', undefined],
  ['publicKey', ['a']],
  ['publicKey', Buffer.alloc(31, 7).toString('base64')],
  ['publicKey', Buffer.alloc(33, 7).toString('base64')],
  ['publicKey', Buffer.alloc(32, 7).toString('base64url')],
  ['publicKey', Buffer.alloc(32, 7).toString('base64').slice(0, 43)],
  ['publicKey', ` ${Buffer.alloc(32, 7).toString('base64')}`],
  ['publicKey', Buffer.alloc(32, 7).toString('base64').slice(0, 42) + 'B='], // padding bits set
  ['publicKey', Buffer.alloc(32).toString('base64')], // all zeros: low order
  ['generation', undefined],
  ['generation', 0],
  ['generation', -1],
  ['generation', '3'],
  ['generation', 1.5],
  ['generation', 2n ** 64n],
  ['clearance', 'secret'],
  ['clearance', 3],
  ['clearance', ['open']],
  ['addresses', '10.0.3.7'],
  ['addresses', [42]],
  ['addresses', ['10.0.3.0/24']],
  ['addresses', ['fe80::1%eth0']],
  ['addresses', ['10.0.3.7:80']],
  ['addresses', ['pod.example']],
  ['addresses', ['010.0.3.7']],
  ['addresses', ['0.0.0.0']],
  ['addresses', ['::']],
  ['addresses', ['::ffff:0.0.0.0']],
  ['meshPort', 0],
  ['meshPort', 70000],
  ['meshPort', '15443'],
  ['meshPort', 1.5],
  ['serviceAccount', 'API'],
  ['serviceAccount', 'a'.repeat(254)],
  ['serviceAccount', 7],
  ['agentType', 'robot'],
  ['delegationDepth', -1],
  ['delegationDepth', 2 ** 31],
  ['delegationDepth', 'one'],
  ['revoked', 'true'],
  ['revoked', 1],
  ['revokd', true],
  ['attestation', 'high'],
  ['attestation', {}],
  ['attestation.authnStrength', undefined],
  ['attestation.authnStrength', 'ultra'],
  ['attestation.attestedAt', undefined],
  ['attestation.attestedAt', 'yesterday'],
  ['attestation.attestedAt', '2026-11-23T09:00:00'],
  ['attestation.attestedAt', '2026-11-23T09:00:00,5Z'],
  ['attestation.attestedAt', '2026-11-23T09:00:00.1234567890Z'],
  ['attestation.attestedAt', '2026-11-23T09:00:00+99:99'],
  ['attestation.attestedAt', '2026-13-23T09:00:00Z'],
  ['attestation.imageDigest', 'latest'],
  ['attestation.imageDigest', `sha256:${'2C'.repeat(32)}`],
  ['attestation.nodeName', 'Node_A'],
  ['attestation.bindingHash', 'af'.repeat(31)],
  ['attestation.devicePosture', 2],
  ['attestation.devicePosture', -0.1],
  ['attestation.devicePosture', '0.8'],
  ['attestation.trust', 'high'],
];

/** `spec.peers[0].addresses[1]` -> `addresses`; `spec.peers[0].attestation.nodeName` -> `attestation.nodeName`. */
function fieldOf(path: string): string {
  return path.replace(/^spec\.peers\[0\]\.?/, '').replace(/\[\d+\]/g, '');
}

test('each mutation the index refuses for a field reason, the schema refuses at that field', () => {
  for (const [field, value] of PEER_MUTATIONS) {
    const obj = registry([withField(fullPeer(), field, value)]);
    const what = `${field} = ${typeof value === 'bigint' ? `${value}n` : JSON.stringify(value)}`;
    const index = indexProblems(obj);
    assert.ok(index.length > 0 && index.every((p) => p.code === 'REGISTRY_FIELD'), `the index should refuse ${what} for a field reason: ${JSON.stringify(index)}`);
    assert.ok(index.some((p) => fieldOf(p.path).startsWith(field)), `the index refuses ${what} elsewhere: ${index.map((p) => p.path).join(', ')}`);
    const verdict = api.admit(obj);
    assert.ok(!verdict.ok, `the API server would admit ${what}, which the index refuses`);
    assert.ok(verdict.errors.some((e) => fieldOf(e).startsWith(field)), `the API server refuses ${what} elsewhere: ${verdict.errors.join('; ')}`);
  }
});

test('the mutation table exercises every field check of validate.ts', () => {
  // Each call site that reports a field problem is one check; a new check without a row here
  // fails this test, so a check the CRD may not know about cannot slip in unnoticed.
  const source = readFileSync(join(repoRoot, 'src', 'registry-sync', 'validate.ts'), 'utf8');
  const split = source.indexOf('function validateAttestation(');
  const peerPart = source.slice(source.indexOf('function validatePeer('), source.indexOf('type Bad ='));
  const attestationPart = source.slice(split);
  const sites = new Map<string, number>();
  const count = (field: string): void => void sites.set(field, (sites.get(field) ?? 0) + 1);
  for (const m of peerPart.matchAll(/\bbad\(\s*(?:'(\w+)'|\[\s*'(\w+)')[\s\S]*?\);/g)) {
    if (!m[0].includes('REGISTRY_NAMESPACE')) count(m[1] ?? m[2]!); // the namespace rule is the index's alone
  }
  for (const m of peerPart.matchAll(/readEnum<\w+>\([^;]*?'(\w+)',\s*bad\)/g)) count(m[1]!);
  for (const m of attestationPart.matchAll(/\bfail\(\s*'(\w+)'/g)) count(`attestation.${m[1]!}`);
  for (const m of attestationPart.matchAll(/readEnum<\w+>\([^;]*?'(\w+)',\s*fail\)/g)) count(`attestation.${m[1]!}`);
  for (const _ of attestationPart.matchAll(/\bouter\(\s*'attestation'/g)) count('attestation');
  assert.ok(sites.size >= 15, `found only ${sites.size} fields in validate.ts: has its shape changed? ${[...sites.keys()].join(', ')}`);

  // The distinct messages the table draws from each field, enum quotes aside.
  const messages = new Map<string, Set<string>>();
  for (const [field, value] of PEER_MUTATIONS) {
    for (const p of indexProblems(registry([withField(fullPeer(), field, value)]))) {
      const f = fieldOf(p.path);
      if (!messages.has(f)) messages.set(f, new Set());
      messages.get(f)!.add(p.message.replace(/ \(got '[^']*'\)/, ''));
    }
  }
  for (const [field, n] of sites) {
    const drawn = messages.get(field)?.size ?? 0;
    assert.ok(drawn >= n, `validate.ts checks ${field} in ${n} places; the mutations reach ${drawn} of them: add a row for the new check`);
  }
  // And every field of the schema is a field the index checks.
  const schemaFields = [
    ...Object.keys(peerSchema.properties!),
    ...Object.keys(peerSchema.properties!.attestation!.properties!).map((k) => `attestation.${k}`),
  ];
  for (const f of schemaFields) assert.ok(sites.has(f), `the CRD has ${f}, which validate.ts does not check`);
});

test('document-level refusals of the index are refusals of the API server', () => {
  const base = registry([fullPeer()]);
  const cases: [string, Obj][] = [
    ['apiVersion', withField(base, 'apiVersion', 'noisemesh.io/v1')],
    ['kind', withField(base, 'kind', 'ClearanceRegister')],
    ['metadata.name', withField(base, 'metadata.name', 'Payments')],
    ['metadata.namespace', withField(base, 'metadata.namespace', 'pay_ments')],
    ['spec', withField(base, 'spec', undefined)],
    ['spec.peers', withField(base, 'spec.peers', undefined)],
    ['spec.peers', withField(base, 'spec.peers', { api: {} })],
    ['spec.peer', withField(base, 'spec.peer', [])],
    ['spec.peers[0]', withField(base, 'spec.peers', ['payments/api'])],
    ['metadta', withField(base, 'metadta', {})],
  ];
  for (const [where, obj] of cases) {
    assert.ok(indexProblems(obj).some((p) => p.path.startsWith(where)), `the index should report ${where}`);
    const verdict = api.admit(obj);
    assert.ok(verdict.errors.some((e) => e.startsWith(where)), `the API server should refuse ${where}: ${verdict.errors.join('; ')}`);
  }
});

test('the refusals only the index can make, and why OpenAPI cannot express them', () => {
  const key = newKey();
  const peer = (over: Obj): Obj => ({ ...fullPeer(), ...over });
  const cases: { what: string; why: string; objects: Obj[]; code: string }[] = [
    {
      what: 'an agentId of another namespace (the namespace rule)',
      why: "the schema sees the object but cannot compare a field with metadata.namespace: OpenAPI has no reference to another value, and x-kubernetes-validations cannot reach metadata.namespace (CEL's self at the root exposes only metadata.name and generateName)",
      objects: [registry([peer({ agentId: 'billing/api' })])],
      code: 'REGISTRY_NAMESPACE',
    },
    {
      what: 'one public key in two objects',
      why: 'a schema validates one object; uniqueness across objects is the index\'s (an admission webhook could, a CRD cannot)',
      objects: [registry([peer({ publicKey: key })]), registry([peer({ publicKey: key, agentId: 'billing/api', installationId: '47e61bcf-56f3-48b8-878a-eb97caa2366f' })], 'billing')],
      code: 'REGISTRY_CONFLICT',
    },
    {
      what: 'one installation claimed under two agentIds in one object',
      why: 'x-kubernetes-list-map-keys makes one key tuple (publicKey) unique, not each key on its own; a CEL uniqueness rule over 10,000 peers is quadratic and exceeds the cost budget the API server checks CRDs against',
      objects: [registry([peer({}), peer({ agentId: 'payments/db', addresses: [] })])],
      code: 'REGISTRY_CONFLICT',
    },
    {
      what: 'one installation at one generation with two keys',
      why: 'as above: a uniqueness over (installationId, generation), besides the publicKey map key',
      objects: [registry([peer({}), peer({ addresses: [] })])],
      code: 'REGISTRY_CONFLICT',
    },
    {
      what: 'one address claimed by two peers',
      why: 'uniqueness across list items of a nested list: no OpenAPI keyword, and CEL over 10,000 peers x 16 addresses is beyond the cost budget',
      objects: [registry([peer({}), peer({ agentId: 'payments/db', installationId: '47e61bcf-56f3-48b8-878a-eb97caa2366f' })])],
      code: 'REGISTRY_CONFLICT',
    },
  ];
  for (const c of cases) {
    const problems = snapshotProblems(c.objects);
    assert.ok(problems.some((p) => p.code === c.code), `${c.what}: the index should report ${c.code}`);
    for (const o of c.objects) assert.deepEqual(api.admit(o).errors, [], `${c.what}: the schema admits each object (${c.why})`);
  }
  // A file's document without metadata.namespace: the index refuses it (a file has no default
  // namespace); the API server fills it in from the request's namespace.
  const noNamespace = withField(registry([fullPeer()]), 'metadata.namespace', undefined);
  assert.ok(indexProblems(noNamespace).some((p) => p.path === 'metadata.namespace'));
  assert.deepEqual(api.admit(noNamespace).errors, []);
});

test('where the schema is stricter than the index, on purpose', () => {
  const cases: [string, Obj, string][] = [
    // The wire carries a u64; a Kubernetes integer is an int64.
    ['generation 2^63', withField(fullPeer(), 'generation', 2n ** 63n), 'generation'],
    ['generation 2^64-1', withField(fullPeer(), 'generation', 2n ** 64n - 1n), 'generation'],
    // Go's time.Parse knows the calendar; Date.parse rolls 30 February over to 2 March.
    ['30 February', withField(fullPeer(), 'attestation.attestedAt', '2026-02-30T09:00:00Z'), 'attestation.attestedAt'],
    ['hour 24', withField(fullPeer(), 'attestation.attestedAt', '2026-11-23T24:00:00Z'), 'attestation.attestedAt'],
  ];
  for (const [what, peer, field] of cases) {
    assert.deepEqual(indexProblems(registry([peer])), [], `${what}: the index accepts it`);
    const verdict = api.admit(registry([peer]));
    assert.ok(verdict.errors.some((e) => fieldOf(e).startsWith(field)), `${what}: the API server refuses it: ${verdict.errors.join('; ')}`);
  }
  // Within one object, one key twice: the list-map key refuses it; the index too.
  const key = newKey();
  const twice = registry([{ ...fullPeer(key) }, { ...fullPeer(key), agentId: 'payments/db', installationId: '47e61bcf-56f3-48b8-878a-eb97caa2366f', addresses: [] }]);
  assert.ok(snapshotProblems([twice]).some((p) => p.code === 'REGISTRY_CONFLICT'));
  assert.ok(api.admit(twice).errors.some((e) => /^spec\.peers: x-kubernetes-list-type .*Duplicate value/.test(e)), api.admit(twice).errors.join('; '));
  // And one address twice in one peer: a set.
  const sameAddress = registry([withField(fullPeer(), 'addresses', ['10.0.3.7', '10.0.3.7'])]);
  assert.ok(api.admit(sameAddress).errors.some((e) => /^spec\.peers\[0\]\.addresses: .*Duplicate value/.test(e)));
});

// ---------------------------------------------------------------------------------------------
// Generated spellings: the index's refusals must be the schema's

/** A deterministic PRNG (mulberry32), so that a failure names an input that reproduces. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Runs each candidate value of `field` through both, and returns the ones the schema refuses
 * while the index accepts them; fails at once on the other direction.
 */
function differential(field: string, candidates: Iterable<unknown>, wrap: (v: unknown) => unknown = (v) => v): { checked: number; refused: number; stricter: unknown[] } {
  const base = fullPeer();
  const stricter: unknown[] = [];
  let checked = 0;
  let refused = 0;
  for (const v of candidates) {
    checked++;
    const obj = registry([withField(base, field, wrap(v))]);
    // REGISTRY_FIELD only: the namespace rule on agentId is the index's alone (listed above).
    const indexRefuses = indexProblems(obj).some((p) => p.code === 'REGISTRY_FIELD' && fieldOf(p.path).startsWith(field));
    const schemaRefuses = api.admit(obj).errors.some((e) => fieldOf(e).startsWith(field));
    if (indexRefuses) refused++;
    if (indexRefuses) assert.ok(schemaRefuses, `${field} ${JSON.stringify(v)}: the index refuses it, the API server would admit it`);
    else if (schemaRefuses) stricter.push(v);
  }
  return { checked, refused, stricter };
}

function* addressCandidates(): Generator<string> {
  const octets = ['0', '00', '01', '1', '10', '010', '99', '255', '256', '0255', '1e1', ''];
  for (const a of octets) for (const b of ['0', '1', '08']) yield `${a}.${b}.0.${a}`;
  yield* ['0.0.0.0', '0.0.0.00', '00.0.0.0', '1.2.3', '1.2.3.4.5', '1..2.3', ' 1.2.3.4', '1.2.3.4 ', '1.2.3.4/32', '1.2.3.4%eth0'];
  const r = prng(0x1eaf);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const good = ['0', '00', '0000', '1', '01', '0001', 'ffff', 'FFFF', 'abcd', 'db8', '2001', 'fe80'];
  const bad = ['00000', '00001', 'fffff', '10000', 'g', ''];
  const tails = ['0.0.0.0', '1.2.3.4', '01.2.3.4', '1.2.3.04', '255.255.255.255', '10.0.3.7', '256.1.1.1'];
  for (let n = 0; n < 6000; n++) {
    // Eight groups, or six and a dotted tail; mostly zeros, to reach the unspecified and the
    // IPv4-mapped spellings; then a run of groups compressed to '::' (a valid spelling of some
    // address, zeros or not), sometimes a field no parser takes.
    const withTail = r() < 0.3;
    const groups = Array.from({ length: withTail ? 6 : 8 }, () => (r() < 0.5 ? pick(['0', '0000', '00']) : r() < 0.9 ? pick(good) : pick(bad)));
    if (r() < 0.3) groups[5] = pick(['ffff', 'FFFF', 'fFfF']);
    const text = (gs: string[]): string => gs.join(':');
    let s: string;
    if (r() < 0.7) {
      const from = Math.floor(r() * groups.length);
      const to = from + 1 + Math.floor(r() * (groups.length - from));
      s = `${text(groups.slice(0, from))}::${text(groups.slice(to))}`;
    } else {
      s = text(groups);
    }
    if (withTail) s += `${s.endsWith(':') ? '' : ':'}${r() < 0.8 ? pick(tails.slice(0, 2)) : pick(tails)}`;
    yield s;
  }
  for (let n = 0; n < 3000; n++) {
    const len = 1 + Math.floor(r() * 14);
    yield Array.from({ length: len }, () => pick([...'0123456789abcdefF:.%/ ', '::', 'ffff'])).join('');
  }
  yield* ['::', '::0', '0::', '0::0', '0:0:0:0:0:0:0:0', '0000:0000:0000:0000:0000:0000:0000:0000', '::0.0.0.0', '::ffff:0.0.0.0',
    '::ffff:0:0', '0:0:0:0:0:ffff::', '0:0:0:0:0:ffff::0', '0:0:0:0:0:ffff:0::', '::FFFF:0000:0000', '0::ffff:0.0.0.0',
    '::ffff:10.0.3.7', '::ffff:a00:307', 'ffff::', '::1', '1::', 'fe80::1', '2001:db8::7', '::1.2.3.4', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7::',
    '::2:3:4:5:6:7:8', '1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:7:1.2.3.4', '1:2:3:4:5::1.2.3.4'];
}

test('addresses: every spelling the index refuses, the schema refuses (9,000+ generated)', () => {
  const { checked, refused, stricter } = differential('addresses', addressCandidates(), (v) => [v]);
  // Both verdicts in numbers, or the generator proves little.
  assert.ok(checked > 9000 && refused > 2000 && checked - refused > 1000, `${checked} checked, ${refused} refused`);
  assert.deepEqual(stricter, [], 'the schema refuses addresses the index accepts');
});

test('attestedAt: every time the index refuses, the schema refuses; stricter only on calendar facts', () => {
  const r = prng(0x7171);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const candidates: string[] = [];
  // Each part usually right, sometimes wrong in one of the ways parsers differ on.
  const part = (good: string[], bad: string[]): string => (r() < 0.8 ? pick(good) : pick(bad));
  for (let n = 0; n < 4000; n++) {
    const date = `${part(['2026', '2024', '1999'], ['0000', '9999', '202', '20266'])}-${part(['01', '02', '11', '12'], ['13', '00', '1'])}-${part(['01', '23', '28', '29', '30', '31'], ['32', '00', '1'])}`;
    const sep = part(['T', 't'], [' ', 'x']);
    const time = `${part(['00', '09', '23'], ['24', '9'])}:${part(['00', '59'], ['60'])}:${part(['00', '59'], ['60', '5'])}`;
    const frac = part(['', '', '.5', '.123456789'], ['.1234567890', ',5', 'x5', '.']);
    const zone = part(['Z', 'z', '+00:00', '-00:00', '+23:59', '-12:30'], ['', '+24:00', '+99:99', '+0100', '+01', 'UTC']);
    candidates.push(`${date}${sep}${time}${frac}${zone}${r() < 0.03 ? 't' : ''}`);
  }
  const { checked, refused, stricter } = differential('attestation.attestedAt', candidates);
  assert.ok(refused > 1000 && checked - refused > 100, `${checked} checked, ${refused} refused`);
  // Date.parse takes days the month does not have (rolling over) and 24:00:00; Go does not.
  for (const s of stricter as string[]) {
    const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2})/.exec(s)!;
    const [y, mo, d, h] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
    const days = new Date(Date.UTC(y, mo, 0)).getUTCDate();
    assert.ok(d > days || h === 24 || y === 0, `the schema refuses ${s}, which the index accepts`);
  }
});

test('agentId: every name the index refuses, the schema refuses', () => {
  const r = prng(0xa9e);
  const label = (n: number): string => Array.from({ length: n }, () => 'abcz09-.'[Math.floor(r() * 8)]).join('');
  const candidates: string[] = [];
  for (const ns of [1, 2, 62, 63, 64, 65]) for (const wl of [1, 2, 252, 253, 254, 300]) candidates.push(`${'n'.repeat(ns)}/${'w'.repeat(wl)}`);
  for (let n = 0; n < 3000; n++) candidates.push(`payments/${label(1 + Math.floor(r() * 6))}`, `${label(1 + Math.floor(r() * 4))}/api`);
  const { checked, refused, stricter } = differential('agentId', candidates);
  assert.ok(refused > 1000 && checked - refused > 1000, `${checked} checked, ${refused} refused`);
  // The schema cannot tell namespaces apart: the index refuses another namespace's agentId
  // (the namespace rule) and the schema admits it, which is the other direction.
  assert.deepEqual(stricter, []);
});

test('the Go IP parsers: the spellings the API server is known to take and refuse', () => {
  // netip (strict) and Go 1.16 (sloppy), from their documented behaviour.
  assert.ok(goParseIP('1.2.3.4') && goParseIP('::ffff:1.2.3.4') && goParseIP('2001:db8::7') && goParseIP('::'));
  assert.equal(goParseIP('010.0.0.1'), undefined);
  assert.ok(goParseIPSloppy('010.0.0.1'));
  assert.equal(goParseIP('00001::'), undefined);
  assert.ok(goParseIPSloppy('00001::'));
  assert.equal(goParseIP('fe80::1%eth0'), undefined);
  assert.equal(goParseIP('1:2:3:4:5:6:7:8::'), undefined); // the ellipsis must stand for a group
  assert.equal(goParseIP('1.2.3.4:80'), undefined);
  assert.ok(isKubeIPv4('::ffff:1.2.3.4') && isKubeIPv6('::ffff:1.2.3.4'));
  assert.ok(!isKubeIPv4('::1') && !isKubeIPv6('1.2.3.4'));
  assert.deepEqual([...goParseIP('::ffff:10.0.3.7')!], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 3, 7]);
  assert.deepEqual([...goParseIP('1::2:3')!], [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 3]);
  // kube-openapi's date-time.
  assert.ok(isKubeDateTime('2026-11-23T09:00:00Z') && isKubeDateTime('2026-11-23t09:00:00.5+01:00'));
  assert.ok(isKubeDateTime('2026-11-23T09:00:00x5+99:99'), "kube-openapi's '.' is any character, its offsets any digits");
  assert.ok(!isKubeDateTime('2026-02-30T09:00:00Z') && !isKubeDateTime('2026-11-23T09:00:00') && !isKubeDateTime('2026-11-23T24:00:00Z'));
});

// ---------------------------------------------------------------------------------------------
// Low-order keys (PROTOCOL.md section 2)

const P = 2n ** 255n - 19n;
const A = 486662n;

function modPow(b: bigint, e: bigint): bigint {
  let r = 1n;
  b %= P;
  for (; e > 0n; e >>= 1n, b = (b * b) % P) if (e & 1n) r = (r * b) % P;
  return r;
}
const mod = (x: bigint): bigint => ((x % P) + P) % P;
const inv = (x: bigint): bigint => modPow(x, P - 2n);

/** A square root mod p (p = 5 mod 8, Atkin's method), or undefined. */
function sqrt(x: bigint): bigint | undefined {
  x = mod(x);
  let r = modPow(x, (P + 3n) / 8n);
  if ((r * r) % P !== x) r = (r * modPow(2n, (P - 1n) / 4n)) % P;
  return (r * r) % P === x ? r : undefined;
}

/** x-only doubling on Curve25519 (RFC 7748's curve): u(2Q) = (u^2-1)^2 / (4u(u^2+Au+1)). */
function double(u: bigint): bigint | undefined {
  const den = mod(4n * u * (u * u + A * u + 1n));
  return den === 0n ? undefined : mod((u * u - 1n) ** 2n * inv(den));
}

/**
 * The u of every point whose order divides 8, on the curve or its twist: 0 (order 2), 1 and
 * p-1 (order 4; 1 on the curve, p-1 on the twist), and the two of order 8, whose double is 1:
 * (u^2-1)^2 = 4u(u^2+Au+1), palindromic, so with t = u + 1/u: t^2 - 4t - 4(A+1) = 0, then
 * u^2 - tu + 1 = 0.
 */
function lowOrderU(): bigint[] {
  const order8: bigint[] = [];
  const d = sqrt(4n * (A + 2n))!; // t = 2 +- sqrt(4 + 4(A+1))
  for (const t of [mod(2n + d), mod(2n - d)]) {
    const disc = sqrt(t * t - 4n);
    if (disc === undefined) continue;
    for (const u of [mod((t + disc) * inv(2n)), mod((t - disc) * inv(2n))]) if (double(u) === 1n && !order8.includes(u)) order8.push(u);
  }
  return [0n, 1n, P - 1n, ...order8.sort((a, b) => (a < b ? -1 : 1))];
}

function littleEndian(u: bigint): Buffer {
  const b = Buffer.alloc(32);
  for (let i = 0; i < 32; i++, u >>= 8n) b[i] = Number(u & 0xffn);
  return b;
}

/** The 14: each u, and p and p+1 (0 and 1 again, unreduced), with bit 255 clear and set. */
function lowOrderKeys(): string[] {
  const us = [...lowOrderU(), P, P + 1n];
  return us.flatMap((u) => [littleEndian(u), littleEndian(u | (1n << 255n))]).map((b) => b.toString('base64'));
}

test('the 14 encodings of low-order points: derived, refused by X25519 itself, refused by the schema', () => {
  const u = lowOrderU();
  assert.equal(u.length, 5, 'u = 0, 1, p-1 and two of order 8');
  for (const x of u.slice(3)) {
    assert.equal(double(x), 1n, 'order 8: its double has order 4');
    assert.equal(double(1n), 0n, '1 doubles to 0, of order 2');
  }
  const keys = lowOrderKeys();
  assert.equal(new Set(keys).size, 14);
  // OpenSSL's X25519 refuses a shared secret of all zeros: each key is low-order for real.
  const mine = generateKeyPairSync('x25519').privateKey;
  const spki = (raw: Buffer): Buffer => Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), raw]);
  for (const k of keys) {
    const peerKey = createPublicKey({ key: spki(Buffer.from(k, 'base64')), format: 'der', type: 'spki' });
    assert.throws(() => diffieHellman({ privateKey: mine, publicKey: peerKey }), `X25519 with ${k} should fail`);
  }
  // A real key works (the check above can fail).
  const other = generateKeyPairSync('x25519').publicKey;
  assert.equal(diffieHellman({ privateKey: mine, publicKey: other }).length, 32);

  // The CRD lists exactly these, and refuses each.
  assert.deepEqual([...((peerSchema.properties!.publicKey!.not as JsonSchemaProps).enum as string[])].sort(), [...keys].sort());
  for (const k of keys) {
    const verdict = api.admit(registry([fullPeer(k)]));
    assert.ok(verdict.errors.some((e) => e.startsWith('spec.peers[0].publicKey')), `${k}: ${verdict.errors.join('; ')}`);
  }
  // The index refuses every one of them too (src/noise/low-order.ts, through validate.ts).
  for (const k of keys) {
    assert.ok(indexProblems(registry([fullPeer(k)])).some((p) => p.path === 'spec.peers[0].publicKey'), `the index admits ${k}`);
  }
  // Every canonical key pattern-wise: the 14 are 44-character canonical base64, so only the
  // `not` refuses them.
  for (const k of keys) assert.match(k, new RegExp(peerSchema.properties!.publicKey!.pattern!));
});

test('the public-key pattern accepts exactly the canonical encodings the index accepts', () => {
  const pattern = new RegExp(peerSchema.properties!.publicKey!.pattern!);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  let accepted = 0;
  for (let i = 0; i < 4; i++) {
    const key = newKey();
    for (const c of alphabet) {
      const variant = `${key.slice(0, 42)}${c}=`;
      const index = indexProblems(registry([fullPeer(variant)])).length === 0;
      assert.equal(pattern.test(variant), index, `pattern and index disagree on final character ${c}`);
      if (index) accepted++;
    }
  }
  assert.equal(accepted, 4 * 16);
});

// ---------------------------------------------------------------------------------------------
// Fields, enums and defaults

test('fields and enums: schema and index agree', () => {
  const design = parse(readFileSync(fixture('design-example.yaml'), 'utf8')) as { spec: { peers: Obj[] } };
  const example = design.spec.peers[0]!;
  assert.deepEqual(Object.keys(peerSchema.properties!).sort(), Object.keys(example).sort(), 'every index field, and only those');
  assert.deepEqual(Object.keys(peerSchema.properties!.attestation!.properties!).sort(), Object.keys(example.attestation as object).sort());
  assert.deepEqual(peerSchema.properties!.clearance!.enum, [...CLEARANCES]);
  assert.deepEqual(peerSchema.properties!.agentType!.enum, [...AGENT_TYPES]);
  assert.deepEqual(peerSchema.properties!.attestation!.properties!.authnStrength!.enum, [...AUTHN_STRENGTHS]);
  assert.deepEqual([...peerSchema.required!].sort(), ['agentId', 'generation', 'installationId', 'publicKey']);
});

test('nulls: an optional field written empty is stored as null (nullable), and the index refuses the peer, as in a file; never defaulted to a live peer', () => {
  const minimal = { agentId: 'payments/api', installationId: '0f8e2c1a-93bb-4b54-94fb-bfa65662dce3', publicKey: newKey(), generation: 1 };
  const optional = { addresses: null, meshPort: null, serviceAccount: null, delegationDepth: null, revoked: null, attestation: null };
  for (const [key, value] of Object.entries(optional)) {
    const verdict = api.admit(registry([{ ...minimal, [key]: value }]));
    assert.deepEqual(verdict.errors, [], key);
    const stored = ((verdict.object as { spec: { peers: Obj[] } }).spec.peers[0])!;
    assert.equal(stored[key], null, `${key}: kept as null, not pruned to its default`);
    const read = validateClearanceRegistry(verdict.object, { document: 't' });
    assert.equal(read.object!.entries.length, 0, key);
    assert.deepEqual(read.problems.map((p) => p.path), [`spec.peers[0].${key}`], key);
    assert.equal(read.object!.broken[0]!.mayRevoke, key === 'revoked', key);
  }
  for (const key of ['imageDigest', 'nodeName', 'bindingHash', 'devicePosture']) {
    const verdict = api.admit(registry([{ ...minimal, attestation: { authnStrength: 'high', attestedAt: '2026-11-23T09:00:00Z', [key]: null } }]));
    assert.deepEqual(verdict.errors, [], key);
    assert.deepEqual(validateClearanceRegistry(verdict.object, { document: 't' }).problems.map((p) => p.path), [`spec.peers[0].attestation.${key}`], key);
  }
});

test('defaults: the API server stores what the index reads for absent fields; a null in the two enums is refused, never defaulted', () => {
  const minimal = { agentId: 'payments/api', installationId: '0f8e2c1a-93bb-4b54-94fb-bfa65662dce3', publicKey: newKey(), generation: 1 };
  const verdict = api.admit(registry([minimal]));
  assert.deepEqual(verdict.errors, []);
  const stored = ((verdict.object as { spec: { peers: Obj[] } }).spec.peers[0])!;
  const entry = validateClearanceRegistry(registry([minimal]), { document: 't' }).object!.entries[0]!;
  assert.deepEqual(
    { clearance: stored.clearance, agentType: stored.agentType, delegationDepth: stored.delegationDepth, revoked: stored.revoked },
    { clearance: entry.clearance, agentType: entry.agentType, delegationDepth: entry.delegationDepth, revoked: entry.revoked },
  );
  // And the stored object reads the same in the index.
  assert.deepEqual(validateClearanceRegistry(verdict.object, { document: 't' }).problems, []);
  // The absent fields without a default stay absent: the index's absence (no meshPort: 15443).
  assert.deepEqual(Object.keys(stored).sort(), ['agentId', 'agentType', 'clearance', 'delegationDepth', 'generation', 'installationId', 'publicKey', 'revoked']);
  // A null enum (a template that rendered nothing) is kept by `nullable` and fails the enum
  // check: the object is refused. Dropped and defaulted, a null agentType would have been
  // `service`, and passed a policy's `agentTypes: [service]`.
  for (const field of ['clearance', 'agentType']) {
    const refused = api.admit(registry([{ ...minimal, [field]: null }]));
    assert.deepEqual(refused.errors, [`spec.peers[0].${field}: enum must be equal to one of the allowed values`]);
  }
});
