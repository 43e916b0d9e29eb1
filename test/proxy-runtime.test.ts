// The proxy's heap tuning, observed in a real V8: under a workload that grows the young
// generation of an untuned process, a tuned one keeps it at its initial size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import { encodeKey, nativeBackend } from '../src/noise/index.js';
import { repoRoot } from './helpers/paths.js';
import { exited, freePorts, get, waitFor } from './helpers/process.js';

const RUNTIME = pathToFileURL(join(repoRoot, 'dist/src/proxy/runtime/index.js')).href;

/** Young-generation size, MiB, after churning buffers with some survivors, as a proxy under load does. */
function youngGenerationAfterChurn(tuned: boolean): number {
  const script = `
    ${tuned ? `(await import(${JSON.stringify(RUNTIME)})).tuneHeapForProxy();` : ''}
    const { getHeapSpaceStatistics } = await import('node:v8');
    const kept = [];
    for (let i = 0; i < 2_000_000; i++) {
      const o = { i, bytes: Buffer.allocUnsafe(64) };
      if (i % 8 === 0) kept.push(o);
      if (kept.length > 50_000) kept.length = 0;
    }
    console.log(getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout.trim()) / 2 ** 20;
}

test('tuneHeapForProxy keeps the young generation at its initial size under churn', () => {
  const untuned = youngGenerationAfterChurn(false);
  const tuned = youngGenerationAfterChurn(true);
  // The control: the same churn grows an untuned young generation (to 32 MiB on node 20).
  assert.ok(untuned >= 8, `untuned young generation grew to ${untuned} MiB`);
  assert.ok(tuned <= 2, `tuned young generation is ${tuned} MiB`);
});

// What a plain proxy loads and the heap it keeps, observed in a real `noisemesh proxy` process
// with a file registry: a preloaded module records every module resolved (a loader hook) and,
// at exit, every CommonJS module in require's cache and the young generation's size.
const OBSERVER = `
import { register, createRequire } from 'node:module';
import { getHeapSpaceStatistics } from 'node:v8';
register('data:text/javascript,' + encodeURIComponent(
  'export async function resolve(s, c, next) { const r = await next(s, c); process.stderr.write("resolved " + r.url + "\\\\n"); return r; }'));
process.on('exit', () => {
  for (const file of Object.keys(createRequire(import.meta.url).cache)) process.stderr.write('required file://' + file + '\\n');
  const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
  process.stderr.write('young ' + young + '\\n');
});
`;

/**
 * Runs `noisemesh proxy` with a file registry, `extra` added to its configuration, under the
 * observer, until `running(adminPort)` holds; then SIGTERM. Every module it loaded, and its
 * stderr (the observer's lines among the proxy's).
 */
async function observeProxy(extra: (dir: string) => Record<string, unknown>, running: (adminPort: number) => Promise<boolean>): Promise<{ loaded: string[]; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'nm-runtime-'));
  try {
    const [meshPort, adminPort] = await freePorts(2);
    const keyPair = nativeBackend.dh('25519').generateKeyPair();
    writeFileSync(join(dir, 'key'), `${encodeKey(keyPair.privateKey)}\n`, { mode: 0o600 });
    writeFileSync(
      join(dir, 'registry.yaml'),
      stringify({
        apiVersion: 'noisemesh.io/v1alpha1',
        kind: 'ClearanceRegistry',
        metadata: { name: 'rt', namespace: 'rt' },
        spec: { peers: [{ agentId: 'rt/proxy', installationId: '11111111-2222-4333-8444-000000000001', publicKey: encodeKey(keyPair.publicKey), generation: 1, addresses: ['127.0.0.1'], meshPort }] },
      }),
    );
    writeFileSync(
      join(dir, 'proxy.yaml'),
      stringify({
        identity: { agentId: 'rt/proxy', privateKeyFile: join(dir, 'key') },
        registry: { file: join(dir, 'registry.yaml') },
        inbound: { bind: '127.0.0.1', meshPort },
        admin: { bind: '127.0.0.1', port: adminPort },
        shutdown: { drainSeconds: 0.5 },
        ...extra(dir),
      }),
    );
    writeFileSync(join(dir, 'observer.mjs'), OBSERVER);
    const child = spawn(process.execPath, ['--import', pathToFileURL(join(dir, 'observer.mjs')).href, join(repoRoot, 'dist/src/cli/main.js'), 'proxy', '--config', join(dir, 'proxy.yaml')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const exit = exited(child);
    try {
      await waitFor(() => running(adminPort!), 'the proxy running');
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exit, 0, stderr);
    const loaded = [...stderr.matchAll(/^(?:resolved|required) (\S+)$/gm)].map((m) => m[1]!);
    // The control of the observer: it saw the proxy's own modules, and its dependencies'.
    assert.ok(loaded.some((u) => u.endsWith('/dist/src/proxy/index.js')), stderr);
    assert.ok(loaded.some((u) => u.includes('/node_modules/pino/')), stderr);
    return { loaded, stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What a plain proxy does not load: packages (node_modules) and our folders (dist/src). */
const UNUSED_PACKAGES = ['@kubernetes/client-node', 'undici', '@noble'];
const UNUSED_FOLDERS = ['secrets', 'trust-vector', 'kubernetes'];
const loadedFrom = (loaded: readonly string[], where: string): string[] => loaded.filter((u) => u.includes(where));

test('a proxy with a file registry loads neither client-node nor undici, nor the noble backend, src/secrets, src/trust-vector or src/kubernetes, and its young generation stays at its initial size', async () => {
  const { loaded, stderr } = await observeProxy(() => ({}), async (port) => (await get(port, '/readyz')).status === 200);
  for (const pkg of UNUSED_PACKAGES) {
    assert.deepEqual(loadedFrom(loaded, `/node_modules/${pkg}/`), [], `${pkg} is loaded by a proxy that needs no cluster access, no HTTP client and runs the native backend`);
  }
  for (const folder of UNUSED_FOLDERS) {
    assert.deepEqual(loadedFrom(loaded, `/dist/src/${folder}/`), [], `src/${folder} is loaded by a proxy with a file registry and no secrets section`);
  }
  const young = Number(/^young (\d+)$/m.exec(stderr)?.[1]) / 2 ** 20;
  assert.ok(young <= 2, `the young generation is ${young} MiB`);
});

test('the control: a proxy with a secrets section and crypto noble loads src/secrets, src/trust-vector, src/kubernetes and the noble backend, and projects', async () => {
  const { loaded } = await observeProxy(
    (dir) => ({
      crypto: 'noble',
      secrets: { gateway: { peer: 'rt/gateway', port: 8200 }, project: { dir: join(dir, 'secrets'), items: [{ path: 'rt/db', file: 'db.json' }] } },
    }),
    // Not ready while the gateway (in no registry here) does not answer: the projection's
    // condition is on /readyz, which shows it was built.
    async (port) => {
      const r = await get(port, '/readyz');
      return r.status === 503 && typeof (JSON.parse(r.body) as { reasons?: { secrets?: unknown } }).reasons?.secrets === 'string';
    },
  );
  assert.notDeepEqual(loadedFrom(loaded, '/node_modules/@noble/'), [], 'crypto: noble loads the noble backend');
  for (const folder of UNUSED_FOLDERS) {
    assert.notDeepEqual(loadedFrom(loaded, `/dist/src/${folder}/`), [], `a proxy with a secrets section loads src/${folder}`);
  }
});
