/**
 * Opens `count` connections, sends one byte on each and waits for it to come back (so a
 * proxy in between has finished its handshake and holds a live session), then holds them
 * all open, idle, until its stdin closes.
 *   node idle-client.js <host> <port> <count> <concurrency>
 * Prints one JSON line when every connection is open or failed: {"open", "failed", "ms"}.
 */
import { connect, type Socket } from 'node:net';

const [host, portArg, countArg, concurrencyArg] = process.argv.slice(2);
const port = Number(portArg);
const count = Number(countArg);
const concurrency = Number(concurrencyArg);
if (!host || ![port, count, concurrency].every((n) => Number.isInteger(n) && n > 0)) {
  console.error('usage: idle-client.js <host> <port> <count> <concurrency>');
  process.exit(2);
}
const OPEN_TIMEOUT_MS = 20_000;
/** However stdin behaves, never hold the sockets longer than this. */
const HOLD_LIMIT_MS = 300_000;
const ONE = Buffer.from('i');

const sockets: Socket[] = [];
let open = 0;
let failed = 0;

function openOne(): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, noDelay: true });
    sockets.push(socket);
    let settled = false;
    const settle = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (ok) open++;
      else {
        failed++;
        socket.destroy();
      }
      resolve();
    };
    const timer = setTimeout(() => settle(false), OPEN_TIMEOUT_MS);
    socket.on('error', () => settle(false));
    socket.once('close', () => settle(false));
    socket.once('connect', () => socket.write(ONE));
    socket.once('data', () => settle(true));
  });
}

const startedAt = performance.now();
let next = 0;
async function worker(): Promise<void> {
  while (next < count) {
    next++;
    await openOne();
  }
}
await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
console.log(JSON.stringify({ open, failed, ms: Math.round(performance.now() - startedAt) }));

const release = (): void => {
  for (const socket of sockets) socket.destroy();
  process.exit(0);
};
process.stdin.on('end', release);
process.stdin.on('close', release);
process.stdin.resume();
setTimeout(release, HOLD_LIMIT_MS).unref();
