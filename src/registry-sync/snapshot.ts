/**
 * The snapshot the checks across entries produce: everything one source says at one moment.
 * The checks themselves (one object per name, supersession, one key one entry, addresses,
 * the last good rule) live in registry-state.ts, which applies them incrementally;
 * `buildSnapshot` there runs them over a whole source at once.
 *
 * Every conflict is resolved towards refusing: when two entries claim one public key or one
 * installation, nobody can tell which is genuine, so every claimant is refused and reported.
 * That lets a namespace's writer deny service to a key it copied from another namespace, but
 * never lets it be taken for that key's owner; an admission check on writes (the registrar)
 * is the place to stop the copy itself.
 */
import type { RegistryEntry } from './model.js';
import type { RegistryProblem } from './problems.js';
import type { SnapshotDelta } from './registry-state.js';

export interface RegistrySnapshot {
  /** What the snapshot was read from, e.g. `file /etc/noisemesh/registry.yaml`. */
  readonly origin: string;
  /**
   * The entries the index serves, revoked ones included (written `revoked: true`, or
   * superseded by a later generation); entries refused by a check are not here.
   */
  readonly entries: readonly RegistryEntry[];
  /** Every problem found, errors and warnings; the entries above are what survived them. */
  readonly problems: readonly RegistryProblem[];
  /** ClearanceRegistry objects loaded (documents refused as a whole are not counted). */
  readonly objects: number;
  /**
   * Entries in force at their last good version because what the source now says of them is
   * broken (a `REGISTRY_KEPT` warning each); 0 or absent when the source's content is whole.
   */
  readonly keptLastGood?: number;
  /**
   * From an incremental source (RegistryState): what changed since `delta.base`, so that an
   * index holding that snapshot applies the change instead of diffing every key.
   */
  readonly delta?: SnapshotDelta;
}

/** What an address resolves to. An entry found may be revoked: the caller must refuse it. */
export type AddressResolution =
  | { readonly kind: 'peer'; readonly entry: RegistryEntry }
  | { readonly kind: 'conflict'; readonly claimants: readonly RegistryEntry[] }
  | { readonly kind: 'none' };

export const NO_ADDRESS: AddressResolution = Object.freeze({ kind: 'none' });

/**
 * Resolves every address to its claimant. Live (unrevoked) claimants own an address; two or
 * more live ones make it a conflict, which the proxy must refuse rather than pass in
 * plaintext (claimants in `compareEntries` order). An address claimed only by revoked entries
 * resolves to the first of them, so that traffic to a revoked pod is refused, not taken for
 * unmeshed. The index's full rebuild uses this; RegistryState keeps the same table by address.
 */
export function resolveAddresses(entries: readonly RegistryEntry[]): Map<string, AddressResolution> {
  const live = new Map<string, RegistryEntry[]>();
  const dead = new Map<string, RegistryEntry>();
  for (const e of entries) {
    for (const a of e.addresses) {
      if (e.revoked) {
        const first = dead.get(a);
        if (first === undefined || compareEntries(e, first) < 0) dead.set(a, e);
        continue;
      }
      const claimants = live.get(a);
      if (claimants === undefined) live.set(a, [e]);
      else claimants.push(e);
    }
  }
  const table = new Map<string, AddressResolution>();
  for (const [a, claimants] of live) {
    table.set(
      a,
      Object.freeze(claimants.length === 1 ? { kind: 'peer', entry: claimants[0]! } : { kind: 'conflict', claimants: Object.freeze(claimants.sort(compareEntries)) }),
    );
  }
  for (const [a, e] of dead) {
    if (!table.has(a)) table.set(a, Object.freeze({ kind: 'peer', entry: e }));
  }
  return table;
}

/** Every field but the entry's position in its source: equal fingerprints, equal entries. */
export function entryFingerprint(e: RegistryEntry): string {
  const a = e.attestation;
  return JSON.stringify([
    e.agentId,
    e.installationId,
    e.publicKeyB64,
    e.generation.toString(),
    e.clearance,
    e.addresses,
    e.meshPort ?? null,
    e.serviceAccount ?? null,
    e.agentType,
    e.delegationDepth,
    e.revoked,
    e.superseded,
    a === undefined ? null : [a.authnStrength, a.attestedAt, a.imageDigest ?? null, a.nodeName ?? null, a.bindingHash ?? null, a.devicePosture ?? null],
  ]);
}

const fingerprints = new WeakMap<RegistryEntry, string>();

/** `entryFingerprint`, computed once per (frozen) entry. */
export function fingerprintOf(e: RegistryEntry): string {
  let f = fingerprints.get(e);
  if (f === undefined) fingerprints.set(e, (f = entryFingerprint(e)));
  return f;
}

/**
 * The order every order-dependent choice of the checks follows (the claimants a conflict
 * names, which of two revoked entries an address resolves to, which previous entry a broken
 * peer was): by file and line (so a file's own order), then object (namespace, name),
 * position in it, key, generation, then every other field, so that only entries equal in every field (interchangeable ones) compare equal, and
 * the outcome does not depend on the order the documents were read in.
 */
export function compareEntries(a: RegistryEntry, b: RegistryEntry): number {
  if (a === b) return 0;
  return (
    cmp(a.source.file ?? '', b.source.file ?? '') ||
    (a.source.line ?? 0) - (b.source.line ?? 0) ||
    cmp(a.source.namespace, b.source.namespace) ||
    cmp(a.source.name, b.source.name) ||
    a.source.peerIndex - b.source.peerIndex ||
    cmp(a.publicKeyB64, b.publicKeyB64) ||
    (a.generation < b.generation ? -1 : a.generation > b.generation ? 1 : 0) ||
    cmp(a.source.path, b.source.path) ||
    cmp(fingerprintOf(a), fingerprintOf(b))
  );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
