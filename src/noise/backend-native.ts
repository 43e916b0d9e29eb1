/**
 * The `native` backend: OpenSSL for every primitive, through node:crypto, and for the AEAD
 * through our own addon when it is built (aead-openssl.ts). The default, because OpenSSL's
 * assembly beats pure JS everywhere we measured (bench/README.md).
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hash as oneShotHash,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { BadKeyError } from './errors.js';
import { aead, defaultAeadEngine, type AeadEngine } from './aead-openssl.js';
import { memo } from './memo.js';
import { isLowOrderPublicKey } from './low-order.js';
import { hmac, type HashWithHmac } from './hkdf.js';
import type {
  CipherName,
  CryptoBackend,
  DhFunction,
  DhName,
  HashName,
  KeyPair,
} from './primitives.js';

/**
 * How raw RFC 7748 keys enter OpenSSL, and why not the obvious ways (figures from this
 * repository's bench/README.md machine):
 *
 * - Public keys go in as JWK, which node turns into one EVP_PKEY_new_raw_public_key call
 *   (~5 µs). The same key as SPKI DER runs OpenSSL 3's generic decoder (~65 µs, more than
 *   the DH it is for).
 * - Private keys go in as JWK too (~20 µs, including OpenSSL deriving the public key, the
 *   scalar multiplication key generation needs anyway) and the public half
 *   comes back out as JWK (~1 µs). As PKCS#8 DER the import alone costs ~300 µs. A private
 *   JWK must name `x`, the very key we want derived; node reads only `d` and derives `x`
 *   itself, so we pass an empty `x`, and check once per curve, with RFC 7748's test key,
 *   that this node still behaves so. If not, DER: slow, but right.
 * - Not `generateKeyPairSync` followed by `export({ format: 'jwk' })`, though it is as fast:
 *   on node 20 it deadlocks now and then. The export holds the key's mutex while it
 *   allocates a string; that allocation can run a GC that destroys the finished key
 *   generation job, whose destructor takes the same mutex (bench/README.md, "deadlock").
 *   Imported keys have no such job.
 */
const CURVES = {
  '25519': {
    crv: 'X25519',
    len: 32,
    pkcs8: Buffer.from('302e020100300506032b656e04220420', 'hex'),
    // RFC 7748 section 6.1, Alice.
    check: {
      d: '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a',
      x: '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
    },
  },
  '448': {
    crv: 'X448',
    len: 56,
    pkcs8: Buffer.from('3046020100300506032b656f043a0438', 'hex'),
    // RFC 7748 section 6.2, Alice.
    check: {
      d: '9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b',
      x: '9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0',
    },
  },
} as const;

type Curve = (typeof CURVES)[DhName];

interface PrivateKeyState {
  readonly object: KeyObject;
  /** DH calls made with this key so far. */
  uses: number;
  /** Public keys this key has met: null after one DH, the shared secret after two. */
  met: WeakMap<Uint8Array, Uint8Array | null> | null;
}

/**
 * A party's ephemeral key takes part in at most two DH per handshake, ee and one of es/se
 * (spec 7.3 allows each DH token once), so a key used more often than this is static.
 * Getting this wrong would only change what dh() remembers, never what it returns.
 */
const EPHEMERAL_DH_USES = 2;

class NativeDh implements DhFunction {
  readonly dhLen: number;
  private readonly curve: Curve;
  /** Whether importPrivate may use JWK; settled by the first import (see CURVES). */
  private jwkPrivateImport: boolean | undefined;
  /**
   * A key's OpenSSL object, kept for as long as its bytes live: building one costs as much
   * as using it. Keyed by the byte array, so a key pair that is dropped takes its entry
   * with it; and so a key is taken to be immutable: a new key comes in a new array (our
   * callers wipe a key only when done with it). A wiped key's object lingers until the
   * collector runs; JavaScript has no way to wipe it sooner (see CipherState.wipe).
   */
  private readonly privateKeys = new WeakMap<Uint8Array, PrivateKeyState>();
  private readonly publicObjects = new WeakMap<Uint8Array, KeyObject>();

  constructor(readonly name: DhName) {
    this.curve = CURVES[name];
    this.dhLen = this.curve.len;
  }

  generateKeyPair(): KeyPair {
    return this.keyPairFromPrivate(randomBytes(this.dhLen));
  }

  keyPairFromPrivate(privateKey: Uint8Array): KeyPair {
    this.checkLength(privateKey, 'private');
    const publicJwk = createPublicKey(this.privateKey(privateKey).object).export({ format: 'jwk' });
    return { privateKey, publicKey: fromBase64Url(publicJwk.x) };
  }

  /**
   * DH(key_pair, public_key), remembering the result for a pair of keys that meet again:
   * in practice our static key and a peer's, the `ss` of IK, which is the same for every
   * handshake between two proxies. wireguard-go precomputes it per peer for the same
   * reason; here it saves one X25519 of the ten in each IK handshake pair. Only key pairs
   * past EPHEMERAL_DH_USES take part, and a pair's result is kept only when the same two
   * key arrays meet a second time, so ephemeral secrets are never retained. The result
   * lives as long as both arrays do, as the key objects above.
   */
  dh(keyPair: KeyPair, publicKey: Uint8Array): Uint8Array {
    this.checkLength(publicKey, 'public');
    // The spec's output for a low-order key (12.1, 12.2), by our own test rather than by
    // OpenSSL's refusal to derive it, so that both backends agree whatever their libraries do.
    if (isLowOrderPublicKey(this.name, publicKey)) return new Uint8Array(this.dhLen);
    const key = this.privateKey(keyPair.privateKey);
    const met = key.uses++ < EPHEMERAL_DH_USES ? null : (key.met ??= new WeakMap());
    const known = met?.get(publicKey);
    if (known) return new Uint8Array(known);
    let shared: Uint8Array;
    try {
      shared = diffieHellman({ privateKey: key.object, publicKey: this.publicObject(publicKey) });
    } catch (err) {
      // OpenSSL refuses to derive an all-zero output. Every key that gives one was answered
      // above; this stays as a second line should the two ever disagree.
      if ((err as { code?: string }).code !== 'ERR_OSSL_FAILED_DURING_DERIVATION') throw err;
      shared = new Uint8Array(this.dhLen);
    }
    // First meeting: note it (null). Second: keep a copy, since callers wipe what we return.
    met?.set(publicKey, known === null ? new Uint8Array(shared) : null);
    return shared;
  }

  private privateKey(raw: Uint8Array): PrivateKeyState {
    let key = this.privateKeys.get(raw);
    if (key === undefined) {
      key = { object: this.importPrivate(raw), uses: 0, met: null };
      this.privateKeys.set(raw, key);
    }
    return key;
  }

  /**
   * Either way the key passes through memory we cannot wipe (a base64 string, a Buffer the
   * collector frees), like the KeyObject it becomes.
   */
  private importPrivate(raw: Uint8Array): KeyObject {
    this.jwkPrivateImport ??= jwkPrivateImportDerivesPublicKey(this.curve);
    if (this.jwkPrivateImport) return importPrivateJwk(this.curve, toBase64Url(raw));
    return createPrivateKey({ key: Buffer.concat([this.curve.pkcs8, raw]), format: 'der', type: 'pkcs8' });
  }

  private publicObject(raw: Uint8Array): KeyObject {
    let object = this.publicObjects.get(raw);
    if (object === undefined) {
      object = createPublicKey({ key: { kty: 'OKP', crv: this.curve.crv, x: toBase64Url(raw) }, format: 'jwk' });
      this.publicObjects.set(raw, object);
    }
    return object;
  }

  private checkLength(key: Uint8Array, kind: string): void {
    if (key.length !== this.dhLen) {
      throw new BadKeyError(`${this.name} ${kind} key must be ${this.dhLen} bytes, got ${key.length}`);
    }
  }
}

/** A private JWK with an empty `x`: see CURVES for why that is allowed and checked. */
function importPrivateJwk(curve: Curve, d: string): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv: curve.crv, d, x: '' }, format: 'jwk' });
}

function jwkPrivateImportDerivesPublicKey(curve: Curve): boolean {
  try {
    const object = importPrivateJwk(curve, Buffer.from(curve.check.d, 'hex').toString('base64url'));
    return createPublicKey(object).export({ format: 'jwk' }).x === Buffer.from(curve.check.x, 'hex').toString('base64url');
  } catch {
    return false;
  }
}

function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** A fresh, unpooled copy: a key must not share its ArrayBuffer with unrelated bytes. */
function fromBase64Url(text: string | undefined): Uint8Array {
  if (text === undefined) throw new Error('OpenSSL exported a JWK without its key');
  return new Uint8Array(Buffer.from(text, 'base64url'));
}

const HASHES = {
  SHA256: { algorithm: 'sha256', hashLen: 32, blockLen: 64 },
  SHA512: { algorithm: 'sha512', hashLen: 64, blockLen: 128 },
  BLAKE2s: { algorithm: 'blake2s256', hashLen: 32, blockLen: 64 },
  BLAKE2b: { algorithm: 'blake2b512', hashLen: 64, blockLen: 128 },
} as const;

/**
 * Inputs up to this many bytes are gathered into one scratch buffer and hashed by one
 * `crypto.hash` call, which skips the Hash object `createHash` builds (a third of the cost
 * at handshake sizes). Everything a handshake hashes fits; bigger inputs stream.
 */
const ONE_SHOT_MAX = 1024;
const scratch = Buffer.allocUnsafeSlow(ONE_SHOT_MAX);
const IPAD = 0x36;
const OPAD = 0x5c;

class NativeHash implements HashWithHmac {
  readonly hashLen: number;
  readonly blockLen: number;
  private readonly algorithm: string;

  constructor(readonly name: HashName) {
    ({ algorithm: this.algorithm, hashLen: this.hashLen, blockLen: this.blockLen } = HASHES[name]);
  }

  hash(...parts: Uint8Array[]): Uint8Array {
    let length = 0;
    for (const part of parts) length += part.length;
    if (length > ONE_SHOT_MAX) {
      const h = createHash(this.algorithm);
      for (const part of parts) h.update(part);
      return h.digest();
    }
    let offset = 0;
    for (const part of parts) {
      scratch.set(part, offset);
      offset += part.length;
    }
    const digest = oneShotHash(this.algorithm, scratch.subarray(0, length), 'buffer');
    // hmac() in hkdf.ts hashes key-derived blocks through here; none may outlive the call.
    scratch.fill(0, 0, length);
    return digest;
  }

  /**
   * HMAC-HASH(key, data) of RFC 2104, the same function as hkdf.ts's hmac() over this
   * hash, but with the pads XORed straight into the scratch buffer: two crypto.hash calls
   * and no allocation besides the result. An IK handshake pair runs thirty HMACs; against
   * hmac() this saves about a tenth of their cost, ~2% of the handshake. `createHmac` would
   * be slower than either (2.1 µs against 1.5 µs for BLAKE2s): it builds a context per call.
   */
  hmac(key: Uint8Array, ...data: Uint8Array[]): Uint8Array {
    const { blockLen, hashLen, algorithm } = this;
    let length = blockLen;
    for (const part of data) length += part.length;
    if (length > ONE_SHOT_MAX || key.length > blockLen) return hmac(this, key, ...data);
    xorPad(key, IPAD, blockLen);
    let offset = blockLen;
    for (const part of data) {
      scratch.set(part, offset);
      offset += part.length;
    }
    const inner = oneShotHash(algorithm, scratch.subarray(0, length), 'buffer');
    xorPad(key, OPAD, blockLen);
    scratch.set(inner, blockLen);
    const result = oneShotHash(algorithm, scratch.subarray(0, blockLen + hashLen), 'buffer');
    scratch.fill(0, 0, Math.max(length, blockLen + hashLen));
    inner.fill(0);
    return result;
  }
}

/** scratch[0, blockLen) = key zero-padded to blockLen, XOR pad. */
function xorPad(key: Uint8Array, pad: number, blockLen: number): void {
  for (let i = 0; i < key.length; i++) scratch[i] = key[i]! ^ pad;
  scratch.fill(pad, key.length, blockLen);
}

/**
 * The native backend with its AEAD on `engine` (aead-openssl.ts); DH and hashes are the
 * same either way. Tests run the vectors on both engines.
 */
export function nativeBackendWith(engine: AeadEngine): CryptoBackend {
  return {
    name: 'native',
    dh: memo((name: DhName) => new NativeDh(name)),
    cipher: memo((name: CipherName) => aead(name, engine)),
    hash: memo((name: HashName) => new NativeHash(name)),
    randomBytes: (length) => randomBytes(length),
  };
}

export const nativeBackend: CryptoBackend = nativeBackendWith(defaultAeadEngine.engine);
