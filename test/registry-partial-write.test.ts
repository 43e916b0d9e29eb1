// A registry caught mid-write, and broken entries: the per-entry last good rule of
// buildSnapshot (shared by every source), what a half-written file may and may not change at
// once (holdBackUnsettled), and the file source's settle time on a manual clock. Also a path
// that turns into a FIFO: refused, counted, the last good registry kept, later files loaded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import {
  FileRegistrySource,
  Registry,
  RegistryIndex,
  buildSnapshot,
  holdBackUnsettled,
  parseRegistryYaml,
  type RegistrySnapshot,
  type RegistrySourceError,
  type RevocationReason,
  type SourceClock,
} from '../src/registry-sync/index.js';
import { newPublicKey, peer, registryDoc, registryFile, type Peer } from './fixtures/registry/make.js';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-partial-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Parses and builds like the file source, against the snapshot in force. */
function build(text: string, previous?: RegistrySnapshot): RegistrySnapshot | undefined {
  const parsed = parseRegistryYaml(text, 'registry.yaml');
  if (!parsed.ok) return undefined;
  return buildSnapshot(parsed.objects, { origin: 'test', previous, refusedObjects: parsed.refusedObjects }, parsed.problems);
}

function must(s: RegistrySnapshot | undefined): RegistrySnapshot {
  assert.ok(s !== undefined, 'the text parses');
  return s;
}

/** Revocations that putting `next` in force after `inForce` emits. */
function revocations(inForce: RegistrySnapshot, next: RegistrySnapshot): [string, RevocationReason][] {
  const index = new RegistryIndex();
  index.replace(inForce);
  const out: [string, RevocationReason][] = [];
  index.on('revoked', (key, reason) => out.push([key, reason]));
  index.replace(next);
  return out;
}

/** The text up to the end of the line holding the `n`th (1-based) occurrence of `marker`. */
function cutAfterLine(text: string, marker: string, n: number): string {
  let at = -1;
  for (let i = 0; i < n; i++) at = text.indexOf(marker, at + 1);
  assert.ok(at >= 0, `${marker} occurs ${n} times`);
  return text.slice(0, text.indexOf('\n', at) + 1);
}

// --- The last good rule (buildSnapshot) -------------------------------------------------

test('a peer that is now broken keeps its last good version, with a warning that says so', () => {
  const api = peer('payments', 'api');
  const db = peer('payments', 'db', { addresses: ['10.0.3.8'] });
  const good = must(build(registryDoc('payments', [api, db])));
  // The case: the file cut right after db's publicKey line, so db has no generation.
  const partial = cutAfterLine(registryDoc('payments', [api, db]), 'publicKey:', 2);
  const next = must(build(partial, good));
  assert.equal(next.keptLastGood, 1);
  assert.deepEqual(revocations(good, next), []);
  assert.equal(next.entries.find((e) => e.publicKeyB64 === db.publicKey)?.addresses[0], '10.0.3.8', 'the last good version, whole');
  const kept = next.problems.find((p) => p.code === 'REGISTRY_KEPT');
  assert.equal(kept?.severity, 'warning');
  assert.equal(kept?.path, 'spec.peers[1]');
  assert.match(kept!.message, /last good version \(payments\/db, generation 1\) stays in force until it is fixed/);
  assert.ok(next.problems.some((p) => p.path === 'spec.peers[1].generation' && p.severity === 'error'), 'the fault itself is still reported');

  // With nothing in force (a proxy that starts on the broken file) the peer is refused.
  assert.equal(must(build(partial)).entries.length, 1);
});

test('a broken peer is matched by key, else installation, else position, only if what it still says agrees', () => {
  const api = peer('payments', 'api');
  const db = peer('payments', 'db');
  const good = must(build(registryDoc('payments', [api, db])));
  const cases: [string, Peer, RevocationReason[]][] = [
    ['a malformed field', { ...db, clearance: 'top-secret' }, []],
    ['a truncated key, found by installation', { ...db, publicKey: (db.publicKey as string).slice(0, 20), generation: undefined }, []],
    ['nothing but a malformed agentId, found by position', { agentId: 'pay' }, []],
    ['a null peer, found by position', null as unknown as Peer, []],
    ['revoked: true with a fault: a revocation', { ...db, revoked: true, clearance: 'x' }, ['removed']],
    ['a quoted "true": may mean to revoke', { ...db, revoked: 'true' }, ['removed']],
    ['a misspelt revoked: may mean to revoke', { ...db, revokd: true }, ['removed']],
    ['another generation with a fault: a statement', { ...db, generation: 2, clearance: 'x' }, ['removed']],
    ['another agentId with a fault: another entry', { ...db, agentId: 'payments/other', clearance: 'x' }, ['removed']],
  ];
  for (const [what, broken, expected] of cases) {
    const next = must(build(registryDoc('payments', [api, broken]), good));
    assert.deepEqual(revocations(good, next).map(([, reason]) => reason), expected, what);
    assert.equal(next.keptLastGood, expected.length === 0 ? 1 : 0, what);
  }
});

test('the last good rule keeps the namespace rule and refuses a key claimed twice', () => {
  const api = peer('payments', 'api');
  const good = must(build(registryDoc('payments', [api])));
  // Another namespace breaks an entry carrying api's key while payments removes api: the
  // removal stands, nobody else can keep payments' entry alive.
  const copy = { ...peer('evil', 'x'), publicKey: api.publicKey, generation: 'one' };
  const next = must(build(registryFile(registryDoc('payments', []), registryDoc('evil', [copy])), good));
  assert.deepEqual(revocations(good, next), [[api.publicKey, 'removed']]);

  // A kept entry whose key another object now claims, well-formed: both refused.
  const claim = { ...peer('shop', 'y'), publicKey: api.publicKey };
  const both = must(build(registryFile(registryDoc('payments', [{ ...api, generation: 'one' }]), registryDoc('shop', [claim])), good));
  assert.equal(both.entries.length, 0);
  assert.ok(both.problems.some((p) => p.code === 'REGISTRY_CONFLICT' && p.document === 'shop/shop'));
});

test('a document refused as a whole keeps its last good entries; one without a readable name does not', () => {
  const api = peer('payments', 'api');
  const web = peer('shop', 'web');
  const good = must(build(registryFile(registryDoc('payments', [api]), registryDoc('shop', [web]))));
  const wrongKind = registryDoc('payments', [api]).replace('kind: ClearanceRegistry', 'kind: ClearanceRegistryy');
  const next = must(build(registryFile(wrongKind, registryDoc('shop', [web])), good));
  assert.ok(next.problems.some((p) => p.code === 'REGISTRY_KEPT' && p.document === 'payments/payments' && /1 last good entry stays in force/.test(p.message)));
  assert.ok(next.entries.some((e) => e.publicKeyB64 === api.publicKey));
  assert.deepEqual(revocations(good, next), []);

  // Without a namespace and name nobody can tell whose entries they were: refused.
  const nameless = registryDoc('payments', [api]).replace(/metadata:\n  name: payments\n  namespace: payments\n/, '');
  assert.doesNotMatch(nameless, /namespace: payments/);
  const lost = must(build(registryFile(nameless, registryDoc('shop', [web])), good));
  assert.deepEqual(revocations(good, lost), [[api.publicKey, 'removed']]);
});

// --- What a half-written file may change at once (holdBackUnsettled) ----------------------

test('from unsettled content only what a prefix cannot fake applies at once', () => {
  const api = peer('payments', 'api', { generation: 12, addresses: ['10.0.3.7'] });
  const db = peer('payments', 'db', { revoked: true });
  const web = peer('payments', 'web');
  const inForce = must(build(registryDoc('payments', [api, db, web])));
  const cases: [string, Peer[], [string, RevocationReason][], number][] = [
    ['a removal waits', [api, db], [], 1],
    ['a lowered generation waits (12 cut to 1)', [{ ...api, generation: 1 }, db, web], [], 1],
    ['a changed agentId waits (cut short)', [{ ...api, agentId: 'payments/a' }, db, web], [], 1],
    ['a revoked key made valid waits', [api, { ...db, revoked: false }, web], [], 1],
    ['an address list cut short waits', [{ ...api, addresses: [] }, db, web], [], 1],
    ['revoked: true applies', [{ ...api, revoked: true }, db, web], [[api.publicKey as string, 'revoked']], 0],
    ['a raised generation applies', [{ ...api, generation: 13 }, db, web], [[api.publicKey as string, 'generation']], 0],
    ['a new key of the installation applies', [api, db, { ...web, publicKey: newPublicKey(), generation: 2 }], [[web.publicKey as string, 'rekeyed']], 0],
    ['a new peer applies', [api, db, web, peer('payments', 'new')], [], 0],
  ];
  for (const [what, peers, expected, held] of cases) {
    const next = must(build(registryDoc('payments', peers), inForce));
    const h = holdBackUnsettled(inForce, next);
    assert.equal(h.held, held, what);
    assert.deepEqual(revocations(inForce, h.snapshot), expected, what);
    assert.deepEqual(h.snapshot.problems, [], `${what}: problems wait for the settled snapshot`);
  }
});

test('no prefix of a rewritten file revokes a key the finished file keeps, nor revives a revoked one', () => {
  const peers = [
    peer('payments', 'api', { generation: 12, addresses: ['10.0.3.7', 'fd00::7'], clearance: 'internal', meshPort: 15443 }),
    peer('payments', 'db', { revoked: true, addresses: ['10.0.3.8'] }),
    peer('payments', 'web-frontend', { attestation: { authnStrength: 'high', attestedAt: '2026-11-23T09:00:00Z' } }),
  ];
  const others = [peer('shop', 'cart', { generation: 3 }), peer('shop', 'pay', { generation: 100 })];
  const text = registryFile(registryDoc('payments', peers), stringify({ apiVersion: 'v1', kind: 'List', items: [] }), registryDoc('shop', others));
  const inForce = must(build(text));
  const finished = `# rewritten in place\n${text}`;
  const live = inForce.entries.filter((e) => !e.revoked).map((e) => e.publicKeyB64);
  let parsedPrefixes = 0;
  for (let cut = 0; cut <= finished.length; cut++) {
    const next = build(finished.slice(0, cut), inForce);
    if (next === undefined) continue; // a syntax error or an empty file: nothing applies
    parsedPrefixes++;
    const { snapshot } = holdBackUnsettled(inForce, next);
    assert.deepEqual(revocations(inForce, snapshot), [], `cut at byte ${cut}`);
    const index = new RegistryIndex();
    index.replace(snapshot);
    for (const key of live) assert.equal(index.byPublicKey(key)?.revoked, false, `cut at byte ${cut}: a live key stays live`);
    assert.equal(index.byPublicKey(peers[1]!.publicKey as string)?.revoked, true, `cut at byte ${cut}: the revoked key stays revoked`);
  }
  assert.ok(parsedPrefixes > finished.length / 2, `most prefixes parse (${parsedPrefixes} of ${finished.length})`);
});

// --- The file source on a manual clock ----------------------------------------------------

class ManualClock implements SourceClock {
  #now = 0;
  #id = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.#now;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    this.#id++;
    this.#timers.set(this.#id, { at: this.#now + ms, fn });
    return this.#id;
  }
  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }
  /** Moves time on, firing every timer due on the way, in order. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const t of this.#timers) if (t[1].at <= end && (next === undefined || t[1].at < next[1].at)) next = t;
      if (next === undefined) break;
      this.#timers.delete(next[0]);
      this.#now = next[1].at;
      next[1].fn();
    }
    this.#now = end;
  }
}

interface Watched {
  source: FileRegistrySource;
  registry: Registry;
  clock: ManualClock;
  revoked: [string, RevocationReason][];
  errors: RegistrySourceError[];
}

async function watched(t: { after: (fn: () => Promise<void>) => void }, file: string): Promise<Watched> {
  const clock = new ManualClock();
  // No watcher and a poll that never comes: every check is the test's refresh() or the settle timer.
  const source = new FileRegistrySource(file, { watch: false, pollIntervalMs: 3_600_000, settleMs: 450, clock });
  const registry = new Registry(source);
  const w: Watched = { source, registry, clock, revoked: [], errors: [] };
  registry.on('revoked', (key, reason) => w.revoked.push([key, reason]));
  registry.on('error', (err) => w.errors.push(err));
  t.after(() => registry.stop());
  registry.start();
  await registry.ready();
  return w;
}

/** Lets the settle timer fire, then waits for the check it started. */
async function pass(w: Watched, ms: number): Promise<void> {
  w.clock.advance(ms);
  await w.source.refresh();
}

test('file source: a half-written file revokes nothing; the finished one applies at once', async (t) => {
  const file = join(tempDir(t), 'registry.yaml');
  const api = peer('payments', 'api');
  const db = peer('payments', 'db');
  const text = registryDoc('payments', [api, db]);
  writeFileSync(file, text);
  const w = await watched(t, file);
  const version = w.registry.index.version;

  writeFileSync(file, cutAfterLine(text, 'publicKey:', 2)); // truncated, first chunk written
  await w.source.refresh();
  await pass(w, 300);
  assert.deepEqual(w.revoked, []);
  assert.equal(w.registry.index.version, version, 'nothing applied while the file may be half-written');
  writeFileSync(file, `${text}# a comment\n`);
  await w.source.refresh();
  assert.equal(w.registry.index.version, version + 1, 'whole content applies without waiting');
  await pass(w, 1000);
  assert.deepEqual(w.revoked, []);
  assert.deepEqual(w.errors, []);
  assert.equal(w.registry.index.snapshot?.keptLastGood, 0);

  // A file that stays broken is applied once it has settled: the entry at its last good
  // version, and the warning that says so.
  writeFileSync(file, cutAfterLine(text, 'publicKey:', 2));
  await w.source.refresh();
  await pass(w, 449);
  assert.equal(w.registry.index.version, version + 1);
  await pass(w, 1);
  assert.equal(w.registry.index.version, version + 2);
  assert.equal(w.registry.index.snapshot?.keptLastGood, 1);
  assert.ok(w.registry.index.snapshot?.problems.some((p) => p.code === 'REGISTRY_KEPT'));
  assert.equal(w.registry.index.verifyKey(db.publicKey as string, 1n).kind, 'valid');
  assert.deepEqual(w.revoked, []);
});

test('file source: a removal lands after the settle time, revoked: true and a new generation at once', async (t) => {
  const file = join(tempDir(t), 'registry.yaml');
  const api = peer('payments', 'api');
  const db = peer('payments', 'db');
  const web = peer('payments', 'web');
  writeFileSync(file, registryDoc('payments', [api, db, web]));
  const w = await watched(t, file);

  writeFileSync(file, registryDoc('payments', [api, { ...db, revoked: true }, web]));
  await w.source.refresh();
  assert.deepEqual(w.revoked, [[db.publicKey, 'revoked']], 'revoked: true: at once');

  writeFileSync(file, registryDoc('payments', [api, { ...db, revoked: true }, { ...web, generation: 2 }]));
  await w.source.refresh();
  assert.deepEqual(w.revoked.slice(1), [[web.publicKey, 'generation']], 'a new generation: at once');

  writeFileSync(file, registryDoc('payments', [{ ...db, revoked: true }, { ...web, generation: 2 }]));
  await w.source.refresh();
  await pass(w, 449);
  assert.equal(w.revoked.length, 2, 'a removal waits for the file to settle');
  await pass(w, 1);
  assert.deepEqual(w.revoked.slice(2), [[api.publicKey, 'removed']]);

  // A removal undone before the settle time is never applied.
  writeFileSync(file, registryDoc('payments', [{ ...web, generation: 2 }]));
  await w.source.refresh();
  await pass(w, 200);
  writeFileSync(file, registryDoc('payments', [{ ...db, revoked: true }, { ...web, generation: 2 }]));
  await w.source.refresh();
  await pass(w, 1000);
  assert.equal(w.revoked.length, 3);
  assert.deepEqual(w.errors, []);
});

test('file source: errors in content are reported once it has settled, never for a passing state', async (t) => {
  const file = join(tempDir(t), 'registry.yaml');
  const text = registryDoc('payments', [peer('payments', 'api')]);
  writeFileSync(file, text);
  const w = await watched(t, file);
  writeFileSync(file, ''); // truncated, nothing written yet
  await w.source.refresh();
  writeFileSync(file, `${text}    - agentId: [unclosed\n`);
  await w.source.refresh();
  await pass(w, 300);
  assert.equal(w.errors.length, 0);
  await pass(w, 200);
  assert.deepEqual(w.errors.map((e) => e.code), ['REGISTRY_SYNTAX']);
  assert.equal(w.registry.stats().healthy, false);
  writeFileSync(file, text);
  await w.source.refresh();
  assert.equal(w.registry.stats().healthy, true);
  assert.deepEqual(w.revoked, []);
});

test('file source: a FIFO at the path is refused and counted, the last good registry stays, the next file loads', { timeout: 30_000 }, async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'registry.yaml');
  const api = peer('payments', 'api');
  const db = peer('payments', 'db');
  writeFileSync(file, registryDoc('payments', [api, db]));
  const w = await watched(t, file);
  const fifo = join(dir, 'fifo');
  const r = spawnSync('mkfifo', [fifo]);
  assert.equal(r.status, 0, 'mkfifo (Debian package coreutils)');
  renameSync(fifo, file);

  for (let i = 0; i < 3; i++) await w.source.refresh(); // each one returns: nothing waits on the pipe
  assert.equal(w.errors.length, 1, 'reported once');
  assert.equal(w.errors[0]!.code, 'REGISTRY_READ');
  assert.match(w.errors[0]!.message, /registry\.yaml: is a FIFO \(named pipe\), not a regular file: point registry\.file at the YAML file itself; the last good registry stays in force/);
  assert.equal(w.registry.stats().errors, 1);
  assert.equal(w.registry.stats().healthy, false);
  assert.equal(w.registry.index.verifyKey(api.publicKey as string, 1n).kind, 'valid');

  const tmp = join(dir, 'next.yaml');
  writeFileSync(tmp, registryDoc('payments', [{ ...api, revoked: true }, db]));
  renameSync(tmp, file);
  await w.source.refresh();
  assert.deepEqual(w.revoked, [[api.publicKey, 'revoked']]);
  assert.equal(w.registry.stats().healthy, true);
});

test('file source: a writer that rewrites the file faster than the settle time cannot hold a removal back', async (t) => {
  // Rewritten in place every 400 ms (a tool that stamps the time in a comment), each time
  // without the removed peer: each new content restarted the settle time, so the removal
  // never landed for as long as the rewrites went on.
  const file = join(tempDir(t), 'registry.yaml');
  const api = peer('payments', 'api');
  const db = peer('payments', 'db');
  writeFileSync(file, registryDoc('payments', [api, db]));
  const w = await watched(t, file);
  const without = registryDoc('payments', [db]);
  for (let i = 0; i < 5; i++) {
    writeFileSync(file, `${without}# written ${i}\n`);
    await w.source.refresh();
    await pass(w, 200);
    // Caught truncated now and then: an empty file is a prefix of every write.
    if (i % 2 === 1) {
      writeFileSync(file, '');
      await w.source.refresh();
    }
    await pass(w, 200);
  }
  assert.deepEqual(w.revoked, [[api.publicKey, 'removed']], 'the removal, seen in two finished writes, lands after the settle time');
  assert.deepEqual(w.errors, []);

  // The same churn never turns a half-written file into a revocation: a write caught twice,
  // growing, is one write.
  const text = registryDoc('payments', [db, api]);
  writeFileSync(file, text);
  await w.source.refresh();
  await pass(w, 1000);
  const revokedBefore = w.revoked.length;
  const cut = cutAfterLine(text, 'publicKey:', 2);
  writeFileSync(file, cut.slice(0, cut.length - 30));
  await w.source.refresh();
  await pass(w, 300);
  writeFileSync(file, cut);
  await w.source.refresh();
  await pass(w, 300);
  writeFileSync(file, `${text}# done\n`);
  await w.source.refresh();
  await pass(w, 1000);
  assert.equal(w.revoked.length, revokedBefore, 'no prefix of one write revokes what it keeps');
});
