/** Static keys as the registry and key files hold them: standard base64 of the raw bytes. */
import { BadKeyError } from './errors.js';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Decodes a base64 key of exactly `length` bytes. The error names the problem, never the
 * value, because the value may be a private key.
 */
export function decodeKey(text: string, length: number, what = 'key'): Uint8Array {
  const trimmed = text.trim();
  if (!BASE64.test(trimmed) || trimmed.length % 4 !== 0) {
    throw new BadKeyError(`${what} is not standard base64`);
  }
  const bytes = Uint8Array.from(Buffer.from(trimmed, 'base64'));
  if (bytes.length !== length) throw new BadKeyError(`${what} must decode to ${length} bytes, got ${bytes.length}`);
  return bytes;
}

export function encodeKey(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('base64');
}

/**
 * Whether a string someone wrote may be key material: 16 bytes or more in base64 (standard or
 * URL-safe, padded or not) or in hex, with nothing else in it. Error messages that quote what
 * they were given use it to say "a string that looks like a key" instead: a key pasted where a
 * path, a level or a name was expected must not come back in a message or a log. Paths are
 * not taken for keys (they start with `/` or `.`).
 */
export function looksLikeKeyText(text: string): boolean {
  const t = text.trim();
  if (t.startsWith('/') || t.startsWith('.')) return false;
  if (/^(0x)?[0-9a-fA-F]{32,}$/.test(t)) return true;
  if (!/^[A-Za-z0-9+/_-]{22,}={0,2}$/.test(t)) return false;
  // A word of letters is a name; random base64 of 32 bytes lacks a digit and `+/` once in
  // 1,700, and lower or upper case almost never.
  return /[0-9+/]/.test(t) || (t.length >= 40 && /[a-z]/.test(t) && /[A-Z]/.test(t));
}
