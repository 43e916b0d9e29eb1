/**
 * The target application: an unmodified HTTP/1.1 server, in pod B for the runner and on
 * loopback for the tests.
 *   node http-server.js <port> [--host H] [--delay-ms N] [--reset]
 * `POST|GET /load?bytes=N` reads the request body and answers 200 with N bytes (N <= 1 MiB),
 * after N ms with --delay-ms. With --reset every request is answered by a TCP reset instead:
 * the target that must show up as errors. Anything else: 404. Prints `ready <port>`.
 */
import { createServer } from 'node:http';

const MAX_BYTES = 1 << 20;

const args = process.argv.slice(2);
const port = Number(args[0]);
const option = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args[i + 1];
};
const host = option('--host') ?? '127.0.0.1';
const delayMs = Number(option('--delay-ms') ?? 0);
const reset = args.includes('--reset');
if (!Number.isInteger(port) || port < 0 || !(delayMs >= 0)) {
  console.error('usage: http-server.js <port> [--host H] [--delay-ms N] [--reset]');
  process.exit(2);
}
const bodies = new Map<number, Buffer>();

const server = createServer((req, res) => {
  if (reset) {
    req.socket.resetAndDestroy();
    return;
  }
  const url = new URL(req.url ?? '/', 'http://x');
  const bytes = Number(url.searchParams.get('bytes'));
  if (url.pathname !== '/load' || !Number.isInteger(bytes) || bytes < 0 || bytes > MAX_BYTES) {
    res.writeHead(404).end();
    req.resume();
    return;
  }
  req.resume();
  req.on('end', () => {
    let body = bodies.get(bytes);
    if (body === undefined) {
      body = Buffer.alloc(bytes, 0x79);
      // A few sizes are kept; a client asking for many others gets fresh buffers, not a leak.
      if (bodies.size < 8) bodies.set(bytes, body);
    }
    const answer = (): void => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
    };
    if (delayMs > 0) setTimeout(answer, delayMs);
    else answer();
  });
});
// Longer than any pause in a run: an idle keep-alive connection closed by the server just as
// the client reuses it would be an error of the harness, not of the path under test.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 130_000;
server.listen({ host, port, backlog: 4096 }, () => {
  const address = server.address();
  console.log(`ready ${typeof address === 'object' && address !== null ? address.port : port}`);
});
process.on('SIGTERM', () => process.exit(0));
