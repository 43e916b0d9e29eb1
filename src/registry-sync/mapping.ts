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
