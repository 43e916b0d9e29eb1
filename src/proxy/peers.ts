/**
 * What the proxy needs from the registry: valid peers by key, address and agentId. The
 * registry-sync index satisfies it; tests can hand in a plain map.
 */
import type { KeyPair } from '../noise/index.js';

export interface MeshPeer {
  readonly agentId: string;
  readonly publicKey: Uint8Array;
  readonly publicKeyB64: string;
  /** The only generation at which this key is valid (PROTOCOL.md section 6). */
  readonly generation: bigint;
  readonly addresses: readonly string[];
  /** Where its responder listens, if not the default mesh port. */
  readonly meshPort?: number | undefined;
}

export type AddressLookup =
  | { readonly kind: 'peer'; readonly peer: MeshPeer }
  | { readonly kind: 'refuse'; readonly reason: string }
  | { readonly kind: 'none' };

export interface PeerDirectory {
  /** A peer whose key is valid now: present and not revoked. */
  peerByKey(publicKeyB64: string): MeshPeer | undefined;
  /**
   * What a destination address belongs to. `refuse` covers addresses that are meshed but
   * unusable (a revoked peer, two entries claiming one address): they must never fall back
   * to plaintext.
   */
  resolveAddress(address: string): AddressLookup;
  peersByAgentId(agentId: string): readonly MeshPeer[];
}

/** This proxy's own identity. The private key never leaves this object. */
export interface Identity {
  readonly agentId: string;
  readonly keyPair: KeyPair;
  readonly publicKeyB64: string;
}
