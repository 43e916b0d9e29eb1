/**
 * ENCRYPT and DECRYPT on OpenSSL, two ways:
 *
 * - `context` (the default): native/aead_context.c, which keeps one OpenSSL context per
 *   cipher and direction and sets only the nonce per message (the key too when it changed).
 * - `node-crypto`: node:crypto's createCipheriv, a new OpenSSL context per message (node
 *   cannot re-key a context). Used when the addon is not built: same bytes, more CPU.
 *
 * Seal and open of a 64-byte message cost ~1.2 µs with contexts against ~11 µs with
 * node:crypto on the bench/README.md machine, 3.4 against 16 µs at 4 KiB, and 39 against
 * 72 µs at 64 KiB, where node also copies body and tag into place; `npm run bench -- noise`
 * measures both. Even per message node:crypto beats noble's pure-JS ciphers at every size
 * (bench/README.md), so neither engine picks by size.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { addonPath, loadAddon } from '../native/index.js';
import { TAG_LEN } from './constants.js';
import { DecryptError } from './errors.js';
import { aesGcmNonce, chachaPolyNonce } from './nonce-layout.js';
import type { CipherFunction, CipherName } from './primitives.js';

export type AeadEngine = 'context' | 'node-crypto';

/** What native/aead_context.c exports; its header comment is the contract. */
interface AeadContextAddon {
  seal(cipher: number, key: Uint8Array, nHi: number, nLo: number, ad: Uint8Array, plaintext: Uint8Array, out: Uint8Array, offset: number): void;
  open(cipher: number, key: Uint8Array, nHi: number, nLo: number, ad: Uint8Array, ciphertext: Uint8Array, out: Uint8Array): boolean;
  forget(key: Uint8Array): void;
}

const CIPHER_IDS: Readonly<Record<CipherName, number>> = { ChaChaPoly: 0, AESGCM: 1 };

const addonLoad = loadAddon<AeadContextAddon>(addonPath('aead_context'), ['seal', 'open', 'forget']);

/**
 * Which engine `aead(name)` uses in this process, and if it is the slower one, why: for the
 * proxy's start-up log and the benchmark's report.
 */
export const defaultAeadEngine: { readonly engine: AeadEngine; readonly fallbackReason?: string } = addonLoad.ok
  ? { engine: 'context' }
  : { engine: 'node-crypto', fallbackReason: addonLoad.reason };

export function aead(name: CipherName, engine: AeadEngine = defaultAeadEngine.engine): CipherFunction {
  if (engine === 'node-crypto') return new NodeCryptoAead(name);
  if (!addonLoad.ok) throw new Error(`the AEAD context addon is unavailable: ${addonLoad.reason}`);
  return new ContextAead(name, addonLoad.addon);
}

class ContextAead implements CipherFunction {
  private readonly id: number;

  constructor(readonly name: CipherName, private readonly addon: AeadContextAddon) {
    this.id = CIPHER_IDS[name];
  }

  encrypt(k: Uint8Array, nHi: number, nLo: number, ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    const out = Buffer.allocUnsafe(plaintext.length + TAG_LEN);
    this.encryptInto(k, nHi, nLo, ad, plaintext, out, 0);
    return out;
  }

  encryptInto(k: Uint8Array, nHi: number, nLo: number, ad: Uint8Array, plaintext: Uint8Array, out: Uint8Array, offset: number): number {
    this.addon.seal(this.id, k, nHi, nLo, ad, plaintext, out, offset);
    return plaintext.length + TAG_LEN;
  }

  decrypt(k: Uint8Array, nHi: number, nLo: number, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (ciphertext.length < TAG_LEN) throw new DecryptError();
    // A fresh buffer, never the ciphertext's: CipherFunction promises no aliasing.
    const out = Buffer.allocUnsafe(ciphertext.length - TAG_LEN);
    if (!this.addon.open(this.id, k, nHi, nLo, ad, ciphertext, out)) throw new DecryptError();
    return out;
  }

  forget(k: Uint8Array): void {
    this.addon.forget(k);
  }
}

const EMPTY = new Uint8Array(0);
const AEAD_OPTIONS = { authTagLength: TAG_LEN } as const;

/**
 * A plain Uint8Array over part of `bytes`. Cheaper than `subarray` when `bytes` is a
 * Buffer, whose subarray builds another Buffer through its species constructor.
 */
function view(bytes: Uint8Array, offset: number, length: number): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset + offset, length);
}

class NodeCryptoAead implements CipherFunction {
  private readonly algorithm: 'chacha20-poly1305' | 'aes-256-gcm';
  private readonly nonce: (hi: number, lo: number) => Uint8Array;

  constructor(readonly name: CipherName) {
    this.algorithm = name === 'ChaChaPoly' ? 'chacha20-poly1305' : 'aes-256-gcm';
    this.nonce = name === 'ChaChaPoly' ? chachaPolyNonce : aesGcmNonce;
  }

  encrypt(k: Uint8Array, nHi: number, nLo: number, ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    const out = Buffer.allocUnsafe(plaintext.length + TAG_LEN);
    this.encryptInto(k, nHi, nLo, ad, plaintext, out, 0);
    return out;
  }

  encryptInto(k: Uint8Array, nHi: number, nLo: number, ad: Uint8Array, plaintext: Uint8Array, out: Uint8Array, offset: number): number {
    // The cast only picks the GCM typings, whose setAAD does not insist on plaintextLength
    // (node needs it for CCM alone); both algorithms are AEADs with a 16-byte tag.
    const cipher = createCipheriv(this.algorithm as 'aes-256-gcm', k, this.nonce(nHi, nLo), AEAD_OPTIONS);
    if (ad.length > 0) cipher.setAAD(ad);
    // node returns the body and the tag apart, each in a buffer of its own, and has no way
    // to write them in place: one more copy of every byte.
    if (plaintext.length > 0) out.set(cipher.update(plaintext), offset);
    cipher.final();
    out.set(cipher.getAuthTag(), offset + plaintext.length);
    return plaintext.length + TAG_LEN;
  }

  decrypt(k: Uint8Array, nHi: number, nLo: number, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (ciphertext.length < TAG_LEN) throw new DecryptError();
    const bodyLen = ciphertext.length - TAG_LEN;
    const decipher = createDecipheriv(this.algorithm as 'aes-256-gcm', k, this.nonce(nHi, nLo), AEAD_OPTIONS);
    decipher.setAuthTag(view(ciphertext, bodyLen, TAG_LEN));
    if (ad.length > 0) decipher.setAAD(ad);
    const body = bodyLen > 0 ? decipher.update(view(ciphertext, 0, bodyLen)) : EMPTY;
    try {
      decipher.final();
    } catch {
      throw new DecryptError();
    }
    return body;
  }
}
