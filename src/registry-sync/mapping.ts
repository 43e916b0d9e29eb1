/**
 * What a mapping is, for every reader of hand-written YAML (registry, policy, configuration).
 * Here, below all of them, so that they agree.
 *
 * yaml's toJS turns a YAML mapping into a plain object, but the YAML 1.1 tags it resolves by
 * default turn other nodes into objects too: `!!omap` and `!!pairs` into a Map, `!!set` into a
 * Set, `!!binary` into a Uint8Array, `!!timestamp` into a Date. None has the mapping's keys as
 * properties: taken for a mapping, `require: !!omap [{clearance: secrets-only}]` reads as a
 * mapping with no keys, a requirement silently dropped. Only a plain object is a mapping.
 */

/** A mapping as toJS makes one: a plain object (Object.prototype or no prototype). */
export function isYamlMapping(v: unknown): v is Readonly<Record<string, unknown>> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * What a non-scalar YAML value is, by type only (values may be secret): `a mapping`, `a list`,
 * or the tag that made it something else, with the fix. Undefined for a scalar or null.
 */
export function describeYamlObject(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Date) return 'a timestamp';
  if (v instanceof Map) return 'an !!omap or !!pairs (write a plain mapping, without the tag)';
  if (v instanceof Set) return 'a !!set (write a plain mapping or list, without the tag)';
  if (ArrayBuffer.isView(v)) return '!!binary data (write the value without the tag)';
  return isYamlMapping(v) ? 'a mapping' : 'a tagged value (write it without its !! tag)';
}

/**
 * The one answer to a key written with no value (`key:`, `key: ~`, `key: null`), for every
 * reader of these files. It is refused, never read as "absent": a template that renders an
 * empty value (`agents: {{ .Values.agents }}`) would otherwise drop a check or widen access
 * without a word (`agents: ~` selecting every caller, `revoked:` keeping a peer live).
 */
export const NULL_VALUE_MESSAGE = 'is empty (null): remove the key to use its default, or give it a value';

/**
 * What a scalar YAML value is, faithfully and safe to print: `.inf`, `.nan` and `-0` as
 * such (JSON would print the first two as `null`), a string quoted and cut at 60 characters,
 * a string that looks like a key not shown. Objects are described by type
 * (describeYamlObject). Only for values that are not secret: a secrets file's values are
 * never passed here.
 */
export function describeYamlValue(value: unknown, looksLikeKey: (text: string) => boolean): string {
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return '.nan (not a number)';
    if (value === Infinity) return '.inf (infinity, or a number too large to hold)';
    if (value === -Infinity) return '-.inf (minus infinity, or a number too large to hold)';
    if (Object.is(value, -0)) return '-0';
    return String(value);
  }
  if (typeof value === 'string') {
    if (value === '') return 'an empty string';
    if (looksLikeKey(value)) return 'a string that looks like a key (not shown)';
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  }
  if (typeof value === 'boolean') return `${value} (a boolean)`;
  if (typeof value === 'bigint') return value.toString();
  if (value === null || value === undefined) return 'nothing (null)';
  if (typeof value === 'object') return describeYamlObject(value)!;
  return `a ${typeof value}`;
}
