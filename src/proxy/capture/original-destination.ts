import type { Socket } from 'node:net';
import { loadOriginalDestinationAddon, type OriginalDestinationAddon } from './addon.js';
import { CaptureError, LookupFailedError, NoDescriptorError, NotRedirectedError } from './errors.js';
import type { SocketAddress } from './socket-address.js';

/**
 * The replaceable step between accept and the outbound (or inbound capture) stack: where a
 * captured connection was going. The kernel-backed lookup needs iptables and the addon;
 * tests of the proxy substitute their own, as linkerd does with its OrigDstAddr layer.
 */
export interface OriginalDestinationLookup {
  /** Throws a CaptureError when the connection has no original destination to forward to. */
  lookup(socket: Socket): SocketAddress;
}

/** The descriptor behind a net.Socket. Node keeps it on the libuv handle; Linux only. */
export function socketDescriptor(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new NoDescriptorError('the socket has no file descriptor: it is closed, or not a TCP socket accepted by this process');
  }
  return fd;
}

/**
 * The address the peer of `socket` connected to before iptables redirected it. Throws
 * NotRedirectedError for a connection made straight to the capture port (conntrack has no
 * entry, or its original destination is this very listener), so it is never forwarded to
 * the proxy itself.
 */
export function originalDestination(socket: Socket, addon: OriginalDestinationAddon = loadOriginalDestinationAddon()): SocketAddress {
  const fd = socketDescriptor(socket);
  let destination: SocketAddress;
  try {
    destination = addon.originalDestination(fd);
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
    if (errno === 'ENOENT') {
      throw new NotRedirectedError(`connection from ${peerOf(socket)} was not redirected: conntrack has no original destination for it`);
    }
    throw new LookupFailedError(errno, `original destination of the connection from ${peerOf(socket)}: ${(err as Error).message}`);
  }
  if (destination.port === socket.localPort && destination.address === unmapped(socket.localAddress)) {
    throw new NotRedirectedError(`connection from ${peerOf(socket)} was made to the capture port itself, not redirected to it`);
  }
  return destination;
}

/** The lookup backed by SO_ORIGINAL_DST; loads the addon now so a missing one fails at start. */
export function addonOriginalDestinationLookup(addon: OriginalDestinationAddon = loadOriginalDestinationAddon()): OriginalDestinationLookup {
  return { lookup: (socket) => originalDestination(socket, addon) };
}

/**
 * A connection listener that attaches the original destination to each accepted socket.
 * A connection without one is reported to `onRefused` (for a log line or a metric) and
 * destroyed; anything but a CaptureError is a bug and propagates.
 */
export function withOriginalDestination(
  lookup: OriginalDestinationLookup,
  onCaptured: (socket: Socket, originalDestination: SocketAddress) => void,
  onRefused: (socket: Socket, error: CaptureError) => void = () => {},
): (socket: Socket) => void {
  return (socket) => {
    let destination: SocketAddress;
    try {
      destination = lookup.lookup(socket);
    } catch (err) {
      if (!(err instanceof CaptureError)) throw err;
      onRefused(socket, err);
      socket.destroy();
      return;
    }
    onCaptured(socket, destination);
  };
}

/** A dual-stack listener reports IPv4 peers as `::ffff:a.b.c.d`; the addon reports them as IPv4. */
function unmapped(address: string | undefined): string | undefined {
  return address?.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

function peerOf(socket: Socket): string {
  const address = unmapped(socket.remoteAddress) ?? 'an unknown peer';
  return address.includes(':') ? `[${address}]:${socket.remotePort}` : `${address}:${socket.remotePort}`;
}
