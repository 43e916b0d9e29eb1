// What the Kubernetes API server does with a custom resource on create, emulated around a real
// JSON Schema validator (ajv) so that tests can hold crds/*.yaml to it offline.
//
// Order, as in the apiextensions-apiserver (one create with fieldValidation=Strict, which
// kubectl >= 1.27 asks for by default):
//   1. decode: JSON numbers become int64 when they fit, float64 otherwise
//      (sigs.k8s.io/json, "preserve ints"); a float64 is an integer to the schema only when it
//      is integral and within +-2^53 (kube-openapi validate/type.go, swag.IsFloat64AJSONInteger),
//      so an integer literal outside int64 fails `type: integer`;
//   2. prune: a null in a field that is not `nullable` is dropped ("null values for fields that
//      either don't specify the nullable flag, or give it a false value, will be pruned before
//      defaulting happens"); a field the schema does not declare is refused under Strict
//      ("unknown field") unless `x-kubernetes-preserve-unknown-fields: true`;
//   3. default: missing fields with a `default` get it (after pruning, so null -> default);
//   4. validate against the schema: ajv, with the OpenAPI formats as kube-openapi's strfmt
//      checks them and `x-kubernetes-list-type` set/map uniqueness ("Duplicate value");
//   5. metadata: ObjectMeta's own rules for a namespaced custom resource (name a DNS-1123
//      subdomain, namespace a DNS-1123 label, no unknown fields), and apiVersion/kind must be
//      the CRD's group/version and kind.
// CEL (`x-kubernetes-validations`) is not emulated: a schema that uses it is refused here, so
// a test cannot pass on a rule nobody evaluated.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { isDeepStrictEqual } from 'node:util';
import { isKubeIPv4, isKubeIPv6 } from './go-ip.js';

/** The subset of apiextensions.k8s.io/v1 JSONSchemaProps this code reads. */
export interface JsonSchemaProps {
  type?: string;
  format?: string;
  description?: string;
  title?: string;
  nullable?: boolean;
  default?: unknown;
  enum?: unknown[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  maxLength?: number;
  minLength?: number;
  maxItems?: number;
  minItems?: number;
  required?: string[];
  properties?: Record<string, JsonSchemaProps>;
  additionalProperties?: JsonSchemaProps | boolean;
  items?: JsonSchemaProps;
  allOf?: JsonSchemaProps[];
  anyOf?: JsonSchemaProps[];
  oneOf?: JsonSchemaProps[];
  not?: JsonSchemaProps;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: string;
  'x-kubernetes-validations'?: unknown[];
  [keyword: string]: unknown;
}

export interface CrdVersion {
  name: string;
  served: boolean;
  storage: boolean;
  schema: { openAPIV3Schema: JsonSchemaProps };
  additionalPrinterColumns?: { name: string; type: string; jsonPath: string; description?: string }[];
}

export interface Crd {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    group: string;
    scope: string;
    names: { kind: string; listKind: string; plural: string; singular: string; shortNames?: string[]; categories?: string[] };
    versions: CrdVersion[];
  };
}

export interface Admission {
  readonly ok: boolean;
  /** `path: reason`, path as the index writes it (`spec.peers[0].publicKey`). */
  readonly errors: readonly string[];
  /** The object as it would be stored: pruned and defaulted. */
  readonly object: unknown;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** metav1.ObjectMeta's JSON fields: anything else under metadata is unknown. */
const OBJECT_META_FIELDS = new Set([
  'name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'generation',
  'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels', 'annotations',
  'ownerReferences', 'finalizers', 'managedFields',
]);

/** Go's time.Parse("2006-01-02", s): four-digit year, month 01-12, a day that month has. */
function isGoDate(s: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (m === null) return false;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (month < 1 || month > 12 || day < 1) return false;
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!;
  return day <= days;
}

/**
 * kube-openapi strfmt IsDateTime: lowercase, split at every 't', the first part a Go date, the
 * second matching `^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$`
 * (note the unescaped '.', any character) with hour <= 23, minute and second <= 59. Any further
 * parts are not looked at.
 */
export function isKubeDateTime(str: string): boolean {
  if (str.length < 4) return false;
  const s = str.toLowerCase().split('t');
  if (s.length < 2 || !isGoDate(s[0]!)) return false;
  // Go's regexp '.' does not match '\n'; JavaScript's does not either without the s flag.
  const m = /^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$/u.exec(s[1]!);
  if (m === null) return false;
  return m[1]! <= '23' && m[2]! <= '59' && m[3]! <= '59';
}

/** `/spec/peers/0/publicKey` -> `spec.peers[0].publicKey`. */
function toPath(pointer: string): string {
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(seg)) out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}

function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path === '' ? key : `${path}.${key}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * An ajv instance that reads apiextensions v1 schemas as the API server does. Strict: an
 * unknown keyword or format throws at compile time instead of being ignored.
 */
export function kubeAjv(): Ajv {
  const ajv = new Ajv({
    strict: true,
    // Kubernetes applies `format` to any string it meets, typed or not (anyOf branches).
    strictTypes: false,
    allErrors: true,
    useDefaults: true,
    // Go's JSON decoder has no NaN or Infinity.
    strictNumbers: true,
    // RE2 and ES2018+ with the u flag agree on the patterns the structural check allows.
    unicodeRegExp: true,
    validateFormats: true,
  });
  // kube-openapi strfmt, default.go and time.go; see go-ip.ts for the two IP formats.
  ajv.addFormat('ipv4', { type: 'string', validate: isKubeIPv4 });
  ajv.addFormat('ipv6', { type: 'string', validate: isKubeIPv6 });
  ajv.addFormat('date-time', { type: 'string', validate: isKubeDateTime });
  // The API server checks no numeric format: int64's range is the decoder's (decode() below).
  ajv.addFormat('int64', { type: 'number', validate: () => true });
  ajv.addFormat('int32', { type: 'number', validate: () => true });
  ajv.addFormat('double', { type: 'number', validate: () => true });
  ajv.addFormat('float', { type: 'number', validate: () => true });

  // Annotations: they shape pruning and merging, which prune() emulates, not validation.
  for (const keyword of ['x-kubernetes-preserve-unknown-fields', 'x-kubernetes-embedded-resource', 'x-kubernetes-int-or-string']) {
    ajv.addKeyword({ keyword, schemaType: 'boolean' });
  }
  ajv.addKeyword({ keyword: 'x-kubernetes-map-type', schemaType: 'string' });
  ajv.addKeyword({ keyword: 'x-kubernetes-list-map-keys', schemaType: 'array' });
  // Lists as sets and maps: the API server refuses duplicates (apiextensions listtype
  // validation: "Duplicate value").
  ajv.addKeyword({
    keyword: 'x-kubernetes-list-type',
    type: 'array',
    schemaType: 'string',
    errors: true,
    validate: function listType(this: unknown, kind: string, data: unknown[], parent?: Record<string, unknown>): boolean {
      const self = listType as unknown as { errors: Partial<ErrorObject>[] | null };
      self.errors = null;
      if (kind === 'atomic') return true;
      const keys = (parent?.['x-kubernetes-list-map-keys'] as string[] | undefined) ?? [];
      const keyOf = (item: unknown): unknown => (kind === 'set' ? item : keys.map((k) => (isObject(item) ? item[k] : undefined)));
      const seen: unknown[] = [];
      const errors: Partial<ErrorObject>[] = [];
      data.forEach((item, i) => {
        const key = keyOf(item);
        if (seen.some((s) => isDeepStrictEqual(s, key))) {
          errors.push({ keyword: 'x-kubernetes-list-type', message: `Duplicate value (list-type ${kind}) at item ${i}`, params: { index: i } });
        }
        seen.push(key);
      });
      if (errors.length > 0) self.errors = errors;
      return errors.length === 0;
    },
  });
  ajv.addKeyword({
    keyword: 'x-kubernetes-validations',
    schemaType: 'array',
    compile: () => {
      throw new Error('x-kubernetes-validations (CEL) is not emulated by test/helpers/kube-crd.ts: add an evaluator before using it');
    },
  });
  return ajv;
}

/**
 * The API server's view of one CRD version. `admit` runs a create of one object through
 * decoding, pruning, defaulting and validation and says what it would answer.
 */
export class CustomResourceAdmission {
  readonly schema: JsonSchemaProps;
  private readonly validate: ValidateFunction;

  constructor(
    readonly crd: Crd,
    readonly version: CrdVersion = crd.spec.versions.find((v) => v.storage) ?? crd.spec.versions[0]!,
  ) {
    this.schema = version.schema.openAPIV3Schema;
    // metadata is validated as ObjectMeta (checkMetadata); the schema may only say it is an object.
    this.validate = kubeAjv().compile(this.schema);
  }

  admit(input: unknown): Admission {
    const errors: string[] = [];
    const floats = new Set<string>();
    const decoded = decode(input, '', floats, errors);
    if (!isObject(decoded)) return { ok: false, errors: [...errors, '<root>: must be an object'], object: decoded };

    // apiVersion, kind and metadata: the endpoint and ObjectMeta, not the schema.
    const { group, names } = this.crd.spec;
    if (decoded.apiVersion !== `${group}/${this.version.name}`) errors.push(`apiVersion: must be ${group}/${this.version.name}`);
    if (decoded.kind !== names.kind) errors.push(`kind: must be ${names.kind}`);
    errors.push(...checkObjectMeta(decoded.metadata, this.crd.spec.scope === 'Namespaced'));

    prune(this.schema, decoded, '', floats, errors, true);
    const valid = this.validate(decoded);
    if (!valid) {
      for (const e of this.validate.errors ?? []) {
        let path = toPath(e.instancePath);
        if (e.keyword === 'required') path = join(path, (e.params as { missingProperty: string }).missingProperty);
        errors.push(`${path || '<root>'}: ${e.keyword} ${e.message ?? ''}`.trimEnd());
      }
    }
    return { ok: errors.length === 0, errors, object: decoded };
  }
}

/**
 * Go's decoding, in JavaScript values: bigint (YAML parsed with intAsBigInt) and safe integers
 * are int64 when they fit; an integer outside int64 becomes a float64 (recorded in `floats`, as
 * it is no longer a JSON integer); NaN and Infinity cannot come out of JSON at all.
 */
function decode(v: unknown, path: string, floats: Set<string>, errors: string[]): unknown {
  if (typeof v === 'bigint') {
    if (v < INT64_MIN || v > INT64_MAX) floats.add(path);
    return Number(v);
  }
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) errors.push(`${path || '<root>'}: not a JSON number`);
    // A plain number stands for the JSON text it prints as: past 2^63 no int64 holds it.
    else if (Number.isInteger(v) && Math.abs(v) >= 2 ** 63) floats.add(path);
    return v;
  }
  if (v instanceof Date) return v.toISOString().replace('.000Z', 'Z');
  if (Array.isArray(v)) return v.map((item, i) => decode(item, join(path, i), floats, errors));
  if (isObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, item] of Object.entries(v)) {
      if (item === undefined) continue; // absent, as JSON would have it
      out[k] = decode(item, join(path, k), floats, errors);
    }
    return out;
  }
  return v;
}

/**
 * Pruning and strict field validation, in place: nulls of non-nullable fields dropped,
 * undeclared fields refused, and the float64-not-integer verdict of decode() applied where
 * the schema wants an integer. Does not descend into junctors: structural schemas declare
 * every field outside them.
 */
function prune(schema: JsonSchemaProps, v: unknown, path: string, floats: Set<string>, errors: string[], root = false): void {
  if (schema.type === 'integer' && floats.has(path)) {
    errors.push(`${path}: type must be integer (an integer outside int64 decodes to a float64)`);
  }
  if (Array.isArray(v)) {
    if (schema.items !== undefined) v.forEach((item, i) => prune(schema.items!, item, join(path, i), floats, errors));
    return;
  }
  if (!isObject(v) || schema.type !== 'object') return;
  for (const key of Object.keys(v)) {
    if (root && (key === 'apiVersion' || key === 'kind' || key === 'metadata')) continue;
    const sub = schema.properties?.[key] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
    const child = join(path, key);
    if (sub === undefined) {
      // Strict decoding reports the field whatever its value, null included.
      if (schema['x-kubernetes-preserve-unknown-fields'] === true || schema.additionalProperties === true) continue;
      errors.push(`${child}: unknown field (strict field validation)`);
      delete v[key];
      continue;
    }
    if (v[key] === null && sub.nullable !== true) {
      delete v[key];
      continue;
    }
    prune(sub, v[key], child, floats, errors);
  }
}

function checkObjectMeta(meta: unknown, namespaced: boolean): string[] {
  if (!isObject(meta)) return ['metadata: required: name'];
  const errors: string[] = [];
  for (const key of Object.keys(meta)) if (!OBJECT_META_FIELDS.has(key)) errors.push(`metadata.${key}: unknown field (strict field validation)`);
  const { name, generateName, namespace } = meta;
  if (name === undefined && generateName === undefined) errors.push('metadata.name: Required value: name or generateName is required');
  if (name !== undefined && !(typeof name === 'string' && name.length <= 253 && DNS1123_SUBDOMAIN.test(name))) {
    errors.push('metadata.name: a lowercase RFC 1123 subdomain');
  }
  if (namespaced && namespace !== undefined && !(typeof namespace === 'string' && namespace.length <= 63 && DNS1123_LABEL.test(namespace))) {
    errors.push('metadata.namespace: a lowercase RFC 1123 label');
  }
  return errors;
}
