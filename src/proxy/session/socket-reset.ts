import type { Duplex } from 'node:stream';

/**
 * Ends a TCP connection with RST, so the application sees a reset and never mistakes an
 * aborted session for a clean end of stream (PROTOCOL.md section 5). A stream that is no TCP
 * socket (a built-in service's end of a session) has no RST to send: it is destroyed, which
 * its owner sees as an end without the exchange of ends, the same fault.
 */
export function resetSocket(socket: Duplex): void {
  if (socket.destroyed) return;
  const tcp = socket as Duplex & { resetAndDestroy?: () => void };
  // Our side already ended (end() called) and its shutdown request still in flight: libuv
  // refuses a reset then (uv_tcp_close_reset: EINVAL while shutting down), and Node 20's
  // resetAndDestroy leaves that request pending for ever, so the process spins at 100% CPU
  // when it exits. The peer has had our FIN already; a plain close is all that is left to
  // say (Linux still answers RST to anything it sends afterwards, or if it left unread data).
  if (typeof tcp.resetAndDestroy !== 'function' || (socket.writableEnded && !socket.writableFinished)) {
    socket.destroy();
    return;
  }
  try {
    tcp.resetAndDestroy();
  } catch {
    // Not connected yet or already half torn down: there is no RST to send.
    socket.destroy();
  }
}
