/**
 * Text a server sent (a Vault or Kubernetes API error, a status reason), made safe to log:
 * printable ASCII, at most MAX_CHARS characters, and holding no piece of our credentials.
 *
 * A broken or hostile server may echo what it was sent, and not only whole: a prefix ("token
 * hvs.CAESIJ... is invalid"), a cut, a piece inside other text. So besides every whole
 * occurrence of a credential, every run of MIN_PIECE or more characters that is also a run of
 * a credential is redacted, and adjacent redactions are merged into one `[redacted]`: what is
 * left says no more of a token than fewer than MIN_PIECE of its characters at a time. (Vault
 * tokens are a 4-character type prefix and ~90 random characters; a service-account JWT is
 * much longer.) Credentials shorter than MIN_PIECE, and at least 4 long, are redacted whole.
 */

/** The longest run of a credential that may stay in a logged text, plus one. */
export const MIN_PIECE = 8;
/** Characters of server text kept; the rest is cut ("..."). */
export const MAX_CHARS = 160;
/**
 * Characters of server text looked at: a text can be up to an answer's size (megabytes), and
 * the search is O(characters x credential length); anything past MAX_CHARS is cut anyway.
 */
const SCANNED_CHARS = 4 * MAX_CHARS;

/**
 * `text` made safe to log (see the module comment); '' when it is not a string. Never throws.
 * `credentials` are what this process sent or holds (tokens, a JWT, an Authorization value).
 */
export function safeServerText(text: unknown, credentials: readonly string[] = []): string {
  if (typeof text !== 'string') return '';
  const cut = text.length > SCANNED_CHARS;
  const scanned = cut ? text.slice(0, SCANNED_CHARS) : text;
  const hidden = new Uint8Array(scanned.length);
  for (const credential of credentials) {
    if (credential.length < 4) continue;
    if (credential.length < MIN_PIECE) {
      mark(scanned, credential, hidden);
      continue;
    }
    for (let i = 0; i + MIN_PIECE <= credential.length; i++) mark(scanned, credential.slice(i, i + MIN_PIECE), hidden);
  }
  let out = '';
  for (let i = 0; i < scanned.length && out.length <= MAX_CHARS; i++) {
    if (hidden[i] === 1) {
      if (i === 0 || hidden[i - 1] === 0) out += '[redacted]';
      continue;
    }
    const code = scanned.charCodeAt(i);
    out += code >= 0x20 && code <= 0x7e ? scanned[i] : '?';
  }
  return out.length > MAX_CHARS || cut ? `${out.slice(0, MAX_CHARS - 3)}...` : out;
}

/** Marks every occurrence of `piece` in `text`, overlapping ones included. */
function mark(text: string, piece: string, hidden: Uint8Array): void {
  for (let at = text.indexOf(piece); at >= 0; at = text.indexOf(piece, at + 1)) hidden.fill(1, at, at + piece.length);
}
