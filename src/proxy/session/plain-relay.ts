/**
 * Relays plaintext between two sockets, for destinations that are not meshed (permissive
 * mode). Half-closes pass through; a reset on either side resets the other.
 */
import type { Socket } from 'node:net';
import { resetSocket } from './socket-reset.js';

export function relayPlain(a: Socket, b: Socket, onEnd?: () => void): void {
  let ended = false;
  const abort = (): void => {
    if (ended) return;
    ended = true;
    resetSocket(a);
    resetSocket(b);
    onEnd?.();
  };
  let closed = 0;
  const closedOne = (): void => {
    if (++closed === 2 && !ended) {
      ended = true;
      onEnd?.();
    }
  };
  for (const [from, to] of [[a, b], [b, a]] as const) {
    from.on('error', abort);
    from.on('close', closedOne);
    // pipe() gives backpressure and forwards the FIN with end(); a reset is an error above.
    from.pipe(to, { end: true });
    from.resume();
  }
}
