/**
 * The checks across entries, which no single peer can pass or fail on its own, maintained
 * incrementally (README.md, *Incremental updates*): a source tells the state
 * which documents changed, and `commit()` recomputes only what those documents touch, then
 * returns the snapshot with the delta the index applies (registry-index.ts).
 *
 * Every check is a function of one grouping: the documents of one object name
 * (one object, one document), the entries of one installation (supersession; two agentIds or
 * two current generations: all refused), the survivors holding one public key (one key, one
 * entry), the entries claiming one address (two live claimants: a conflict). So the state
 * keeps each grouping as a list of its members, with the outcome and the problems of the last
 * time it was worked out, and a change re-works only the groupings whose membership changed,
 * stage by stage:
 *
 *   documents -> object names (own entries + last good ones kept) -> installations
 *             -> public keys (the entries in force) -> addresses
 *
 * The last good rule reads what was in force at the previous commit: an object that states a
 * broken peer keeps that peer's entry from the last snapshot, so when the entries in force of
 * an object name change, that name is looked at again on the next commit (exactly what a full
 * rebuild against the previous snapshot does, without visiting the names whose entries did
 * not move).
 *
 * A one-document change therefore costs O(that document's entries and the groupings they
 * join), not O(registry). `buildSnapshot` is this state run once over every document, so the
 * file source (which rebuilds from whole files) and the Kubernetes source (which applies one
 * object at a time) cannot drift apart.
 *
 * Where a choice could depend on the order in which entries were read (the claimants named
 * in a conflict, which of two revoked entries an address resolves to, which previous entry a
 * broken peer was), it follows `compareEntries` (snapshot.ts), an order of the entries
 * themselves, so a rebuild and an incremental update agree whatever order the documents came
 * in.
 *
 * Every conflict is resolved towards refusing (snapshot.ts says why), in an order that never
 * revives a key: supersession by installation first (so refusing a conflicting current key
 * cannot make an older generation current again), then public-key conflicts, then addresses.
 */
import type { RegistryEntry } from './model.js';
import type { RegistryProblem, RegistryProblemCode, Severity } from './problems.js';
import { NO_ADDRESS, compareEntries, fingerprintOf, type AddressResolution, type RegistrySnapshot } from './snapshot.js';
import type { BrokenPeer, ValidatedObject } from './validate.js';

/** One document as a source read it: the shape of `validateClearanceRegistry`'s result. */
export interface RegistryDocument {
  /** The object, when it validated (possibly with broken peers). */
  readonly object: ValidatedObject | undefined;
  /** `<namespace>/<name>` when the document was refused as a whole but its name could be read. */
  readonly refusedLabel?: string | undefined;
  /** Problems of the document alone (validation). */
  readonly problems: readonly RegistryProblem[];
}

/** A key whose entry changed in one commit: the entry before and after (undefined: none). */
export interface EntryChange {
  readonly before: RegistryEntry | undefined;
  readonly after: RegistryEntry | undefined;
}

/**
 * What one commit changed, for an index that holds exactly `base`: applying it gives the
 * tables a full rebuild of the new snapshot would give.
 */
export interface SnapshotDelta {
  /** The snapshot this one follows; undefined for the first commit. */
  readonly base: RegistrySnapshot | undefined;
  /** Keys whose entry (as an object) changed, in no particular order. */
  readonly entries: ReadonlyMap<string, EntryChange>;
  /** Addresses whose resolution changed; NO_ADDRESS when no entry claims one any more. */
  readonly addresses: ReadonlyMap<string, AddressResolution>;
}

/** Equal in every field, its position in the source included. */
function sameEntry(a: RegistryEntry, b: RegistryEntry): boolean {
  return (
    a === b ||
    (fingerprintOf(a) === fingerprintOf(b) &&
      a.source.namespace === b.source.namespace &&
      a.source.name === b.source.name &&
      a.source.peerIndex === b.source.peerIndex &&
      a.source.path === b.source.path &&
      a.source.file === b.source.file &&
      a.source.line === b.source.line)
  );
}

/** `payments/payments spec.peers[2] (payments/api)`: where another claimant lives. */
function where(e: RegistryEntry): string {
  const file = e.source.file === undefined ? '' : `${e.source.file}${e.source.line === undefined ? '' : `:${e.source.line}`} `;
  return `${file}${e.source.namespace}/${e.source.name} ${e.source.path} (${e.agentId})`;
}

/** The other claimants, named in `compareEntries` order (the group is sorted by it). */
function others(sorted: readonly RegistryEntry[], self: RegistryEntry): string {
  return sorted
    .filter((e) => e !== self)
    .map(where)
    .join(', ');
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

function labelOf(e: RegistryEntry): string {
  return `${e.source.namespace}/${e.source.name}`;
}

const NO_PROBLEMS: readonly RegistryProblem[] = Object.freeze([]);

/** Something that holds problems: a document, an object name, or one grouping. */
interface Holder {
  problems: readonly RegistryProblem[];
}

/** An entry going through the checks: one an object states, or a last good one kept. */
interface Candidate {
  /** The object name that states or keeps it. */
  readonly name: NameState;
  /** As stated, or as kept (a kept superseded entry has `superseded` reset: worked out again). */
  readonly entry: RegistryEntry;
  /** What the installation check made of it: itself, its superseded copy, or undefined (refused). */
  out: RegistryEntry | undefined;
  /** Its superseded copy, made once so that an unchanged state hands the index the same object. */
  supersededCopy: RegistryEntry | undefined;
}

interface Doc extends Holder {
  readonly input: RegistryDocument;
}

/** Everything published under one `<namespace>/<name>`. */
interface NameState extends Holder {
  readonly label: string;
  /** Documents stating an object of this name; more than one: none is loaded. */
  docs: Doc[];
  /** Documents of this name refused as a whole. */
  refused: number;
  /** The object in force (the only document of this name), and its entries as candidates. */
  loaded: ValidatedObject | undefined;
  own: Candidate[];
  /** Last good entries kept, and the entries of the previous snapshot they were kept from. */
  kept: Candidate[];
  keptFrom: RegistryEntry[];
  /** Entries of this name in force after the last commit: where the last good rule looks. */
  inForce: RegistryEntry[];
}

/** Candidates of one installationId. */
interface InstallationGroup extends Holder {
  members: Candidate[];
}

/** Candidates the installation check let through, by public key; `winner` is in force. */
interface KeyGroup extends Holder {
  members: Candidate[];
  winner: RegistryEntry | undefined;
  /** The name `winner` belongs to. */
  winnerName: NameState | undefined;
}

/** Entries in force claiming one address. */
interface AddressGroup extends Holder {
  live: RegistryEntry[];
  dead: RegistryEntry[];
  resolution: AddressResolution;
}

export interface RegistryStateOptions {
  /**
   * For a one-shot rebuild (`buildSnapshot`): the snapshot in force, whose entries the last
   * good rule keeps for objects now broken. A long-lived state uses its own last commit.
   */
  readonly previous?: RegistrySnapshot | undefined;
}

/**
 * The snapshot of one source, kept up to date one document at a time. Not thread-safe and not
 * reentrant: `set`/`delete` any number of documents, then `commit()`.
 */
export class RegistryState {
  readonly origin: string;
  /** By the source's id for the document (a Kubernetes object's namespace/name, a file's document number). */
  readonly #docs = new Map<string, Doc>();
  readonly #names = new Map<string, NameState>();
  readonly #installations = new Map<string, InstallationGroup>();
  readonly #keys = new Map<string, KeyGroup>();
  readonly #addresses = new Map<string, AddressGroup>();
  /** Holders with problems, by kind, in the order problems are listed. */
  readonly #problemHolders = [new Set<Holder>(), new Set<Holder>(), new Set<Holder>(), new Set<Holder>(), new Set<Holder>()] as const;
  #errors = 0;
  #warnings = 0;
  #loadedObjects = 0;
  #keptCount = 0;

  // What the next commit must look at.
  readonly #dirtyNames = new Set<string>();
  readonly #dirtyInstallations = new Set<string>();
  readonly #dirtyKeys = new Set<string>();
  readonly #dirtyAddresses = new Set<string>();
  /**
   * Names whose entries in force changed at the last commit and that may keep last good
   * entries (`mayKeep`): what they keep may differ now.
   */
  #recheck = new Set<string>();

  /**
   * Documents replaced or deleted since the last commit: what they state is in force until the
   * next one, so `materialize` (the latest snapshot's entries, listed when first read) still
   * lists them. Cleared by each commit.
   */
  #detached: Doc[] = [];

  #entryChanges = new Map<string, EntryChange>();
  #addressChanges = new Map<string, AddressResolution>();
  #last: StateSnapshot | undefined;
  /** Names given entries in force by `options.previous`, cleared once the first commit has read them. */
  #seeded: Set<NameState> | undefined;

  constructor(origin: string, options: RegistryStateOptions = {}) {
    this.origin = origin;
    const previous = options.previous?.entries ?? [];
    if (previous.length > 0) {
      this.#seeded = new Set();
      for (const e of previous) {
        const n = this.#name(labelOf(e));
        n.inForce = append(n.inForce, e);
        this.#seeded.add(n);
      }
    }
  }

  /** Documents held. */
  get documents(): number {
    return this.#docs.size;
  }

  /**
   * Groupings held, by kind: each lives only while a document (or a last good entry) needs it,
   * so all are 0 once every document is deleted and committed (memory stays bounded by what
   * the documents state, whatever sequence of changes led there).
   */
  get held(): { readonly names: number; readonly installations: number; readonly keys: number; readonly addresses: number; readonly problemHolders: number } {
    return {
      names: this.#names.size,
      installations: this.#installations.size,
      keys: this.#keys.size,
      addresses: this.#addresses.size,
      problemHolders: this.#problemHolders.reduce((n, s) => n + s.size, 0),
    };
  }

  /** Sets (adds or replaces) the document `id`. Setting the same result object again is free. */
  set(id: string, document: RegistryDocument): void {
    const old = this.#docs.get(id);
    if (old?.input === document) return;
    if (old !== undefined) this.#detach(old);
    const doc: Doc = { input: document, problems: NO_PROBLEMS };
    this.#docs.set(id, doc);
    this.#setProblems(doc, 0, document.problems.length === 0 ? NO_PROBLEMS : document.problems);
    const o = document.object;
    if (o !== undefined) {
      const n = this.#name(o.label);
      n.docs = append(n.docs, doc);
      this.#dirtyNames.add(o.label);
    }
    if (document.refusedLabel !== undefined) {
      this.#name(document.refusedLabel).refused++;
      this.#dirtyNames.add(document.refusedLabel);
    }
  }

  /** Removes the document `id`, if held. */
  delete(id: string): void {
    const old = this.#docs.get(id);
    if (old === undefined) return;
    this.#detach(old);
    this.#docs.delete(id);
  }

  #detach(doc: Doc): void {
    // Its entries are in force until the next commit: the latest snapshot may list them later.
    const o = doc.input.object;
    if (o !== undefined && this.#names.get(o.label)?.loaded === o) this.#detached.push(doc);
    this.#setProblems(doc, 0, NO_PROBLEMS);
    if (o !== undefined) {
      removeFrom(this.#names.get(o.label)!.docs, doc);
      this.#dirtyNames.add(o.label);
    }
    const refused = doc.input.refusedLabel;
    if (refused !== undefined) {
      this.#names.get(refused)!.refused--;
      this.#dirtyNames.add(refused);
    }
  }

  /**
   * Works out what the changes since the last commit touch and returns the new snapshot, with
   * the delta from the previous one (`snapshot.delta`). Costs O(the entries of the changed
   * documents and of the groupings they join).
   */
  commit(): RegistrySnapshot {
    const names = this.#recheck;
    this.#recheck = new Set();
    for (const n of this.#dirtyNames) names.add(n);
    this.#dirtyNames.clear();
    this.#detached = [];
    for (const n of names) this.#refreshName(n);
    if (this.#seeded !== undefined) {
      // Read by the names above; from here on, what is in force is what this state decides.
      for (const n of this.#seeded) n.inForce.length = 0;
      this.#seeded = undefined;
    }
    for (const id of this.#dirtyInstallations) this.#refreshInstallation(id);
    this.#dirtyInstallations.clear();
    for (const key of this.#dirtyKeys) this.#refreshKey(key);
    this.#dirtyKeys.clear();
    for (const a of this.#dirtyAddresses) this.#refreshAddress(a);
    this.#dirtyAddresses.clear();
    for (const n of names) this.#dropIfEmpty(n);

    const delta: SnapshotDelta = Object.freeze({ base: this.#last, entries: this.#entryChanges, addresses: this.#addressChanges });
    this.#entryChanges = new Map();
    this.#addressChanges = new Map();
    const problems: RegistryProblem[] = [];
    for (const holders of this.#problemHolders) for (const h of holders) for (const p of h.problems) problems.push(p);
    const snapshot = new StateSnapshot(this, this.#last, delta, Object.freeze(problems), this.#loadedObjects, this.#keptCount);
    this.#last = snapshot;
    return snapshot;
  }

  /** Errors among the problems in force (warnings are the rest). */
  get errors(): number {
    return this.#errors;
  }

  /**
   * The entries in force at the last commit, in document order (each loaded object's entries
   * as it states them, then the last good entries kept): O(registry), for a snapshot's
   * `entries`. Documents set or deleted since then do not count until the next commit (those
   * replaced or deleted are listed after the others).
   */
  materialize(): RegistryEntry[] {
    const out: RegistryEntry[] = [];
    const inForce = (c: Candidate): void => {
      if (c.out !== undefined && this.#keys.get(c.out.publicKeyB64)?.winner === c.out) out.push(c.out);
    };
    // `loaded` and the candidates change only in a commit, so they say what was committed.
    const listed = new Set<NameState>();
    const list = (doc: Doc): void => {
      const o = doc.input.object;
      if (o === undefined) return;
      const name = this.#names.get(o.label);
      if (name === undefined || name.loaded !== o || listed.has(name)) return;
      listed.add(name);
      for (const c of name.own) inForce(c);
    };
    for (const doc of this.#docs.values()) list(doc);
    for (const doc of this.#detached) list(doc);
    for (const name of this.#names.values()) for (const c of name.kept) inForce(c);
    return out;
  }

  #name(label: string): NameState {
    let n = this.#names.get(label);
    if (n === undefined) {
      n = { label, docs: [], refused: 0, loaded: undefined, own: [], kept: [], keptFrom: [], inForce: [], problems: NO_PROBLEMS };
      this.#names.set(label, n);
    }
    return n;
  }

  #dropIfEmpty(label: string): void {
    const n = this.#names.get(label);
    if (n !== undefined && n.docs.length === 0 && n.refused === 0 && n.inForce.length === 0 && n.own.length === 0 && n.kept.length === 0) {
      this.#names.delete(label);
    }
  }

  /** Problems held by `h` (kind: 0 documents, 1 names, 2 installations, 3 keys, 4 addresses). */
  #setProblems(h: Holder, kind: 0 | 1 | 2 | 3 | 4, problems: readonly RegistryProblem[]): void {
    for (const p of h.problems) p.severity === 'error' ? this.#errors-- : this.#warnings--;
    h.problems = problems;
    for (const p of problems) p.severity === 'error' ? this.#errors++ : this.#warnings++;
    if (problems.length === 0) this.#problemHolders[kind].delete(h);
    else this.#problemHolders[kind].add(h);
  }

  // --- object names: one object per name, and the last good rule -----------------------------

  /**
   * Works out what one name contributes: its object's entries if exactly one document states
   * it, the last good entries it keeps, and the problems of both. Candidates that did not
   * change stay (same objects), so nothing downstream moves for them.
   */
  #refreshName(label: string): void {
    const n = this.#names.get(label);
    if (n === undefined) return;
    const problems: RegistryProblem[] = [];

    // One object name, one object: two documents of it are ambiguous.
    if (n.docs.length > 1) {
      for (const doc of n.docs) {
        const o = doc.input.object!;
        problems.push({
          code: 'REGISTRY_CONFLICT',
          severity: 'error',
          file: o.file,
          line: undefined,
          document: o.label,
          path: '',
          message: `the object ${o.label} appears ${n.docs.length} times: keep one document per object; none of them is loaded`,
        });
      }
    }
    const loaded = n.docs.length === 1 ? n.docs[0]!.input.object! : undefined;
    if (loaded !== n.loaded) {
      if (n.loaded !== undefined) this.#loadedObjects--;
      if (loaded !== undefined) this.#loadedObjects++;
      for (const c of n.own) this.#removeCandidate(c);
      n.own = (loaded?.entries ?? []).map((entry) => this.#addCandidate(n, entry));
      n.loaded = loaded;
    }

    const kept = keptFor(label, loaded, n.refused > 0, [...n.inForce].sort(compareEntries), problems);
    if (!sameList(kept, n.keptFrom)) {
      for (const c of n.kept) this.#removeCandidate(c);
      this.#keptCount += kept.length - n.kept.length;
      // Supersession is worked out again, against what the new content holds.
      n.kept = kept.map((e) => this.#addCandidate(n, e.superseded ? Object.freeze({ ...e, superseded: false }) : e));
      n.keptFrom = kept;
    }
    this.#setProblems(n, 1, problems.length === 0 ? NO_PROBLEMS : problems);
  }

  #addCandidate(name: NameState, entry: RegistryEntry): Candidate {
    const c: Candidate = { name, entry, out: undefined, supersededCopy: undefined };
    let g = this.#installations.get(entry.installationId);
    if (g === undefined) this.#installations.set(entry.installationId, (g = { members: [], problems: NO_PROBLEMS }));
    g.members = append(g.members, c);
    this.#dirtyInstallations.add(entry.installationId);
    return c;
  }

  #removeCandidate(c: Candidate): void {
    removeFrom(this.#installations.get(c.entry.installationId)!.members, c);
    this.#dirtyInstallations.add(c.entry.installationId);
    this.#setOut(c, undefined);
  }

  /** Moves a candidate's installation outcome into (or out of) its key's group. */
  #setOut(c: Candidate, out: RegistryEntry | undefined): void {
    if (c.out === out) return;
    const key = c.entry.publicKeyB64;
    if (c.out === undefined) {
      let g = this.#keys.get(key);
      if (g === undefined) this.#keys.set(key, (g = { members: [], winner: undefined, winnerName: undefined, problems: NO_PROBLEMS }));
      g.members = append(g.members, c);
    } else if (out === undefined) removeFrom(this.#keys.get(key)!.members, c);
    c.out = out;
    this.#dirtyKeys.add(key);
  }

  // --- installations: supersession, and one installation, one agent -------------------------

  /**
   * The highest generation of an installation is its current key; older ones are superseded
   * (revoked copies). Two agentIds on one installation, or two entries at its highest
   * generation: every such claimant is refused.
   */
  #refreshInstallation(id: string): void {
    const g = this.#installations.get(id);
    if (g === undefined) return;
    if (g.members.length === 0) {
      this.#setProblems(g, 2, NO_PROBLEMS);
      this.#installations.delete(id);
      return;
    }
    if (g.members.length === 1) {
      // Nearly every installation: one entry, itself.
      const c = g.members[0]!;
      this.#setOut(c, c.entry);
      this.#setProblems(g, 2, NO_PROBLEMS);
      return;
    }
    const members = [...g.members].sort((a, b) => compareEntries(a.entry, b.entry));
    const entries = members.map((c) => c.entry);
    const problems: RegistryProblem[] = [];
    const outcome = new Map<Candidate, RegistryEntry | undefined>();
    if (new Set(entries.map((e) => e.agentId)).size > 1) {
      for (const c of members) {
        outcome.set(c, undefined);
        problems.push(
          problemAt(c.entry, 'REGISTRY_CONFLICT', 'error', 'installationId',
            `is also claimed by ${others(entries, c.entry)} under another agentId: an installation is one pod of one workload; every claimant is refused until one is corrected`),
        );
      }
    } else {
      let top = 0n;
      for (const e of entries) if (e.generation > top) top = e.generation;
      const current = entries.filter((e) => e.generation === top);
      // Conflicts first, then the warnings for the generations superseded.
      const superseded: RegistryProblem[] = [];
      for (const c of members) {
        const e = c.entry;
        if (e.generation === top) {
          if (current.length === 1) outcome.set(c, e);
          else {
            outcome.set(c, undefined);
            problems.push(
              problemAt(e, 'REGISTRY_CONFLICT', 'error', 'generation',
                `generation ${top} of this installation is also claimed by ${others(current, e)}: give the current key the highest generation; every claimant is refused`),
            );
          }
          continue;
        }
        outcome.set(c, (c.supersededCopy ??= Object.freeze({ ...e, revoked: true, superseded: true })));
        superseded.push(
          problemAt(e, 'REGISTRY_SUPERSEDED', 'warning', 'generation',
            `generation ${e.generation} is superseded by generation ${top} of the same installation: this key is refused; remove the entry`),
        );
      }
      problems.push(...superseded);
    }
    for (const [c, out] of outcome) this.#setOut(c, out);
    this.#setProblems(g, 2, problems.length === 0 ? NO_PROBLEMS : problems);
  }

  // --- public keys: one key, one entry -------------------------------------------------------

  /**
   * The entry in force for a key: its only claimant; the latest generation when every claimant
   * is the same installation (re-using its key); none, and a conflict for each, otherwise.
   */
  #refreshKey(key: string): void {
    const g = this.#keys.get(key);
    if (g === undefined) return;
    const problems: RegistryProblem[] = [];
    let winner: Candidate | undefined;
    if (g.members.length === 1) winner = g.members[0];
    else if (g.members.length > 1) {
      const members = [...g.members].sort((a, b) => compareEntries(a.out!, b.out!));
      const outs = members.map((c) => c.out!);
      if (outs.every((e) => e.installationId === outs[0]!.installationId)) {
        winner = members.reduce((a, b) => (b.out!.generation > a.out!.generation ? b : a));
      } else {
        for (const e of outs) {
          problems.push(
            problemAt(e, 'REGISTRY_CONFLICT', 'error', 'publicKey',
              `is also claimed by ${others(outs, e)}: a key identifies one peer; every claimant is refused until the copies are removed`),
          );
        }
      }
    }
    this.#setProblems(g, 3, problems.length === 0 ? NO_PROBLEMS : problems);
    const before = g.winner;
    const beforeName = g.winnerName;
    const after = winner?.out;
    if (g.members.length === 0) this.#keys.delete(key);
    if (after === before) return;
    g.winner = after;
    g.winnerName = winner?.name;
    const change = this.#entryChanges.get(key);
    if (change === undefined) this.#entryChanges.set(key, { before, after });
    else if (change.before === after) this.#entryChanges.delete(key);
    else this.#entryChanges.set(key, { before: change.before, after });
    if (before !== undefined) this.#leave(before, beforeName!);
    if (winner !== undefined) this.#enter(after!, winner.name);
  }

  /** `e` is no longer in force: out of its name's entries in force and its addresses. */
  #leave(e: RegistryEntry, n: NameState): void {
    if (removeFrom(n.inForce, e) && mayKeep(n)) this.#recheck.add(n.label);
    for (const a of e.addresses) {
      const g = this.#addresses.get(a)!;
      removeFrom(e.revoked ? g.dead : g.live, e);
      this.#dirtyAddresses.add(a);
    }
  }

  /** `e` is now in force, stated or kept by `n`. */
  #enter(e: RegistryEntry, n: NameState): void {
    n.inForce = append(n.inForce, e);
    if (mayKeep(n)) this.#recheck.add(n.label);
    for (const a of e.addresses) {
      let g = this.#addresses.get(a);
      if (g === undefined) this.#addresses.set(a, (g = { live: [], dead: [], resolution: NO_ADDRESS, problems: NO_PROBLEMS }));
      if (e.revoked) g.dead = append(g.dead, e);
      else g.live = append(g.live, e);
      this.#dirtyAddresses.add(a);
    }
  }

  // --- addresses -----------------------------------------------------------------------------

  /**
   * One live claimant owns an address; two or more make it a conflict (reported for each,
   * refused by the proxy); an address only revoked entries claim resolves to the first of
   * them, so that traffic to a revoked pod is refused, not taken for unmeshed.
   */
  #refreshAddress(address: string): void {
    const g = this.#addresses.get(address);
    if (g === undefined) return;
    const problems: RegistryProblem[] = [];
    let next: AddressResolution;
    if (g.live.length === 1) next = samePeer(g.resolution, g.live[0]!);
    else if (g.live.length > 1) {
      const claimants = [...g.live].sort(compareEntries);
      next = sameClaimants(g.resolution, claimants);
      for (const e of claimants) {
        problems.push(
          problemAt(e, 'REGISTRY_CONFLICT', 'error', 'addresses',
            `address ${address} is also claimed by ${others(claimants, e)}: connections to it are refused until one claimant drops it`),
        );
      }
    } else if (g.dead.length > 0) {
      let first: RegistryEntry | undefined;
      for (const e of g.dead) if (first === undefined || compareEntries(e, first) < 0) first = e;
      next = samePeer(g.resolution, first!);
    } else next = NO_ADDRESS;
    this.#setProblems(g, 4, problems.length === 0 ? NO_PROBLEMS : problems);
    if (next === NO_ADDRESS) this.#addresses.delete(address);
    if (next !== g.resolution) {
      g.resolution = next;
      this.#addressChanges.set(address, next);
    }
  }
}

/**
 * Whether the last good rule can keep anything for this name: its object has broken peers, or
 * it is refused as a whole, or it keeps entries now. Only then does a change of its entries in
 * force matter to the next commit; a name whose documents change is looked at anyway.
 */
function mayKeep(n: NameState): boolean {
  if (n.kept.length > 0) return true;
  return n.loaded !== undefined ? n.loaded.broken.length > 0 : n.refused > 0;
}

/**
 * Adds `item` to a list: a new list of exactly one when it was empty (a pushed-to empty array
 * reserves room for 17), so the many groupings of one member stay small.
 */
function append<T>(list: T[], item: T): T[] {
  if (list.length === 0) return [item];
  list.push(item);
  return list;
}

/**
 * Removes `item` from an unordered list (the last element takes its place); false if absent.
 * Groupings are lists, not Sets: nearly all hold one member, and a list of one costs a
 * fraction of a Set's memory, for 10,000s of groupings.
 */
function removeFrom<T>(list: T[], item: T): boolean {
  const i = list.indexOf(item);
  if (i < 0) return false;
  const last = list.pop()!;
  if (i < list.length) list[i] = last;
  return true;
}

function samePeer(r: AddressResolution, entry: RegistryEntry): AddressResolution {
  return r.kind === 'peer' && r.entry === entry ? r : Object.freeze({ kind: 'peer', entry });
}

function sameClaimants(r: AddressResolution, claimants: RegistryEntry[]): AddressResolution {
  if (r.kind === 'conflict' && r.claimants.length === claimants.length && r.claimants.every((e, i) => e === claimants[i])) return r;
  return Object.freeze({ kind: 'conflict', claimants: Object.freeze(claimants) });
}

function sameList(a: readonly RegistryEntry[], b: readonly RegistryEntry[]): boolean {
  return a.length === b.length && a.every((e, i) => sameEntry(e, b[i]!));
}

/**
 * The last good rule, for one object name: a broken peer keeps the entry it was, and a
 * document refused as a whole keeps its entries, as long as nothing readable in them says
 * otherwise. A broken entry is no revocation; a deliberate one is written as a removal,
 * `revoked: true`, a new generation or a new key, all of which are well-formed statements.
 *
 * Only the object that published an entry can keep it (the namespace rule), and only while
 * that object states no well-formed entry with its key; the kept entries then go through the
 * checks across entries like any other, so a key claimed twice is still refused twice.
 *
 * `candidates` are the entries of this name in force at the last commit, in `compareEntries`
 * order; returns the ones kept (as they were) and pushes a `REGISTRY_KEPT` warning for each.
 */
function keptFor(
  label: string,
  loaded: ValidatedObject | undefined,
  refused: boolean,
  candidates: readonly RegistryEntry[],
  problems: RegistryProblem[],
): RegistryEntry[] {
  if (candidates.length === 0) return [];
  const kept: RegistryEntry[] = [];
  if (loaded !== undefined) {
    if (loaded.broken.length === 0) return kept;
    // Keys the object itself states well-formed need no keeping. A claim from another object
    // does not stop it: the kept entry and the claim then conflict, and both are refused.
    const stated = new Set(loaded.entries.map((e) => e.publicKeyB64));
    for (const b of loaded.broken) {
      if (b.mayRevoke) continue;
      const e = lastGoodOf(b, candidates);
      if (e === undefined || stated.has(e.publicKeyB64)) continue;
      stated.add(e.publicKeyB64);
      kept.push(e);
      problems.push({
        code: 'REGISTRY_KEPT',
        severity: 'warning',
        file: loaded.file,
        line: b.line,
        document: label,
        path: b.path,
        message: `this peer is refused (see above), so its last good version (${e.agentId}, generation ${e.generation}) stays in force until it is fixed; to revoke it, remove it or write revoked: true`,
      });
    }
    return kept;
  }
  if (!refused) return kept;
  kept.push(...candidates);
  problems.push({
    code: 'REGISTRY_KEPT',
    severity: 'warning',
    file: candidates[0]!.source.file,
    line: undefined,
    document: label,
    path: '',
    message: `this document is refused (see above), so its ${candidates.length} last good entr${candidates.length === 1 ? 'y stays' : 'ies stay'} in force until it is fixed; to revoke them, remove them or write revoked: true`,
  });
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
 * The base of a snapshot once a later commit has followed it: no index ever holds this, so an
 * index given that snapshot late diffs it in full. (Not undefined: that is a first commit's
 * base, which an index that holds nothing yet applies as the whole registry.)
 */
const DETACHED: RegistrySnapshot = Object.freeze({ origin: 'a detached base', entries: Object.freeze([]), problems: Object.freeze([]), objects: 0 });

/**
 * A snapshot of a RegistryState at one commit. Its problems and counts are taken at the
 * commit (O(problems)); its entries, O(registry) to list, are listed on first read: from the
 * state while this is its latest commit, else from the next snapshot's entries with the next
 * commits' changes undone (each snapshot keeps the one after it, so an old snapshot read late
 * costs what it saves, and one nobody holds costs nothing).
 */
class StateSnapshot implements RegistrySnapshot {
  readonly origin: string;
  readonly problems: readonly RegistryProblem[];
  readonly objects: number;
  readonly keptLastGood: number;
  #delta: SnapshotDelta;
  #state: RegistryState | undefined;
  #entries: readonly RegistryEntry[] | undefined;
  /** The snapshot after this one: set by its commit (the previous snapshot's entries derive from it). */
  #next: StateSnapshot | undefined;

  constructor(state: RegistryState, previous: StateSnapshot | undefined, delta: SnapshotDelta, problems: readonly RegistryProblem[], objects: number, kept: number) {
    this.origin = state.origin;
    this.#state = state;
    this.#delta = delta;
    this.problems = problems;
    this.objects = objects;
    this.keptLastGood = kept;
    if (previous !== undefined) {
      previous.#next = this;
      // The state now describes this commit, not the previous one; and the previous snapshot
      // no longer needs its own base (its index has applied it), which would otherwise keep
      // every snapshot ever made reachable.
      previous.#state = undefined;
      previous.#delta = Object.freeze({ ...previous.#delta, base: DETACHED });
    }
  }

  /** The changes from the snapshot before (its `base`), for the index. */
  get delta(): SnapshotDelta {
    return this.#delta;
  }

  get entries(): readonly RegistryEntry[] {
    if (this.#entries !== undefined) return this.#entries;
    // Forward to the first snapshot whose entries are known or can be listed from the state,
    // then back, undoing each commit's changes (a loop: the chain may be long).
    const chain: StateSnapshot[] = [];
    let known: StateSnapshot = this;
    while (known.#entries === undefined && known.#state === undefined) {
      chain.push(known);
      known = known.#next!;
    }
    known.#entries ??= Object.freeze(known.#state!.materialize());
    let entries: readonly RegistryEntry[] = known.#entries;
    for (let i = chain.length - 1; i >= 0; i--) {
      const byKey = new Map<string, RegistryEntry>();
      for (const e of entries) byKey.set(e.publicKeyB64, e);
      for (const [key, { before }] of chain[i]!.#next!.#delta.entries) {
        if (before === undefined) byKey.delete(key);
        else byKey.set(key, before);
      }
      entries = [...byKey.values()];
    }
    // Only this snapshot keeps its list: the ones between are likely never read.
    this.#entries = Object.freeze(entries);
    return this.#entries;
  }
}

export interface BuildOptions {
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
 * Applies the checks across entries to a whole source at once (the file source, `registry
 * get`, `explain`): a RegistryState given every document and committed once, so exactly the
 * rules an incremental source applies. `earlierProblems` (parse and validation problems) come
 * first in the snapshot's problems. The result is a plain frozen snapshot without a delta.
 */
export function buildSnapshot(
  objects: readonly ValidatedObject[],
  options: BuildOptions,
  earlierProblems: readonly RegistryProblem[] = [],
): RegistrySnapshot {
  const state = new RegistryState(options.origin, { previous: options.previous });
  state.set('problems', { object: undefined, problems: earlierProblems });
  objects.forEach((object, i) => state.set(`object ${i}`, { object, problems: NO_PROBLEMS }));
  (options.refusedObjects ?? []).forEach((label, i) => state.set(`refused ${i}`, { object: undefined, refusedLabel: label, problems: NO_PROBLEMS }));
  const snapshot = state.commit();
  return Object.freeze({
    origin: snapshot.origin,
    entries: snapshot.entries,
    problems: snapshot.problems,
    objects: snapshot.objects,
    keptLastGood: snapshot.keptLastGood,
  });
}
