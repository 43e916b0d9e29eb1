import { isIPv4, isIPv6 } from 'node:net';

export type IpFamily = 4 | 6;

/** A network in the form iptables-save prints it: host bits cleared, IPv6 compressed. */
export interface Cidr {
  readonly family: IpFamily;
  /** `10.96.0.0/12`, `fd00::/8`. */
  readonly text: string;
}

/**
 * Parses `10.96.0.0/12`, `fd00::/8` or a bare address (a /32 or /128). Host bits are cleared
 * so the rule we render is the rule iptables stores and prints back (`10.1.2.3/8` means
 * `10.0.0.0/8` to the kernel; saying so avoids surprising a reader of --dry-run). Returns a
 * reason instead of throwing so callers can name their own field.
 */
export function parseCidr(input: string): Cidr | { readonly problem: string } {
  const slash = input.indexOf('/');
  const address = slash === -1 ? input : input.slice(0, slash);
  const prefixText = slash === -1 ? undefined : input.slice(slash + 1);
  const family: IpFamily | undefined = isIPv4(address) ? 4 : isIPv6(address) ? 6 : undefined;
  if (family === undefined) return { problem: `'${address}' is no IPv4 or IPv6 address` };
  const bits = family === 4 ? 32 : 128;
  let prefix = bits;
  if (prefixText !== undefined) {
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) {
      return { problem: `prefix length '${prefixText}' is not 0..${bits}` };
    }
    prefix = Number(prefixText);
  }
  const words = family === 4 ? ipv4Words(address) : ipv6Words(address);
  maskWords(words, prefix);
  return { family, text: `${family === 4 ? formatIpv4(words) : formatIpv6(words)}/${prefix}` };
}

/** IPv4 as two 16-bit words, so both families share the masking. */
function ipv4Words(address: string): number[] {
  const [a = 0, b = 0, c = 0, d = 0] = address.split('.').map(Number);
  return [(a << 8) | b, (c << 8) | d];
}

function ipv6Words(address: string): number[] {
  let text = address.toLowerCase();
  const zone = text.indexOf('%');
  if (zone !== -1) text = text.slice(0, zone);
  // A dotted IPv4 tail (::ffff:1.2.3.4) is two words.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const [hi = 0, lo = 0] = ipv4Words(tail);
    text = `${text.slice(0, lastColon + 1)}${hi.toString(16)}:${lo.toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const headWords = head === '' ? [] : head.split(':').map((w) => parseInt(w, 16));
  if (rest === undefined) return headWords;
  const restWords = rest === '' ? [] : rest.split(':').map((w) => parseInt(w, 16));
  return [...headWords, ...new Array<number>(8 - headWords.length - restWords.length).fill(0), ...restWords];
}

function maskWords(words: number[], prefix: number): void {
  for (let i = 0; i < words.length; i++) {
    const keep = Math.max(0, Math.min(16, prefix - i * 16));
    words[i] = words[i]! & ((0xffff << (16 - keep)) & 0xffff);
  }
}

function formatIpv4(words: number[]): string {
  const [hi = 0, lo = 0] = words;
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

/** RFC 5952, as inet_ntop writes it: lower case, the longest run of two or more zero words as `::`. */
function formatIpv6(words: number[]): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) => words.slice(from, to).map((w) => w.toString(16)).join(':');
  if (bestStart === -1) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}
