/**
 * A real full disk for the tests of what fails closed on ENOSPC (the audit sink): a 64 KiB
 * tmpfs mounted for one test, and a filler file that takes it to its last byte. Needs root
 * (mount) and util-linux; either missing fails the test, naming it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

/** Mounts a 64 KiB tmpfs on a new directory, unmounted and removed after the test; its path. */
export function mountSmallTmpfs(t: TestContext, prefix: string): string {
  if (process.getuid?.() !== 0) assert.fail('this test mounts a tmpfs: run it as root');
  const mountpoint = mkdtempSync(join(tmpdir(), prefix));
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mountpoint], { encoding: 'utf8' });
  if (mounted.error) assert.fail(`mount is missing: install util-linux (${mounted.error.message})`);
  assert.equal(mounted.status, 0, `mount -t tmpfs failed: ${mounted.stderr}`);
  t.after(() => {
    spawnSync('umount', ['-l', mountpoint]);
    rmSync(mountpoint, { recursive: true, force: true });
  });
  return mountpoint;
}

/**
 * Fills the filesystem under `dir` to its last byte: whole 4 KiB blocks until ENOSPC, then
 * single bytes until ENOSPC again. Returns the filler's path; unlinking it makes room.
 */
export function fillToLastByte(dir: string): string {
  const filler = join(dir, 'filler');
  const fd = openSync(filler, 'w');
  const block = Buffer.alloc(4096, 0x7a);
  try {
    for (let i = 0; i < 10_000; i++) writeSync(fd, block);
    assert.fail('the 64 KiB tmpfs never filled');
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
  }
  try {
    for (let i = 0; i < 4096; i++) writeSync(fd, block, 0, 1);
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
  }
  closeSync(fd);
  return filler;
}
