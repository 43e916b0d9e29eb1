/**
 * How long a handshake message is, from the pattern's tokens alone (spec sections 5.3 and 7),
 * for a reader that must bound what it accepts before a HandshakeState has seen a byte.
 */
import { TAG_LEN } from './constants.js';
import type { DhName } from './primitives.js';
import type { Protocol } from './protocol.js';

/** DHLEN of each DH function (spec 12.1 and 12.2): a public key's length. */
export const DH_LEN: Readonly<Record<DhName, number>> = { '25519': 32, '448': 56 };

/**
 * Bytes that handshake message `index` (0 for the first) of `protocol` adds around its
 * payload, so that the message is exactly `payload length + overhead` long: DHLEN for each
 * `e`; DHLEN, plus a tag once a key is set, for each `s`; and the payload's own tag once a
 * key is set. The first DH or psk token sets the key, and in a psk handshake so does the
 * first `e` (spec 9.2: `e` also calls MixKey). Throws RangeError for an index past the
 * pattern's last message.
 */
export function handshakeMessageOverhead(protocol: Protocol, index: number): number {
  const { messages, hasPsk } = protocol.pattern;
  if (!Number.isInteger(index) || index < 0 || index >= messages.length) {
    throw new RangeError(`${protocol.pattern.name} has no handshake message ${index}`);
  }
  const dhLen = DH_LEN[protocol.dh];
  let hasKey = false;
  let length = 0;
  for (let i = 0; i <= index; i++) {
    length = 0;
    for (const token of messages[i]!.tokens) {
      if (token === 'e') {
        length += dhLen;
        if (hasPsk) hasKey = true;
      } else if (token === 's') {
        length += dhLen + (hasKey ? TAG_LEN : 0);
      } else {
        hasKey = true;
      }
    }
    length += hasKey ? TAG_LEN : 0;
  }
  return length;
}
