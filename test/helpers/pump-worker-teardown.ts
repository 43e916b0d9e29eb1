// Run as a child process by test/native-pump.test.ts: native pumps running in a Worker whose
// thread is terminated while they relay. node checks at a worker's teardown that its loop
// has no handle left open and aborts the process when one is, so this process exits 0 and
// prints `ok` only when the addon closes its pumps at the environment's teardown; and the
// main thread's ends of the pumped connections must then see the pump's connections reset.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const ROUNDS = 3;
const PUMPS_PER_WORKER = 4;

interface Ports {
  app: number;
  mesh: number;
}

async function inWorker(ports: Ports): Promise<void> {
  process.env.NOISEMESH_NATIVE_PUMP = '1';
  const { NativePump } = await import('../../src/proxy/session/native-pump.js');
  const { CipherState, nativeBackend } = await import('../../src/noise/index.js');
  const { connect } = await import('node:net');
  const pumps = [];
  for (let i = 0; i < PUMPS_PER_WORKER; i++) {
    const app = connect({ host: '127.0.0.1', port: ports.app, allowHalfOpen: true });
    const mesh = connect({ host: '127.0.0.1', port: ports.mesh, allowHalfOpen: true });
    app.pause();
    mesh.pause();
    await Promise.all([once(app, 'connect'), once(mesh, 'connect')]);
    const cs = () => new CipherState(nativeBackend.cipher('ChaChaPoly'), new Uint8Array(32).fill(7));
    const pump = NativePump.tryStart(app, mesh, null, cs(), cs(), () => {
      app.destroy();
      mesh.destroy();
    });
    if (pump === null) throw new Error('the pump did not take the pair');
    pumps.push(pump);
  }
  parentPort!.postMessage('started');
  // Keep relaying until terminated; bounded, so a worker that is never terminated still ends.
  await new Promise((r) => setTimeout(r, 30_000));
}

async function listen(): Promise<{ server: Server; port: number; accepted: Socket[] }> {
  const accepted: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    accepted.push(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port, accepted };
}

/** Loopback IPv4 TCP sockets by `localPort:remotePort` -> state name (linux/include/net/tcp_states.h). */
function tcpTable(): Map<string, string> {
  const names: Record<string, string> = { '01': 'ESTABLISHED', '08': 'CLOSE_WAIT', '06': 'TIME_WAIT', '07': 'CLOSE', '0A': 'LISTEN' };
  const table = new Map<string, string>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const port = (addr: string) => parseInt(addr.split(':')[1]!, 16);
    table.set(`${port(f[1]!)}:${port(f[2]!)}`, names[f[3]!] ?? f[3]!);
  }
  return table;
}

async function main(): Promise<void> {
  const app = await listen();
  const mesh = await listen();
  for (let round = 0; round < ROUNDS; round++) {
    const worker = new Worker(new URL(import.meta.url), { workerData: { app: app.port, mesh: mesh.port } satisfies Ports });
    worker.on('error', (err) => {
      console.error(`worker failed: ${err.message}`);
      process.exit(1);
    });
    await once(worker, 'message');
    // The worker's connects have completed; our accepts of them may still be in flight.
    for (let i = 0; i < 1000 && app.accepted.length + mesh.accepted.length < 2 * PUMPS_PER_WORKER; i++) await new Promise((r) => setTimeout(r, 10));
    if (app.accepted.length + mesh.accepted.length !== 2 * PUMPS_PER_WORKER) {
      console.error(`round ${round}: accepted ${app.accepted.length + mesh.accepted.length} connections, expected ${2 * PUMPS_PER_WORKER}`);
      process.exit(1);
    }
    const ours = [...app.accepted, ...mesh.accepted];
    app.accepted.length = 0;
    mesh.accepted.length = 0;
    // Traffic into the pumps, from the application side.
    for (const s of ours.slice(0, PUMPS_PER_WORKER)) s.write('to the mesh');
    const peers = ours.map((s) => ({ socket: s, local: s.localPort!, remote: s.remotePort! }));
    await worker.terminate();
    // Each connection must be reset: gone from the kernel's table (a reset TCP socket leaves
    // it at once), not in CLOSE_WAIT (a FIN: half-open) and not ESTABLISHED (left open). Read
    // from /proc/net/tcp rather than awaited as 'close': a socket only learns of a reset
    // when node next polls or writes it.
    for (let i = 0; i < 400; i++) {
      const table = tcpTable();
      const states = peers.map((p) => (p.socket.destroyed ? 'reset' : (table.get(`${p.local}:${p.remote}`) ?? 'reset')));
      if (states.every((st) => st === 'reset')) break;
      if (states.includes('CLOSE_WAIT') || i === 399) {
        console.error(`round ${round}: pumped connections not reset after the worker ended: ${states.join(',')}`);
        process.exit(1);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  app.server.close();
  mesh.server.close();
  console.log('ok');
}

if (isMainThread) await main();
else await inWorker(workerData as Ports);
