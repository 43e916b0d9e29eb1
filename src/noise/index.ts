/**
 * The Noise Protocol Framework, revision 34: pure computation, no sockets, timers or logs.
 * The proxy drives it; tests and the vector runner drive it directly.
 */
export { HandshakeState, type HandshakeOptions, type ReadResult, type WriteResult } from './handshake-state.js';
export { Transport } from './transport.js';
export { CipherState } from './cipher-state.js';
export { SymmetricState } from './symmetric-state.js';
export { parseProtocolName, cipherSuite, type Protocol, type CipherSuite } from './protocol.js';
export { handshakeMessageOverhead, DH_LEN } from './message-length.js';
export { handshakePattern, basePatternNames, type HandshakePattern, type MessagePattern, type Token, type Role } from './patterns.js';
export { hmac, hkdf } from './hkdf.js';
// The noble backend is not among these: loadBackend('noble') imports it when it is asked for.
export { loadBackend } from './backend.js';
export { nativeBackend, nativeBackendWith } from './backend-native.js';
export { defaultAeadEngine, type AeadEngine } from './aead-openssl.js';
export { decodeKey, encodeKey, looksLikeKeyText } from './keys.js';
export { isLowOrderPublicKey } from './low-order.js';
export { runVector, vectorName, type CacophonyVector, type VectorOutcome } from './test-vectors.js';
export * from './constants.js';
export * from './errors.js';
export type {
  BackendName,
  CipherFunction,
  CipherName,
  CryptoBackend,
  DhFunction,
  DhName,
  HashFunction,
  HashName,
  KeyPair,
} from './primitives.js';
