/**
 * The `native` backend: node:crypto (OpenSSL) for every primitive. The default, because
 * OpenSSL's assembly beats pure JS everywhere we measured (bench/README.md).
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { BadKeyError, DecryptError } from './errors.js';
import { TAG_LEN } from './constants.js';
import { aesGcmNonce, chachaPolyNonce } from './nonce-layout.js';
import { memo } from './memo.js';
import type {
  CipherFunction,
  CipherName,
  CryptoBackend,
  DhFunction,
  DhName,
  HashFunction,
  HashName,
  KeyPair,
} from './primitives.js';

/** DER headers that turn raw RFC 7748 keys into the PKCS#8 / SPKI objects OpenSSL takes. */
const DER = {
  '25519': {
    pkcs8: Buffer.from('302e020100300506032b656e04220420', 'hex'),
    spki: Buffer.from('302a300506032b656e032100', 'hex'),
    len: 32,
  },
  '448': {
    pkcs8: Buffer.from('3046020100300506032b656f043a0438', 'hex'),
    spki: Buffer.from('3042300506032b656f033900', 'hex'),
    len: 56,
  },
} as const;

class NativeDh implements DhFunction {
  readonly dhLen: number;
  private readonly der: (typeof DER)[DhName];
  /**
   * Parsing a key into an OpenSSL object costs about as much as the DH itself, so a static
   * key's object is kept for as long as its bytes live. Keyed by the byte array: a wiped
   * key pair is unreachable and its entry goes with it.
   */
  private readonly privateObjects = new WeakMap<Uint8Array, KeyObject>();
  private readonly publicObjects = new WeakMap<Uint8Array, KeyObject>();

  constructor(readonly name: DhName) {
    this.der = DER[name];
    this.dhLen = this.der.len;
  }

  generateKeyPair(): KeyPair {
    return this.keyPairFromPrivate(randomBytes(this.dhLen));
  }

  keyPairFromPrivate(privateKey: Uint8Array): KeyPair {
    this.checkLength(privateKey, 'private');
    const object = this.privateObject(privateKey);
    const spki = createPublicKey(object).export({ type: 'spki', format: 'der' });
    return { privateKey, publicKey: new Uint8Array(spki.subarray(this.der.spki.length)) };
  }

  dh(keyPair: KeyPair, publicKey: Uint8Array): Uint8Array {
    this.checkLength(publicKey, 'public');
    try {
      return diffieHellman({
        privateKey: this.privateObject(keyPair.privateKey),
        publicKey: this.publicObject(publicKey),
      });
    } catch (err) {
      // OpenSSL refuses to return the all-zero output of a low-order point; the spec
      // prefers that output over an error (12.1, 12.2), and so does the noble backend.
      if ((err as { code?: string }).code === 'ERR_OSSL_FAILED_DURING_DERIVATION') {
        return new Uint8Array(this.dhLen);
      }
      throw err;
    }
  }

  private privateObject(raw: Uint8Array): KeyObject {
    let object = this.privateObjects.get(raw);
    if (object === undefined) {
      object = createPrivateKey({ key: Buffer.concat([this.der.pkcs8, raw]), format: 'der', type: 'pkcs8' });
      this.privateObjects.set(raw, object);
    }
    return object;
  }

  private publicObject(raw: Uint8Array): KeyObject {
    let object = this.publicObjects.get(raw);
    if (object === undefined) {
      object = createPublicKey({ key: Buffer.concat([this.der.spki, raw]), format: 'der', type: 'spki' });
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

const EMPTY = new Uint8Array(0);

class NativeAead implements CipherFunction {
  private readonly algorithm: 'chacha20-poly1305' | 'aes-256-gcm';
  private readonly nonce: (hi: number, lo: number) => Uint8Array;

  constructor(readonly name: CipherName) {
    this.algorithm = name === 'ChaChaPoly' ? 'chacha20-poly1305' : 'aes-256-gcm';
    this.nonce = name === 'ChaChaPoly' ? chachaPolyNonce : aesGcmNonce;
  }

  encrypt(k: Uint8Array, nHi: number, nLo: number, ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    const cipher = createCipheriv(this.algorithm as 'chacha20-poly1305', k, this.nonce(nHi, nLo), {
      authTagLength: TAG_LEN,
    });
    if (ad.length > 0) cipher.setAAD(ad, { plaintextLength: plaintext.length });
    const body = plaintext.length > 0 ? cipher.update(plaintext) : EMPTY;
    cipher.final();
    const out = Buffer.allocUnsafe(body.length + TAG_LEN);
    out.set(body, 0);
    out.set(cipher.getAuthTag(), body.length);
    return out;
  }

  decrypt(k: Uint8Array, nHi: number, nLo: number, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (ciphertext.length < TAG_LEN) throw new DecryptError();
    const bodyLen = ciphertext.length - TAG_LEN;
    const decipher = createDecipheriv(this.algorithm as 'chacha20-poly1305', k, this.nonce(nHi, nLo), {
      authTagLength: TAG_LEN,
    });
    decipher.setAuthTag(ciphertext.subarray(bodyLen));
    if (ad.length > 0) decipher.setAAD(ad, { plaintextLength: bodyLen });
    const body = bodyLen > 0 ? decipher.update(ciphertext.subarray(0, bodyLen)) : EMPTY;
    try {
      decipher.final();
    } catch {
      throw new DecryptError();
    }
    return body;
  }
}

const HASHES = {
  SHA256: { algorithm: 'sha256', hashLen: 32, blockLen: 64 },
  SHA512: { algorithm: 'sha512', hashLen: 64, blockLen: 128 },
  BLAKE2s: { algorithm: 'blake2s256', hashLen: 32, blockLen: 64 },
  BLAKE2b: { algorithm: 'blake2b512', hashLen: 64, blockLen: 128 },
} as const;

class NativeHash implements HashFunction {
  readonly hashLen: number;
  readonly blockLen: number;
  private readonly algorithm: string;

  constructor(readonly name: HashName) {
    ({ algorithm: this.algorithm, hashLen: this.hashLen, blockLen: this.blockLen } = HASHES[name]);
  }

  hash(...parts: Uint8Array[]): Uint8Array {
    const h = createHash(this.algorithm);
    for (const part of parts) h.update(part);
    return h.digest();
  }
}


export const nativeBackend: CryptoBackend = {
  name: 'native',
  dh: memo((name: DhName) => new NativeDh(name)),
  cipher: memo((name: CipherName) => new NativeAead(name)),
  hash: memo((name: HashName) => new NativeHash(name)),
  randomBytes: (length) => randomBytes(length),
};
