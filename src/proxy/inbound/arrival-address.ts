/**
 * Where inbound traffic may be delivered inside the pod (PROTOCOL.md 4.2, DESIGN.md
 * "Inbound"): to the pod's own address it arrived on, never to its loopback, so a server
 * bound only to 127.0.0.1 is as private with the mesh as without it, and one bound only to
 * the pod IP is as reachable. Istio 1.10 made the same change after localhost-only admin
 * ports were found exposed through its sidecars.
 */
import { isIPv4 } from 'node:net';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';

/** `::ffff:a.b.c.d`, as a dual-stack listener reports an IPv4 peer, becomes `a.b.c.d`. */
export function unmapIPv4(address: string): string {
  if (address.length > 7 && address.slice(0, 7).toLowerCase() === '::ffff:' && isIPv4(address.slice(7))) return address.slice(7);
  return address;
}

/** 127.0.0.0/8 and ::1 (also v4-mapped). */
export function isLoopback(address: string): boolean {
  const a = unmapIPv4(address);
  return a.startsWith('127.') ? isIPv4(a) : a === '::1' || a === '0:0:0:0:0:0:0:1';
}

export type ArrivalTarget =
  | { readonly ok: true; readonly host: string }
  | { readonly ok: false; readonly reason: string };

/**
 * The host the responder connects to for a mesh connection whose local end is `local` and
 * remote end `remote` (socket.localAddress and remoteAddress). A connection that arrived on
 * a loopback address from a non-loopback source can only have been routed there by a host
 * with `route_localnet` set (the kube-proxy fault of CVE-2020-8558); it gets no target, so
 * a neighbour cannot reach the pod's loopback that way either.
 */
export function arrivalTarget(local: string | undefined, remote: string | undefined): ArrivalTarget {
  if (local === undefined || remote === undefined) return { ok: false, reason: 'the connection has no addresses (it closed)' };
  if (isLoopback(local) && !isLoopback(remote)) {
    return { ok: false, reason: 'arrived on a loopback address from outside the pod' };
  }
  return { ok: true, host: unmapIPv4(local) };
}

/** os.networkInterfaces, or a substitute in tests. */
export type InterfaceReader = () => NodeJS.Dict<NetworkInterfaceInfo[]>;

/**
 * The pod's own addresses, loopback excluded: where inbound capture may forward. An original
 * destination that is not one of them (a packet sent to this pod's MAC for another address,
 * or to its 127.0.0.1 through route_localnet) would make the proxy a relay; it is refused.
 * Read from the interfaces at most once a second, and again when an address is not known,
 * so an address added after start is found without a stranger being able to make the proxy
 * re-read them more often.
 */
export class PodAddresses {
  private known = new Set<string>();
  private readAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly read: InterfaceReader = networkInterfaces,
    private readonly now: () => number = () => performance.now(),
    private readonly refreshMs = 1000,
  ) {}

  has(address: string): boolean {
    const a = unmapIPv4(address).toLowerCase();
    if (this.known.has(a)) return true;
    if (this.now() - this.readAt < this.refreshMs) return false;
    this.refresh();
    return this.known.has(a);
  }

  private refresh(): void {
    this.readAt = this.now();
    const known = new Set<string>();
    for (const infos of Object.values(this.read())) {
      for (const info of infos ?? []) {
        if (!info.internal && !isLoopback(info.address)) known.add(unmapIPv4(info.address).toLowerCase());
      }
    }
    this.known = known;
  }
}
