// RegistryIndex: lookups by key, address (every spelling) and agentId; key verdicts; and the
// revocation events of PROTOCOL.md section 6, one per way a key stops being valid, and none
// for an unrelated change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildSnapshot,
  normalizeAddress,
  parseRegistryYaml,
  RegistryIndex,
  type ChangeSummary,
  type RegistryEntry,
  type RegistrySnapshot,
  type RevocationReason,
} from '../src/registry-sync/index.js';
import { newPublicKey, peer, registryDoc, registryFile, type Peer } from './fixtures/registry/make.js';

function snapshotOf(docs: Record<string, Peer[]>): RegistrySnapshot {
  const text = registryFile(...Object.entries(docs).map(([ns, peers]) => registryDoc(ns, peers)));
  const parsed = parseRegistryYaml(text, 'test.yaml');
  assert.ok(parsed.ok);
  return buildSnapshot(parsed.objects, { origin: 'test' }, parsed.problems);
}

type Recorded = { revoked: [string, RevocationReason, string][]; changed: ChangeSummary[]; order: string[] };

function record(index: RegistryIndex): Recorded {
  const r: Recorded = { revoked: [], changed: [], order: [] };
  index.on('revoked', (key, reason, previous) => {
    r.revoked.push([key, reason, previous.agentId]);
    r.order.push('revoked');
  });
  index.on('changed', (summary) => {
    r.changed.push(summary);
    r.order.push('changed');
  });
  return r;
}

test('normalizeAddress: one spelling per address', () => {
  const cases: [string, string | undefined][] = [
    ['10.0.3.7', '10.0.3.7'],
    ['2001:DB8:0:0:0:0:0:7', '2001:db8::7'],
    ['2001:db8::7', '2001:db8::7'],
    ['2001:0db8:0000:0000:0001:0000:0000:0001', '2001:db8::1:0:0:1'],
    ['::ffff:10.0.3.7', '10.0.3.7'],
    ['::FFFF:A00:307', '10.0.3.7'],
    ['::1', '::1'],
    ['fe80::1%eth0', undefined],
    ['10.0.3.0/24', undefined],
    ['010.0.3.7', undefined],
    ['[::1]', undefined],
    ['10.0.3.7:80', undefined],
    ['pod.local', undefined],
    ['', undefined],
  ];
  for (const [input, want] of cases) assert.equal(normalizeAddress(input), want, input);
});

test('lookups: key, address in any spelling, agentId; revoked entries visible only when asked', () => {
  const api1 = peer('payments', 'api', { addresses: ['10.0.3.7'], generation: 3 });
  const api2 = peer('payments', 'api', { addresses: ['2001:DB8::a'], generation: 1 });
  const gone = peer('payments', 'api', { addresses: ['10.0.3.99'], revoked: true });
  const db = peer('payments', 'db', { addresses: ['10.0.3.8', '2001:db8:0:0::8'] });
  const index = new RegistryIndex();
  index.replace(snapshotOf({ payments: [api1, api2, gone, db] }));
  assert.equal(index.size, 4);
  assert.equal(index.version, 1);

  assert.equal(index.byPublicKey(api1.publicKey as string)?.agentId, 'payments/api');
  assert.equal(index.byPublicKey(gone.publicKey as string)?.revoked, true, 'a revoked entry is visible by key');
  assert.equal(index.byPublicKey(newPublicKey()), undefined);

  const agentOf = (address: string): string => {
    const r = index.resolveAddress(address);
    return r.kind === 'peer' ? `${r.entry.agentId}${r.entry.revoked ? ' (revoked)' : ''}` : r.kind;
  };
  assert.equal(agentOf('10.0.3.7'), 'payments/api');
  assert.equal(agentOf('::ffff:10.0.3.7'), 'payments/api', 'IPv4-mapped, as a dual-stack socket reports it');
  assert.equal(agentOf('2001:db8::a'), 'payments/api');
  assert.equal(agentOf('2001:0DB8:0:0:0:0:0:A'), 'payments/api');
  assert.equal(agentOf('2001:db8::8'), 'payments/db');
  assert.equal(agentOf('10.0.3.99'), 'payments/api (revoked)', 'a revoked pod is refused, not taken for unmeshed');
  assert.equal(agentOf('10.0.3.100'), 'none');
  assert.equal(agentOf('not an address'), 'none');

  assert.deepEqual(index.byAgentId('payments/api').map((e) => e.generation), [3n, 1n]);
  assert.deepEqual(index.byAgentId('payments/api', { includeRevoked: true }).map((e) => e.revoked), [false, false, true]);
  assert.deepEqual(index.byAgentId('payments/nothing'), []);
  assert.ok(Object.isFrozen(index.byAgentId('payments/api')));
});

test('verifyKey: valid, stale generation, revoked (incl. superseded), unknown; by text or bytes', () => {
  const installationId = '0fe2cc20-6f4e-4552-988c-b4aac7db0c55';
  const live = peer('payments', 'api', { generation: 7 });
  const revoked = peer('payments', 'db', { revoked: true, generation: 2 });
  const old = peer('payments', 'w', { installationId, generation: 1 });
  const current = peer('payments', 'w', { installationId, generation: 2 });
  const index = new RegistryIndex();
  index.replace(snapshotOf({ payments: [live, revoked, old, current] }));

  const v = index.verifyKey(live.publicKey as string, 7n);
  assert.equal(v.kind, 'valid');
  assert.equal(v.kind === 'valid' ? v.entry.agentId : '', 'payments/api');
  assert.equal(index.verifyKey(Buffer.from(live.publicKey as string, 'base64'), 7n).kind, 'valid');
  assert.equal(index.verifyKey(live.publicKey as string, 6n).kind, 'stale-generation');
  assert.equal(index.verifyKey(live.publicKey as string, 8n).kind, 'stale-generation');
  assert.equal(index.verifyKey(revoked.publicKey as string, 2n).kind, 'revoked');
  assert.equal(index.verifyKey(revoked.publicKey as string, 3n).kind, 'revoked');
  assert.equal(index.verifyKey(old.publicKey as string, 1n).kind, 'revoked', 'superseded by generation 2');
  assert.equal(index.verifyKey(current.publicKey as string, 2n).kind, 'valid');
  assert.equal(index.verifyKey(newPublicKey(), 1n).kind, 'unknown');
  // Verdicts are precomputed: the same object each time, no allocation on the hot path.
  assert.equal(index.verifyKey(live.publicKey as string, 7n), index.verifyKey(live.publicKey as string, 7n));
});

// One base registry, then each way a key can stop being valid, applied on its own.
function base(): { peers: Record<string, Peer>; docs: () => Record<string, Peer[]> } {
  const peers: Record<string, Peer> = {
    api: peer('payments', 'api', { generation: 3, addresses: ['10.0.3.7'], clearance: 'internal' }),
    db: peer('payments', 'db', { addresses: ['10.0.3.8'] }),
    web: peer('frontend', 'web', { addresses: ['10.0.4.2'] }),
    dead: peer('frontend', 'dead', { revoked: true }),
  };
  return {
    peers,
    docs: () => ({
      payments: [peers.api!, peers.db!],
      frontend: [peers.web!, peers.dead!],
    }),
  };
}

function applyChange(change: (p: Record<string, Peer>) => void): { index: RegistryIndex; rec: Recorded; before: Record<string, Peer>; summary: ChangeSummary } {
  const b = base();
  const index = new RegistryIndex();
  const rec = record(index);
  index.replace(snapshotOf(b.docs()));
  assert.deepEqual(rec.revoked, [], 'the first snapshot revokes nothing');
  assert.equal(rec.changed.length, 1);
  assert.deepEqual([rec.changed[0]!.added, rec.changed[0]!.removed, rec.changed[0]!.updated], [4, 0, 0]);
  rec.changed.length = 0;
  rec.order.length = 0;
  const before = structuredClone(b.peers);
  change(b.peers);
  const summary = index.replace(snapshotOf(b.docs()));
  return { index, rec, before, summary };
}

test('revocation: entry removed', () => {
  const { rec, before, summary, index } = applyChange((p) => {
    delete p.api;
  });
  assert.deepEqual(rec.revoked, [[before.api!.publicKey, 'removed', 'payments/api']]);
  assert.deepEqual([summary.added, summary.removed, summary.updated, summary.revoked], [0, 1, 0, 1]);
  assert.deepEqual(rec.order, ['revoked', 'changed']);
  assert.equal(index.verifyKey(before.api!.publicKey as string, 3n).kind, 'unknown');
  assert.equal(index.resolveAddress('10.0.3.7').kind, 'none');
});

test('revocation: marked revoked: true', () => {
  const { rec, before, summary, index } = applyChange((p) => {
    p.api = { ...p.api!, revoked: true };
  });
  assert.deepEqual(rec.revoked, [[before.api!.publicKey, 'revoked', 'payments/api']]);
  assert.deepEqual([summary.added, summary.removed, summary.updated, summary.revoked], [0, 0, 1, 1]);
  assert.equal(index.verifyKey(before.api!.publicKey as string, 3n).kind, 'revoked');
});

test('revocation: key changed (re-keyed installation) revokes the old key', () => {
  const { rec, before, summary, index } = applyChange((p) => {
    p.api = { ...p.api!, publicKey: newPublicKey(), generation: 4 };
  });
  assert.deepEqual(rec.revoked, [[before.api!.publicKey, 'rekeyed', 'payments/api']]);
  assert.deepEqual([summary.added, summary.removed, summary.updated, summary.revoked], [1, 1, 0, 1]);
  assert.equal(index.byAgentId('payments/api').length, 1);
});

test('revocation: superseded by a new generation published beside it', () => {
  const b = base();
  const index = new RegistryIndex();
  const rec = record(index);
  index.replace(snapshotOf(b.docs()));
  const newer = { ...b.peers.api!, publicKey: newPublicKey(), generation: 4 };
  index.replace(snapshotOf({ ...b.docs(), payments: [b.peers.api!, newer, b.peers.db!] }));
  assert.deepEqual(rec.revoked, [[b.peers.api!.publicKey, 'rekeyed', 'payments/api']]);
  assert.equal(index.verifyKey(newer.publicKey, 4n).kind, 'valid');
});

test('revocation: generation changed, same key', () => {
  const { rec, before, summary, index } = applyChange((p) => {
    p.api = { ...p.api!, generation: 4 };
  });
  assert.deepEqual(rec.revoked, [[before.api!.publicKey, 'generation', 'payments/api']]);
  assert.deepEqual([summary.added, summary.removed, summary.updated, summary.revoked], [0, 0, 1, 1]);
  assert.equal(index.verifyKey(before.api!.publicKey as string, 3n).kind, 'stale-generation');
  assert.equal(index.verifyKey(before.api!.publicKey as string, 4n).kind, 'valid');
});

test('revocation: same key now claims another identity', () => {
  const { rec, before } = applyChange((p) => {
    p.api = { ...p.api!, agentId: 'payments/other' };
  });
  assert.deepEqual(rec.revoked, [[before.api!.publicKey, 'reassigned', 'payments/api']]);
});

test('revocation: a peer made invalid, or made to conflict, is removed', () => {
  const invalid = applyChange((p) => {
    p.api = { ...p.api!, clearance: 'bogus' };
  });
  assert.deepEqual(invalid.rec.revoked, [[invalid.before.api!.publicKey, 'removed', 'payments/api']]);

  const conflict = applyChange((p) => {
    p.web = { ...p.web!, publicKey: p.api!.publicKey };
  });
  assert.deepEqual(
    conflict.rec.revoked.map(([, reason, agent]) => [reason, agent]).sort(),
    [['removed', 'frontend/web'], ['removed', 'payments/api']],
    'the victim and the copier both lose the key',
  );
});

test('no revocation for an unrelated change, for an already revoked key, or for no change', () => {
  const unrelated = applyChange((p) => {
    p.api = { ...p.api!, clearance: 'secrets-only', addresses: ['10.0.3.70'], delegationDepth: 2, meshPort: 15444 };
    p.db = { ...p.db!, attestation: { authnStrength: 'high', attestedAt: '2026-11-23T09:00:00Z' } };
    p.extra = peer('payments', 'extra');
  });
  assert.deepEqual(unrelated.rec.revoked, []);
  assert.deepEqual([unrelated.summary.added, unrelated.summary.updated, unrelated.summary.removed, unrelated.summary.revoked], [0, 2, 0, 0]);
  assert.equal(unrelated.index.resolveAddress('10.0.3.70').kind, 'peer');
  assert.equal(unrelated.index.resolveAddress('10.0.3.7').kind, 'none');

  const deadRemoved = applyChange((p) => {
    delete p.dead;
  });
  assert.deepEqual(deadRemoved.rec.revoked, [], 'an already revoked key has no sessions left to abort');
  assert.equal(deadRemoved.summary.removed, 1);

  const same = applyChange(() => {});
  assert.deepEqual(same.rec.revoked, []);
  assert.deepEqual([same.summary.added, same.summary.removed, same.summary.updated], [0, 0, 0]);
});

test('reordering peers is no change', () => {
  const b = base();
  const index = new RegistryIndex();
  const rec = record(index);
  index.replace(snapshotOf(b.docs()));
  const summary = index.replace(snapshotOf({ frontend: [b.peers.dead!, b.peers.web!], payments: [b.peers.db!, b.peers.api!] }));
  assert.deepEqual(rec.revoked, []);
  assert.deepEqual([summary.added, summary.removed, summary.updated], [0, 0, 0]);
});

test('listeners run with the new tables in force, all of them even when one throws', () => {
  const b = base();
  const index = new RegistryIndex();
  index.replace(snapshotOf(b.docs()));
  const seen: string[] = [];
  index.on('revoked', (key) => {
    seen.push(`first:${index.byPublicKey(key) === undefined ? 'gone' : 'present'}`);
    throw new Error('listener bug');
  });
  index.on('revoked', () => seen.push('second'));
  index.on('changed', () => seen.push('changed'));
  const next = { payments: [b.peers.db!], frontend: [b.peers.dead!] };
  assert.throws(() => index.replace(snapshotOf(next)), /listener bug/);
  assert.deepEqual(seen, ['first:gone', 'second', 'first:gone', 'second', 'changed']);
  assert.equal(index.size, 2, 'the snapshot is in force although a listener threw');
  assert.equal(index.revocations, 2);
});

test('an unsubscribed listener hears nothing more', () => {
  const b = base();
  const index = new RegistryIndex();
  index.replace(snapshotOf(b.docs()));
  const heard: string[] = [];
  const off = index.on('revoked', (key) => heard.push(key));
  off();
  index.replace(snapshotOf({ payments: [] }));
  assert.equal(index.size, 0);
  assert.deepEqual(heard, []);
});

test('lookups on a large index stay map lookups (sanity: 20k entries)', () => {
  const entries: RegistryEntry[] = [];
  const template = snapshotOf({ payments: [peer('payments', 'api')] }).entries[0]!;
  for (let i = 0; i < 20000; i++) {
    const key = Buffer.alloc(32);
    key.writeUInt32BE(i + 1, 0);
    entries.push(Object.freeze({
      ...template,
      installationId: `00000000-0000-4000-8000-${(i + 1).toString(16).padStart(12, '0')}`,
      publicKey: key,
      publicKeyB64: key.toString('base64'),
      addresses: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`],
    }));
  }
  const index = new RegistryIndex();
  index.replace({ origin: 'synthetic', entries, problems: [], objects: 1 });
  assert.equal(index.size, 20000);
  assert.equal(index.byAgentId('payments/api').length, 20000);
  const probe = entries[12345]!;
  assert.equal(index.byPublicKey(probe.publicKeyB64), probe);
  const r = index.resolveAddress(probe.addresses[0]!);
  assert.equal(r.kind === 'peer' ? r.entry : undefined, probe);
  const start = process.hrtime.bigint();
  for (let i = 0; i < 100000; i++) index.verifyKey(probe.publicKeyB64, 1n);
  const nsPerLookup = Number(process.hrtime.bigint() - start) / 100000;
  console.log(`verifyKey on 20k entries: ${nsPerLookup.toFixed(0)} ns per lookup`);
});
