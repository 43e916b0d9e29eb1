/**
 * The `noble` backend: audited pure-JS primitives from @noble. The portable reference the
 * native backend is checked against, and the fallback where OpenSSL lacks an algorithm.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { x448 } from '@noble/curves/ed448.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { gcm } from '@noble/ciphers/aes.js';
import { blake2b, blake2s } from '@noble/hashes/blake2.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { BadKeyError, DecryptError } from './errors.js';
import { TAG_LEN } from './constants.js';
import { aesGcmNonce, chachaPolyNonce } from './nonce-layout.js';
import { memo } from './memo.js';
import { isLowOrderPublicKey } from './low-order.js';
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

const CURVES = { '25519': { curve: x25519, len: 32 }, '448': { curve: x448, len: 56 } } as const;

class NobleDh implements DhFunction {
  readonly dhLen: number;
  private readonly curve: (typeof CURVES)[DhName]['curve'];

  constructor(readonly name: DhName) {
    ({ curve: this.curve, len: this.dhLen } = CURVES[name]);
  }

  generateKeyPair(): KeyPair {
    return this.keyPairFromPrivate(randomBytes(this.dhLen));
  }

  keyPairFromPrivate(privateKey: Uint8Array): KeyPair {
    this.checkLength(privateKey, 'private');
    return { privateKey, publicKey: this.curve.getPublicKey(privateKey) };
  }

  dh(keyPair: KeyPair, publicKey: Uint8Array): Uint8Array {
    this.checkLength(publicKey, 'public');
    // The spec's output for a low-order key (12.1, 12.2), by our own test rather than by
    // noble's refusal, so that both backends agree whatever their libraries do.
    if (isLowOrderPublicKey(this.name, publicKey)) return new Uint8Array(this.dhLen);
    try {
      return this.curve.getSharedSecret(keyPair.privateKey, publicKey);
    } catch (err) {
      // noble refuses an all-zero output. Every key that gives one was answered above; this
      // stays as a second line should the two ever disagree.
      if (err instanceof Error && err.message.includes('invalid private or public key')) {
        return new Uint8Array(this.dhLen);
      }
      throw err;
    }
  }

  private checkLength(key: Uint8Array, kind: string): void {
    if (key.length !== this.dhLen) {
      throw new BadKeyError(`${this.name} ${kind} key must be ${this.dhLen} bytes, got ${key.length}`);
    }
  }
}

class NobleAead implements CipherFunction {
  private readonly aead: typeof chacha20poly1305 | typeof gcm;
  private readonly nonce: (hi: number, lo: number) => Uint8Array;

  constructor(readonly name: CipherName) {
    this.aead = name === 'ChaChaPoly' ? chacha20poly1305 : gcm;
    this.nonce = name === 'ChaChaPoly' ? chachaPolyNonce : aesGcmNonce;
  }

  encrypt(k: Uint8Array, nHi: number, nLo: number, ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    return this.aead(k, this.nonce(nHi, nLo), ad).encrypt(plaintext);
  }

  decrypt(k: Uint8Array, nHi: number, nLo: number, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (ciphertext.length < TAG_LEN) throw new DecryptError();
    try {
      return this.aead(k, this.nonce(nHi, nLo), ad).decrypt(ciphertext);
    } catch {
      throw new DecryptError();
    }
  }
}

const HASHES = { SHA256: sha256, SHA512: sha512, BLAKE2s: blake2s, BLAKE2b: blake2b } as const;

class NobleHash implements HashFunction {
  readonly hashLen: number;
  readonly blockLen: number;
  private readonly fn: (typeof HASHES)[HashName];

  constructor(readonly name: HashName) {
    this.fn = HASHES[name];
    this.hashLen = this.fn.outputLen;
    this.blockLen = this.fn.blockLen;
  }

  hash(...parts: Uint8Array[]): Uint8Array {
    const h = this.fn.create();
    for (const part of parts) h.update(part);
    return h.digest();
  }
}


export const nobleBackend: CryptoBackend = {
  name: 'noble',
  dh: memo((name: DhName) => new NobleDh(name)),
  cipher: memo((name: CipherName) => new NobleAead(name)),
  hash: memo((name: HashName) => new NobleHash(name)),
  randomBytes: (length) => randomBytes(length),
};
