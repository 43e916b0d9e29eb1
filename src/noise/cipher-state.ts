/** CipherState, spec section 5.1: a key k (or none) and a 64-bit nonce n. */
import { copyOf } from './bytes.js';
import { CIPHER_KEY_LEN, MAX_MESSAGE_LEN, MAX_PLAINTEXT_LEN, NONCE_HALF_MAX, TAG_LEN } from './constants.js';
import { BadKeyError, MessageTooLongError, NonceExhaustedError } from './errors.js';
import type { CipherFunction } from './primitives.js';

const ZEROS_32 = new Uint8Array(32);
const EMPTY = new Uint8Array(0);
const TWO_POW_32 = 2 ** 32;

export class CipherState {
  private k: Uint8Array | null = null;
  // n is a u64; JS numbers are exact only to 2^53, so it lives as two u32 halves.
  private nHi = 0;
  private nLo = 0;

  constructor(readonly cipher: CipherFunction, key: Uint8Array | null = null) {
    this.initializeKey(key);
  }

  /** InitializeKey(key): takes ownership of `key`; wipe() zeroes it. */
  initializeKey(key: Uint8Array | null): void {
    if (key !== null && key.length !== CIPHER_KEY_LEN) {
      throw new BadKeyError(`cipher key must be ${CIPHER_KEY_LEN} bytes, got ${key.length}`);
    }
    this.discardKey();
    this.k = key;
    this.nHi = 0;
    this.nLo = 0;
  }

  hasKey(): boolean {
    return this.k !== null;
  }

  /** SetNonce(nonce). Used for out-of-order transport (spec 11.4) and by tests. */
  setNonce(nonce: bigint): void {
    if (nonce < 0n || nonce > 0xffff_ffff_ffff_ffffn) throw new RangeError('nonce must be a u64');
    this.nHi = Number(nonce >> 32n);
    this.nLo = Number(nonce & 0xffff_ffffn);
  }

  getNonce(): bigint {
    return (BigInt(this.nHi) << 32n) | BigInt(this.nLo);
  }

  /** Messages processed under this key since the counter last crossed a multiple of 2^16. */
  get nonceLow16(): number {
    return this.nLo & 0xffff;
  }

  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    const k = this.k;
    if (k === null) {
      if (plaintext.length > MAX_MESSAGE_LEN) throw new MessageTooLongError(plaintext.length, MAX_MESSAGE_LEN);
      return plaintext;
    }
    if (plaintext.length > MAX_PLAINTEXT_LEN) throw new MessageTooLongError(plaintext.length, MAX_PLAINTEXT_LEN);
    this.checkNonce();
    const ciphertext = this.cipher.encrypt(k, this.nHi, this.nLo, ad, plaintext);
    this.incrementNonce();
    return ciphertext;
  }

  /**
   * EncryptWithAd with the ciphertext written into `out` at `offset`, for a caller that puts
   * it behind a header of its own: one buffer and one socket write per message. `out` needs
   * room for the plaintext and the tag. Returns the ciphertext's length.
   */
  encryptWithAdInto(ad: Uint8Array, plaintext: Uint8Array, out: Uint8Array, offset: number): number {
    const k = this.k;
    const max = k === null ? MAX_MESSAGE_LEN : MAX_PLAINTEXT_LEN;
    if (plaintext.length > max) throw new MessageTooLongError(plaintext.length, max);
    const length = plaintext.length + (k === null ? 0 : TAG_LEN);
    if (offset < 0 || offset + length > out.length) throw new RangeError(`a ciphertext of ${length} bytes does not fit at offset ${offset} of ${out.length}`);
    if (k === null) {
      out.set(plaintext, offset);
      return length;
    }
    this.checkNonce();
    if (this.cipher.encryptInto !== undefined) this.cipher.encryptInto(k, this.nHi, this.nLo, ad, plaintext, out, offset);
    else out.set(this.cipher.encrypt(k, this.nHi, this.nLo, ad, plaintext), offset);
    this.incrementNonce();
    return length;
  }

  /** DecryptWithAd: on DecryptError n is left as it was (spec 5.1), so nothing is consumed. */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (ciphertext.length > MAX_MESSAGE_LEN) throw new MessageTooLongError(ciphertext.length, MAX_MESSAGE_LEN);
    const k = this.k;
    if (k === null) return ciphertext;
    this.checkNonce();
    const plaintext = this.cipher.decrypt(k, this.nHi, this.nLo, ad, ciphertext);
    this.incrementNonce();
    return plaintext;
  }

  /** Rekey(): k = REKEY(k) = first 32 bytes of ENCRYPT(k, 2^64-1, zerolen, zeros). n is kept. */
  rekey(): void {
    const k = this.k;
    if (k === null) return;
    const block = this.cipher.encrypt(k, NONCE_HALF_MAX, NONCE_HALF_MAX, EMPTY, ZEROS_32);
    const next = copyOf(block, 0, CIPHER_KEY_LEN);
    block.fill(0);
    this.discardKey();
    this.k = next;
  }

  /**
   * Zeroes the key, and the cipher's own copies (CipherFunction.forget). JavaScript cannot
   * promise more: copies the engine made, and node:crypto's per-message OpenSSL contexts,
   * are outside our reach, and are freed, not wiped.
   */
  wipe(): void {
    this.discardKey();
    this.k = null;
  }

  /** For SymmetricState's commit-on-success: an independent copy of k and n. */
  snapshot(): CipherSnapshot {
    return { k: this.k === null ? null : copyOf(this.k), nHi: this.nHi, nLo: this.nLo };
  }

  restore(s: CipherSnapshot): void {
    this.discardKey();
    this.k = s.k;
    this.nHi = s.nHi;
    this.nLo = s.nLo;
  }

  /** Zeroes k, and first has the cipher drop its own copies, which it finds by k's bytes. */
  private discardKey(): void {
    const k = this.k;
    if (k === null) return;
    this.cipher.forget?.(k);
    k.fill(0);
  }

  private checkNonce(): void {
    if (this.nHi === NONCE_HALF_MAX && this.nLo === NONCE_HALF_MAX) throw new NonceExhaustedError();
  }

  private incrementNonce(): void {
    if (++this.nLo === TWO_POW_32) {
      this.nLo = 0;
      this.nHi++;
    }
  }
}

export interface CipherSnapshot {
  readonly k: Uint8Array | null;
  readonly nHi: number;
  readonly nLo: number;
}

/** The tag ENCRYPT adds when a key is set; handshake length checks need it. */
export function overhead(cs: CipherState): number {
  return cs.hasKey() ? TAG_LEN : 0;
}
