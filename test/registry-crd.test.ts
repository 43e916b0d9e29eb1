// crds/clearanceregistry.yaml: a CustomResourceDefinition whose schema accepts the DESIGN.md
// example, refuses what the model refuses where OpenAPI can say it, and agrees with the model
// on fields, enums and defaults. The schema is checked by a small evaluator of the structural
// OpenAPI subset Kubernetes uses, with strict field validation (unknown fields refused).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { AGENT_TYPES, AUTHN_STRENGTHS, CLEARANCES, buildSnapshot, parseRegistryYaml } from '../src/registry-sync/index.js';
import { repoRoot } from './helpers/paths.js';
import { fixture, newPublicKey, peer, registryDoc } from './fixtures/registry/make.js';
import { LOW_ORDER_X25519_B64 } from './helpers/low-order.js';

interface Schema {
  type?: string;
  format?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  maxLength?: number;
  maxItems?: number;
  anyOf?: Schema[];
  not?: Schema;
  default?: unknown;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** Errors of `value` against `schema`, each as `path: reason`. */
function check(schema: Schema, value: unknown, path = ''): string[] {
  const errors: string[] = [];
  const fail = (why: string): void => void errors.push(`${path || '<root>'}: ${why}`);
  if (value === undefined || value === null) return [`${path}: null`];
  switch (schema.type) {
    case 'object':
      if (typeof value !== 'object' || Array.isArray(value)) return [`${path}: not an object`];
      break;
    case 'array':
      if (!Array.isArray(value)) return [`${path}: not an array`];
      break;
    case 'string':
      if (typeof value !== 'string') return [`${path}: not a string`];
      break;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) return [`${path}: not an integer`];
      break;
    case 'number':
      if (typeof value !== 'number') return [`${path}: not a number`];
      break;
    case 'boolean':
      if (typeof value !== 'boolean') return [`${path}: not a boolean`];
      break;
    case undefined:
      break;
    default:
      return [`${path}: schema type ${schema.type} unsupported by this checker`];
  }
  if (schema.enum !== undefined && !schema.enum.includes(value)) fail('not in enum');
  if (typeof value === 'string') {
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value)) fail('pattern');
    if (schema.maxLength !== undefined && value.length > schema.maxLength) fail('maxLength');
    if (schema.format === 'date-time' && !RFC3339.test(value)) fail('format date-time');
    if (schema.format === 'ipv4' && !isIPv4(value)) fail('format ipv4');
    if (schema.format === 'ipv6' && !(isIPv6(value) && !value.includes('%'))) fail('format ipv6');
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) fail('minimum');
    if (schema.maximum !== undefined && value > schema.maximum) fail('maximum');
  }
  if (schema.anyOf !== undefined && !schema.anyOf.some((s) => check(s, value, path).length === 0)) fail('anyOf');
  if (schema.not !== undefined && check(schema.not, value, path).length === 0) fail('not');
  if (Array.isArray(value)) {
    if (schema.maxItems !== undefined && value.length > schema.maxItems) fail('maxItems');
    value.forEach((item, i) => errors.push(...check(schema.items ?? {}, item, `${path}[${i}]`)));
    const listType = schema['x-kubernetes-list-type'];
    if (listType === 'set' || listType === 'map') {
      const keyOf = (v: unknown): string =>
        listType === 'set' ? JSON.stringify(v) : JSON.stringify(schema['x-kubernetes-list-map-keys']!.map((k) => (v as Record<string, unknown>)[k]));
      const keys = value.map(keyOf);
      if (new Set(keys).size !== keys.length) fail(`duplicate ${listType} key`);
    }
  } else if (typeof value === 'object' && schema.type === 'object') {
    const record = value as Record<string, unknown>;
    for (const r of schema.required ?? []) if (record[r] === undefined) fail(`missing ${r}`);
    if (schema.properties !== undefined) {
      for (const [k, v] of Object.entries(record)) {
        const sub = schema.properties[k];
        if (sub === undefined) fail(`unknown field ${k}`);
        else errors.push(...check(sub, v, path === '' ? k : `${path}.${k}`));
      }
    }
  }
  return errors;
}

interface Crd {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: {
    group: string;
    scope: string;
    names: { kind: string; listKind: string; plural: string; singular: string; shortNames: string[] };
    versions: { name: string; served: boolean; storage: boolean; schema: { openAPIV3Schema: Schema }; additionalPrinterColumns: { name: string; type: string; jsonPath: string }[] }[];
  };
}

const crdDocs = parseAllDocuments(readFileSync(join(repoRoot, 'crds', 'clearanceregistry.yaml'), 'utf8'));
const crd = (crdDocs as unknown as { toJS(): unknown }[])[0]?.toJS() as Crd;
const version = crd.spec.versions[0]!;
const root = version.schema.openAPIV3Schema;
const peerSchema = root.properties!.spec!.properties!.peers!.items!;

function objectsOf(file: string): unknown[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS());
}

test('the CRD is one YAML document: clearanceregistries.noisemesh.io, namespaced, v1alpha1, creg', () => {
  assert.equal(crdDocs.length, 1);
  assert.deepEqual((crdDocs as unknown as { errors: unknown[] }[])[0]!.errors, []);
  assert.equal(crd.apiVersion, 'apiextensions.k8s.io/v1');
  assert.equal(crd.kind, 'CustomResourceDefinition');
  assert.equal(crd.metadata.name, `${crd.spec.names.plural}.${crd.spec.group}`);
  assert.equal(crd.metadata.name, 'clearanceregistries.noisemesh.io');
  assert.equal(crd.spec.scope, 'Namespaced');
  assert.deepEqual(crd.spec.names.kind, 'ClearanceRegistry');
  assert.deepEqual(crd.spec.names.listKind, 'ClearanceRegistryList');
  assert.ok(crd.spec.names.shortNames.includes('creg'));
  assert.equal(crd.spec.versions.length, 1);
  assert.deepEqual([version.name, version.served, version.storage], ['v1alpha1', true, true]);
  assert.deepEqual(version.additionalPrinterColumns.map((c) => c.name), ['Agents', 'Revoked', 'Age']);
  for (const c of version.additionalPrinterColumns) assert.match(c.jsonPath, /^\./);
});

test('the schema accepts the DESIGN.md example and every valid fixture', () => {
  for (const name of ['design-example.yaml', 'valid.yaml']) {
    for (const obj of objectsOf(fixture(name))) assert.deepEqual(check(root, obj), [], name);
  }
  // and so does the model
  const parsed = parseRegistryYaml(readFileSync(fixture('design-example.yaml'), 'utf8'));
  assert.ok(parsed.ok);
  assert.deepEqual(buildSnapshot(parsed.objects, { origin: 'x' }, parsed.problems).problems, []);
});

test('the schema refuses what the model refuses, where OpenAPI can say it', () => {
  const key = newPublicKey();
  const bytes = Buffer.from(key, 'base64');
  const cases: [string, Record<string, unknown>, string][] = [
    ['31-byte key', { publicKey: bytes.subarray(0, 31).toString('base64') }, 'spec.peers[0].publicKey: pattern'],
    ['padding bits set', { publicKey: key.slice(0, 42) + String.fromCharCode(key.charCodeAt(42) + 1) + '=' }, 'spec.peers[0].publicKey: pattern'],
    ['base64url key', { publicKey: bytes.toString('base64url') }, 'spec.peers[0].publicKey: pattern'],
    ...LOW_ORDER_X25519_B64.map((publicKey): [string, Record<string, unknown>, string] => [`low-order key ${publicKey}`, { publicKey }, 'spec.peers[0].publicKey: not']),
    ['generation 0', { generation: 0 }, 'spec.peers[0].generation: minimum'],
    ['generation as text', { generation: '3' }, 'spec.peers[0].generation: not an integer'],
    ['clearance', { clearance: 'secret' }, 'spec.peers[0].clearance: not in enum'],
    ['agentType', { agentType: 'robot' }, 'spec.peers[0].agentType: not in enum'],
    ['agentId', { agentId: 'api' }, 'spec.peers[0].agentId: pattern'],
    ['installationId', { installationId: 'pod-1' }, 'spec.peers[0].installationId: pattern'],
    ['CIDR address', { addresses: ['10.0.3.0/24'] }, 'spec.peers[0].addresses[0]: anyOf'],
    ['zoned address', { addresses: ['fe80::1%eth0'] }, 'spec.peers[0].addresses[0]: anyOf'],
    ['meshPort', { meshPort: 70000 }, 'spec.peers[0].meshPort: maximum'],
    ['delegationDepth', { delegationDepth: -1 }, 'spec.peers[0].delegationDepth: minimum'],
    ['revoked as text', { revoked: 'true' }, 'spec.peers[0].revoked: not a boolean'],
    ['misspelt field', { revokd: true }, 'spec.peers[0]: unknown field revokd'],
    ['devicePosture', { attestation: { authnStrength: 'high', attestedAt: '2026-11-23T09:00:00Z', devicePosture: 2 } }, 'spec.peers[0].attestation.devicePosture: maximum'],
    ['attestedAt', { attestation: { authnStrength: 'high', attestedAt: 'yesterday' } }, 'spec.peers[0].attestation.attestedAt: format date-time'],
    ['attestation without strength', { attestation: { attestedAt: '2026-11-23T09:00:00Z' } }, 'spec.peers[0].attestation: missing authnStrength'],
    ['imageDigest', { attestation: { authnStrength: 'high', attestedAt: '2026-11-23T09:00:00Z', imageDigest: 'latest' } }, 'spec.peers[0].attestation.imageDigest: pattern'],
  ];
  for (const [what, overrides, expected] of cases) {
    const obj = parse(registryDoc('payments', [peer('payments', 'api', overrides)])) as unknown;
    assert.deepEqual(check(root, obj), [expected], what);
    // The model refuses each of these as well.
    const parsed = parseRegistryYaml(registryDoc('payments', [peer('payments', 'api', overrides)]));
    assert.equal(parsed.objects[0]?.entries.length ?? 0, 0, `model accepts ${what}`);
  }
  for (const missing of ['agentId', 'installationId', 'publicKey', 'generation']) {
    const obj = parse(registryDoc('payments', [peer('payments', 'api', { [missing]: undefined })])) as unknown;
    assert.deepEqual(check(root, obj), [`spec.peers[0]: missing ${missing}`]);
  }
  const twice = parse(registryDoc('payments', [peer('payments', 'api', { publicKey: key }), peer('payments', 'db', { publicKey: key })])) as unknown;
  assert.deepEqual(check(root, twice), ['spec.peers: duplicate map key']);
  const noPeers = parse('apiVersion: noisemesh.io/v1alpha1\nkind: ClearanceRegistry\nmetadata: {name: a, namespace: a}\nspec: {}\n') as unknown;
  assert.deepEqual(check(root, noPeers), ['spec: missing peers']);
});

test('the public-key pattern accepts exactly the canonical keys the model accepts', () => {
  const pattern = new RegExp(peerSchema.properties!.publicKey!.pattern!);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  let accepted = 0;
  for (let i = 0; i < 4; i++) {
    const key = newPublicKey();
    assert.ok(pattern.test(key), 'a real key');
    // Every last character: 16 of the 64 leave the padding bits zero.
    for (const c of alphabet) {
      const variant = `${key.slice(0, 42)}${c}=`;
      const model = parseRegistryYaml(registryDoc('a', [peer('a', 'b', { publicKey: variant })])).objects[0]?.entries.length === 1;
      assert.equal(pattern.test(variant), model, `pattern and model disagree on final character ${c}`);
      if (model) accepted++;
    }
  }
  assert.equal(accepted, 4 * 16);
});

test('fields, enums and defaults: schema and model agree', () => {
  const design = objectsOf(fixture('design-example.yaml'))[0] as { spec: { peers: Record<string, unknown>[] } };
  const example = design.spec.peers[0]!;
  assert.deepEqual(Object.keys(peerSchema.properties!).sort(), Object.keys(example).sort(), 'every model field, and only those');
  assert.deepEqual(
    Object.keys(peerSchema.properties!.attestation!.properties!).sort(),
    Object.keys(example.attestation as object).sort(),
  );
  assert.deepEqual(peerSchema.properties!.clearance!.enum, [...CLEARANCES]);
  assert.deepEqual(peerSchema.properties!.agentType!.enum, [...AGENT_TYPES]);
  assert.deepEqual(peerSchema.properties!.attestation!.properties!.authnStrength!.enum, [...AUTHN_STRENGTHS]);
  assert.deepEqual(peerSchema.required!.sort(), ['agentId', 'generation', 'installationId', 'publicKey']);

  // What the API server would default, the model defaults to the same.
  const parsed = parseRegistryYaml(registryDoc('a', [peer('a', 'b')]));
  const e = parsed.objects[0]!.entries[0]!;
  assert.equal(peerSchema.properties!.clearance!.default, e.clearance);
  assert.equal(peerSchema.properties!.agentType!.default, e.agentType);
  assert.equal(peerSchema.properties!.delegationDepth!.default, e.delegationDepth);
  assert.equal(peerSchema.properties!.revoked!.default, e.revoked);
});
