/**
 * The TrustVector (DESIGN.md, TrustVector): what the secrets gateway knows about one caller
 * at one moment, from its registry entry and from how its request reached the gateway.
 *
 * Every component has a direction: a larger `authnStrength`, `clearance` or `devicePosture`
 * is better, a smaller `authzFreshness`, `delegationDepth` or `networkExposure` is better,
 * and `null` is the worst value a component can take (it fails every requirement on it).
 * That order is what makes the policy monotone: a better vector never loses a decision.
 */
import {
  authnStrengthRank,
  clearanceRank,
  type AgentType,
  type AuthnStrength,
  type Clearance,
  type RegistryEntry,
} from '../registry-sync/index.js';

/** loopback < encrypted < plaintext: how exposed the request was on its way to the gateway. */
export const NETWORK_EXPOSURES = ['loopback', 'encrypted', 'plaintext'] as const;
export type NetworkExposure = (typeof NETWORK_EXPOSURES)[number];

/** Rank of an exposure, 0 for `loopback` (the best): compare ranks, never names. */
export function networkExposureRank(e: NetworkExposure): number {
  return NETWORK_EXPOSURES.indexOf(e);
}

/**
 * How far in the future an `attestedAt` may lie and still count as fresh (clamped to 0 s
 * old): clocks of the enrolling party and the gateway differ a little. Further ahead, the
 * time proves nothing (a wrong clock, or a time written to stay "fresh" for ever), so the
 * vector has no freshness at all.
 */
export const ATTESTATION_CLOCK_SKEW_SECONDS = 60;

/**
 * What the gateway knows about the caller, as DESIGN.md lists it. Plain data, frozen,
 * JSON-serializable as it is (audit lines and 403 bodies carry it verbatim).
 */
export interface TrustVector {
  /** From the attestation; `none` without one, and for every plaintext caller. */
  readonly authnStrength: AuthnStrength;
  /**
   * Whole seconds since the attestation was made (`attestedAt`), at the `now` the vector was
   * computed for. `null` when there is no attestation, when `attestedAt` lies more than
   * ATTESTATION_CLOCK_SKEW_SECONDS ahead of `now`, and for a plaintext caller: no freshness,
   * which fails any `maxFreshnessSeconds`.
   */
  readonly authzFreshness: number | null;
  /** The entry's `delegationDepth`; `null` for a plaintext caller (unknown: fails any maximum). */
  readonly delegationDepth: number | null;
  /** 0..1 from the attestation; 0 when not measured or not attested, and for a plaintext caller. */
  readonly devicePosture: number;
  readonly networkExposure: NetworkExposure;
  /** `{kind, unit: agentId}` from the entry; `null` for a plaintext caller, whose identity is unknown. */
  readonly agentType: { readonly kind: AgentType; readonly unit: string } | null;
  /**
   * The entry's clearance; `null` for a plaintext caller: no clearance, below `open`, so it
   * fails every `clearance` requirement (even `open`).
   */
  readonly clearance: Clearance | null;
}

/**
 * How the request reached the gateway. The caller of computeTrustVector establishes it; this
 * module cannot check it:
 * - `encrypted`: over a Noise session whose initiator static key is the entry's key;
 * - `loopback`: from the gateway's own pod over loopback, the entry being the gateway's own;
 * - `plaintext`: an unmeshed request; nothing about the caller is verified.
 */
export interface SessionSignals {
  readonly networkExposure: NetworkExposure;
}

/** The vector of a caller that proved nothing: what every unmeshed plaintext request gets. */
export const PLAINTEXT_VECTOR: TrustVector = Object.freeze({
  authnStrength: 'none',
  authzFreshness: null,
  delegationDepth: null,
  devicePosture: 0,
  networkExposure: 'plaintext',
  agentType: null,
  clearance: null,
});

/**
 * The TrustVector of a caller.
 *
 * - `plaintext`: returns PLAINTEXT_VECTOR whatever `entry` is. A plaintext request proves no
 *   identity (a source address is no authentication), so an entry, if the caller looked one
 *   up by address, is ignored.
 * - `encrypted` and `loopback`: returns the entry's vector, or `undefined` when there is no
 *   entry or it is revoked (`revoked: true`, or superseded by a later generation). A revoked
 *   key has no trust to measure: the caller must refuse the request (`decide` does, with the
 *   reason `identity`) and never evaluate a policy for it.
 *
 * `now` is milliseconds since the Unix epoch (`Date.now()`); it is only used for freshness.
 * Pure: no clock, no I/O; the same arguments always give an equal vector.
 */
export function computeTrustVector(entry: RegistryEntry | undefined, session: SessionSignals, now: number): TrustVector | undefined {
  const exposure = session.networkExposure;
  if (exposure === 'plaintext') return PLAINTEXT_VECTOR;
  if (exposure !== 'encrypted' && exposure !== 'loopback') throw new TypeError(`unknown networkExposure: choose one of ${NETWORK_EXPOSURES.join(', ')}`);
  if (entry === undefined || entry.revoked) return undefined;
  const attestation = entry.attestation;
  let freshness: number | null = null;
  if (attestation !== undefined) {
    const ageMs = now - attestation.attestedAtMs;
    if (ageMs >= 0) freshness = Math.floor(ageMs / 1000);
    else if (ageMs >= -ATTESTATION_CLOCK_SKEW_SECONDS * 1000) freshness = 0;
  }
  return Object.freeze({
    authnStrength: attestation?.authnStrength ?? 'none',
    authzFreshness: freshness,
    delegationDepth: entry.delegationDepth,
    devicePosture: attestation?.devicePosture ?? 0,
    networkExposure: exposure,
    agentType: Object.freeze({ kind: entry.agentType, unit: entry.agentId }),
    clearance: entry.clearance,
  });
}

/** -1 for `null` (no clearance), else the rank: `null` is below `open`. */
export function vectorClearanceRank(c: Clearance | null): number {
  return c === null ? -1 : clearanceRank(c);
}

export { authnStrengthRank, clearanceRank };
