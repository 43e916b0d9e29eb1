/** Connected loopback TCP pairs for tests that hand descriptors to the native session pump. */
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';

/**
 * A connected loopback pair: [ours, theirs]. Ours is accepted paused, as the proxy's sockets
 * are, and has an 'error' listener: once its descriptor is the pump's, an error there is only
 * a late report of what the pump saw (as in secure-session.ts).
 */
export async function tcpPair(): Promise<[Socket, Socket]> {
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const accepted = once(server, 'connection');
  const theirs = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const [[ours]] = (await Promise.all([accepted, once(theirs, 'connect')])) as [[Socket], unknown];
  server.close();
  ours.on('error', () => {});
  return [ours, theirs];
}
