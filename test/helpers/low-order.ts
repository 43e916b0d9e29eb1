// Low-order X25519 and X448 public keys, derived here from the curves rather than copied from
// src/noise/low-order.ts, with an RFC 7748 Montgomery ladder in bigints as a third X25519/X448
// besides OpenSSL and noble. test/noise-low-order.test.ts checks that the derivation is right.

export const P25519 = 2n ** 255n - 19n;
export const P448 = 2n ** 448n - 2n ** 224n - 1n;

export interface Curve {
  readonly name: '25519' | '448';
  readonly p: bigint;
  /** (A - 2) / 4 of the Montgomery curve y^2 = x^3 + A x^2 + x (RFC 7748 section 5). */
  readonly a24: bigint;
  readonly A: bigint;
  readonly bits: number;
  readonly bytes: number;
  /** Clamps a scalar as RFC 7748 section 5 decodeScalar does. */
  clamp(k: Uint8Array): bigint;
}

function fromLittleEndian(bytes: Uint8Array): bigint {
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
  return v;
}

export function toLittleEndian(value: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++, value >>= 8n) out[i] = Number(value & 0xffn);
  return out;
}

export const X25519: Curve = {
  name: '25519',
  p: P25519,
  A: 486662n,
  a24: 121665n,
  bits: 255,
  bytes: 32,
  clamp(k) {
    const c = Uint8Array.from(k);
    c[0]! &= 248;
    c[31]! &= 127;
    c[31]! |= 64;
    return fromLittleEndian(c);
  },
};

export const X448: Curve = {
  name: '448',
  p: P448,
  A: 156326n,
  a24: 39081n,
  bits: 448,
  bytes: 56,
  clamp(k) {
    const c = Uint8Array.from(k);
    c[0]! &= 252;
    c[55]! |= 128;
    return fromLittleEndian(c);
  },
};

function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  let r = 1n;
  base %= m;
  for (; exp > 0n; exp >>= 1n) {
    if (exp & 1n) r = (r * base) % m;
    base = (base * base) % m;
  }
  return r;
}

const mod = (a: bigint, p: bigint): bigint => ((a % p) + p) % p;

/** RFC 7748 section 5, decodeUCoordinate: X25519 ignores bit 255; values need not be < p. */
export function decodeU(curve: Curve, key: Uint8Array): bigint {
  const raw = fromLittleEndian(key);
  return mod(curve.bits === 255 ? raw & ((1n << 255n) - 1n) : raw, curve.p);
}

/** RFC 7748 section 5: the Montgomery ladder, in plain bigints. Not constant-time; tests only. */
export function ladder(curve: Curve, scalar: Uint8Array, key: Uint8Array): Uint8Array {
  const { p, a24, bits } = curve;
  const k = curve.clamp(scalar);
  const x1 = decodeU(curve, key);
  let [x2, z2, x3, z3] = [1n, 0n, x1, 1n];
  let swap = 0n;
  for (let t = BigInt(bits - 1); t >= 0n; t--) {
    const kt = (k >> t) & 1n;
    if (swap ^ kt) [x2, x3, z2, z3] = [x3, x2, z3, z2];
    swap = kt;
    const A = mod(x2 + z2, p);
    const AA = (A * A) % p;
    const B = mod(x2 - z2, p);
    const BB = (B * B) % p;
    const E = mod(AA - BB, p);
    const C = mod(x3 + z3, p);
    const D = mod(x3 - z3, p);
    const DA = (D * A) % p;
    const CB = (C * B) % p;
    x3 = mod((DA + CB) ** 2n, p);
    z3 = (x1 * mod((DA - CB) ** 2n, p)) % p;
    x2 = (AA * BB) % p;
    z2 = (E * ((AA + a24 * E) % p)) % p;
  }
  if (swap) [x2, z2] = [x3, z3];
  return toLittleEndian((x2 * modPow(z2, p - 2n, p)) % p, curve.bytes);
}

/** x(2P) from x(P) on the curve (or its twist), or null for the point at infinity. */
export function doubleU(curve: Curve, u: bigint): bigint | null {
  const { p, A } = curve;
  const den = mod(4n * u * (u * u + A * u + 1n), p);
  if (den === 0n) return null;
  return (mod((u * u - 1n) ** 2n, p) * modPow(den, p - 2n, p)) % p;
}

/** Whether u is the x-coordinate of a point on the curve itself (not its twist). */
export function onCurve(curve: Curve, u: bigint): boolean {
  const { p, A } = curve;
  const rhs = mod(u * u * u + A * u * u + u, p);
  return rhs === 0n || modPow(rhs, (p - 1n) / 2n, p) === 1n;
}

/**
 * The u-coordinates of every point of order dividing the cofactor, on the curve and its twist
 * (the point at infinity has none). For Curve25519 (cofactor 8, twist 4): 0, 1 and -1 (the two
 * that double to 0), and the two roots of x(2P) = 1 on the curve, given here from Bernstein's
 * list and checked by doubling in test/noise-low-order.test.ts. For Curve448 (4 and 4): 0, 1, -1.
 */
export const LOW_ORDER_U: Readonly<Record<'25519' | '448', readonly bigint[]>> = {
  '25519': [
    0n,
    1n,
    P25519 - 1n,
    325606250916557431795983626356110631294008115727848805560023387167927233504n,
    39382357235489614581723060781553021112529911719440698176882885853963445705823n,
  ],
  '448': [0n, 1n, P448 - 1n],
};

/**
 * Every byte string the DH decodes to one of LOW_ORDER_U: u and, where it fits below 2^bits,
 * u + p; for X25519 each also with the ignored bit 255 set. 14 for X25519, 5 for X448.
 */
export function lowOrderEncodings(curve: Curve): Uint8Array[] {
  const out: Uint8Array[] = [];
  const limit = 1n << BigInt(curve.bits);
  const highBits = curve.bits === 255 ? [0n, 1n << 255n] : [0n];
  for (const high of highBits) {
    for (const u of LOW_ORDER_U[curve.name]) {
      for (let v = u; v < limit; v += curve.p) out.push(toLittleEndian(v + high, curve.bytes));
    }
  }
  return out;
}

/** The 14 X25519 encodings, as standard base64 (how the registry writes keys). */
export const LOW_ORDER_X25519_B64: readonly string[] = lowOrderEncodings(X25519).map((k) => Buffer.from(k).toString('base64'));
