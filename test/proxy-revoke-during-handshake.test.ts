// A key revoked while the responder is still opening the connection to its target (after
// the initiator was checked, before the session is in the table) must not get a session: the
// revocation found nothing to abort, so the responder checks the key again before accepting.
// The target is a real process whose accept queue is full (it listens with backlog 1 and does
// not accept until told), so the responder's connect waits in the kernel for SYN retransmits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { once } from 'node:events';
import { dial, readAll, twoProxies } from './helpers/mesh.js';

const TARGET = `
const net = require('node:net');
const fs = require('node:fs');
const server = net.createServer((c) => { c.on('error', () => {}); c.write('hi'); });
server.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
  process.stdout.write(server.address().port + '\\n');
  // Blocks the event loop, so nothing is accepted, until the test writes a byte.
  fs.readSync(0, Buffer.alloc(1));
});
`;

test('a key revoked while the responder connects to its target gets no session', async () => {
  const target = spawn(process.execPath, ['-e', TARGET], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const [line] = (await once(target.stdout!, 'data')) as [Buffer];
    const port = Number(line.toString().trim());
    // Fills the accept queue (Linux holds backlog + 1 connections).
    const fillers = [0, 1].map(() => connect(port, '127.0.0.1').on('error', () => {}));
    await Promise.all(fillers.map((f) => once(f, 'connect')));
    const mesh = await twoProxies(port);
    try {
      const client = await dial(mesh.entryPort);
      const ending = readAll(client, 15_000);
      // The handshake is past the responder's checks and waiting on the target connect.
      for (let i = 0; i < 300 && mesh.server.sessions.load === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(mesh.server.sessions.load, 1, 'a handshake under way');
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(mesh.server.sessions.size, 0, 'no session yet');
      mesh.serverView.delete(mesh.clientId.publicKeyB64);
      assert.equal(mesh.server.revokeKey(mesh.clientId.publicKeyB64), 0, 'nothing to abort yet');
      target.stdin!.write('x');
      const { data } = await ending;
      assert.equal(data.toString(), '', 'no byte from the target reaches the revoked initiator');
      assert.equal(mesh.server.sessions.size, 0, 'no session holds the revoked key');
      const m = await mesh.server.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total');
      assert.match(m, /role="responder",result="unknownInitiator"} 1/);
    } finally {
      await mesh.close();
      for (const f of fillers) f.destroy();
    }
  } finally {
    target.kill('SIGKILL');
  }
});
