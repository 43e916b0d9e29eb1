/**
 * A protocol name (spec section 8), parsed once into typed parameters, and the cipher
 * suite it selects from a backend. The name is never typed twice: `Protocol.name` is
 * rebuilt from the parts.
 */
import { ProtocolNameError } from './errors.js';
import { handshakePattern, type HandshakePattern } from './patterns.js';
import type {
  CipherFunction,
  CipherName,
  CryptoBackend,
  DhFunction,
  DhName,
  HashFunction,
  HashName,
} from './primitives.js';

const DH_NAMES: readonly DhName[] = ['25519', '448'];
const CIPHER_NAMES: readonly CipherName[] = ['ChaChaPoly', 'AESGCM'];
const HASH_NAMES: readonly HashName[] = ['SHA256', 'SHA512', 'BLAKE2s', 'BLAKE2b'];

export interface Protocol {
  readonly name: string;
  readonly pattern: HandshakePattern;
  readonly dh: DhName;
  readonly cipher: CipherName;
  readonly hash: HashName;
}

function oneOf<T extends string>(part: 'dh' | 'cipher' | 'hash', value: string | undefined, allowed: readonly T[]): T {
  if (value !== undefined && (allowed as readonly string[]).includes(value)) return value as T;
  throw new ProtocolNameError(part, `'${value ?? ''}' is not one of ${allowed.join(', ')}`);
}

export function parseProtocolName(name: string): Protocol {
  const parts = name.split('_');
  if (parts[0] !== 'Noise' || parts.length !== 5) {
    throw new ProtocolNameError('prefix', `expected Noise_<pattern>_<dh>_<cipher>_<hash>, got '${name}'`);
  }
  const pattern = handshakePattern(parts[1]!);
  const dh = oneOf('dh', parts[2], DH_NAMES);
  const cipher = oneOf('cipher', parts[3], CIPHER_NAMES);
  const hash = oneOf('hash', parts[4], HASH_NAMES);
  return { name: `Noise_${pattern.name}_${dh}_${cipher}_${hash}`, pattern, dh, cipher, hash };
}

/** The three functions a protocol runs on, taken from one backend. */
export interface CipherSuite {
  readonly dh: DhFunction;
  readonly cipher: CipherFunction;
  readonly hash: HashFunction;
  readonly randomBytes: (length: number) => Uint8Array;
}

export function cipherSuite(protocol: Protocol, backend: CryptoBackend): CipherSuite {
  return {
    dh: backend.dh(protocol.dh),
    cipher: backend.cipher(protocol.cipher),
    hash: backend.hash(protocol.hash),
    randomBytes: backend.randomBytes,
  };
}
