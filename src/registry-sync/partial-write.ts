/**
 * What a file caught mid-write can and cannot say. A writer that truncates a file and writes
 * it again in pieces (a shell's `>`, editors and tools that write in place) leaves, for a
 * moment, a prefix of the file it means: every entry before the cut whole, none after it, and
 * the one at the cut with its last fields missing and its last value possibly cut short.
 *
 * Such a prefix can make a key vanish (the entry is past the cut, or refused for a missing
 * field), lower a generation (`12` cut to `1`), change an agentId (`shop/web-api` cut to
 * `shop/web`), or make a revoked key valid (its `revoked: true` past the cut); and it can
 * change any other field (an address list cut short). It cannot state anything that is not
 * in the finished file: an entry that says `revoked: true`, a generation higher than the one
 * in force, a new key (keys, like UUIDs, have a fixed length, so a cut one is malformed).
 *
 * So, from content that has not yet stayed unchanged for the settle time, the file source
 * applies at once only what a prefix cannot fake: new keys, keys newly revoked (written
 * `revoked: true`, or superseded by a higher generation), generations raised, and removals
 * that are a re-keying (the installation has a live entry of a higher generation under
 * another key). Every other change to a key in force waits, in its last version, until the
 * file has settled and a second read confirms it.
 *
 * Or until a second, different write confirms it: a writer that rewrites the file more often
 * than the settle time (a tool that stamps the time in a comment) would otherwise hold a
 * removal back for as long as it writes. The reads of one write in progress are each a prefix
 * of the next; two reads of which neither is a prefix of the other are two writes. A change
 * that two writes both make, and that has stood for the settle time, is the writer's intent
 * (`confirmed`).
 */
import type { RegistryEntry } from './model.js';
import { entryFingerprint, type RegistrySnapshot } from './snapshot.js';

export interface HeldBack {
  /** What may be put in force now: `next` with the held keys at their version in force. */
  readonly snapshot: RegistrySnapshot;
  /** Keys whose change waits for the file to settle. */
  readonly held: number;
}

/**
 * Splits `next` into what a partly written file cannot fake (applied) and the rest (held at
 * the entries of `inForce`). The result has no problems: those are reported with the settled
 * snapshot, not for a file that may still be half-written.
 */
export function holdBackUnsettled(inForce: RegistrySnapshot, next: RegistrySnapshot, confirmed: ReadonlySet<string> = new Set()): HeldBack {
  const before = new Map<string, RegistryEntry>();
  for (const e of inForce.entries) before.set(e.publicKeyB64, e);
  const after = new Map<string, RegistryEntry>();
  const liveByInstallation = new Map<string, RegistryEntry[]>();
  for (const e of next.entries) {
    after.set(e.publicKeyB64, e);
    if (!e.revoked) {
      const list = liveByInstallation.get(e.installationId);
      if (list === undefined) liveByInstallation.set(e.installationId, [e]);
      else list.push(e);
    }
  }

  const rekeyed = (old: RegistryEntry): boolean =>
    (liveByInstallation.get(old.installationId) ?? []).some((e) => e.publicKeyB64 !== old.publicKeyB64 && e.generation > old.generation);
  const cannotBeFaked = (old: RegistryEntry, now: RegistryEntry): boolean =>
    (now.revoked && !old.revoked) || now.generation > old.generation;

  let held = 0;
  const entries: RegistryEntry[] = [];
  for (const now of next.entries) {
    const old = before.get(now.publicKeyB64);
    if (old === undefined || cannotBeFaked(old, now) || confirmed.has(now.publicKeyB64) || entryFingerprint(old) === entryFingerprint(now)) {
      entries.push(now);
    } else {
      entries.push(old);
      held++;
    }
  }
  for (const old of inForce.entries) {
    if (after.has(old.publicKeyB64) || rekeyed(old) || confirmed.has(old.publicKeyB64)) continue;
    entries.push(old);
    held++;
  }
  return {
    snapshot: Object.freeze({
      origin: next.origin,
      entries: Object.freeze(entries),
      problems: Object.freeze([]),
      objects: next.objects,
      keptLastGood: next.keptLastGood ?? 0,
    }),
    held,
  };
}

/**
 * The change `next` makes to each key of `inForce` that it changes: the fingerprint of the
 * key's new entry, or `absent`. Keys that `next` leaves as they are, or adds, are not in it.
 */
export function pendingChanges(inForce: RegistrySnapshot, next: RegistrySnapshot): Map<string, string> {
  const after = new Map<string, string>();
  for (const e of next.entries) after.set(e.publicKeyB64, entryFingerprint(e));
  const changes = new Map<string, string>();
  for (const old of inForce.entries) {
    const now = after.get(old.publicKeyB64) ?? 'absent';
    if (now !== entryFingerprint(old)) changes.set(old.publicKeyB64, now);
  }
  return changes;
}

/** Whether one of two reads of a file is a prefix of the other: they may be one write in progress. */
export function onePrefixOfOther(a: Uint8Array, b: Uint8Array): boolean {
  const n = Math.min(a.length, b.length);
  return Buffer.compare(a.subarray(0, n), b.subarray(0, n)) === 0;
}

/** True when two snapshots hold the same entries, field for field, in any order. */
export function sameEntries(a: RegistrySnapshot, b: RegistrySnapshot): boolean {
  if (a.entries.length !== b.entries.length) return false;
  const prints = new Map<string, string>();
  for (const e of a.entries) prints.set(e.publicKeyB64, entryFingerprint(e));
  return b.entries.every((e) => prints.get(e.publicKeyB64) === entryFingerprint(e));
}
