/**
 * The ClearanceRegistry model (DESIGN.md, ClearanceRegistry): what one validated peer entry
 * holds once the YAML or the Kubernetes object behind it has been checked.
 *
 * The ordered vocabularies are plain data, lowest first, so ranks are array indexes and the
 * CRD's enums can be checked against them by a test.
 */

export const API_GROUP = 'noisemesh.io';
export const API_VERSION = 'noisemesh.io/v1alpha1';
export const KIND = 'ClearanceRegistry';
export const LIST_KIND = 'ClearanceRegistryList';

/** open < internal < profile-scoped < secrets-only */
export const CLEARANCES = ['open', 'internal', 'profile-scoped', 'secrets-only'] as const;
export type Clearance = (typeof CLEARANCES)[number];

/** none < low < medium < high < hardware */
export const AUTHN_STRENGTHS = ['none', 'low', 'medium', 'high', 'hardware'] as const;
export type AuthnStrength = (typeof AUTHN_STRENGTHS)[number];

export const AGENT_TYPES = ['service', 'human', 'agent'] as const;
export type AgentType = (typeof AGENT_TYPES)[number];

/** Rank of a clearance, 0 for `open`: compare ranks, never names. */
export function clearanceRank(c: Clearance): number {
  return CLEARANCES.indexOf(c);
}

/** Rank of an authentication strength, 0 for `none`. */
export function authnStrengthRank(s: AuthnStrength): number {
  return AUTHN_STRENGTHS.indexOf(s);
}

/** X25519 public keys, PROTOCOL.md section 2. */
export const PUBLIC_KEY_LEN = 32;

/** Generations travel in P1/P2 as u64 (PROTOCOL.md 4.1, 4.2) and are positive. */
export const MAX_GENERATION = (1n << 64n) - 1n;

/** What the enrolling party verified about the pod (DESIGN.md, ClearanceRegistry). */
export interface Attestation {
  readonly authnStrength: AuthnStrength;
  /** RFC 3339 time as written (normalized to ISO 8601 UTC). */
  readonly attestedAt: string;
  /** `attestedAt` in milliseconds since the Unix epoch, for freshness arithmetic. */
  readonly attestedAtMs: number;
  /** OCI digest, e.g. `sha256:<64 hex>`; undefined when not attested. */
  readonly imageDigest: string | undefined;
  readonly nodeName: string | undefined;
  /** Lowercase hex of BLAKE3(pod UID || node ID), 32 bytes. */
  readonly bindingHash: string | undefined;
  /** 0..1; undefined when not measured (a TrustVector should treat it as 0). */
  readonly devicePosture: number | undefined;
}

/** Where an entry came from: the object that published it and its position in `spec.peers`. */
export interface EntrySource {
  readonly namespace: string;
  readonly name: string;
  readonly peerIndex: number;
  /** Path of the peer in its document, e.g. `spec.peers[2]` (`items[0].spec.peers[2]` in a List). */
  readonly path: string;
  /** The file it was read from, for the file source. */
  readonly file: string | undefined;
  /** 1-based line of the peer in `file`, when known. */
  readonly line: number | undefined;
}

/**
 * One peer of the mesh. Entries are frozen; `publicKey` is shared between every holder of
 * the entry and must not be written to.
 */
export interface RegistryEntry {
  /** `<namespace>/<workload>`; the namespace is always the publishing object's namespace. */
  readonly agentId: string;
  readonly namespace: string;
  readonly workload: string;
  /** One per pod; lowercase UUID. Entries sharing it are generations of one peer. */
  readonly installationId: string;
  /** The 32 raw bytes of the X25519 static public key. */
  readonly publicKey: Uint8Array;
  /** Canonical standard base64 of `publicKey`: the index's key. */
  readonly publicKeyB64: string;
  readonly generation: bigint;
  readonly clearance: Clearance;
  /** Normalized pod IPs: IPv4 dotted quad, IPv6 in RFC 5952 form, IPv4-mapped IPv6 as IPv4. */
  readonly addresses: readonly string[];
  /** Where its responder listens; undefined means the mesh default (15443). */
  readonly meshPort: number | undefined;
  readonly serviceAccount: string | undefined;
  readonly agentType: AgentType;
  readonly delegationDepth: number;
  /**
   * True when the key must be refused: written `revoked: true`, or superseded by a later
   * generation of the same installation.
   */
  readonly revoked: boolean;
  /** True when `revoked` comes from a later generation of the same `installationId`. */
  readonly superseded: boolean;
  readonly attestation: Attestation | undefined;
  readonly source: EntrySource;
}
