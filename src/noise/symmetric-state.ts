/** SymmetricState, spec section 5.2: the chaining key ck, the handshake hash h, a CipherState. */
import { copyOf } from './bytes.js';
import { CIPHER_KEY_LEN } from './constants.js';
import { CipherState, type CipherSnapshot } from './cipher-state.js';
import { hkdf } from './hkdf.js';
import type { CipherSuite } from './protocol.js';

/**
 * h before anything is mixed in depends only on the protocol name and the hash, so it is
 * computed once per pair (a proxy runs one protocol) rather than once per handshake.
 */
const initialHashes = new WeakMap<CipherSuite['hash'], Map<string, Uint8Array>>();

function initialHash(suite: CipherSuite, protocolName: string): Uint8Array {
  let byName = initialHashes.get(suite.hash);
  if (byName === undefined) initialHashes.set(suite.hash, (byName = new Map()));
  let h = byName.get(protocolName);
  if (h === undefined) {
    const name = new TextEncoder().encode(protocolName);
    if (name.length <= suite.hash.hashLen) {
      h = new Uint8Array(suite.hash.hashLen);
      h.set(name);
    } else {
      h = copyOf(suite.hash.hash(name));
    }
    byName.set(protocolName, h);
  }
  return h;
}

export class SymmetricState {
  private ck: Uint8Array;
  private h: Uint8Array;
  readonly cipherState: CipherState;

  /** InitializeSymmetric(protocol_name). */
  constructor(private readonly suite: CipherSuite, protocolName: string) {
    this.h = copyOf(initialHash(suite, protocolName));
    this.ck = copyOf(this.h);
    this.cipherState = new CipherState(suite.cipher);
  }

  mixKey(inputKeyMaterial: Uint8Array): void {
    const [ck, tempK] = hkdf(this.suite.hash, this.ck, inputKeyMaterial, 2);
    this.replaceChainingKey(ck);
    this.cipherState.initializeKey(truncateKey(tempK));
  }

  mixHash(data: Uint8Array): void {
    this.h = this.suite.hash.hash(this.h, data);
  }

  mixKeyAndHash(inputKeyMaterial: Uint8Array): void {
    const [ck, tempH, tempK] = hkdf(this.suite.hash, this.ck, inputKeyMaterial, 3);
    this.replaceChainingKey(ck);
    this.mixHash(tempH);
    this.cipherState.initializeKey(truncateKey(tempK));
  }

  /** GetHandshakeHash(): a copy, so a caller cannot disturb the transcript. */
  getHandshakeHash(): Uint8Array {
    return copyOf(this.h);
  }

  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ciphertext = this.cipherState.encryptWithAd(this.h, plaintext);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    const plaintext = this.cipherState.decryptWithAd(this.h, ciphertext);
    this.mixHash(ciphertext);
    return plaintext;
  }

  /** Split(): the initiator's sending CipherState first. Wipes ck, which no one needs after. */
  split(): [CipherState, CipherState] {
    const [k1, k2] = hkdf(this.suite.hash, this.ck, new Uint8Array(0), 2);
    const c1 = new CipherState(this.suite.cipher, truncateKey(k1));
    const c2 = new CipherState(this.suite.cipher, truncateKey(k2));
    this.wipe();
    return [c1, c2];
  }

  wipe(): void {
    this.ck.fill(0);
    this.cipherState.wipe();
  }

  snapshot(): SymmetricSnapshot {
    return { ck: copyOf(this.ck), h: this.h, cipher: this.cipherState.snapshot() };
  }

  restore(s: SymmetricSnapshot): void {
    this.replaceChainingKey(s.ck);
    this.h = s.h;
    this.cipherState.restore(s.cipher);
  }

  private replaceChainingKey(ck: Uint8Array): void {
    this.ck.fill(0);
    this.ck = ck;
  }
}

export interface SymmetricSnapshot {
  readonly ck: Uint8Array;
  // h is never mutated in place, only replaced, so the snapshot can share it.
  readonly h: Uint8Array;
  readonly cipher: CipherSnapshot;
}

/** Spec 5.2: with a 64-byte HASHLEN, temp_k is truncated to the 32-byte cipher key. */
function truncateKey(tempK: Uint8Array): Uint8Array {
  if (tempK.length === CIPHER_KEY_LEN) return tempK;
  const key = copyOf(tempK, 0, CIPHER_KEY_LEN);
  tempK.fill(0);
  return key;
}

/** Wipes the key material a snapshot holds once the step it guarded has committed. */
export function discardSnapshot(s: SymmetricSnapshot): void {
  s.ck.fill(0);
  s.cipher.k?.fill(0);
}
