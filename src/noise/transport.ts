/**
 * What a completed handshake returns: the two CipherStates of Split(), oriented for this
 * party, the handshake hash for channel binding, and the peer's static key if it had one.
 */
import { StateError } from './errors.js';
import type { CipherState } from './cipher-state.js';

const EMPTY = new Uint8Array(0);

export class Transport {
  constructor(
    /** Encrypts what this party sends; null for the responder of a one-way pattern. */
    readonly sending: CipherState | null,
    /** Decrypts what this party receives; null for the initiator of a one-way pattern. */
    readonly receiving: CipherState | null,
    readonly handshakeHash: Uint8Array,
    readonly remoteStaticKey: Uint8Array | null,
  ) {}

  encrypt(plaintext: Uint8Array, ad: Uint8Array = EMPTY): Uint8Array {
    if (this.sending === null) throw new StateError('one-way pattern: the responder cannot send');
    return this.sending.encryptWithAd(ad, plaintext);
  }

  decrypt(ciphertext: Uint8Array, ad: Uint8Array = EMPTY): Uint8Array {
    if (this.receiving === null) throw new StateError('one-way pattern: the initiator cannot receive');
    return this.receiving.decryptWithAd(ad, ciphertext);
  }

  /** Ends the session's key material (see CipherState.wipe for what that can promise). */
  wipe(): void {
    this.sending?.wipe();
    this.receiving?.wipe();
  }
}
