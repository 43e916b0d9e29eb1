// secrets.project.dir is whatever the configuration says, and a wrong one must fail the
// refresh with a line naming it, in bounded time. Node 20's recursive mkdir never returns
// when mkdir(2) answers ENOENT under an existing parent (a path in /proc): the projection
// spun a thread at full CPU for ever, never ready, never saying why. Each case runs the
// writer in a child process with a deadline, so a hang fails the test instead of wedging it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './helpers/paths.js';

/** Writes one file into `dir` with the AtomicWriter in a child; its one output line and how it ended. */
function writeIn(dir: string): { line: string; status: number | null; timedOut: boolean } {
  const script = `
    const { AtomicWriter, ProjectionWriteError } = await import(${JSON.stringify(join(repoRoot, 'dist/src/secrets/index.js'))});
    try {
      await new AtomicWriter(process.argv[1], { dirMode: 0o700, fileMode: 0o400 }).write(new Map([['db.json', Buffer.from('{}')]]));
      console.log('written');
    } catch (err) {
      console.log(err instanceof ProjectionWriteError ? 'refused: ' + err.message : 'threw: ' + err);
    }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, dir], { encoding: 'utf8', timeout: 10_000 });
  return { line: r.stdout.trim(), status: r.status, timedOut: r.error !== undefined || r.signal !== null };
}

test('a projection directory that cannot be made fails at once with its reason: under /proc, a file in the way, below a file', (t) => {
  const work = mkdtempSync(join(tmpdir(), 'noisemesh-writer-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const file = join(work, 'a-file');
  writeFileSync(file, 'x');

  const proc = writeIn(`/proc/noisemesh-no-such-dir-${process.pid}/secrets`);
  assert.ok(!proc.timedOut, 'the write under /proc returned within 10 s');
  assert.match(proc.line, new RegExp(`^refused: cannot create /proc/noisemesh-no-such-dir-${process.pid}/secrets: ENOENT`));

  const inTheWay = writeIn(file);
  assert.ok(!inTheWay.timedOut);
  assert.match(inTheWay.line, /^refused: cannot create .*a-file: .*not a directory/);

  const below = writeIn(join(file, 'secrets'));
  assert.ok(!below.timedOut);
  assert.match(below.line, /^refused: cannot create .*a-file\/secrets: .*not a directory/);

  // And the ordinary case: missing parents are made.
  const nested = writeIn(join(work, 'a', 'b', 'secrets'));
  assert.equal(nested.line, 'written');
});
