// Every vector of the cacophony suite (944 of them) on every backend and AEAD engine, with the exact count
// asserted so that a vector silently skipped or dropped fails the test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { runVector, type CacophonyVector } from '../src/noise/index.js';
import { CRYPTO_ENGINES } from './helpers/crypto-engines.js';
import { sharedPath } from './helpers/paths.js';

const { vectors } = JSON.parse(readFileSync(sharedPath('vectors/cacophony.json'), 'utf8')) as {
  vectors: CacophonyVector[];
};

for (const { label, backend } of CRYPTO_ENGINES) {
  test(`cacophony vectors on ${label}`, () => {
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
