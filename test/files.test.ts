// The shared reader (src/files): a FIFO, a socket, a device, a directory and a symlink to a
// FIFO are refused at once (never a blocked open or an endless read), oversize files are
// refused, regular files and symlinks to them are read. The synchronous reader runs in a
// child process so that a regression hangs the child, which is killed, not the test runner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileReadError, readRegularFile, readRegularFileSync } from '../src/files/index.js';
import { repoRoot } from './helpers/paths.js';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-files-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function mkfifo(path: string): void {
  const r = spawnSync('mkfifo', [path], { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) assert.fail(`mkfifo failed (install the Debian package coreutils): ${r.error?.message ?? r.stderr}`);
}

/** Runs readRegularFileSync in a child; a blocked open or an endless read is a timeout there. */
function readSyncInChild(path: string, maxBytes: number): { ok: boolean; failure?: string; reason?: string; length?: number } {
  const moduleUrl = new URL('../src/files/index.js', import.meta.url).href;
  const script = `
    import { readRegularFileSync } from ${JSON.stringify(moduleUrl)};
    try {
      const bytes = readRegularFileSync(${JSON.stringify(path)}, { maxBytes: ${maxBytes} });
      console.log(JSON.stringify({ ok: true, length: bytes.length }));
    } catch (err) {
      console.log(JSON.stringify({ ok: false, failure: err.failure, reason: err.reason }));
    }
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.signal, null, `readRegularFileSync(${path}) did not return within 10 s: it blocked`);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim()) as ReturnType<typeof readSyncInChild>;
}

async function refusal(path: string, maxBytes = 1024): Promise<FileReadError> {
  try {
    await readRegularFile(path, { maxBytes });
  } catch (err) {
    assert.ok(err instanceof FileReadError, `a FileReadError, not ${String(err)}`);
    return err;
  }
  return assert.fail(`${path} was read`);
}

test('what is not a regular file is refused at once, by both readers, naming what it is', { timeout: 30_000 }, async (t) => {
  const dir = tempDir(t);
  const fifo = join(dir, 'fifo');
  mkfifo(fifo);
  const linkToFifo = join(dir, 'link-to-fifo');
  symlinkSync(fifo, linkToFifo);
  const socketPath = join(dir, 'socket');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  t.after(() => server.close());

  const cases: [string, string, RegExp][] = [
    ['a FIFO with no writer', fifo, /^is a FIFO \(named pipe\), not a regular file$/],
    ['a symlink to a FIFO', linkToFifo, /^is a FIFO \(named pipe\), not a regular file$/],
    ['/dev/zero', '/dev/zero', /^is a character device, not a regular file$/],
    ['a directory', dir, /^is a directory, not a regular file$/],
    ['a Unix socket', socketPath, /socket/],
  ];
  for (const [what, path, reason] of cases) {
    const err = await refusal(path);
    assert.equal(err.failure, 'not-regular', what);
    assert.match(err.reason, reason, what);
    assert.equal(err.message, `${path} ${err.reason}`);
    const sync = readSyncInChild(path, 1024);
    assert.deepEqual([sync.ok, sync.failure], [false, 'not-regular'], what);
    assert.match(sync.reason!, reason, what);
  }
  const line = (await refusal(fifo)).explain('registry.file');
  assert.equal(line, `registry.file: ${fifo} is a FIFO (named pipe), not a regular file: point registry.file at a regular file (a symlink to one is fine)`);
  assert.ok(!line.includes('\n'), 'one line');
});

test('a regular file, directly or through a symlink, is read whole; one byte over the limit is refused', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'file');
  const content = Buffer.from('x'.repeat(100_000)); // more than one read chunk
  writeFileSync(file, content);
  const link = join(dir, 'link');
  symlinkSync(file, link);
  for (const path of [file, link]) {
    assert.deepEqual(await readRegularFile(path, { maxBytes: content.length }), content);
    assert.deepEqual(readRegularFileSync(path, { maxBytes: content.length }), content);
  }
  const over = await refusal(file, content.length - 1);
  assert.equal(over.failure, 'too-large');
  assert.equal(over.reason, `is larger than ${content.length - 1} bytes`);
  assert.throws(() => readRegularFileSync(file, { maxBytes: content.length - 1 }), (err: unknown) => err instanceof FileReadError && err.failure === 'too-large');
  writeFileSync(join(dir, 'empty'), '');
  assert.equal((await readRegularFile(join(dir, 'empty'), { maxBytes: 0 })).length, 0);
});

test('missing and unreadable files are told apart', async (t) => {
  const dir = tempDir(t);
  const missing = await refusal(join(dir, 'nope'));
  assert.deepEqual([missing.failure, missing.code, missing.reason], ['missing', 'ENOENT', 'does not exist']);
  const under = await refusal(join(dir, 'nope', 'deeper'));
  assert.equal(under.failure, 'missing');
  const file = join(dir, 'secret');
  writeFileSync(file, 'x', { mode: 0o000 });
  // Root reads anything; drop to an unprivileged user to see the refusal.
  const moduleUrl = new URL('../src/files/index.js', import.meta.url).href;
  const script = `
    import { readRegularFile } from ${JSON.stringify(moduleUrl)};
    readRegularFile(${JSON.stringify(file)}, { maxBytes: 10 }).then(() => console.log('read'), (e) => console.log(e.failure));
  `;
  const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: '/', encoding: 'utf8', timeout: 10_000, ...asNobody });
  assert.equal(r.stdout.trim(), 'permission', r.stderr);
});
