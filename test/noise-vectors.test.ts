// Every vector of the cacophony suite (944 of them) on both backends, with the exact count
// asserted so that a vector silently skipped or dropped fails the test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { backends, runVector, type CacophonyVector } from '../src/noise/index.js';
import { sharedPath } from './helpers/paths.js';

const { vectors } = JSON.parse(readFileSync(sharedPath('vectors/cacophony.json'), 'utf8')) as {
  vectors: CacophonyVector[];
};

for (const backend of Object.values(backends)) {
  test(`cacophony vectors on the ${backend.name} backend`, () => {
    assert.equal(vectors.length, 944);
    const failures: string[] = [];
    let passed = 0;
    for (const [i, v] of vectors.entries()) {
      const outcome = runVector(v, backend, i);
      if (outcome.status === 'passed') passed++;
      else failures.push(`${outcome.status}: ${outcome.name}: ${outcome.reason}`);
    }
    assert.deepEqual(failures, []);
    assert.equal(passed, 944);
  });
}
