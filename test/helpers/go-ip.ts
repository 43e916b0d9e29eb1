// Go's IP address parsers, ported line for line, because the Kubernetes API server checks the
// OpenAPI formats `ipv4` and `ipv6` with them (k8s.io/kube-openapi pkg/validation/strfmt,
// default.go) and node:net's isIPv4/isIPv6 accept a different set of strings:
//
//   ipv4: netutils.ParseIPSloppy(s) != nil && strings.Contains(s, ".")
//   ipv6: net.ParseIP(s) != nil && strings.Contains(s, ":")   (govalidator.IsIPv6)
//
// ParseIPSloppy (k8s.io/utils/net, a fork of Go 1.16's net.ParseIP) takes IPv4 octets with
// leading zeros and IPv6 fields of any number of hex digits below 0xFFFFFF, as Go did before
// 1.17. net.ParseIP of the Go the API server is built with (1.22 and later) goes through
// net/netip.ParseAddr: no leading zeros in IPv4 octets, at most 4 hex digits per IPv6 field, no
// zone. Both dispatch on the first '.' or ':' of the string, so `::ffff:1.2.3.4` is parsed as
// IPv6 (and, containing a '.', also passes the ipv4 format).
//
// The structure below follows Go's src/net/ip.go (parseIPv4, parseIPv6, ParseIP) and
// src/net/parse.go (dtoi, xtoi); `strict` adds what netip refuses.

const IPV4_LEN = 4;
const IPV6_LEN = 16;
/** Go's `big`: dtoi and xtoi give up at this value. */
const BIG = 0xffffff;

interface Mode {
  /** netip's rules: no leading zero in an IPv4 octet, at most 4 hex digits in an IPv6 field. */
  readonly strict: boolean;
}

/** Decimal to integer: [value, characters consumed, ok]. */
function dtoi(s: string): [number, number, boolean] {
  let n = 0;
  let i = 0;
  for (; i < s.length && s[i]! >= '0' && s[i]! <= '9'; i++) {
    n = n * 10 + (s.charCodeAt(i) - 48);
    if (n >= BIG) return [BIG, i, false];
  }
  if (i === 0) return [0, 0, false];
  return [n, i, true];
}

/** Hexadecimal to integer: [value, characters consumed, ok]. */
function xtoi(s: string): [number, number, boolean] {
  let n = 0;
  let i = 0;
  for (; i < s.length; i++) {
    const c = s[i]!;
    if (c >= '0' && c <= '9') n = n * 16 + (s.charCodeAt(i) - 48);
    else if (c >= 'a' && c <= 'f') n = n * 16 + (s.charCodeAt(i) - 97 + 10);
    else if (c >= 'A' && c <= 'F') n = n * 16 + (s.charCodeAt(i) - 65 + 10);
    else break;
    if (n >= BIG) return [0, i, false];
  }
  if (i === 0) return [0, i, false];
  return [n, i, true];
}

function parseIPv4(s: string, mode: Mode): Uint8Array | undefined {
  const p = new Uint8Array(IPV4_LEN);
  for (let i = 0; i < IPV4_LEN; i++) {
    if (s.length === 0) return undefined; // missing octets
    if (i > 0) {
      if (s[0] !== '.') return undefined;
      s = s.slice(1);
    }
    const [n, c, ok] = dtoi(s);
    if (!ok || n > 0xff) return undefined;
    // Go 1.17+ and netip: "Reject non-zero components with leading zeroes"; Go 1.16 did not.
    if (mode.strict && c > 1 && s[0] === '0') return undefined;
    s = s.slice(c);
    p[i] = n;
  }
  if (s.length !== 0) return undefined;
  const ip = new Uint8Array(IPV6_LEN);
  ip[10] = 0xff;
  ip[11] = 0xff;
  ip.set(p, 12);
  return ip;
}

function parseIPv6(s: string, mode: Mode): Uint8Array | undefined {
  const ip = new Uint8Array(IPV6_LEN);
  let ellipsis = -1; // position of the ellipsis in ip
  if (s.length >= 2 && s[0] === ':' && s[1] === ':') {
    ellipsis = 0;
    s = s.slice(2);
    if (s.length === 0) return ip; // only the ellipsis
  }
  let i = 0;
  while (i < IPV6_LEN) {
    const [n, c, ok] = xtoi(s);
    if (!ok || n > 0xffff) return undefined;
    if (mode.strict && c > 4) return undefined; // netip: "each field must have at most 4 hex digits"
    if (c < s.length && s[c] === '.') {
      // A trailing IPv4 address.
      if (ellipsis < 0 && i !== IPV6_LEN - IPV4_LEN) return undefined;
      if (i + IPV4_LEN > IPV6_LEN) return undefined;
      const ip4 = parseIPv4(s, mode);
      if (ip4 === undefined) return undefined;
      ip.set(ip4.subarray(12), i);
      s = '';
      i += IPV4_LEN;
      break;
    }
    ip[i] = n >> 8;
    ip[i + 1] = n & 0xff;
    i += 2;
    s = s.slice(c);
    if (s.length === 0) break;
    if (s[0] !== ':' || s.length === 1) return undefined;
    s = s.slice(1);
    if (s[0] === ':') {
      if (ellipsis >= 0) return undefined; // a second ellipsis
      ellipsis = i;
      s = s.slice(1);
      if (s.length === 0) break; // at the end
    }
  }
  if (s.length !== 0) return undefined;
  if (i < IPV6_LEN) {
    if (ellipsis < 0) return undefined;
    const n = IPV6_LEN - i;
    for (let j = i - 1; j >= ellipsis; j--) ip[j + n] = ip[j]!;
    for (let j = ellipsis + n - 1; j >= ellipsis; j--) ip[j] = 0;
  } else if (ellipsis >= 0) {
    return undefined; // the ellipsis must stand for at least one zero group
  }
  return ip;
}

function parseIP(s: string, mode: Mode): Uint8Array | undefined {
  for (const c of s) {
    if (c === '.') return parseIPv4(s, mode);
    if (c === ':') return parseIPv6(s, mode);
  }
  return undefined;
}

/** Go's net.ParseIP (netip rules): the 16-byte address, or undefined. Zones are refused. */
export function goParseIP(s: string): Uint8Array | undefined {
  return parseIP(s, { strict: true });
}

/** k8s.io/utils/net.ParseIPSloppy: Go 1.16's parser. */
export function goParseIPSloppy(s: string): Uint8Array | undefined {
  return parseIP(s, { strict: false });
}

/** The API server's `format: ipv4`. */
export function isKubeIPv4(s: string): boolean {
  return goParseIPSloppy(s) !== undefined && s.includes('.');
}

/** The API server's `format: ipv6`. */
export function isKubeIPv6(s: string): boolean {
  return goParseIP(s) !== undefined && s.includes(':');
}
