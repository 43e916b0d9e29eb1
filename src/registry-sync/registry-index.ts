/**
 * The in-memory index every proxy consults on its hot paths: public key -> entry,
 * address -> entry, agentId -> entries, each one map lookup. `replace` puts a new snapshot in
 * force (by its delta when it has one, O(the change)) and tells listeners, synchronously,
 * which keys stopped being valid
 * (PROTOCOL.md section 6), so that the session table can abort their sessions before the
 * call returns.
 */
import { encodeKey } from '../noise/index.js';
import { normalizeAddress } from './address.js';
import { Emitter, type Listener } from './emitter.js';
import type { RegistryEntry } from './model.js';
import type { EntryChange } from './registry-state.js';
import { NO_ADDRESS, fingerprintOf, resolveAddresses, type AddressResolution, type RegistrySnapshot } from './snapshot.js';

/**
 * Why a key that was valid no longer is:
 * - `removed`: no entry holds it any more (deleted, or refused by a check);
 * - `revoked`: its entry is now `revoked: true`;
 * - `rekeyed`: its installation now has another key (the old entry is gone or superseded);
 * - `generation`: its entry moved to another generation;
 * - `reassigned`: its entry now names another agentId or installationId, so sessions
 *   authorized under the old identity must not continue.
 */
export type RevocationReason = 'removed' | 'revoked' | 'rekeyed' | 'generation' | 'reassigned';

/** What one `replace` changed, by public key. */
export interface ChangeSummary {
  readonly origin: string;
  /** Counts `replace` calls that were applied; starts at 1 for the first snapshot. */
  readonly version: number;
  readonly added: number;
  readonly removed: number;
  /** Keys present before and after whose entry changed in any field. */
  readonly updated: number;
  /** Keys that were valid and are not any more: the number of `revoked` events emitted. */
  readonly revoked: number;
  /** Entries now indexed, revoked ones included. */
  readonly entries: number;
  readonly errors: number;
  readonly warnings: number;
}

/**
 * What a responder learns from an initiator's static key and P1 generation. The mapping to
 * P2 status is the proxy's: `unknown` and `revoked` are status 1 (the key is not a valid
 * registry key), `stale-generation` is status 2.
 */
export type KeyVerdict =
  | { readonly kind: 'valid'; readonly entry: RegistryEntry }
  | { readonly kind: 'unknown' }
  | { readonly kind: 'revoked'; readonly entry: RegistryEntry }
  | { readonly kind: 'stale-generation'; readonly entry: RegistryEntry };

export interface RegistryIndexEvents {
  revoked: [publicKeyB64: string, reason: RevocationReason, previous: RegistryEntry];
  changed: [summary: ChangeSummary];
}

const UNKNOWN: KeyVerdict = Object.freeze({ kind: 'unknown' });
const NONE: readonly RegistryEntry[] = Object.freeze([]);

/** Built once per entry at replace time, so verifyKey allocates nothing. */
interface Slot {
  readonly entry: RegistryEntry;
  /** `valid`, or `revoked` for a revoked entry. */
  readonly current: KeyVerdict;
  readonly stale: KeyVerdict;
  /** Every field but the entry's position in its source, for telling updates apart. */
  readonly fingerprint: string;
}

export class RegistryIndex {
  readonly #events = new Emitter<RegistryIndexEvents>();
  readonly #byKey = new Map<string, Slot>();
  #byAddress = new Map<string, AddressResolution>();
  readonly #liveByAgent = new Map<string, readonly RegistryEntry[]>();
  readonly #allByAgent = new Map<string, readonly RegistryEntry[]>();
  /** Live (unrevoked) entries by installationId: a removed key whose installation is here was re-keyed. */
  readonly #liveInstallations = new Map<string, number>();
  #live = 0;
  #snapshot: RegistrySnapshot | undefined;
  #version = 0;
  #revocations = 0;

  /** The snapshot in force; undefined until the first `replace`. */
  get snapshot(): RegistrySnapshot | undefined {
    return this.#snapshot;
  }

  /** Number of snapshots applied. */
  get version(): number {
    return this.#version;
  }

  /** Entries indexed, revoked ones included. */
  get size(): number {
    return this.#byKey.size;
  }

  /** Entries indexed that are not revoked (the live peers). */
  get liveSize(): number {
    return this.#live;
  }

  /** `revoked` events emitted since construction (a counter for metrics). */
  get revocations(): number {
    return this.#revocations;
  }

  /**
   * The entry holding this key (canonical base64), revoked or not; a caller deciding whether
   * to talk to the key's holder must check `revoked`, or use `verifyKey`.
   */
  byPublicKey(publicKeyB64: string): RegistryEntry | undefined {
    return this.#byKey.get(publicKeyB64)?.entry;
  }

  /**
   * Checks an initiator's static key and the generation it announced in P1: valid only when
   * the entry exists, is not revoked (nor superseded) and has exactly that generation.
   */
  verifyKey(publicKey: string | Uint8Array, generation: bigint): KeyVerdict {
    const slot = this.#byKey.get(typeof publicKey === 'string' ? publicKey : encodeKey(publicKey));
    if (slot === undefined) return UNKNOWN;
    if (slot.entry.revoked) return slot.current;
    return slot.entry.generation === generation ? slot.current : slot.stale;
  }

  /**
   * What a destination address belongs to. `peer` may hold a revoked entry and `conflict`
   * means two live entries claim it: the proxy must refuse both, never pass them in plaintext.
   * Accepts any spelling of the address (IPv6 case and compression, IPv4-mapped IPv6).
   */
  resolveAddress(address: string): AddressResolution {
    const hit = this.#byAddress.get(address);
    if (hit !== undefined) return hit;
    const normalized = normalizeAddress(address);
    if (normalized === undefined || normalized === address) return NO_ADDRESS;
    return this.#byAddress.get(normalized) ?? NO_ADDRESS;
  }

  /**
   * The unrevoked entries of an agent (one per pod), or with `includeRevoked` all of them, in
   * the order they entered the index.
   */
  byAgentId(agentId: string, options?: { readonly includeRevoked?: boolean }): readonly RegistryEntry[] {
    return (options?.includeRevoked === true ? this.#allByAgent : this.#liveByAgent).get(agentId) ?? NONE;
  }

  /** Every indexed entry, revoked ones included, in snapshot order (listing them is O(entries)). */
  entries(): readonly RegistryEntry[] {
    return this.#snapshot?.entries ?? NONE;
  }

  on<K extends keyof RegistryIndexEvents>(event: K, listener: Listener<RegistryIndexEvents[K]>): () => void {
    return this.#events.on(event, listener);
  }

  off<K extends keyof RegistryIndexEvents>(event: K, listener: Listener<RegistryIndexEvents[K]>): void {
    this.#events.off(event, listener);
  }

  /**
   * Installs a snapshot, then, with the new tables already in force, emits `revoked` for each
   * key that was valid and no longer is, then `changed`. Listeners run synchronously; one that
   * throws does not stop the others, and the first error is rethrown after all events have
   * been delivered.
   *
   * A snapshot whose `delta` follows the one in force (an incremental source: RegistryState)
   * costs O(what it changed); any other is diffed key by key against the tables, O(entries).
   * Both end in the same update of the tables by key, so the two cannot disagree.
   */
  replace(snapshot: RegistrySnapshot): ChangeSummary {
    const delta = snapshot.delta;
    let changes: ReadonlyMap<string, EntryChange>;
    if (delta !== undefined && delta.base === this.#snapshot) {
      changes = delta.entries;
      for (const [address, resolution] of delta.addresses) {
        if (resolution === NO_ADDRESS) this.#byAddress.delete(address);
        else this.#byAddress.set(address, resolution);
      }
    } else {
      const next = new Map<string, RegistryEntry>();
      for (const e of snapshot.entries) next.set(e.publicKeyB64, e);
      const diff = new Map<string, EntryChange>();
      for (const [key, slot] of this.#byKey) {
        const after = next.get(key);
        if (after !== slot.entry) diff.set(key, { before: slot.entry, after });
      }
      for (const [key, after] of next) if (!this.#byKey.has(key)) diff.set(key, { before: undefined, after });
      changes = diff;
      this.#byAddress = resolveAddresses(snapshot.entries);
    }

    // The tables first: whether a removed key was re-keyed depends on the new state.
    for (const [key, { before, after }] of changes) {
      if (before !== undefined) this.#unlist(before);
      if (after === undefined) this.#byKey.delete(key);
      else {
        this.#byKey.set(key, slotOf(after));
        this.#list(after);
      }
    }

    let added = 0;
    let removed = 0;
    let updated = 0;
    const revocations: [string, RevocationReason, RegistryEntry][] = [];
    for (const [key, { before: was, after: now }] of changes) {
      if (was === undefined) {
        added++;
        continue;
      }
      if (now === undefined) {
        removed++;
        // A live entry of the same installation under another key means the pod was re-keyed.
        if (!was.revoked) revocations.push([key, this.#liveInstallations.has(was.installationId) ? 'rekeyed' : 'removed', was]);
        continue;
      }
      if (slotOf(now).fingerprint === slotOf(was).fingerprint) continue;
      updated++;
      if (was.revoked) continue;
      if (now.revoked) revocations.push([key, now.superseded ? 'rekeyed' : 'revoked', was]);
      else if (now.generation !== was.generation) revocations.push([key, 'generation', was]);
      else if (now.agentId !== was.agentId || now.installationId !== was.installationId) revocations.push([key, 'reassigned', was]);
    }

    this.#snapshot = snapshot;
    this.#version++;
    this.#revocations += revocations.length;

    let errors = 0;
    for (const p of snapshot.problems) if (p.severity === 'error') errors++;
    const summary: ChangeSummary = Object.freeze({
      origin: snapshot.origin,
      version: this.#version,
      added,
      removed,
      updated,
      revoked: revocations.length,
      entries: this.#byKey.size,
      errors,
      warnings: snapshot.problems.length - errors,
    });

    let failure: { error: unknown } | undefined;
    for (const [key, reason, previous] of revocations) {
      try {
        this.#events.emit('revoked', key, reason, previous);
      } catch (error) {
        failure ??= { error };
      }
    }
    try {
      this.#events.emit('changed', summary);
    } catch (error) {
      failure ??= { error };
    }
    if (failure !== undefined) throw failure.error;
    return summary;
  }

  /** Adds an entry to the tables by agent and the live counts. */
  #list(e: RegistryEntry): void {
    this.#allByAgent.set(e.agentId, Object.freeze([...(this.#allByAgent.get(e.agentId) ?? NONE), e]));
    if (e.revoked) return;
    this.#liveByAgent.set(e.agentId, Object.freeze([...(this.#liveByAgent.get(e.agentId) ?? NONE), e]));
    this.#liveInstallations.set(e.installationId, (this.#liveInstallations.get(e.installationId) ?? 0) + 1);
    this.#live++;
  }

  /** Removes what `#list` added: O(the agent's entries). */
  #unlist(e: RegistryEntry): void {
    without(this.#allByAgent, e.agentId, e);
    if (e.revoked) return;
    without(this.#liveByAgent, e.agentId, e);
    const n = this.#liveInstallations.get(e.installationId)! - 1;
    if (n === 0) this.#liveInstallations.delete(e.installationId);
    else this.#liveInstallations.set(e.installationId, n);
    this.#live--;
  }
}

function without(map: Map<string, readonly RegistryEntry[]>, agentId: string, e: RegistryEntry): void {
  const list = map.get(agentId);
  if (list === undefined) return;
  const rest = list.filter((x) => x !== e);
  if (rest.length === 0) map.delete(agentId);
  else map.set(agentId, Object.freeze(rest));
}

/**
 * A slot is a function of its (frozen) entry alone, and a source hands the same entry objects
 * back while an object does not change (the Kubernetes source caches validations by
 * resourceVersion), so a replace builds slots, fingerprints included, only for entries it has
 * not seen: the rest of a one-object change is map work.
 */
const slots = new WeakMap<RegistryEntry, Slot>();

function slotOf(entry: RegistryEntry): Slot {
  let slot = slots.get(entry);
  if (slot === undefined) {
    slot = {
      entry,
      current: Object.freeze(entry.revoked ? { kind: 'revoked', entry } : { kind: 'valid', entry }),
      stale: Object.freeze({ kind: 'stale-generation', entry }),
      fingerprint: fingerprintOf(entry),
    };
    slots.set(entry, slot);
  }
  return slot;
}
