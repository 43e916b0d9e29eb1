import type { Socket } from 'node:net';

/**
 * Ends a TCP connection with RST, so the application sees a reset and never mistakes an
 * aborted session for a clean end of stream (PROTOCOL.md section 5).
 */
export function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  // Our side already ended (end() called) and its shutdown request still in flight: libuv
  // refuses a reset then (uv_tcp_close_reset: EINVAL while shutting down), and Node 20's
  // resetAndDestroy leaves that request pending for ever, so the process spins at 100% CPU
  // when it exits. The peer has had our FIN already; a plain close is all that is left to
  // say (Linux still answers RST to anything it sends afterwards, or if it left unread data).
  if (socket.writableEnded && !socket.writableFinished) {
    socket.destroy();
    return;
  }
  try {
    socket.resetAndDestroy();
  } catch {
    // Not connected yet or already half torn down: there is no RST to send.
    socket.destroy();
  }
}
