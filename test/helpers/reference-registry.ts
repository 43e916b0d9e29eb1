/**
 * The oracle of test/registry-incremental.test.ts: the full rebuild as it was before the
 * checks across entries became incremental (src/registry-sync/snapshot.ts and
 * registry-index.ts at that time), kept verbatim but for four normalizations marked ORDER:
 * where the old code's choice depended on the order entries were read in (the claimants a
 * message names, the same-installation tie, the revoked entry an address resolves to, the
 * previous entry a broken peer was), it now follows compareEntries, as the incremental code
 * does, so that only the semantics are compared, not document order.
 *
 * Not used by src/: it exists to be a second, independent implementation.
 */
import {
  compareEntries,
  type AddressResolution,
  type RegistryEntry,
  type RegistryProblem,
  type RegistryProblemCode,
  type RegistrySnapshot,
  type RevocationReason,
  type Severity,
  type BrokenPeer,
  type ValidatedObject,
} from '../../src/registry-sync/index.js';
import { entryFingerprint } from '../../src/registry-sync/snapshot.js';

/** `payments/payments spec.peers[2] (payments/api)`: where another claimant lives. */
function where(e: RegistryEntry): string {
  const file = e.source.file === undefined ? '' : `${e.source.file}${e.source.line === undefined ? '' : `:${e.source.line}`} `;
  return `${file}${e.source.namespace}/${e.source.name} ${e.source.path} (${e.agentId})`;
}

function problemAt(e: RegistryEntry, code: RegistryProblemCode, severity: Severity, field: string, message: string): RegistryProblem {
  return {
    code,
    severity,
    file: e.source.file,
    line: e.source.line,
    document: `${e.source.namespace}/${e.source.name}`,
    path: field === '' ? e.source.path : `${e.source.path}.${field}`,
    message,
  };
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group === undefined) groups.set(k, [item]);
    else group.push(item);
  }
  return groups;
}

function others(all: readonly RegistryEntry[], self: RegistryEntry): string {
  // ORDER: claimants named in compareEntries order.
  return [...all]
    .sort(compareEntries)
    .filter((e) => e !== self)
    .map(where)
    .join(', ');
}

/**
 * Resolves every address to its claimant. Live (unrevoked) claimants own an address; two or
 * more live ones make it a conflict, which the proxy must refuse rather than pass in
 * plaintext. An address claimed only by revoked entries resolves to one of them, so that
 * traffic to a revoked pod is refused, not taken for unmeshed.
 */
export function referenceResolveAddresses(entries: readonly RegistryEntry[]): Map<string, AddressResolution> {
  const live = new Map<string, RegistryEntry[]>();
  const dead = new Map<string, RegistryEntry>();
  for (const e of entries) {
    for (const a of e.addresses) {
      if (e.revoked) {
        // ORDER: the first revoked claimant in compareEntries order.
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
      Object.freeze(claimants.length === 1 ? { kind: 'peer', entry: claimants[0]! } : { kind: 'conflict', claimants: Object.freeze(claimants.sort(compareEntries)) /* ORDER */ }),
    );
  }
  for (const [a, e] of dead) {
    if (!table.has(a)) table.set(a, Object.freeze({ kind: 'peer', entry: e }));
  }
  return table;
}

interface BuildOptions {
  readonly origin: string;
  /**
   * The snapshot in force, from the same source: a peer or document that is now broken keeps
   * its entries from here (the per-entry last good rule). Without it, broken means refused.
   */
  readonly previous?: RegistrySnapshot | undefined;
  /** `<namespace>/<name>` of documents refused as a whole (ValidationResult.refusedLabel). */
  readonly refusedObjects?: readonly string[];
}

/**
 * The last good rule: a broken peer keeps the entry it was, and a document refused as a whole
 * keeps its entries, as long as nothing readable in them says otherwise. A broken entry is no
 * revocation; a deliberate one is written as a removal, `revoked: true`, a new generation or
 * a new key, all of which are well-formed statements.
 *
 * Only the object that published an entry can keep it (the namespace rule), and only while
 * that object states no well-formed entry with its key; the kept entries then go through the
 * checks across entries like any other, so a key claimed twice is still refused twice.
 */
function keepLastGood(
  objects: readonly ValidatedObject[],
  options: BuildOptions,
  problems: RegistryProblem[],
): RegistryEntry[] {
  const previous = options.previous;
  if (previous === undefined || previous.entries.length === 0) return [];
  const byObject = groupBy(previous.entries, (e) => `${e.source.namespace}/${e.source.name}`);
  // Keys the object itself states well-formed need no keeping. A claim from another object
  // does not stop it: the kept entry and the claim then conflict, and both are refused.
  const stated = new Set<string>();
  for (const o of objects) for (const e of o.entries) stated.add(`${o.label} ${e.publicKeyB64}`);
  const kept: RegistryEntry[] = [];
  const keep = (label: string, e: RegistryEntry): void => {
    stated.add(`${label} ${e.publicKeyB64}`);
    // Supersession is worked out again below, against what the new content holds.
    kept.push(e.superseded ? Object.freeze({ ...e, superseded: false }) : e);
  };

  for (const o of objects) {
    // ORDER: a broken peer's previous entry is looked for in compareEntries order.
    const candidates = byObject.get(o.label)?.sort(compareEntries);
    if (candidates === undefined) continue;
    for (const b of o.broken) {
      if (b.mayRevoke) continue;
      const e = lastGoodOf(b, candidates);
      if (e === undefined || stated.has(`${o.label} ${e.publicKeyB64}`)) continue;
      keep(o.label, e);
      problems.push({
        code: 'REGISTRY_KEPT',
        severity: 'warning',
        file: o.file,
        line: b.line,
        document: o.label,
        path: b.path,
        message: `this peer is refused (see above), so its last good version (${e.agentId}, generation ${e.generation}) stays in force until it is fixed; to revoke it, remove it or write revoked: true`,
      });
    }
  }

  const present = new Set(objects.map((o) => o.label));
  for (const label of new Set(options.refusedObjects ?? [])) {
    if (present.has(label)) continue;
    const entries = byObject.get(label) ?? [];
    if (entries.length === 0) continue;
    for (const e of entries) keep(label, e);
    problems.push({
      code: 'REGISTRY_KEPT',
      severity: 'warning',
      file: entries[0]!.source.file,
      line: undefined,
      document: label,
      path: '',
      message: `this document is refused (see above), so its ${entries.length} last good entr${entries.length === 1 ? 'y stays' : 'ies stay'} in force until it is fixed; to revoke them, remove them or write revoked: true`,
    });
  }
  return kept;
}

/**
 * The entry a broken peer was: found by its key, else by its installation, else by its
 * position, and only if every well-formed identity field it still has agrees.
 */
function lastGoodOf(b: BrokenPeer, candidates: readonly RegistryEntry[]): RegistryEntry | undefined {
  let found: RegistryEntry | undefined;
  if (b.publicKeyB64 !== undefined) found = candidates.find((e) => e.publicKeyB64 === b.publicKeyB64);
  else if (b.installationId !== undefined) {
    const same = candidates.filter((e) => e.installationId === b.installationId);
    found = same.find((e) => e.source.peerIndex === b.peerIndex) ?? same.find((e) => !e.revoked);
  } else found = candidates.find((e) => e.source.peerIndex === b.peerIndex);
  if (found === undefined) return undefined;
  if (b.agentId !== undefined && b.agentId !== found.agentId) return undefined;
  if (b.installationId !== undefined && b.installationId !== found.installationId) return undefined;
  if (b.generation !== undefined && b.generation !== found.generation) return undefined;
  return found;
}

/**
 * Applies the checks across entries to validated objects, in an order that never revives a
 * key: supersession by installation first (so refusing a conflicting current key cannot make
 * an older generation current again), then public-key conflicts, then address conflicts.
 */
export function referenceBuildSnapshot(
  objects: readonly ValidatedObject[],
  options: BuildOptions,
  earlierProblems: readonly RegistryProblem[] = [],
): RegistrySnapshot {
  const problems: RegistryProblem[] = [...earlierProblems];

  // One object name, one object: a file that holds two versions of it is ambiguous.
  const kept: ValidatedObject[] = [];
  for (const group of groupBy(objects, (o) => o.label).values()) {
    if (group.length === 1) {
      kept.push(group[0]!);
      continue;
    }
    for (const o of group) {
      problems.push({
        code: 'REGISTRY_CONFLICT',
        severity: 'error',
        file: o.file,
        line: undefined,
        document: o.label,
        path: '',
        message: `the object ${o.label} appears ${group.length} times: keep one document per object; none of them is loaded`,
      });
    }
  }

  const lastGood = keepLastGood(kept, options, problems);

  // Supersession: the highest generation of an installation is its current key.
  const refused = new Set<RegistryEntry>();
  const replaced = new Map<RegistryEntry, RegistryEntry>();
  const all = [...kept.flatMap((o) => o.entries), ...lastGood];
  for (const group of groupBy(all, (e) => e.installationId).values()) {
    if (group.length === 1) continue;
    if (new Set(group.map((e) => e.agentId)).size > 1) {
      for (const e of group) {
        refused.add(e);
        problems.push(
          problemAt(e, 'REGISTRY_CONFLICT', 'error', 'installationId',
            `is also claimed by ${others(group, e)} under another agentId: an installation is one pod of one workload; every claimant is refused until one is corrected`),
        );
      }
      continue;
    }
    let top = 0n;
    for (const e of group) if (e.generation > top) top = e.generation;
    const current = group.filter((e) => e.generation === top);
    if (current.length > 1) {
      for (const e of current) {
        refused.add(e);
        problems.push(
          problemAt(e, 'REGISTRY_CONFLICT', 'error', 'generation',
            `generation ${top} of this installation is also claimed by ${others(current, e)}: give the current key the highest generation; every claimant is refused`),
        );
      }
    }
    for (const e of group) {
      if (e.generation === top) continue;
      replaced.set(e, Object.freeze({ ...e, revoked: true, superseded: true }));
      problems.push(
        problemAt(e, 'REGISTRY_SUPERSEDED', 'warning', 'generation',
          `generation ${e.generation} is superseded by generation ${top} of the same installation: this key is refused; remove the entry`),
      );
    }
  }
  const afterInstallations = all.filter((e) => !refused.has(e)).map((e) => replaced.get(e) ?? e);

  // One public key, one entry; the generations of one installation reusing a key collapse to the latest.
  const entries: RegistryEntry[] = [];
  const keep = new Set<RegistryEntry>();
  for (const group of groupBy(afterInstallations, (e) => e.publicKeyB64).values()) {
    if (group.length === 1) {
      keep.add(group[0]!);
      continue;
    }
    if (new Set(group.map((e) => e.installationId)).size === 1) {
      // ORDER: of equal generations, the first in compareEntries order.
      keep.add([...group].sort(compareEntries).reduce((a, b) => (b.generation > a.generation ? b : a)));
      continue;
    }
    for (const e of group) {
      problems.push(
        problemAt(e, 'REGISTRY_CONFLICT', 'error', 'publicKey',
          `is also claimed by ${others(group, e)}: a key identifies one peer; every claimant is refused until the copies are removed`),
      );
    }
  }
  for (const e of afterInstallations) if (keep.has(e)) entries.push(e);

  // Addresses: conflicts are reported here and refused by the index, the entries stay valid.
  for (const [address, resolution] of referenceResolveAddresses(entries)) {
    if (resolution.kind !== 'conflict') continue;
    for (const e of resolution.claimants) {
      problems.push(
        problemAt(e, 'REGISTRY_CONFLICT', 'error', 'addresses',
          `address ${address} is also claimed by ${others(resolution.claimants, e)}: connections to it are refused until one claimant drops it`),
      );
    }
  }

  return Object.freeze({
    origin: options.origin,
    entries: Object.freeze(entries),
    problems: Object.freeze(problems),
    objects: kept.length,
    keptLastGood: lastGood.length,
  });
}

/** What the old RegistryIndex.replace computed: its tables and the revocations it emitted. */
export interface ReferenceIndexState {
  readonly byKey: Map<string, RegistryEntry>;
  readonly byAddress: Map<string, AddressResolution>;
  readonly revoked: [string, RevocationReason, RegistryEntry][];
  readonly added: number;
  readonly removed: number;
  readonly updated: number;
}

/** The old replace: every table rebuilt from `snapshot`, every key diffed against `before`. */
export function referenceReplace(before: ReadonlyMap<string, RegistryEntry>, snapshot: RegistrySnapshot): ReferenceIndexState {
  const byKey = new Map<string, RegistryEntry>();
  const liveInstallations = new Set<string>();
  for (const entry of snapshot.entries) {
    byKey.set(entry.publicKeyB64, entry);
    if (!entry.revoked) liveInstallations.add(entry.installationId);
  }
  let added = 0;
  let removed = 0;
  let updated = 0;
  const revocations: [string, RevocationReason, RegistryEntry][] = [];
  for (const [key, was] of before) {
    const now = byKey.get(key);
    if (now === undefined) {
      removed++;
      if (!was.revoked) revocations.push([key, liveInstallations.has(was.installationId) ? 'rekeyed' : 'removed', was]);
      continue;
    }
    if (entryFingerprint(now) === entryFingerprint(was)) continue;
    updated++;
    if (was.revoked) continue;
    if (now.revoked) revocations.push([key, now.superseded ? 'rekeyed' : 'revoked', was]);
    else if (now.generation !== was.generation) revocations.push([key, 'generation', was]);
    else if (now.agentId !== was.agentId || now.installationId !== was.installationId) revocations.push([key, 'reassigned', was]);
  }
  for (const key of byKey.keys()) if (!before.has(key)) added++;
  return { byKey, byAddress: referenceResolveAddresses(snapshot.entries), revoked: revocations, added, removed, updated };
}
