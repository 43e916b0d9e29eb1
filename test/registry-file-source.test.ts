// FileRegistrySource and Registry on a real filesystem: reloads on an in-place write, an
// atomic rename and a ConfigMap-style `..data` symlink swap, by fs.watch and by the poll alone;
// a broken, empty or vanished file keeps the last good snapshot; stop() leaves nothing open.
// Waits are bounded and generous; latencies are logged, never asserted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Registry,
  type FileSourceOptions,
  type RegistrySourceError,
  type RevocationReason,
} from '../src/registry-sync/index.js';
import { repoRoot } from './helpers/paths.js';
import { peer, registryDoc, type Peer } from './fixtures/registry/make.js';
import { LOW_ORDER_X25519_B64 } from './helpers/low-order.js';

const WAIT_MS = 15_000;

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-registry-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Polls `predicate` every 10 ms for at most `ms`; fails with `what` if it never holds. */
async function waitFor(what: string, predicate: () => boolean, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Awaits `promise` for at most WAIT_MS. */
async function within<T>(what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${WAIT_MS} ms`)), WAIT_MS))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

interface Harness {
  registry: Registry;
  revoked: { key: string; reason: RevocationReason; at: number }[];
  errors: RegistrySourceError[];
}

async function open(t: { after: (fn: () => Promise<void>) => void }, file: string, options: FileSourceOptions): Promise<Harness> {
  const registry = Registry.fromFile(file, options);
  const h: Harness = { registry, revoked: [], errors: [] };
  registry.on('revoked', (key, reason) => h.revoked.push({ key, reason, at: performance.now() }));
  registry.on('error', (err) => h.errors.push(err));
  t.after(() => registry.stop());
  registry.start();
  await within('registry ready', registry.ready());
  return h;
}

type Replace = (file: string, text: string) => void;

const inPlace: Replace = (file, text) => writeFileSync(file, text); // same inode, O_TRUNC then write
const atomicRename: Replace = (file, text) => {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
};

/** The layout kubelet gives a ConfigMap volume, and its update: a new dir, `..data` swapped. */
function configMapVolume(dir: string, text: string): { file: string; update: (text: string) => void } {
  let n = 0;
  let current: string | undefined;
  const update = (content: string): void => {
    n++;
    const stamp = `..2026_11_23_09_00_${String(n).padStart(2, '0')}.${process.pid}`;
    mkdirSync(join(dir, stamp));
    writeFileSync(join(dir, stamp, 'registry.yaml'), content);
    symlinkSync(stamp, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    if (current !== undefined) rmSync(join(dir, current), { recursive: true, force: true });
    current = stamp;
  };
  update(text);
  symlinkSync(join('..data', 'registry.yaml'), join(dir, 'registry.yaml'));
  return { file: join(dir, 'registry.yaml'), update };
}

interface Scenario {
  readonly name: string;
  readonly setup: (dir: string, text: string) => { file: string; update: (text: string) => void };
}

const scenarios: Scenario[] = [
  {
    name: 'in-place write',
    setup: (dir, text) => {
      const file = join(dir, 'registry.yaml');
      writeFileSync(file, text);
      return { file, update: (t) => inPlace(file, t) };
    },
  },
  {
    name: 'atomic rename',
    setup: (dir, text) => {
      const file = join(dir, 'registry.yaml');
      writeFileSync(file, text);
      return { file, update: (t) => atomicRename(file, t) };
    },
  },
  { name: 'ConfigMap ..data symlink swap', setup: (dir, text) => configMapVolume(dir, text) },
];

const modes: { name: string; options: FileSourceOptions }[] = [
  // A poll far beyond the wait: only fs.watch can deliver in time.
  { name: 'fs.watch', options: { pollIntervalMs: 10 * 60_000 } },
  // No watcher at all: only the poll can.
  { name: 'poll only', options: { watch: false, pollIntervalMs: 100 } },
];

for (const scenario of scenarios) {
  for (const mode of modes) {
    test(`reload on ${scenario.name} (${mode.name}): a revoked key is reported`, async (t) => {
      const dir = tempDir(t);
      const api: Peer = peer('payments', 'api', { addresses: ['10.0.3.7'] });
      const db: Peer = peer('payments', 'db');
      const { file, update } = scenario.setup(dir, registryDoc('payments', [api, db]));
      const h = await open(t, file, mode.options);
      assert.equal(h.registry.index.size, 2);
      assert.equal(h.registry.index.verifyKey(api.publicKey as string, 1n).kind, 'valid');

      // Three changes in a row, each must be seen: revoke, re-add at generation 2, remove.
      const steps: [Peer[], RevocationReason | undefined][] = [
        [[{ ...api, revoked: true }, db], 'revoked'],
        [[{ ...api, generation: 2 }, db], undefined],
        [[db], 'removed'],
      ];
      const latencies: number[] = [];
      for (const [peers, reason] of steps) {
        const version = h.registry.index.version;
        const revokedBefore = h.revoked.length;
        const start = performance.now();
        update(registryDoc('payments', peers));
        await waitFor(`reload after ${scenario.name}`, () => h.registry.index.version > version);
        latencies.push(performance.now() - start);
        if (reason !== undefined) {
          await waitFor('the revocation', () => h.revoked.length > revokedBefore);
          assert.deepEqual(h.revoked.slice(revokedBefore).map((r) => [r.key, r.reason]), [[api.publicKey, reason]]);
        } else {
          assert.equal(h.revoked.length, revokedBefore, 'an un-revoke revokes nothing');
        }
      }
      assert.equal(h.registry.index.size, 1);
      assert.equal(h.registry.index.resolveAddress('10.0.3.7').kind, 'none');
      assert.deepEqual(h.errors.map((e) => e.message), []);
      const stats = h.registry.stats();
      assert.equal(stats.reloads, 4);
      assert.equal(stats.errors, 0);
      assert.equal(stats.healthy, true);
      assert.equal(stats.version, 4);
      console.log(`${scenario.name} (${mode.name}): change -> index in ${latencies.map((l) => l.toFixed(1)).join(', ')} ms`);
    });
  }
}

test('a broken file keeps the last good snapshot and reports the error; fixing it recovers', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'registry.yaml');
  const api = peer('payments', 'api');
  writeFileSync(file, registryDoc('payments', [api]));
  const h = await open(t, file, { pollIntervalMs: 200 });
  const snapshot = h.registry.index.snapshot;

  atomicRename(file, `${registryDoc('payments', [api])}    - agentId: [unclosed\n`);
  await waitFor('the syntax error', () => h.errors.length === 1);
  assert.equal(h.errors[0]!.code, 'REGISTRY_SYNTAX');
  assert.ok(h.errors[0]!.message.includes(file));
  assert.ok(!h.errors[0]!.message.includes(api.publicKey as string), 'no key in the error');
  assert.equal(h.registry.index.snapshot, snapshot, 'the previous snapshot is still in force');
  assert.equal(h.registry.index.verifyKey(api.publicKey as string, 1n).kind, 'valid');
  assert.deepEqual(h.revoked, []);
  assert.equal(h.registry.stats().healthy, false);

  // The poll sees the same broken content again and again: reported once.
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(h.errors.length, 1);
  assert.equal(h.registry.stats().errors, 1);

  atomicRename(file, ''); // empty: refused too, a truncated file must not revoke everything
  await waitFor('the empty-file error', () => h.errors.length === 2);
  assert.equal(h.errors[1]!.code, 'REGISTRY_DOCUMENT');
  assert.equal(h.registry.index.snapshot, snapshot);

  rmSync(file);
  await waitFor('the missing-file error', () => h.errors.length === 3);
  assert.equal(h.errors[2]!.code, 'REGISTRY_READ');
  assert.ok(h.errors[2]!.message.includes('does not exist'));
  assert.equal(h.registry.index.snapshot, snapshot);

  const db = peer('payments', 'db');
  atomicRename(file, registryDoc('payments', [db]));
  await waitFor('recovery', () => h.registry.index.byPublicKey(db.publicKey as string) !== undefined);
  // The new key is in force at once; the removal of api, which a half-written file could
  // also show, once the file has stayed the same for the settle time.
  await waitFor('the removal', () => h.revoked.length > 0);
  assert.deepEqual((h.revoked as Harness['revoked']).map((r) => [r.key, r.reason]), [[api.publicKey, 'removed']]);
  assert.equal(h.registry.stats().healthy, true);
  assert.equal(h.registry.stats().reloads, 3);
});

test('a file that comes back with the content in force is healthy again without a reload', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'registry.yaml');
  const text = registryDoc('payments', [peer('payments', 'api')]);
  writeFileSync(file, text);
  const h = await open(t, file, { pollIntervalMs: 200 });
  rmSync(file);
  await waitFor('the missing-file error', () => h.errors.length === 1);
  atomicRename(file, text);
  await waitFor('healthy again', () => h.registry.stats().healthy);
  assert.equal(h.registry.stats().reloads, 1);
  assert.equal(h.registry.index.version, 1);
});

test('problems of a partly bad file arrive with the snapshot', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'registry.yaml');
  writeFileSync(file, registryDoc('payments', [peer('payments', 'api'), peer('payments', 'db', { generation: 0 })]));
  const registry = Registry.fromFile(file, { pollIntervalMs: 60_000 });
  const problems: string[] = [];
  registry.on('snapshot', (s) => problems.push(...s.problems.map((p) => p.path)));
  t.after(() => registry.stop());
  registry.start();
  await within('registry ready', registry.ready());
  assert.deepEqual(problems, ['spec.peers[1].generation']);
  assert.equal(registry.index.size, 1);
  assert.equal(registry.stats().problems, 1);
});

test('a low-order public key in the file is refused and never indexed; its sibling loads', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'registry.yaml');
  // u = 1 with bit 255 set: neither all zeros nor canonical, so only the low-order check catches it.
  const lowOrder = LOW_ORDER_X25519_B64.find((k) => k.startsWith('AQ') && k.endsWith('IA='))!;
  writeFileSync(file, registryDoc('payments', [peer('payments', 'api', { publicKey: lowOrder }), peer('payments', 'db')]));
  const registry = Registry.fromFile(file, { pollIntervalMs: 60_000 });
  const problems: string[] = [];
  registry.on('snapshot', (s) => problems.push(...s.problems.map((p) => `${p.path}: ${p.message}`)));
  t.after(() => registry.stop());
  registry.start();
  await within('registry ready', registry.ready());
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /^spec\.peers\[0\]\.publicKey: is a low-order X25519 point/);
  assert.ok(!problems[0]!.includes(lowOrder));
  assert.equal(registry.index.size, 1);
  assert.equal(registry.index.verifyKey(lowOrder, 1n).kind, 'unknown');
});

test('ready() waits for a file that appears later; stop() before that rejects it', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'later.yaml');
  const registry = Registry.fromFile(file, { pollIntervalMs: 100 });
  t.after(() => registry.stop());
  const errors: string[] = [];
  registry.on('error', (e) => errors.push(e.code));
  registry.start();
  await waitFor('the missing-file error', () => errors.length === 1);
  assert.equal(registry.isReady, false);
  writeFileSync(file, registryDoc('payments', [peer('payments', 'api')]));
  await within('registry ready', registry.ready());
  assert.equal(registry.index.size, 1);
  await registry.stop();

  const never = Registry.fromFile(join(dir, 'never.yaml'), { pollIntervalMs: 100 }).start();
  t.after(() => never.stop());
  const ready = never.ready();
  await never.stop();
  await assert.rejects(within('ready rejected', ready), /stopped before its first snapshot/);
});

test('stop() releases every watcher and timer: a process that stops its registry exits', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'registry.yaml');
  writeFileSync(file, registryDoc('payments', [peer('payments', 'api')]));
  const cm = configMapVolume(mkdtempSync(join(dir, 'cm-')), registryDoc('payments', [peer('payments', 'api')]));
  const moduleUrl = new URL('../src/registry-sync/index.js', import.meta.url).href;
  const script = `
    import { Registry } from ${JSON.stringify(moduleUrl)};
    import { writeFileSync } from 'node:fs';
    const before = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'CloseReq');
    for (const file of ${JSON.stringify([file, cm.file])}) {
      const registry = Registry.fromFile(file, { pollIntervalMs: 50 }).start();
      await registry.ready();
      // Provoke watch events and a pending debounce timer right before stop().
      writeFileSync(file, '# touched\\n' + (await import('node:fs')).readFileSync(file, 'utf8'));
      await new Promise((r) => setTimeout(r, 120));
      writeFileSync(file, (await import('node:fs')).readFileSync(file, 'utf8') + '\\n');
      await registry.stop();
    }
    // Handles finish closing on the loop's next turn.
    await new Promise((r) => setTimeout(r, 50));
    const after = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'CloseReq');
    console.log(JSON.stringify({ before, after }));
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), WAIT_MS);
  t.after(() => {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
  clearTimeout(timer);
  assert.equal(signal, null, `the process did not exit by itself within ${WAIT_MS} ms: a handle stayed open\n${out}\n${err}`);
  assert.equal(code, 0, err);
  const { before, after } = JSON.parse(out.trim().split('\n').pop()!) as { before: string[]; after: string[] };
  assert.deepEqual(after, before, 'no resource left behind by the registries');
});
