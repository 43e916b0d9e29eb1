import type { Socket } from 'node:net';

/**
 * Ends a TCP connection with RST, so the application sees a reset and never mistakes an
 * aborted session for a clean end of stream (PROTOCOL.md section 5).
 */
export function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    // Not connected yet or already half torn down: there is no RST to send.
    socket.destroy();
  }
}
