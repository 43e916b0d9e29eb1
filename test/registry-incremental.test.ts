// The incremental checks across entries (RegistryState) and the index applying their deltas
// equal, at every step of long random sequences of object changes, what a full rebuild gives:
// the pre-incremental buildSnapshot and RegistryIndex.replace kept as an oracle
// (test/helpers/reference-registry.ts), and today's buildSnapshot through a full index diff.
// Seeded and bounded; a failure prints the seed (NOISEMESH_PROPERTY_SEED replays it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import {
  RegistryIndex,
  RegistryState,
  buildSnapshot,
  validateClearanceRegistry,
  type AddressResolution,
  type RegistryEntry,
  type RegistryProblem,
  type RegistrySnapshot,
  type RevocationReason,
  type ValidationResult,
} from '../src/registry-sync/index.js';
import { entryFingerprint } from '../src/registry-sync/snapshot.js';
import { referenceBuildSnapshot, referenceReplace } from './helpers/reference-registry.js';
import { property, type Rng } from './helpers/random.js';

/** A real X25519 public key derived from a fixed private key, so that a seed replays exactly. */
function fixedKey(i: number): string {
  const raw = Buffer.alloc(32, 0);
  raw.writeUInt32BE(i + 1, 0);
  raw[31] = 0x42;
  const privateKey = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), raw]), format: 'der', type: 'pkcs8' });
  const der = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32).toString('base64');
}

const NAMESPACES = ['payments', 'billing'] as const;
const NAMES = ['a', 'b', 'c'] as const;
const WORKLOADS = ['api', 'db'] as const;
const KEYS = Array.from({ length: 8 }, (_, i) => fixedKey(i));
const INSTALLATIONS = Array.from({ length: 5 }, (_, i) => `0000000${i + 1}-2278-4b54-94fb-bfa65662dce3`);
const ADDRESSES = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '2001:db8::1', '10.0.0.5'];
const AGENTS = NAMESPACES.flatMap((ns) => WORKLOADS.map((w) => `${ns}/${w}`));

type Raw = Record<string, unknown>;
type RawPeer = Record<string, unknown>;

function randomPeer(rng: Rng, namespace: string): RawPeer {
  // Now and then an agent of another namespace: the namespace rule refuses it.
  const ns = rng.chance(0.08) ? NAMESPACES.find((n) => n !== namespace)! : namespace;
  const p: RawPeer = {
    agentId: `${ns}/${rng.pick(WORKLOADS)}`,
    installationId: rng.pick(INSTALLATIONS),
    publicKey: rng.pick(KEYS),
    generation: 1 + rng.int(3),
    addresses: ADDRESSES.filter(() => rng.chance(0.25)),
  };
  if (rng.chance(0.15)) p.revoked = true;
  if (rng.chance(0.12)) breakPeer(rng, p);
  return p;
}

/** Makes a peer fail its own checks, with more or less of its identity still readable. */
function breakPeer(rng: Rng, p: RawPeer): void {
  switch (rng.int(6)) {
    case 0: p.clearance = 'bogus'; break; // every identity field readable
    case 1: p.generation = 0; break; // no generation
    case 2: p.publicKey = 'c2hvcnQ='; break; // no key: found by installation
    case 3: p.revoked = 'yes'; break; // may mean to revoke: never kept
    case 4: p.surprise = 1; break; // unknown field: may be a misspelt revoked
    default: delete p.agentId; // no agentId
  }
}

function randomObject(rng: Rng, namespace: string, name: string): Raw {
  const spec = rng.chance(0.05) ? { peers: 'not a list' } : { peers: Array.from({ length: rng.int(4) }, () => randomPeer(rng, namespace)) };
  return { apiVersion: 'noisemesh.io/v1alpha1', kind: 'ClearanceRegistry', metadata: { name, namespace }, spec };
}

/** A small edit of an object: a generation bump, a revocation or restore, a break or a fix, an address. */
function mutate(rng: Rng, raw: Raw): Raw {
  const next = structuredClone(raw);
  const spec = next.spec as { peers: unknown };
  if (!Array.isArray(spec.peers) || spec.peers.length === 0) {
    spec.peers = [randomPeer(rng, (next.metadata as { namespace: string }).namespace)];
    return next;
  }
  const peers = spec.peers as RawPeer[];
  const p = rng.pick(peers);
  switch (rng.int(9)) {
    case 0: p.generation = typeof p.generation === 'number' && p.generation > 0 ? p.generation + 1 : 2; break;
    case 1: p.revoked = p.revoked === true ? false : true; break;
    case 2: breakPeer(rng, p); break;
    case 3: // fixed: a well-formed peer again, same identity where it had one
      Object.assign(p, { clearance: 'internal', generation: typeof p.generation === 'number' && p.generation > 0 ? p.generation : 1, revoked: false });
      delete p.surprise;
      if (typeof p.publicKey !== 'string' || p.publicKey.length < 40) p.publicKey = rng.pick(KEYS);
      if (p.agentId === undefined) p.agentId = `${(next.metadata as { namespace: string }).namespace}/api`;
      break;
    case 4: p.addresses = ADDRESSES.filter(() => rng.chance(0.3)); break;
    case 5: p.publicKey = rng.pick(KEYS); break;
    case 6: p.generation = typeof p.generation === 'number' && p.generation > 1 ? p.generation - 1 : 1; break; // rolled back: an older generation
    case 7: p.installationId = rng.pick(INSTALLATIONS); break; // the key moved to another installation
    default: peers.splice(rng.int(peers.length), 1);
  }
  return next;
}

function describe(e: RegistryEntry): string {
  return `${entryFingerprint(e)} @${e.source.namespace}/${e.source.name}[${e.source.peerIndex}] ${e.source.path}`;
}

function entriesOf(s: RegistrySnapshot): string[] {
  return s.entries.map(describe).sort();
}

function problemsOf(s: RegistrySnapshot): string[] {
  return s.problems.map((p: RegistryProblem) => JSON.stringify([p.code, p.severity, p.file ?? null, p.line ?? null, p.document, p.path, p.message])).sort();
}

function resolution(r: AddressResolution | undefined): string {
  if (r === undefined || r.kind === 'none') return 'none';
  if (r.kind === 'peer') return `peer ${describe(r.entry)}`;
  return `conflict ${r.claimants.map(describe).join(' | ')}`;
}

type Revoked = [string, RevocationReason, string];
const revokedOf = (list: readonly [string, RevocationReason, RegistryEntry][]): string[] => list.map(([k, r, e]) => JSON.stringify([k, r, describe(e)])).sort();

const STEPS = 80;

test('incremental snapshot + index equal a full rebuild at every step of random add/modify/delete sequences', () => {
  let steps = 0;
  let revocations = 0;
  let kept = 0;
  let conflicts = 0;
  let renames = 0;
  let relists = 0;
  property(40, (rng) => {
    const origin = 'property';
    const state = new RegistryState(origin);
    const index = new RegistryIndex();
    const fullIndex = new RegistryIndex();
    let events: [string, RevocationReason, RegistryEntry][] = [];
    let fullEvents: [string, RevocationReason, RegistryEntry][] = [];
    index.on('revoked', (k, r, e) => events.push([k, r, e]));
    fullIndex.on('revoked', (k, r, e) => fullEvents.push([k, r, e]));
    const raws = new Map<string, Raw>();
    const docs = new Map<string, ValidationResult>();
    let reference: RegistrySnapshot | undefined;
    let referenceKeys = new Map<string, RegistryEntry>();
    let full: RegistrySnapshot | undefined;
    let last: RegistrySnapshot | undefined;
    // Snapshots whose entries are read only at the end, after later commits (the undo path).
    const late: { snapshot: RegistrySnapshot; expected: string[]; step: number }[] = [];
    let pendingReadd: [string, Raw] | undefined;

    for (let step = 0; step < STEPS; step++) {
      steps++;
      const put = (id: string, raw: Raw): void => {
        const [namespace, name] = (id.split('#')[0] as string).split('/') as [string, string];
        const result = validateClearanceRegistry(raw, { document: `${namespace}/${name}` });
        raws.set(id, raw);
        docs.set(id, result);
        state.set(id, result);
      };
      const remove = (id: string): void => {
        raws.delete(id);
        docs.delete(id);
        state.delete(id);
      };
      const op = rng.next();
      if (op < 0.06 && raws.size > 0) {
        // Renamed or moved to another namespace: the same peers (keys, installations) under
        // another object, the old one deleted, in one commit (or two: rng).
        renames++;
        const from = rng.pick([...raws.keys()]);
        const namespace = rng.pick(NAMESPACES);
        const name = rng.pick(NAMES);
        const to = `${namespace}/${name}#${rng.chance(0.1) ? 2 : 1}`;
        const raw = structuredClone(raws.get(from)!);
        (raw.metadata as { namespace: string; name: string }) = { namespace, name };
        const peers = (raw.spec as { peers: unknown }).peers;
        if (Array.isArray(peers)) for (const p of peers as RawPeer[]) if (typeof p.agentId === 'string') p.agentId = `${namespace}/${p.agentId.split('/')[1]}`;
        if (rng.chance(0.5)) {
          remove(from);
          put(to, raw);
        } else {
          put(to, raw);
          remove(from);
        }
      } else if (op < 0.1) {
        // A relist that replaces everything (410, resync): every document deleted and a new
        // set added, some with exactly their old content (a new resourceVersion: a new
        // validation result of equal content), in one commit.
        relists++;
        const before = new Map(raws);
        for (const id of before.keys()) remove(id);
        for (const namespace of NAMESPACES) {
          for (const name of NAMES) {
            if (!rng.chance(0.5)) continue;
            const id = `${namespace}/${name}#1`;
            const old = before.get(id);
            put(id, old !== undefined && rng.chance(0.5) ? structuredClone(old) : old !== undefined && rng.chance(0.5) ? mutate(rng, old) : randomObject(rng, namespace, name));
          }
        }
      } else if (op < 0.14 && raws.size >= 2) {
        // One peer moved from one object to another (same key, same installation) in one commit.
        const [a, b] = [rng.pick([...raws.keys()]), rng.pick([...raws.keys()])];
        const ra = structuredClone(raws.get(a)!);
        const rb = structuredClone(raws.get(b)!);
        const pa = (ra.spec as { peers: unknown }).peers;
        const pb = (rb.spec as { peers: unknown }).peers;
        if (a !== b && Array.isArray(pa) && pa.length > 0 && Array.isArray(pb)) {
          const [p] = (pa as RawPeer[]).splice(rng.int(pa.length), 1) as [RawPeer];
          if (typeof p.agentId === 'string') p.agentId = `${(rb.metadata as { namespace: string }).namespace}/${p.agentId.split('/')[1]}`;
          (pb as RawPeer[]).push(p);
          put(a, ra);
          put(b, rb);
        }
      } else if (op < 0.17) {
        // A DELETED of an object never seen, or an ADDED/resync of the same content again.
        const id = `${rng.pick(NAMESPACES)}/${rng.pick(NAMES)}#${1 + rng.int(2)}`;
        const old = raws.get(id);
        if (old === undefined) remove(id);
        else if (rng.chance(0.5)) state.set(id, docs.get(id)!);
        else put(id, structuredClone(old));
      } else if (op < 0.2 && raws.size > 0) {
        // Deleted, committed, then re-added with an older generation (or the same one).
        const id = rng.pick([...raws.keys()]);
        const raw = structuredClone(raws.get(id)!);
        const peers = (raw.spec as { peers: unknown }).peers;
        if (Array.isArray(peers)) for (const p of peers as RawPeer[]) if (typeof p.generation === 'number' && p.generation > 1 && rng.chance(0.7)) p.generation--;
        remove(id);
        pendingReadd = [id, raw];
      } else if (op < 0.22) {
        // Nothing changed: a bookmark, or a relist that found nothing new.
      } else {
        // Usually one change; sometimes a batch (a relist's diff), applied as one commit.
        const changes = rng.chance(0.2) ? 2 + rng.int(4) : 1;
        for (let c = 0; c < changes; c++) {
          const namespace = rng.pick(NAMESPACES);
          const name = rng.pick(NAMES);
          // Now and then a second document of one object (as a file can hold): both refused.
          const id = `${namespace}/${name}#${rng.chance(0.1) ? 2 : 1}`;
          const old = raws.get(id);
          if (old !== undefined && rng.chance(0.15)) {
            remove(id);
            continue;
          }
          put(id, old !== undefined && rng.chance(0.7) ? mutate(rng, old) : randomObject(rng, namespace, name));
        }
      }
      if (pendingReadd !== undefined && op >= 0.2) {
        put(...pendingReadd);
        pendingReadd = undefined;
      }

      // The last snapshot, read for the first time now: documents have changed, not committed.
      const unread = late.at(-1);
      if (unread !== undefined && unread.step === step - 1 && rng.chance(0.5)) {
        late.pop();
        assert.deepEqual(entriesOf(unread.snapshot), unread.expected, `entries of step ${unread.step}, read before the next commit`);
      }
      const snapshot = state.commit();
      assert.equal(snapshot.delta?.base, last, 'each commit follows the last');
      last = snapshot;
      events = [];
      const summary = index.replace(snapshot);

      const results = [...docs.values()];
      const objects = results.flatMap((r) => (r.object === undefined ? [] : [r.object]));
      const refusedObjects = results.flatMap((r) => (r.refusedLabel === undefined ? [] : [r.refusedLabel]));
      const earlier = results.flatMap((r) => r.problems);
      reference = referenceBuildSnapshot(objects, { origin, previous: reference, refusedObjects }, earlier);
      const ref = referenceReplace(referenceKeys, reference);
      referenceKeys = ref.byKey;
      full = buildSnapshot(objects, { origin, previous: full, refusedObjects }, earlier);
      fullEvents = [];
      fullIndex.replace(full);

      const at = `step ${step}`;
      const expected = entriesOf(reference);
      if (rng.chance(0.25)) late.push({ snapshot, expected, step });
      else assert.deepEqual(entriesOf(snapshot), expected, `${at}: entries`);
      assert.deepEqual(entriesOf(full), expected, `${at}: buildSnapshot entries`);
      assert.deepEqual(problemsOf(snapshot), problemsOf(reference), `${at}: problems`);
      assert.deepEqual(problemsOf(full), problemsOf(reference), `${at}: buildSnapshot problems`);
      assert.equal(snapshot.objects, reference.objects, `${at}: objects`);
      assert.equal(snapshot.keptLastGood ?? 0, reference.keptLastGood ?? 0, `${at}: kept last good`);

      // The index: every table, and the revocations.
      assert.deepEqual(revokedOf(events), revokedOf(ref.revoked), `${at}: revoked events`);
      assert.deepEqual(revokedOf(fullEvents), revokedOf(ref.revoked), `${at}: revoked events (full diff)`);
      assert.deepEqual([summary.added, summary.removed, summary.updated, summary.revoked, summary.entries], [ref.added, ref.removed, ref.updated, ref.revoked.length, ref.byKey.size], `${at}: summary`);
      for (const idx of [index, fullIndex]) {
        assert.equal(idx.size, ref.byKey.size, `${at}: size`);
        assert.equal(idx.liveSize, [...ref.byKey.values()].filter((e) => !e.revoked).length, `${at}: live size`);
        for (const key of KEYS) {
          const want = ref.byKey.get(key);
          const got = idx.byPublicKey(key);
          assert.equal(got === undefined ? 'none' : describe(got), want === undefined ? 'none' : describe(want), `${at}: key ${KEYS.indexOf(key)}`);
          const verdict = idx.verifyKey(key, want?.generation ?? 1n);
          assert.equal(verdict.kind, want === undefined ? 'unknown' : want.revoked ? 'revoked' : 'valid', `${at}: verdict of key ${KEYS.indexOf(key)}`);
        }
        for (const a of ADDRESSES) assert.equal(resolution(idx.resolveAddress(a)), resolution(ref.byAddress.get(a)), `${at}: address ${a}`);
        for (const agent of AGENTS) {
          const all = [...ref.byKey.values()].filter((e) => e.agentId === agent);
          assert.deepEqual(idx.byAgentId(agent, { includeRevoked: true }).map(describe).sort(), all.map(describe).sort(), `${at}: agent ${agent}`);
          assert.deepEqual(idx.byAgentId(agent).map(describe).sort(), all.filter((e) => !e.revoked).map(describe).sort(), `${at}: live agent ${agent}`);
        }
      }
      revocations += ref.revoked.length;
      kept += reference.keptLastGood ?? 0;
      conflicts += reference.problems.filter((p) => p.code === 'REGISTRY_CONFLICT').length;
    }
    for (const { snapshot, expected, step } of late) assert.deepEqual(entriesOf(snapshot), expected, `entries of step ${step}, read at the end`);
    // Everything deleted: nothing is held any more (no grouping left behind by any sequence).
    for (const id of [...raws.keys()]) state.delete(id);
    state.commit();
    state.commit();
    assert.deepEqual(state.held, { names: 0, installations: 0, keys: 0, addresses: 0, problemHolders: 0 }, 'groupings held once every document is deleted');
    assert.equal(state.documents, 0);
  });
  assert.ok(renames > 0 && relists > 0, `renames ${renames}, relists ${relists}`);
  // The generator must reach the cases it is for.
  assert.ok(revocations > steps / 10, `revocations: ${revocations} in ${steps} steps`);
  assert.ok(kept > 0, 'some last good entries were kept');
  assert.ok(conflicts > steps / 10, `conflicts: ${conflicts} in ${steps} steps`);
});

test('a one-object change touches that object only: the delta names its keys and addresses, nothing else', () => {
  const state = new RegistryState('delta');
  const object = (i: number, generation: number): ValidationResult =>
    validateClearanceRegistry(
      {
        apiVersion: 'noisemesh.io/v1alpha1',
        kind: 'ClearanceRegistry',
        metadata: { name: `p${i}`, namespace: 'payments' },
        spec: { peers: [{ agentId: `payments/p${i}`, installationId: INSTALLATIONS[i]!, publicKey: KEYS[i]!, generation, addresses: [ADDRESSES[i]!] }] },
      },
      { document: `payments/p${i}` },
    );
  for (let i = 0; i < 5; i++) state.set(`p${i}`, object(i, 1));
  const first = state.commit();
  assert.equal(first.delta?.entries.size, 5);
  state.set('p2', object(2, 2));
  const second = state.commit();
  assert.deepEqual([...second.delta!.entries.keys()], [KEYS[2]]);
  assert.deepEqual([...second.delta!.addresses.keys()], [ADDRESSES[2]]);
  // Nothing changed: an empty delta (the index counts a version, revokes nothing).
  const third = state.commit();
  assert.equal(third.delta!.entries.size, 0);
  const index = new RegistryIndex();
  const revoked: Revoked[] = [];
  index.on('revoked', (k, r, e) => revoked.push([k, r, e.agentId]));
  // An index that missed a snapshot diffs in full: the same result.
  index.replace(first);
  index.replace(third);
  assert.equal(index.byPublicKey(KEYS[2]!)?.generation, 2n);
  assert.deepEqual(revoked, [[KEYS[2], 'generation', 'payments/p2']]);
  state.delete('p4');
  const fourth = state.commit();
  index.replace(fourth);
  assert.deepEqual(revoked.at(-1), [KEYS[4], 'removed', 'payments/p4']);
  assert.equal(index.resolveAddress(ADDRESSES[4]!).kind, 'none');
  assert.equal(first.entries.length, 5, 'an old snapshot still lists its own entries');
  assert.equal(fourth.entries.length, 4);
});

/** One object `payments/p<i>` with one peer of key i, generation `generation`. */
function onePeer(i: number, generation: number, extra: Record<string, unknown> = {}): ValidationResult {
  return validateClearanceRegistry(
    {
      apiVersion: 'noisemesh.io/v1alpha1',
      kind: 'ClearanceRegistry',
      metadata: { name: `p${i}`, namespace: 'payments' },
      spec: { peers: [{ agentId: `payments/p${i}`, installationId: INSTALLATIONS[i]!, publicKey: KEYS[i]!, generation, addresses: [ADDRESSES[i]!], ...extra }] },
    },
    { document: `payments/p${i}` },
  );
}

test('an index that never held a snapshot diffs an older snapshot of a state in full, not by its delta', () => {
  // Every index starts with no snapshot; a snapshot that later commits have detached from its
  // base must not look like a first commit (whose delta is the whole registry).
  const state = new RegistryState('detached');
  for (let i = 0; i < 4; i++) state.set(`p${i}`, onePeer(i, 1));
  state.commit();
  state.set('p1', onePeer(1, 1, { revoked: true }));
  const second = state.commit();
  state.set('p2', onePeer(2, 2));
  state.commit();
  const index = new RegistryIndex();
  index.replace(second);
  assert.equal(index.size, 4);
  assert.equal(index.liveSize, 3);
  assert.equal(index.verifyKey(KEYS[0]!, 1n).kind, 'valid');
  assert.equal(index.verifyKey(KEYS[1]!, 1n).kind, 'revoked');
  for (const i of [0, 2, 3]) assert.equal(resolution(index.resolveAddress(ADDRESSES[i]!)).startsWith('peer'), true, `address ${ADDRESSES[i]} resolves`);
});

test("a snapshot's entries, first read after documents changed but before the next commit, are still that snapshot's", () => {
  for (const change of ['replace', 'delete', 'duplicate'] as const) {
    const state = new RegistryState('pending');
    for (let i = 0; i < 3; i++) state.set(`p${i}`, onePeer(i, 1));
    const snapshot = state.commit();
    if (change === 'replace') state.set('p0', onePeer(0, 3));
    else if (change === 'delete') state.delete('p1');
    else state.set('p2 again', onePeer(2, 1)); // a second document of payments/p2
    assert.deepEqual(snapshot.entries.map((e) => e.agentId).sort(), ['payments/p0', 'payments/p1', 'payments/p2'], change);
    const next = state.commit();
    assert.equal(next.entries.length, change === 'replace' ? 3 : 2, `${change}: the next commit`);
    assert.deepEqual(snapshot.entries.map((e) => e.agentId).sort(), ['payments/p0', 'payments/p1', 'payments/p2'], `${change}, read again`);
  }
});
