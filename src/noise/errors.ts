/**
 * The closed set of failures the Noise core reports. Each class has a stable `code` that
 * callers branch on; the message is for operators and never carries key material.
 *
 * A caller that faces a network peer must not hand these details to that peer: the proxy
 * logs them and tells the peer at most a status code (snow's advice, and ours).
 */
export type NoiseErrorCode =
  | 'NOISE_DECRYPT'
  | 'NOISE_STATE'
  | 'NOISE_TOO_LONG'
  | 'NOISE_MALFORMED'
  | 'NOISE_BAD_KEY'
  | 'NOISE_LOW_ORDER'
  | 'NOISE_NONCE_EXHAUSTED'
  | 'NOISE_PROTOCOL_NAME';

export abstract class NoiseError extends Error {
  abstract readonly code: NoiseErrorCode;
  override get name(): string {
    return this.constructor.name;
  }
}

/** Authentication failed: wrong key, tampered ciphertext or tag, or a replayed/reordered nonce. */
export class DecryptError extends NoiseError {
  readonly code = 'NOISE_DECRYPT' as const;
  constructor(readonly where: 'transport' | 'handshake' = 'transport') {
    super(`decryption failed (${where} message)`);
  }
}

/** A call that the object's current state does not allow (out of turn, after Split, ...). */
export class StateError extends NoiseError {
  readonly code = 'NOISE_STATE' as const;
}

/** A message or plaintext over the 65535-byte Noise message limit. */
export class MessageTooLongError extends NoiseError {
  readonly code = 'NOISE_TOO_LONG' as const;
  constructor(readonly length: number, readonly limit: number) {
    super(`message of ${length} bytes exceeds the limit of ${limit}`);
  }
}

/** A handshake message shorter than its pattern requires. */
export class MalformedMessageError extends NoiseError {
  readonly code = 'NOISE_MALFORMED' as const;
}

/** A key of the wrong size, or one the pattern needs that was not supplied. */
export class BadKeyError extends NoiseError {
  readonly code = 'NOISE_BAD_KEY' as const;
}

/**
 * A DH output was all zeros: the peer's key, static or ephemeral, is a low-order point,
 * whose DH with any private key is that same predictable value (low-order.ts). The Noise
 * spec allows the zeros (12.1); a HandshakeState refuses them unless told otherwise, as
 * WireGuard and flynn/noise do and as NMP/1 requires (PROTOCOL.md section 2). `token` is the
 * DH that failed, `remoteKey` which of the peer's keys took part in it.
 */
export class LowOrderKeyError extends NoiseError {
  readonly code = 'NOISE_LOW_ORDER' as const;
  constructor(
    readonly token: 'ee' | 'es' | 'se' | 'ss',
    readonly remoteKey: 'static' | 'ephemeral',
  ) {
    super(`the peer's ${remoteKey} key is a low-order point: the ${token} DH output is all zeros`);
  }
}

/** The CipherState reached nonce 2^64-1, which the spec reserves. */
export class NonceExhaustedError extends NoiseError {
  readonly code = 'NOISE_NONCE_EXHAUSTED' as const;
  constructor() {
    super('nonce exhausted: the CipherState must not be used again');
  }
}

/** A protocol name that does not parse; `part` names the section that was wrong. */
export class ProtocolNameError extends NoiseError {
  readonly code = 'NOISE_PROTOCOL_NAME' as const;
  constructor(
    readonly part: 'prefix' | 'pattern' | 'modifier' | 'dh' | 'cipher' | 'hash',
    detail: string,
  ) {
    super(`bad protocol name (${part}): ${detail}`);
  }
}
