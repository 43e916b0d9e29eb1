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

/** What a pod address is: a meshed peer, meshed but unusable, or no meshed pod's. */
export type PeerLookup =
  | { readonly kind: 'peer'; readonly peer: MeshPeer }
  | { readonly kind: 'refuse'; readonly reason: string }
  | { readonly kind: 'none' };

/** One endpoint of a Service port: a pod address, the target port on it, and what it is. */
export interface ServiceEndpoint {
  readonly address: string;
  readonly port: number;
  readonly lookup: PeerLookup;
}

/**
 * A destination is a pod address (`PeerLookup`), or a Service's ClusterIP:port, whose new
 * connections go to one of `endpoints` (ready ones, or terminating ones when none is ready;
 * possibly none at all). The proxy picks among them; the directory only says what they are.
 */
export type AddressLookup =
  | PeerLookup
  | { readonly kind: 'service'; readonly service: string; readonly endpoints: readonly ServiceEndpoint[] };

export interface PeerDirectory {
  /** A peer whose key is valid now: present and not revoked. */
  peerByKey(publicKeyB64: string): MeshPeer | undefined;
  /**
   * What a destination belongs to. `refuse` covers addresses that are meshed but unusable (a
   * revoked peer, two entries claiming one address): they must never fall back to plaintext.
   * `port` lets a directory that knows Services answer `service` for a ClusterIP:port; one
   * that does not ignores it.
   */
  resolveAddress(address: string, port?: number): AddressLookup;
  peersByAgentId(agentId: string): readonly MeshPeer[];
}

/** This proxy's own identity. The private key never leaves this object. */
export interface Identity {
  readonly agentId: string;
  readonly keyPair: KeyPair;
  readonly publicKeyB64: string;
}
