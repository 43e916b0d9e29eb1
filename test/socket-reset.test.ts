// resetSocket on a socket whose FIN is still on its way (end() called, the shutdown request
// in flight): Node 20's resetAndDestroy then leaves the request pending for ever and the
// process spins at 100% CPU when it exits. A child process does exactly that and must exit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './helpers/paths.js';

const CHILD = `
import net from 'node:net';
import { resetSocket } from ${JSON.stringify(join(repoRoot, 'dist/src/proxy/session/socket-reset.js'))};
const accepted = [];
const server = net.createServer({ allowHalfOpen: true }, (s) => { s.on('error', () => {}); accepted.push(s); });
server.listen(0, '127.0.0.1', () => {
  const c = net.connect({ port: server.address().port, host: '127.0.0.1', allowHalfOpen: true }, () => {
    c.on('error', () => {});
    c.write(Buffer.alloc(1000));
    c.end();
    resetSocket(c);
    setTimeout(() => { server.close(); for (const s of accepted) s.destroy(); console.log('closed', c.destroyed); }, 100);
  });
});
`;

test('resetting a socket whose shutdown is in flight closes it, and the process can still exit', async () => {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
  clearTimeout(timer);
  assert.equal(out.trim(), 'closed true');
  assert.deepEqual([code, signal], [0, null], 'the process exited by itself (a hang is killed after 10 s)');
});
