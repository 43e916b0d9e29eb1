// Low-order public keys (PROTOCOL.md section 2): which byte strings they are, checked from the
// curve equations and a third X25519; what OpenSSL and noble do with them; that the predicate
// refuses exactly those; and that a handshake in which any DH output is all zeros fails with a
// typed error on every backend and AEAD engine, in both roles, for static and ephemeral keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, diffieHellman, randomBytes } from 'node:crypto';
import { x25519 } from '@noble/curves/ed25519.js';
import { x448 } from '@noble/curves/ed448.js';
import {
  BadKeyError,
  HandshakeState,
  LowOrderKeyError,
  isLowOrderPublicKey,
  nativeBackend,
  type CryptoBackend,
  type KeyPair,
} from '../src/noise/index.js';
import { CRYPTO_ENGINES } from './helpers/crypto-engines.js';
import { LOW_ORDER_U, X25519, X448, doubleU, ladder, lowOrderEncodings, onCurve, type Curve } from './helpers/low-order.js';
import { claimedKeyPair, predictingBackend } from './helpers/attacker.js';

const IK = 'Noise_IK_25519_ChaChaPoly_BLAKE2s';
const PROLOGUE = new TextEncoder().encode('noisemesh/1\0cluster.local');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const zeros = (n: number): string => '00'.repeat(n);

/** Coefficients, highest degree first, of a polynomial over F_p divided by (u - root). */
function divideByRoot(poly: readonly bigint[], root: bigint, p: bigint): bigint[] {
  const out: bigint[] = [];
  let carry = 0n;
  for (const c of poly) {
    carry = (((carry * root) % p) + c + p) % p;
    out.push(carry);
  }
  assert.equal(out.pop(), 0n, 'not a root');
  return out;
}

function isSquare(v: bigint, p: bigint): boolean {
  let r = 1n;
  let b = ((v % p) + p) % p;
  if (b === 0n) return true;
  for (let e = (p - 1n) / 2n; e > 0n; e >>= 1n) {
    if (e & 1n) r = (r * b) % p;
    b = (b * b) % p;
  }
  return r === 1n;
}

test('the low-order u-coordinates are all the curve has: derived from its doubling formula', () => {
  for (const curve of [X25519, X448]) {
    const { p } = curve;
    // Order 2: u = 0 doubles to infinity. Order 4: x(2P) = 0 exactly when (u^2 - 1)^2 = 0,
    // so u = 1 or u = -1; one lies on the curve, the other on its twist.
    assert.equal(doubleU(curve, 0n), null);
    assert.equal(doubleU(curve, 1n), 0n);
    assert.equal(doubleU(curve, p - 1n), 0n);
    assert.notEqual(onCurve(curve, 1n), onCurve(curve, p - 1n), `${curve.name}: 1 and -1 on different sides`);
  }
  // Curve25519 has cofactor 8 (its twist 4): order 8 means x(2P) = 1, the curve's order-4 u.
  // x(2P) = 1 is the quartic u^4 - 4u^3 - (4A + 2)u^2 - 4u + 1 = 0; its roots in F_p must be
  // exactly the two order-8 u we list, so the quotient by both has no root (a non-square
  // discriminant).
  const { p, A } = X25519;
  assert.equal(onCurve(X25519, 1n), true);
  const order8 = LOW_ORDER_U['25519'].slice(3);
  assert.equal(order8.length, 2);
  let quartic = [1n, -4n, -(4n * A + 2n), -4n, 1n];
  for (const u of order8) {
    assert.equal(doubleU(X25519, u), 1n);
    assert.equal(onCurve(X25519, u), true);
    quartic = divideByRoot(quartic, u, p);
  }
  const [a, b, c] = quartic as [bigint, bigint, bigint];
  assert.equal(isSquare(b * b - 4n * a * c, p), false, 'the quartic has a third root in F_p');
  // Curve448 has cofactor 4 on both sides: 0, 1 and -1 are all.
  assert.deepEqual(LOW_ORDER_U['448'], [0n, 1n, X448.p - 1n]);
});

test('the reference ladder agrees with OpenSSL and noble on real keys (RFC 7748 test vector too)', () => {
  // RFC 7748 section 5.2, the first X25519 vector.
  const k = Buffer.from('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4', 'hex');
  const u = Buffer.from('e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c', 'hex');
  assert.equal(hex(ladder(X25519, k, u)), 'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552');
  for (const { label, backend } of CRYPTO_ENGINES) {
    for (const name of ['25519', '448'] as const) {
      const dh = backend.dh(name);
      const curve = name === '25519' ? X25519 : X448;
      for (let i = 0; i < 3; i++) {
        const a = dh.generateKeyPair();
        const b = dh.generateKeyPair();
        const shared = ladder(curve, a.privateKey, b.publicKey);
        assert.equal(hex(dh.dh(a, b.publicKey)), hex(shared), `${label} X${name}`);
        assert.notEqual(hex(shared), zeros(curve.bytes));
      }
    }
  }
});

/** Raw OpenSSL X25519/X448, without our backend: what node:crypto does with `publicKey`. */
function opensslDh(curve: Curve, privateKey: Uint8Array, publicKey: Uint8Array): Buffer {
  const crv = curve.name === '25519' ? 'X25519' : 'X448';
  const prefix = curve.name === '25519' ? '302e020100300506032b656e04220420' : '3046020100300506032b656f043a0438';
  return diffieHellman({
    privateKey: createPrivateKey({ key: Buffer.concat([Buffer.from(prefix, 'hex'), privateKey]), format: 'der', type: 'pkcs8' }),
    publicKey: createPublicKey({ key: { kty: 'OKP', crv, x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' }),
  });
}

for (const curve of [X25519, X448]) {
  const encodings = lowOrderEncodings(curve);

  test(`X${curve.name}: ${encodings.length} low-order encodings, each all zeros with any scalar; random keys are not`, () => {
    assert.equal(encodings.length, curve.name === '25519' ? 14 : 5);
    assert.equal(new Set(encodings.map(hex)).size, encodings.length, 'distinct');
    for (const key of encodings) {
      for (let i = 0; i < 4; i++) {
        assert.equal(hex(ladder(curve, randomBytes(curve.bytes), key)), zeros(curve.bytes), hex(key));
      }
    }
    for (let i = 0; i < 20; i++) {
      assert.notEqual(hex(ladder(curve, randomBytes(curve.bytes), randomBytes(curve.bytes))), zeros(curve.bytes));
    }
  });

  test(`X${curve.name}: OpenSSL and noble refuse to derive from them; both backends answer all zeros, identically`, () => {
    const noble = curve.name === '25519' ? x25519 : x448;
    for (const key of encodings) {
      const scalar = randomBytes(curve.bytes);
      // Today's libraries: each has its own all-zero check, which our backends do not rely on.
      assert.throws(() => opensslDh(curve, scalar, key), { code: 'ERR_OSSL_FAILED_DURING_DERIVATION' }, hex(key));
      assert.throws(() => noble.getSharedSecret(scalar, key), /invalid private or public key/, hex(key));
      for (const { label, backend } of CRYPTO_ENGINES) {
        const dh = backend.dh(curve.name);
        assert.equal(hex(dh.dh(dh.generateKeyPair(), key)), zeros(curve.bytes), `${label}: ${hex(key)}`);
      }
    }
  });

  test(`X${curve.name}: isLowOrderPublicKey refuses exactly the ${encodings.length} encodings`, () => {
    const set = new Set(encodings.map(hex));
    for (const key of encodings) {
      assert.equal(isLowOrderPublicKey(curve.name, key), true, hex(key));
      // Every key one bit away is refused only if it is itself in the set (bit 255 of X25519).
      for (let bit = 0; bit < curve.bytes * 8; bit++) {
        const near = Uint8Array.from(key);
        near[bit >> 3]! ^= 1 << (bit & 7);
        assert.equal(isLowOrderPublicKey(curve.name, near), set.has(hex(near)), `${hex(key)} bit ${bit}`);
      }
    }
    const dh = nativeBackend.dh(curve.name);
    for (let i = 0; i < 500; i++) {
      assert.equal(isLowOrderPublicKey(curve.name, randomBytes(curve.bytes)), false);
      if (i < 100) assert.equal(isLowOrderPublicKey(curve.name, dh.generateKeyPair().publicKey), false);
    }
    assert.throws(() => isLowOrderPublicKey(curve.name, new Uint8Array(curve.bytes - 1)), BadKeyError);
  });
}

function responderFor(backend: CryptoBackend, staticKeyPair: KeyPair, allowAllZeroDh = false): HandshakeState {
  return new HandshakeState({ protocol: IK, initiator: false, backend, prologue: PROLOGUE, staticKeyPair, DANGEROUS_allowAllZeroDh: allowAllZeroDh });
}

function assertLowOrder(fn: () => unknown, token: string, remoteKey: string, what: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof LowOrderKeyError, `${what}: ${String(err)}`);
    assert.equal(err.code, 'NOISE_LOW_ORDER');
    assert.deepEqual([err.token, err.remoteKey], [token, remoteKey], what);
    return true;
  });
}

const LOW_X25519 = lowOrderEncodings(X25519);

for (const { label, backend } of CRYPTO_ENGINES) {
  test(`${label}: an initiator refuses a low-order responder static key (es is all zeros)`, () => {
    const s = backend.dh('25519').generateKeyPair();
    for (const rs of LOW_X25519) {
      const initiator = new HandshakeState({ protocol: IK, initiator: true, backend, prologue: PROLOGUE, staticKeyPair: s, remoteStaticKey: rs });
      assertLowOrder(() => initiator.writeMessage(), 'es', 'static', hex(rs));
      // Nothing was committed: it fails the same way again.
      assertLowOrder(() => initiator.writeMessage(), 'es', 'static', hex(rs));
    }
  });

  test(`${label}: a responder refuses a low-order initiator ephemeral, and still reads the genuine message`, () => {
    const dh = backend.dh('25519');
    const rStatic = dh.generateKeyPair();
    for (const e of LOW_X25519) {
      const initiator = new HandshakeState({ protocol: IK, initiator: true, backend, prologue: PROLOGUE, staticKeyPair: dh.generateKeyPair(), remoteStaticKey: rStatic.publicKey });
      const { message } = initiator.writeMessage(Buffer.from('p1'));
      const forged = Uint8Array.from(message);
      forged.set(e, 0);
      const responder = responderFor(backend, rStatic);
      assertLowOrder(() => responder.readMessage(forged), 'es', 'ephemeral', hex(e));
      assert.equal(Buffer.from(responder.readMessage(message).payload).toString(), 'p1');
    }
  });

  test(`${label}: an initiator with no private key, claiming a low-order static key, is refused (ss); without the rule it would pass`, () => {
    const rStatic = backend.dh('25519').generateKeyPair();
    for (const key of LOW_X25519) {
      const claimed = claimedKeyPair(key);
      const attacker = new HandshakeState({
        protocol: IK,
        initiator: true,
        backend: predictingBackend(backend, claimed),
        prologue: PROLOGUE,
        staticKeyPair: claimed,
        remoteStaticKey: rStatic.publicKey,
        DANGEROUS_allowAllZeroDh: true,
      });
      const { message } = attacker.writeMessage(Buffer.from('let me in'));
      assertLowOrder(() => responderFor(backend, rStatic).readMessage(message), 'ss', 'static', hex(key));
      // The attack is real: a responder that mixes the zeros takes the impostor for `key`.
      const lax = responderFor(backend, rStatic, true);
      assert.equal(Buffer.from(lax.readMessage(message).payload).toString(), 'let me in');
      assert.equal(hex(lax.remoteStaticKey!), hex(key));
    }
  });

  test(`${label}: an initiator refuses a responder's low-order ephemeral (ee)`, () => {
    const dh = backend.dh('25519');
    const rStatic = dh.generateKeyPair();
    for (const e of LOW_X25519) {
      const initiator = new HandshakeState({ protocol: IK, initiator: true, backend, prologue: PROLOGUE, staticKeyPair: dh.generateKeyPair(), remoteStaticKey: rStatic.publicKey });
      const claimedE = claimedKeyPair(e);
      const responder = new HandshakeState({
        protocol: IK,
        initiator: false,
        backend: predictingBackend(backend, claimedE),
        prologue: PROLOGUE,
        staticKeyPair: rStatic,
        DANGEROUS_fixedEphemeralForTestVectors: claimedE,
        DANGEROUS_allowAllZeroDh: true,
      });
      responder.readMessage(initiator.writeMessage().message);
      const { message } = responder.writeMessage();
      assertLowOrder(() => initiator.readMessage(message), 'ee', 'ephemeral', hex(e));
    }
  });
}
