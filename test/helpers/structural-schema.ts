// The rules an apiextensions.k8s.io/v1 CustomResourceDefinition's openAPIV3Schema must meet
// for the API server to accept the CRD, as a checker that names every breach by path.
//
// Sources, quoted at each rule:
//   [docs]  Kubernetes documentation, "Extend the Kubernetes API with CustomResourceDefinitions",
//           sections "Specifying a structural schema", "Defaulting", "Field pruning" and
//           "Controlling pruning", and the JSONSchemaProps reference for x-kubernetes-*;
//   [struct] k8s.io/apiextensions-apiserver pkg/apiserver/schema/validation.go
//           (ValidateStructural, validateStructuralInvariants, validateNestedValueValidation);
//   [crd]   k8s.io/apiextensions-apiserver pkg/apis/apiextensions/validation/validation.go
//           (ValidateCustomResourceDefinitionOpenAPISchema and the v1 standard validator).
import { kubeAjv, type JsonSchemaProps } from './kube-crd.js';

const TYPES = new Set(['array', 'boolean', 'integer', 'number', 'object', 'string']);
const SCALARS = new Set(['boolean', 'integer', 'number', 'string']);
const JUNCTORS = ['allOf', 'anyOf', 'oneOf'] as const;
/**
 * The formats the API server checks (kube-openapi strfmt's default registry, the numeric
 * formats its type validator knows): any other is accepted and silently ignored, so a schema
 * that relies on it checks nothing.
 */
const KNOWN_FORMATS = new Set([
  'bsonobjectid', 'uri', 'email', 'hostname', 'ipv4', 'ipv6', 'cidr', 'mac', 'uuid', 'uuid3', 'uuid4',
  'uuid5', 'isbn', 'isbn10', 'isbn13', 'creditcard', 'ssn', 'hexcolor', 'rgbcolor', 'byte', 'password',
  'date', 'duration', 'date-time', 'datetime', 'int32', 'int64', 'float', 'double',
]);
/** The JSONSchemaProps fields of apiextensions v1: anything else is an unknown field of the CRD. */
const KNOWN_KEYWORDS = new Set([
  'id', '$schema', '$ref', 'description', 'type', 'format', 'title', 'default', 'maximum', 'exclusiveMaximum',
  'minimum', 'exclusiveMinimum', 'maxLength', 'minLength', 'pattern', 'maxItems', 'minItems', 'uniqueItems',
  'multipleOf', 'enum', 'maxProperties', 'minProperties', 'required', 'items', 'allOf', 'oneOf', 'anyOf', 'not',
  'properties', 'additionalProperties', 'patternProperties', 'dependencies', 'additionalItems', 'definitions',
  'externalDocs', 'example', 'nullable', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-embedded-resource',
  'x-kubernetes-int-or-string', 'x-kubernetes-list-map-keys', 'x-kubernetes-list-type', 'x-kubernetes-map-type',
  'x-kubernetes-validations',
]);

type Level = 'root' | 'item' | 'field';

/** Every breach of the rules in `schema`, the openAPIV3Schema of one CRD version. */
export function structuralProblems(schema: JsonSchemaProps): string[] {
  const problems: string[] = [];
  const add = (path: string, rule: string): void => void problems.push(`${path}: ${rule}`);
  node(schema, 'openAPIV3Schema', 'root', add);
  return problems;
}

function node(s: JsonSchemaProps, path: string, level: Level, add: (path: string, rule: string) => void): void {
  keywords(s, path, add);

  // [docs] "specifies a non-empty type (via type in OpenAPI) for the root, for each specified
  // field of an object node (via properties or additionalProperties in OpenAPI) and for each
  // item in an array node (via items in OpenAPI), with the exception of: a node with
  // x-kubernetes-int-or-string: true; a node with x-kubernetes-preserve-unknown-fields: true".
  const intOrString = s['x-kubernetes-int-or-string'] === true;
  const preserve = s['x-kubernetes-preserve-unknown-fields'] === true;
  if (s.type === undefined && !intOrString && !preserve) add(path, `type must not be empty (${level} level)`);
  // [struct] "must be object at the root".
  if (level === 'root' && s.type !== undefined && s.type !== 'object') add(path, 'type must be object at the root');
  // [struct] "additionalProperties ... must not be used at the root".
  if (level === 'root' && s.additionalProperties !== undefined) add(path, 'additionalProperties must not be used at the root');
  // [crd] "additionalProperties and properties are mutual exclusive".
  if (s.properties !== undefined && s.additionalProperties !== undefined && s.additionalProperties !== true) {
    add(path, 'additionalProperties and properties are mutually exclusive');
  }
  // [struct] an array node "items: must be specified".
  if (s.type === 'array' && s.items === undefined) add(path, 'items must be specified for type array');

  extensions(s, path, add);
  defaults(s, path, add);

  // [docs] "if metadata is specified, then only restrictions on metadata.name and
  // metadata.generateName are allowed" ([struct]: validateStructuralMetadataInvariants).
  const metadata = s.properties?.metadata;
  if (metadata !== undefined && (level === 'root' || s['x-kubernetes-embedded-resource'] === true)) {
    if (metadata.type !== 'object') add(`${path}.properties.metadata`, 'type must be object');
    if (level === 'root') {
      const allowed = new Set(['type', 'properties']);
      const props = Object.keys(metadata.properties ?? {});
      const other = Object.keys(metadata).filter((k) => !allowed.has(k));
      if (other.length > 0 || props.some((p) => p !== 'name' && p !== 'generateName')) {
        add(`${path}.properties.metadata`, 'must not specify anything other than name and generateName');
      }
    }
  }
  // [struct] kind and apiVersion of an object that carries metadata "must be string".
  for (const k of ['kind', 'apiVersion']) {
    const sub = s.properties?.[k];
    if (sub !== undefined && level === 'root' && sub.type !== 'string') add(`${path}.properties.${k}`, 'type must be string');
  }

  for (const [name, sub] of Object.entries(s.properties ?? {})) node(sub, `${path}.properties.${name}`, 'field', add);
  if (typeof s.additionalProperties === 'object') node(s.additionalProperties, `${path}.additionalProperties`, 'field', add);
  if (s.items !== undefined) {
    if (Array.isArray(s.items)) add(`${path}.items`, 'items must be a schema object and not an array');
    else node(s.items, `${path}.items`, 'item', add);
  }

  // Value validations under junctors.
  const nested: [JsonSchemaProps, string][] = [];
  for (const j of JUNCTORS) (s[j] ?? []).forEach((sub, i) => nested.push([sub, `${path}.${j}[${i}]`]));
  if (s.not !== undefined) nested.push([s.not, `${path}.not`]);
  const intOrStringAnyOf = intOrString && isIntOrStringPattern(s.anyOf);
  const intOrStringAllOf = intOrString && isIntOrStringPattern(s.allOf?.[0]?.anyOf);
  for (const [sub, subPath] of nested) {
    const exempt = (intOrStringAnyOf && subPath.startsWith(`${path}.anyOf[`)) || (intOrStringAllOf && subPath.startsWith(`${path}.allOf[0]`));
    junctor(sub, subPath, s, add, exempt);
  }
}

/** [crd] the v1 standard validator: keywords an apiextensions v1 schema may not use. */
function keywords(s: JsonSchemaProps, path: string, add: (path: string, rule: string) => void): void {
  for (const k of Object.keys(s)) if (!KNOWN_KEYWORDS.has(k)) add(`${path}.${k}`, 'unknown field of JSONSchemaProps');
  for (const k of ['id', '$schema', '$ref', 'definitions', 'dependencies', 'patternProperties', 'additionalItems'] as const) {
    if (s[k] !== undefined) add(`${path}.${k}`, `${k} is not supported`);
  }
  // [crd] "uniqueItems cannot be set to true since the runtime complexity becomes quadratic".
  if (s.uniqueItems === true) add(`${path}.uniqueItems`, 'uniqueItems cannot be set to true: use x-kubernetes-list-type set or map');
  if (s.type === 'null') add(`${path}.type`, 'type cannot be set to null');
  if (s.type !== undefined && !TYPES.has(s.type)) add(`${path}.type`, `type must be one of ${[...TYPES].join(', ')}`);
  if (s.format !== undefined && !KNOWN_FORMATS.has(s.format)) add(`${path}.format`, `format ${s.format} is not checked by the API server`);
  if (s.pattern !== undefined) {
    // [struct] "must be a valid regular expression": Go's RE2, which has no lookaround and no
    // backreferences; the JavaScript engine must read the pattern too, or ajv's verdicts mean
    // nothing.
    if (/\(\?[=!<]|\\[1-9]/.test(s.pattern)) add(`${path}.pattern`, 'uses lookaround or a backreference, which RE2 (Go) does not have');
    try {
      new RegExp(s.pattern, 'u');
    } catch {
      add(`${path}.pattern`, 'is not a valid regular expression');
    }
  }
  // Ours, not the API server's: an enum member of another type can never match.
  if (s.enum !== undefined && s.type !== undefined) {
    for (const e of s.enum) if (!matchesType(e, s.type)) add(`${path}.enum`, `member ${JSON.stringify(e)} is not of type ${s.type}`);
  }
}

/** [docs] JSONSchemaProps x-kubernetes-*: where each may appear and what it requires. */
function extensions(s: JsonSchemaProps, path: string, add: (path: string, rule: string) => void): void {
  // [crd] x-kubernetes-preserve-unknown-fields "must be true or undefined".
  if (s['x-kubernetes-preserve-unknown-fields'] === false) add(path, 'x-kubernetes-preserve-unknown-fields must be true or undefined');
  // [struct] validateExtensions.
  if (s['x-kubernetes-int-or-string'] === true) {
    if (s['x-kubernetes-preserve-unknown-fields'] === true) add(path, 'x-kubernetes-preserve-unknown-fields must be false if x-kubernetes-int-or-string is true');
    if (s['x-kubernetes-embedded-resource'] === true) add(path, 'x-kubernetes-embedded-resource must be false if x-kubernetes-int-or-string is true');
    if (s.type !== undefined) add(path, 'type must be empty if x-kubernetes-int-or-string is true');
  }
  // [struct] "must be object if x-kubernetes-embedded-resource is true"; "properties must not
  // be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields".
  if (s['x-kubernetes-embedded-resource'] === true) {
    if (s.type !== 'object') add(path, 'type must be object if x-kubernetes-embedded-resource is true');
    if (s['x-kubernetes-preserve-unknown-fields'] !== true && Object.keys(s.properties ?? {}).length === 0) {
      add(path, 'properties must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields');
    }
  }

  const listType = s['x-kubernetes-list-type'];
  const mapKeys = s['x-kubernetes-list-map-keys'];
  if (listType !== undefined) {
    // [docs] "This extension must only be used on lists and may have 3 possible values".
    if (s.type !== 'array') add(path, 'x-kubernetes-list-type may only be used on type array');
    if (!['atomic', 'set', 'map'].includes(listType)) add(path, 'x-kubernetes-list-type must be atomic, set or map');
    const items = s.items;
    // [docs] set: "the items of the list must be scalars (or lists or maps that are atomic)".
    if (listType === 'set' && items !== undefined && !SCALARS.has(items.type ?? '') && items['x-kubernetes-map-type'] !== 'atomic' && items['x-kubernetes-list-type'] !== 'atomic') {
      add(path, 'x-kubernetes-list-type set needs scalar (or atomic) items');
    }
    if (listType === 'map') {
      // [docs] "x-kubernetes-list-type: map ... items must be objects"; x-kubernetes-list-map-keys
      // "the values specified for this attribute must be a scalar typed field of the child
      // structure (no nesting is supported). The properties specified must either be required
      // or have a default value, to ensure those properties are present for all list items."
      if (items?.type !== 'object') add(path, 'x-kubernetes-list-type map needs items of type object');
      if (mapKeys === undefined || mapKeys.length === 0) add(path, 'x-kubernetes-list-type map needs x-kubernetes-list-map-keys');
      for (const key of mapKeys ?? []) {
        const field = items?.properties?.[key];
        if (field === undefined) add(path, `x-kubernetes-list-map-keys: ${key} is not a property of the items`);
        else {
          if (!SCALARS.has(field.type ?? '')) add(path, `x-kubernetes-list-map-keys: ${key} must be a scalar`);
          if (!(items?.required ?? []).includes(key) && field.default === undefined) {
            add(path, `x-kubernetes-list-map-keys: ${key} must be required or have a default`);
          }
        }
      }
    }
  }
  // [docs] "This tag MUST only be used on lists that have the x-kubernetes-list-type extension
  // set to map".
  if (mapKeys !== undefined && listType !== 'map') add(path, 'x-kubernetes-list-map-keys needs x-kubernetes-list-type map');
  const mapType = s['x-kubernetes-map-type'];
  if (mapType !== undefined) {
    if (s.type !== 'object') add(path, 'x-kubernetes-map-type may only be used on type object');
    if (mapType !== 'granular' && mapType !== 'atomic') add(path, 'x-kubernetes-map-type must be granular or atomic');
  }
}

/**
 * [docs] Defaulting: "Default values must be pruned (with the exception of defaults for
 * metadata fields) and must validate against a provided schema"; "Defaults ... are not allowed
 * in metadata"; [struct] a default is forbidden inside junctors (checked in junctor()).
 */
function defaults(s: JsonSchemaProps, path: string, add: (path: string, rule: string) => void): void {
  if (s.default === undefined) return;
  if (path.includes('.properties.metadata')) add(path, 'default is not allowed in metadata');
  const { default: value, ...rest } = s;
  const valid = kubeAjv().compile(rest);
  if (!valid(structuredClone(value))) add(path, `default ${JSON.stringify(value)} does not validate against its schema`);
  const unknown = unknownFields(s, value, '');
  if (unknown.length > 0) add(path, `default is not pruned: ${unknown.join(', ')}`);
}

function unknownFields(s: JsonSchemaProps, v: unknown, at: string): string[] {
  if (Array.isArray(v)) return s.items === undefined ? [] : v.flatMap((item, i) => unknownFields(s.items!, item, `${at}[${i}]`));
  if (typeof v !== 'object' || v === null || s['x-kubernetes-preserve-unknown-fields'] === true) return [];
  return Object.entries(v).flatMap(([k, item]) => {
    const sub = s.properties?.[k] ?? (typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined);
    return sub === undefined ? [`${at}.${k}`] : unknownFields(sub, item, `${at}.${k}`);
  });
}

/**
 * [docs] "does not set description, type, default, additionalProperties, nullable within an
 * allOf, anyOf, oneOf or not, with the exception of the two pattern for
 * x-kubernetes-int-or-string: true"; "for each field in an object and each item in an array
 * which is specified within any of an allOf, anyOf, oneOf or not, the schema also specifies the
 * field/item outside of those logical junctors". [struct] adds title, externalDocs, every
 * x-kubernetes-* extension and `metadata` ("must not be specified in a nested context").
 */
function junctor(s: JsonSchemaProps, path: string, outside: JsonSchemaProps | undefined, add: (path: string, rule: string) => void, intOrStringExempt = false): void {
  keywords(s, path, add);
  const forbidden = ['description', 'default', 'additionalProperties', 'nullable', 'title', 'externalDocs'];
  if (!intOrStringExempt) forbidden.push('type');
  for (const k of forbidden) if (s[k] !== undefined && !(k === 'nullable' && s[k] === false)) add(`${path}.${k}`, `${k} must not be set within allOf, anyOf, oneOf or not`);
  for (const k of Object.keys(s)) if (k.startsWith('x-kubernetes-')) add(`${path}.${k}`, `${k} must not be set within allOf, anyOf, oneOf or not`);
  for (const [name, sub] of Object.entries(s.properties ?? {})) {
    if (name === 'metadata') add(`${path}.properties.metadata`, 'must not be specified in a nested context');
    const out = outside?.properties?.[name];
    if (out === undefined) add(`${path}.properties.${name}`, 'is specified in a junctor but not outside it');
    junctor(sub, `${path}.properties.${name}`, out, add);
  }
  if (s.items !== undefined) {
    if (outside?.items === undefined) add(`${path}.items`, 'is specified in a junctor but not outside it');
    junctor(s.items, `${path}.items`, outside?.items, add);
  }
  for (const j of JUNCTORS) (s[j] ?? []).forEach((sub, i) => junctor(sub, `${path}.${j}[${i}]`, outside, add));
  if (s.not !== undefined) junctor(s.not, `${path}.not`, outside, add);
}

function isIntOrStringPattern(anyOf: JsonSchemaProps[] | undefined): boolean {
  return anyOf !== undefined && anyOf.length === 2 && anyOf[0]?.type === 'integer' && anyOf[1]?.type === 'string' && Object.keys(anyOf[0]).length === 1 && Object.keys(anyOf[1]).length === 1;
}

function matchesType(v: unknown, type: string): boolean {
  switch (type) {
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    case 'boolean':
      return typeof v === 'boolean';
    case 'array':
      return Array.isArray(v);
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v);
    default:
      return false;
  }
}
