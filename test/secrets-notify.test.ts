// The projection's notify signals the pid its pid file names, and that file is the
// application's to write: a compromised application could name any process the proxy may
// signal (another container's, in a pod that shares its process namespace, when the proxy
// runs as root or with CAP_KILL). The signal goes only to a process that runs as the user
// who owns the pid file, so naming another user's process gains the application nothing it
// could not do itself. Needs root (chown, and processes of two users).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { notifyApplication } from '../src/secrets/index.js';

const NOBODY = 65534;

/** A process of `uid` that writes to `marker` on SIGHUP; resolves once it is ready. */
async function victim(marker: string, uid: number): Promise<ChildProcess> {
  const ready = `${marker}.ready`;
  const child = spawn(process.execPath, ['-e', `
    const fs = require('node:fs');
    process.on('SIGHUP', () => fs.writeFileSync(process.argv[1], 'hup'));
    fs.writeFileSync(process.argv[2], 'ready');
    setTimeout(() => {}, 60000);
  `, marker, ready], { stdio: 'ignore', uid, gid: uid });
  for (let i = 0; i < 200 && !existsSync(ready); i++) await sleep(25);
  assert.ok(existsSync(ready), 'the victim process started');
  return child;
}

test('notify signals only a process of the pid file owner; a pid file naming another user\'s process is refused, naming both users', async (t) => {
  if (process.getuid?.() !== 0) assert.fail('this test chowns files and runs processes as two users: run it as root');
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-notify-'));
  chownSync(dir, NOBODY, NOBODY);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const rootMarker = join(dir, 'root-hup');
  const rootVictim = await victim(rootMarker, 0);
  t.after(() => rootVictim.kill());

  // The application (nobody) names a root process in its pid file: refused, nobody signalled.
  const pidFile = join(dir, 'app.pid');
  writeFileSync(pidFile, `${rootVictim.pid}\n`);
  chownSync(pidFile, NOBODY, NOBODY);
  await assert.rejects(notifyApplication({ signal: 'SIGHUP', pidFile }), (err: Error) => {
    assert.match(err.message, new RegExp(`pid ${rootVictim.pid}`));
    assert.match(err.message, new RegExp(`uid ${NOBODY}`));
    assert.match(err.message, /uid 0/);
    return true;
  });
  // A symlink to a file another user owns is judged by that file: still refused.
  const link = join(dir, 'link.pid');
  symlinkSync(pidFile, link);
  await assert.rejects(notifyApplication({ signal: 'SIGHUP', pidFile: link }), /uid 65534/);
  await sleep(300);
  assert.ok(!existsSync(rootMarker), 'the root process was not signalled');

  // The application's own process: signalled.
  const appMarker = join(dir, 'app-hup');
  const app = await victim(appMarker, NOBODY);
  t.after(() => app.kill());
  writeFileSync(pidFile, `${app.pid}\n`);
  chownSync(pidFile, NOBODY, NOBODY);
  assert.equal(await notifyApplication({ signal: 'SIGHUP', pidFile }), app.pid);
  for (let i = 0; i < 200 && !existsSync(appMarker); i++) await sleep(25);
  assert.equal(readFileSync(appMarker, 'utf8'), 'hup');

  // A root-owned pid file naming a root process (an application running as root): signalled.
  const rootPidFile = join(dir, 'root.pid');
  writeFileSync(rootPidFile, String(rootVictim.pid));
  assert.equal(await notifyApplication({ signal: 'SIGHUP', pidFile: rootPidFile }), rootVictim.pid);
  for (let i = 0; i < 200 && !existsSync(rootMarker); i++) await sleep(25);
  assert.equal(readFileSync(rootMarker, 'utf8'), 'hup');
});
