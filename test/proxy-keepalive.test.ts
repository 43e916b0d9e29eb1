// Dead-peer detection on mesh sockets, on loopback: the native addon sets and reads back
// the kernel's keepalive and user-timeout options; Node's own setKeepAlive is measured (it
// is the fallback); and both roles of a real proxy pair carry the configured values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, readlinkSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import {
  MeshSocketLiveness,
  NODE_KEEPALIVE_FALLBACK,
  loadTcpLivenessAddon,
  type TcpLivenessAddon,
} from '../src/proxy/transport/index.js';
import { socketDescriptor } from '../src/proxy/capture/index.js';
import { dial, tcpServer, twoProxies } from './helpers/mesh.js';
import { repoRoot } from './helpers/paths.js';

function addon(): TcpLivenessAddon {
  const load = loadTcpLivenessAddon();
  assert.ok(load.ok, `the TCP liveness addon must be built for these tests: ${load.ok ? '' : load.reason}`);
  return load.addon;
}

/** A connected loopback pair; `close()` ends both. */
async function pair(): Promise<{ client: Socket; close(): Promise<void> }> {
  const server = await tcpServer(() => {});
  const client = connect({ host: '127.0.0.1', port: server.port });
  client.on('error', () => {});
  await once(client, 'connect');
  return {
    client,
    async close() {
      client.destroy();
      await server.close();
    },
  };
}

test('the addon sets keepalive idle, interval, count and the user timeout, and reads them back', async () => {
  const { client, close } = await pair();
  try {
    const fd = socketDescriptor(client);
    const before = addon().liveness(fd);
    assert.equal(before.keepalive, false, 'a fresh socket has no keepalive');
    assert.equal(before.userTimeoutMs, 0);
    addon().setLiveness(fd, 7, 3, 4, 19_000);
    assert.deepEqual({ ...addon().liveness(fd) }, { keepalive: true, idleSeconds: 7, intervalSeconds: 3, probes: 4, userTimeoutMs: 19_000 });
    addon().setUserTimeout(fd, 0);
    assert.deepEqual({ ...addon().liveness(fd) }, { keepalive: true, idleSeconds: 7, intervalSeconds: 3, probes: 4, userTimeoutMs: 0 }, 'only the user timeout changed');
    const info = addon().tcpInfo(fd);
    assert.deepEqual({ unacked: info.unacked, probes: info.probes, queuedBytes: info.queuedBytes }, { unacked: 0, probes: 0, queuedBytes: 0 }, 'an idle connection');
    assert.equal(typeof info.lastAckRecvMs, 'number');
  } finally {
    await close();
  }
});

test('the addon checks its arguments before any system call and names errno failures', () => {
  const a = addon();
  assert.throws(() => a.setLiveness(-1, 1, 1, 1, 0), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: 'fd must be from 0 to 2147483647; got -1' });
  assert.throws(() => a.setLiveness(3, 0, 1, 1, 0), { name: 'RangeError', message: 'idleSeconds must be from 1 to 32767; got 0' });
  assert.throws(() => a.setLiveness(3, 1, 32768, 1, 0), { name: 'RangeError', message: 'intervalSeconds must be from 1 to 32767; got 32768' });
  assert.throws(() => a.setLiveness(3, 1, 1, 128, 0), { name: 'RangeError', message: 'probes must be from 1 to 127; got 128' });
  assert.throws(() => a.setLiveness(3, 1, 1, 1, 2 ** 31), { name: 'RangeError', message: /^userTimeoutMs must be from 0 to 2147483647/ });
  assert.throws(() => a.setLiveness(3, 1.5, 1, 1, 0), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: 'idleSeconds must be an integer; got 1.5' });
  assert.throws(() => a.setLiveness(3, Number.NaN, 1, 1, 0), { name: 'RangeError' });
  assert.throws(() => (a.setLiveness as (...args: unknown[]) => void)(3, '1', 1, 1, 0), { name: 'TypeError', message: 'idleSeconds must be an integer' });
  assert.throws(() => (a.setLiveness as (...args: unknown[]) => void)(3, 1, 1), { name: 'TypeError', message: 'probes must be an integer' });
  assert.throws(() => (a.liveness as (...args: unknown[]) => void)(), { name: 'TypeError', message: 'fd must be an integer' });
  assert.throws(() => a.setUserTimeout(3, -1), { name: 'RangeError', message: 'userTimeoutMs must be from 0 to 2147483647; got -1' });
  assert.throws(() => (a.tcpInfo as (...args: unknown[]) => void)('3'), { name: 'TypeError', message: 'fd must be an integer' });
  const file = openSync(repoRoot, 'r');
  try {
    assert.throws(() => a.setLiveness(file, 1, 1, 1, 0), (err: NodeJS.ErrnoException) => err.code === 'ENOTSOCK' && err.errno === 88 && /^setsockopt\(TCP_KEEPIDLE\): ENOTSOCK/.test(err.message));
    assert.throws(() => a.liveness(file), { code: 'ENOTSOCK' });
    assert.throws(() => a.setUserTimeout(file, 1000), { code: 'ENOTSOCK' });
    assert.throws(() => a.tcpInfo(file), { code: 'ENOTSOCK' });
  } finally {
    closeSync(file);
  }
  assert.throws(() => a.setLiveness(2_000_000, 1, 1, 1, 0), { code: 'EBADF', errno: 9 });
});

test("Node's setKeepAlive, the fallback, sets the idle time, libuv's 1 s x 10 probes, and no user timeout", async () => {
  const { client, close } = await pair();
  try {
    client.setKeepAlive(true, 7000);
    const measured = addon().liveness(socketDescriptor(client));
    assert.deepEqual(
      { ...measured },
      { keepalive: true, idleSeconds: 7, intervalSeconds: NODE_KEEPALIVE_FALLBACK.intervalSeconds, probes: NODE_KEEPALIVE_FALLBACK.probes, userTimeoutMs: 0 },
      'README and the start-up warning state these figures: if Node changes them, update both',
    );
  } finally {
    await close();
  }
});

test('MeshSocketLiveness applies the settings and the bound as TCP_USER_TIMEOUT; without the addon, Node keepalive', async () => {
  const settings = { idleSeconds: 4, intervalSeconds: 2, probes: 5 };
  const withAddon = new MeshSocketLiveness(settings);
  assert.equal(withAddon.boundSeconds, 14);
  assert.equal(withAddon.fallbackReason, undefined);
  assert.equal(withAddon.describeFallback(), undefined);

  const missing = loadTcpLivenessAddon('/nonexistent/noisemesh/tcp_liveness.node');
  assert.equal(missing.ok, false);
  const without = new MeshSocketLiveness(settings, missing);
  assert.match(without.fallbackReason!, /\/nonexistent\/noisemesh\/tcp_liveness\.node is missing/);
  const lost = without.describeFallback()!;
  assert.match(lost, /idle 4 s, then libuv's 10 probes 1 s apart: an idle dead peer is detected after 14 s/);
  assert.match(lost, /no TCP_USER_TIMEOUT/);
  assert.match(lost, /net\.ipv4\.tcp_retries2, ~15 min by default\) instead of 14 s$/);

  const a = await pair();
  const b = await pair();
  try {
    withAddon.apply(a.client);
    assert.deepEqual({ ...addon().liveness(socketDescriptor(a.client)) }, { keepalive: true, idleSeconds: 4, intervalSeconds: 2, probes: 5, userTimeoutMs: 14_000 });
    without.apply(b.client);
    assert.deepEqual({ ...addon().liveness(socketDescriptor(b.client)) }, { keepalive: true, idleSeconds: 4, intervalSeconds: 1, probes: 10, userTimeoutMs: 0 });
    // A socket that is already gone needs nothing, and is no error.
    a.client.destroy();
    withAddon.apply(a.client);
    without.apply(a.client);
  } finally {
    await a.close();
    await b.close();
  }
});

/** Descriptors of this process by socket inode, from /proc/self/fd. */
function descriptorsByInode(): Map<string, number> {
  const byInode = new Map<string, number>();
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${name}`))?.[1];
      if (inode !== undefined) byInode.set(inode, Number(name));
    } catch {
      // closed while we listed
    }
  }
  return byInode;
}

test("both roles' mesh sockets of a real proxy pair carry the configured keepalive and user timeout", async () => {
  const app = await tcpServer((s) => s.on('data', (d) => s.write(d)));
  const mesh = await twoProxies(app.port, { keepalive: { idleSeconds: 6, intervalSeconds: 2, probes: 4 } });
  const client = await dial(mesh.entryPort);
  try {
    client.write('ping');
    await once(client, 'data');
    const port = mesh.serverMeshPort;
    const ss = spawnSync('ss', ['-tnHe', 'state', 'established', `( sport = :${port} or dport = :${port} )`], { encoding: 'utf8', timeout: 10_000 });
    assert.ok(ss.error === undefined, `ss (Debian package iproute2) is needed to find the sockets: ${ss.error?.message}`);
    assert.equal(ss.status, 0, ss.stderr);
    const fds = descriptorsByInode();
    const roles = ss.stdout.trim().split('\n').map((line) => {
      const [, , local] = line.trim().split(/\s+/);
      const inode = /\bino:(\d+)/.exec(line)?.[1];
      assert.ok(inode !== undefined && fds.has(inode), `a socket of this process: ${line}`);
      return { role: local!.endsWith(`:${port}`) ? 'responder' : 'initiator', liveness: { ...addon().liveness(fds.get(inode)!) } };
    });
    const expected = { keepalive: true, idleSeconds: 6, intervalSeconds: 2, probes: 4, userTimeoutMs: 14_000 };
    assert.deepEqual(roles.sort((x, y) => x.role.localeCompare(y.role)), [
      { role: 'initiator', liveness: expected },
      { role: 'responder', liveness: expected },
    ]);
  } finally {
    client.destroy();
    await mesh.close();
    await app.close();
  }
});
