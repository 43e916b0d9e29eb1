/**
 * Reference path, no cryptography: a plain TCP relay in Node.js, the floor under any Node
 * proxy (two sockets per connection, an event loop, user-space copies). Run as a pair like
 * the stunnel baseline: A's relay accepts on 127.0.0.1 and dials B's, B's forwards to 127.0.0.1.
 *   node node-relay.js <listenHost:port=connectHost:port> ...
 * Prints `ready` once every listener is bound.
 */
import { connect, createServer, type Socket } from 'node:net';

const routes = process.argv.slice(2).map((arg) => {
  const m = /^([\d.]+):(\d+)=([\d.]+):(\d+)$/.exec(arg);
  if (m === null) {
    console.error(`bad route '${arg}': listenHost:port=connectHost:port`);
    process.exit(2);
  }
  return { listenHost: m[1]!, listenPort: Number(m[2]), connectHost: m[3]!, connectPort: Number(m[4]) };
});

function relay(app: Socket, host: string, port: number): void {
  const upstream = connect({ host, port, noDelay: true });
  const reset = (): void => {
    app.resetAndDestroy();
    upstream.resetAndDestroy();
  };
  app.on('error', reset);
  upstream.on('error', reset);
  app.pipe(upstream);
  upstream.pipe(app);
}

let bound = 0;
for (const r of routes) {
  createServer({ noDelay: true }, (socket) => relay(socket, r.connectHost, r.connectPort)).listen({ host: r.listenHost, port: r.listenPort, backlog: 4096 }, () => {
    if (++bound === routes.length) console.log('ready');
  });
}
process.on('SIGTERM', () => process.exit(0));
