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
