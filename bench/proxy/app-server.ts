/**
 * Pod B's application for the connection tests, run with node inside the pod:
 *   node app-server.js <oncePort> <echoPort>
 * oncePort: reads one byte, answers one byte and closes (a new connection per request).
 * echoPort: echoes whatever arrives and stays open (the latency test's server; an idle
 * session once the first byte is back).
 * Prints `ready` once both listen.
 */
import { createServer, type Socket } from 'node:net';

const [oncePort, echoPort] = process.argv.slice(2).map(Number);
if (!Number.isInteger(oncePort) || !Number.isInteger(echoPort)) {
  console.error('usage: app-server.js <oncePort> <echoPort>');
  process.exit(2);
}
const noop = (): void => {};
const ONE = Buffer.from('y');

const once = createServer({ noDelay: true }, (socket: Socket) => {
  socket.on('error', noop);
  socket.once('data', () => socket.end(ONE));
});
const echo = createServer({ noDelay: true }, (socket: Socket) => {
  socket.on('error', noop);
  socket.on('data', (chunk) => socket.write(chunk));
});
let listening = 0;
for (const [server, port] of [[once, oncePort], [echo, echoPort]] as const) {
  server.listen({ host: '0.0.0.0', port, backlog: 4096 }, () => {
    if (++listening === 2) console.log('ready');
  });
}
process.on('SIGTERM', () => process.exit(0));
