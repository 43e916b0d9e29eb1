/**
 * Pod IPs in one spelling, so that the registry's `2001:DB8:0::7` and the socket's
 * `2001:db8::7` (or a dual-stack socket's `::ffff:10.0.3.7` and the registry's `10.0.3.7`)
 * are the same map key.
 */
import { isIPv4, isIPv6 } from 'node:net';

const MAPPED_V4 = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/;

/**
 * IPv4 as dotted quad; IPv6 lowercase with the longest zero run compressed (RFC 5952, which
 * the WHATWG URL serializer implements); IPv4-mapped IPv6 as the IPv4 address. Returns
 * undefined for anything else, including zone ids (`fe80::1%eth0`) and CIDR notation.
 */
export function normalizeAddress(text: string): string | undefined {
  // node:net rejects leading zeros in IPv4 (`010.0.0.1`), so an accepted one is canonical.
  if (isIPv4(text)) return text;
  if (text.includes('%') || !isIPv6(text)) return undefined;
  let host: string;
  try {
    host = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
  const mapped = MAPPED_V4.exec(host);
  if (mapped !== null) {
    const hi = Number.parseInt(mapped[1]!, 16);
    const lo = Number.parseInt(mapped[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return host;
}

/** The unspecified addresses never name a pod. */
export function isUnspecifiedAddress(normalized: string): boolean {
  return normalized === '0.0.0.0' || normalized === '::';
}
