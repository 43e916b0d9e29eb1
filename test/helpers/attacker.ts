// An impostor without any private key: it claims a low-order public key and, for every DH
// with that key, mixes the all-zero output it can predict, which is what an honest party
// computes with such a key when nothing refuses it.
import type { CryptoBackend, DhFunction, DhName, KeyPair } from '../../src/noise/index.js';
import { randomBytes } from 'node:crypto';

/**
 * A "key pair" whose public half is `publicKey` and whose private half is noise: the
 * attacker has no scalar for a low-order point, and needs none.
 */
export function claimedKeyPair(publicKey: Uint8Array): KeyPair {
  return { publicKey, privateKey: new Uint8Array(randomBytes(publicKey.length)) };
}

/**
 * `backend`, except that a DH computed with `claimed` gives all zeros: what the peer will
 * compute against the low-order public key, and so what the attacker predicts. Use it with
 * HandshakeState's DANGEROUS_allowAllZeroDh, or the attacker's own handshake refuses the zeros.
 */
export function predictingBackend(backend: CryptoBackend, claimed: KeyPair): CryptoBackend {
  return {
    ...backend,
    dh(name: DhName): DhFunction {
      const inner = backend.dh(name);
      return {
        name: inner.name,
        dhLen: inner.dhLen,
        generateKeyPair: () => inner.generateKeyPair(),
        keyPairFromPrivate: (k) => inner.keyPairFromPrivate(k),
        dh: (keyPair, publicKey) => (keyPair === claimed ? new Uint8Array(inner.dhLen) : inner.dh(keyPair, publicKey)),
      };
    },
  };
}
