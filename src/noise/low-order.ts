/**
 * Low-order public keys, and the all-zero DH output they cause.
 *
 * X25519 and X448 multiply by a clamped scalar, a multiple of the cofactor (8, 4), so a point
 * whose order divides the cofactor yields the all-zero output whatever the private key is:
 * anyone can predict it, and a handshake that mixes it authenticates nobody. The Noise spec
 * lets DH return those zeros (12.1, 12.2); NMP/1 refuses the keys (PROTOCOL.md section 2), in
 * the registry through `isLowOrderPublicKey` and in every handshake through `isAllZero` on
 * each DH output (handshake-state.ts), so a key that slipped past the first still fails.
 *
 * The u-coordinates of low-order points, as RFC 7748 decodes them (bit 255 of an X25519 key
 * ignored, values reduced mod p), from Bernstein's list (cr.yp.to/ecdh.html#validate) and
 * libsodium's blocklist; test/noise-low-order.test.ts checks each against both backends and
 * against the curve's doubling formula.
 */
import { BadKeyError } from './errors.js';
import type { DhName } from './primitives.js';

const P25519 = 2n ** 255n - 19n;
const P448 = 2n ** 448n - 2n ** 224n - 1n;

/**
 * Curve25519 (order 8 * prime) and its twist (order 4 * prime): 0 (order 2), 1 (order 4),
 * the two u of the order-8 points, p-1 (order 4, on the twist), and p and p+1, the only
 * non-canonical encodings of a low-order u below 2^255 (0 + p and 1 + p). Each is also
 * refused with bit 255 set, which X25519 ignores: 14 strings of 32 bytes.
 */
const X25519_LOW_ORDER_U = [
  0n,
  1n,
  325606250916557431795983626356110631294008115727848805560023387167927233504n,
  39382357235489614581723060781553021112529911719440698176882885853963445705823n,
  P25519 - 1n,
  P25519,
  P25519 + 1n,
] as const;

/**
 * Curve448 (order 4 * prime) and its twist (order 4 * prime): 0, 1, p-1, and the
 * non-canonical p and p+1. X448 uses all 448 bits, so there is no ignored bit: 5 strings.
 */
const X448_LOW_ORDER_U = [0n, 1n, P448 - 1n, P448, P448 + 1n] as const;

function littleEndian(value: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++, value >>= 8n) out[i] = Number(value & 0xffn);
  return out;
}

const TABLES: Readonly<Record<DhName, { readonly len: number; readonly lastByteMask: number; readonly encodings: readonly Uint8Array[] }>> = {
  '25519': { len: 32, lastByteMask: 0x7f, encodings: X25519_LOW_ORDER_U.map((u) => littleEndian(u, 32)) },
  '448': { len: 56, lastByteMask: 0xff, encodings: X448_LOW_ORDER_U.map((u) => littleEndian(u, 56)) },
};

/**
 * Whether `key` encodes a low-order point on `dh`'s curve or its twist, in any of its
 * encodings (for X25519 the 14 above). Looks at every byte of every candidate whatever it
 * finds, as libsodium does; the keys are public, but a check that does not branch on them
 * costs nothing here. Throws BadKeyError for a key of the wrong length, which no caller
 * should be asking about.
 */
export function isLowOrderPublicKey(dh: DhName, key: Uint8Array): boolean {
  const { len, lastByteMask, encodings } = TABLES[dh];
  if (key.length !== len) throw new BadKeyError(`X${dh} public key must be ${len} bytes, got ${key.length}`);
  let found = 0;
  for (const candidate of encodings) {
    let diff = (key[len - 1]! & lastByteMask) ^ candidate[len - 1]!;
    for (let i = 0; i < len - 1; i++) diff |= key[i]! ^ candidate[i]!;
    found |= diff === 0 ? 1 : 0;
  }
  return found === 1;
}

/** Whether every byte is zero, ORing them all rather than stopping at the first that is not. */
export function isAllZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i]!;
  return acc === 0;
}
