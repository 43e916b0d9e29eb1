import net from 'node:net';
import { createRequire } from 'node:module';
const addon = createRequire(import.meta.url)('/tmp/nrelay/build/Release/relay.node');
const [listen, target] = process.argv.slice(2).map(Number);
net.createServer({ noDelay: true, pauseOnConnect: true }, (c) => {
  const u = net.connect({ port: target, host: '127.0.0.1', noDelay: true });
  u.pause();
  u.once('connect', () => {
    addon.start(c._handle.fd, u._handle.fd);
    // node keeps its own descriptors open and idle; the relay closes its duplicates at EOF.
  });
  c.on('error', () => {}); u.on('error', () => {});
}).listen(listen, '127.0.0.1');
