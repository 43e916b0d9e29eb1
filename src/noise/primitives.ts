/**
 * The primitives a crypto backend provides, and nothing more: DH, AEAD and hash (spec
 * section 4). HMAC, HKDF and Rekey are written once, above these, in the spec's terms.
 */

export interface KeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

export type DhName = '25519' | '448';
export type CipherName = 'ChaChaPoly' | 'AESGCM';
export type HashName = 'SHA256' | 'SHA512' | 'BLAKE2s' | 'BLAKE2b';

export interface DhFunction {
  readonly name: DhName;
  /** DHLEN: bytes in a public key and in a DH output. */
  readonly dhLen: number;
  generateKeyPair(): KeyPair;
  /** The key pair whose private key is `privateKey` (for keys read from disk or vectors). */
  keyPairFromPrivate(privateKey: Uint8Array): KeyPair;
  /**
   * DH(key_pair, public_key). A low-order public key (low-order.ts) yields DHLEN zero
   * bytes, as the spec prescribes for 25519 and 448, on every backend alike; HandshakeState
   * refuses that output.
   */
  dh(keyPair: KeyPair, publicKey: Uint8Array): Uint8Array;
}

export interface CipherFunction {
  readonly name: CipherName;
  /**
   * ENCRYPT(k, n, ad, plaintext). The 64-bit nonce comes as two 32-bit halves because a JS
   * number cannot hold it exactly; each cipher lays them out as its spec section says.
   */
  encrypt(k: Uint8Array, nHi: number, nLo: number, ad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /**
   * ENCRYPT written into `out` at `offset` (plaintext length + 16 bytes); returns the bytes
   * written. Optional: a cipher that has it spares a transport the copy into its frame.
   */
  encryptInto?(k: Uint8Array, nHi: number, nLo: number, ad: Uint8Array, plaintext: Uint8Array, out: Uint8Array, offset: number): number;
  /**
   * DECRYPT(k, n, ad, ciphertext); throws DecryptError when authentication fails. The
   * plaintext never shares memory with `ciphertext`: a caller may reuse the ciphertext's
   * buffer as soon as this returns (the proxy recycles its large frames).
   */
  decrypt(k: Uint8Array, nHi: number, nLo: number, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array;
  /**
   * `k` is about to be zeroed and never used again: drop every copy of it the cipher keeps
   * outside `k` itself (an OpenSSL context, say). Optional: a cipher that keeps none has
   * nothing to do.
   */
  forget?(k: Uint8Array): void;
}

export interface HashFunction {
  readonly name: HashName;
  /** HASHLEN */
  readonly hashLen: number;
  /** BLOCKLEN, used by HMAC */
  readonly blockLen: number;
  /** HASH of the concatenation of `parts`, without concatenating them. */
  hash(...parts: Uint8Array[]): Uint8Array;
}

export interface CryptoBackend {
  readonly name: BackendName;
  dh(name: DhName): DhFunction;
  cipher(name: CipherName): CipherFunction;
  hash(name: HashName): HashFunction;
  randomBytes(length: number): Uint8Array;
}

export type BackendName = 'native' | 'noble';
