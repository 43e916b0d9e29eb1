/** HMAC-HASH and HKDF exactly as spec section 4.3 defines them, over any HashFunction. */
import type { HashFunction } from './primitives.js';

const IPAD = 0x36;
const OPAD = 0x5c;

/** HMAC-HASH(key, data) from RFC 2104, with the hash's own BLOCKLEN. */
export function hmac(hash: HashFunction, key: Uint8Array, ...data: Uint8Array[]): Uint8Array {
  const block = new Uint8Array(hash.blockLen);
  block.set(key.length > hash.blockLen ? hash.hash(key) : key);
  const inner = new Uint8Array(hash.blockLen);
  const outer = new Uint8Array(hash.blockLen);
  for (let i = 0; i < hash.blockLen; i++) {
    inner[i] = block[i]! ^ IPAD;
    outer[i] = block[i]! ^ OPAD;
  }
  const result = hash.hash(outer, hash.hash(inner, ...data));
  block.fill(0);
  inner.fill(0);
  outer.fill(0);
  return result;
}

/**
 * A HashFunction whose backend also computes HMAC-HASH itself, faster than hmac() above.
 * hkdf() prefers it. It is an optional extension rather than a member of HashFunction
 * because the spec defines HMAC over HASH: a backend owes only the hash, and hmac() above
 * stays the reference. The noble backend runs hmac(), the native backend its own, and the
 * cacophony vectors check both.
 */
export interface HashWithHmac extends HashFunction {
  hmac(key: Uint8Array, ...data: Uint8Array[]): Uint8Array;
}

function hasHmac(hash: HashFunction): hash is HashWithHmac {
  return typeof (hash as Partial<HashWithHmac>).hmac === 'function';
}

/** HMAC-HASH(key, data): the backend's own when it has one. */
function prf(hash: HashFunction, key: Uint8Array, a: Uint8Array, b?: Uint8Array): Uint8Array {
  if (hasHmac(hash)) return b === undefined ? hash.hmac(key, a) : hash.hmac(key, a, b);
  return b === undefined ? hmac(hash, key, a) : hmac(hash, key, a, b);
}

const ONE = Uint8Array.of(0x01);
const TWO = Uint8Array.of(0x02);
const THREE = Uint8Array.of(0x03);

/**
 * HKDF(chaining_key, input_key_material, num_outputs): two or three HASHLEN outputs.
 * `inputKeyMaterial` is empty or 32 bytes or DHLEN bytes, as the spec requires of callers.
 */
export function hkdf(hash: HashFunction, chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, numOutputs: 2): [Uint8Array, Uint8Array];
export function hkdf(hash: HashFunction, chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, numOutputs: 3): [Uint8Array, Uint8Array, Uint8Array];
export function hkdf(hash: HashFunction, chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, numOutputs: 2 | 3): Uint8Array[] {
  const tempKey = prf(hash, chainingKey, inputKeyMaterial);
  const output1 = prf(hash, tempKey, ONE);
  const output2 = prf(hash, tempKey, output1, TWO);
  if (numOutputs === 2) {
    tempKey.fill(0);
    return [output1, output2];
  }
  const output3 = prf(hash, tempKey, output2, THREE);
  tempKey.fill(0);
  return [output1, output2, output3];
}
