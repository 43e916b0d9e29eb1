/**
 * The in-memory index every proxy consults on its hot paths: public key -> entry,
 * address -> entry, agentId -> entries, each one map lookup. `replace` swaps in a whole new
 * snapshot and tells listeners, synchronously, which keys stopped being valid
 * (PROTOCOL.md section 6), so that the session table can abort their sessions before the
 * call returns.
 */
import { encodeKey } from '../noise/index.js';
import { normalizeAddress } from './address.js';
import { Emitter, type Listener } from './emitter.js';
import type { RegistryEntry } from './model.js';
import { NO_ADDRESS, entryFingerprint, resolveAddresses, type AddressResolution, type RegistrySnapshot } from './snapshot.js';

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
  #byKey = new Map<string, Slot>();
  #byAddress = new Map<string, AddressResolution>();
  #liveByAgent = new Map<string, readonly RegistryEntry[]>();
  #allByAgent = new Map<string, readonly RegistryEntry[]>();
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

  /** The unrevoked entries of an agent (one per pod), or with `includeRevoked` all of them. */
  byAgentId(agentId: string, options?: { readonly includeRevoked?: boolean }): readonly RegistryEntry[] {
    return (options?.includeRevoked === true ? this.#allByAgent : this.#liveByAgent).get(agentId) ?? NONE;
  }

  /** Every indexed entry, revoked ones included, in snapshot order. */
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
   * Installs a snapshot: rebuilds every table, then, with the new tables already in force,
   * emits `revoked` for each key that was valid and no longer is, then `changed`. Listeners
   * run synchronously; one that throws does not stop the others, and the first error is
   * rethrown after all events have been delivered.
   */
  replace(snapshot: RegistrySnapshot): ChangeSummary {
    const byKey = new Map<string, Slot>();
    const liveByAgent = new Map<string, RegistryEntry[]>();
    const allByAgent = new Map<string, RegistryEntry[]>();
    const liveInstallations = new Set<string>();
    for (const entry of snapshot.entries) {
      byKey.set(entry.publicKeyB64, slotOf(entry));
      push(allByAgent, entry.agentId, entry);
      if (!entry.revoked) {
        push(liveByAgent, entry.agentId, entry);
        liveInstallations.add(entry.installationId);
      }
    }

    // Compare with the tables in force, before replacing them.
    let added = 0;
    let removed = 0;
    let updated = 0;
    const revocations: [string, RevocationReason, RegistryEntry][] = [];
    for (const [key, old] of this.#byKey) {
      const next = byKey.get(key);
      const was = old.entry;
      if (next === undefined) {
        removed++;
        if (!was.revoked) {
          // A live entry of the same installation under another key means the pod was re-keyed.
          revocations.push([key, liveInstallations.has(was.installationId) ? 'rekeyed' : 'removed', was]);
        }
        continue;
      }
      if (next.fingerprint === old.fingerprint) continue;
      updated++;
      if (was.revoked) continue;
      const now = next.entry;
      if (now.revoked) revocations.push([key, now.superseded ? 'rekeyed' : 'revoked', was]);
      else if (now.generation !== was.generation) revocations.push([key, 'generation', was]);
      else if (now.agentId !== was.agentId || now.installationId !== was.installationId) revocations.push([key, 'reassigned', was]);
    }
    for (const key of byKey.keys()) if (!this.#byKey.has(key)) added++;

    this.#byKey = byKey;
    this.#byAddress = resolveAddresses(snapshot.entries);
    this.#liveByAgent = freezeValues(liveByAgent);
    this.#allByAgent = freezeValues(allByAgent);
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
      entries: byKey.size,
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
      fingerprint: entryFingerprint(entry),
    };
    slots.set(entry, slot);
  }
  return slot;
}

function push(map: Map<string, RegistryEntry[]>, key: string, entry: RegistryEntry): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [entry]);
  else list.push(entry);
}

function freezeValues(map: Map<string, RegistryEntry[]>): Map<string, readonly RegistryEntry[]> {
  for (const list of map.values()) Object.freeze(list);
  return map;
}
