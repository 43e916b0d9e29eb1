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
  const tempKey = hmac(hash, chainingKey, inputKeyMaterial);
  const output1 = hmac(hash, tempKey, ONE);
  const output2 = hmac(hash, tempKey, output1, TWO);
  if (numOutputs === 2) {
    tempKey.fill(0);
    return [output1, output2];
  }
  const output3 = hmac(hash, tempKey, output2, THREE);
  tempKey.fill(0);
  return [output1, output2, output3];
}
