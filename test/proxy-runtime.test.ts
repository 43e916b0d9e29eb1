// The proxy's heap tuning, observed in a real V8: under a workload that grows the young
// generation of an untuned process, a tuned one keeps it at its initial size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from './helpers/paths.js';

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
