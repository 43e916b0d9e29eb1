// Server text made safe to log (src/redaction): no whole credential and no run of MIN_PIECE
// of its characters survive, whatever the server echoed (whole, a prefix, a cut, pieces
// inside other words); printable and bounded; a huge text costs a bounded scan.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MAX_CHARS, MIN_PIECE, safeServerText } from '../src/redaction/index.js';

const TOKEN = 'hvs.CAESIJx9Qm3fW7pLkT2vZr8nYb5cXa1dEe4uGh6iJj0kKl';

/** The longest run of `credential`'s characters that appears in `text`. */
function longestRun(text: string, credential: string): number {
  let best = 0;
  for (let i = 0; i < credential.length; i++) {
    for (let j = i + best + 1; j <= credential.length && text.includes(credential.slice(i, j)); j++) best = j - i;
  }
  return best;
}

test('a credential echoed whole, as a prefix, a suffix, a middle cut or in pieces leaves no run of MIN_PIECE of it', () => {
  const echoes = [
    `permission denied: token=${TOKEN}`,
    `bad token ${TOKEN.slice(0, 10)}... from client`,
    `token ending ${TOKEN.slice(-12)}`,
    `x${TOKEN.slice(7, 30)}y and ${TOKEN.slice(31, 45)}`,
    `${TOKEN}${TOKEN}`,
    `"${TOKEN.slice(0, MIN_PIECE)}"`,
  ];
  for (const text of echoes) {
    const safe = safeServerText(text, [TOKEN]);
    assert.ok(longestRun(safe, TOKEN) < MIN_PIECE, `${text} -> ${safe}`);
    assert.match(safe, /\[redacted\]/);
  }
  assert.equal(safeServerText(`permission denied: token=${TOKEN}`, [TOKEN]), 'permission denied: token=[redacted]');
  assert.equal(safeServerText(`${TOKEN}${TOKEN} and more`, [TOKEN]), '[redacted] and more', 'adjacent redactions merge');
  assert.equal(safeServerText('token hvs. is not valid', [TOKEN]), 'token hvs. is not valid', 'fewer than MIN_PIECE characters of it stay');
});

test('several credentials at once; a short one is redacted whole; shorter than 4 is not a credential', () => {
  const jwt = `eyJhbGciOiJSUzI1NiJ9.${randomBytes(48).toString('base64url')}`;
  const safe = safeServerText(`login with ${jwt.slice(5, 40)} failed; token ${TOKEN}; pin 4711; id ab`, [jwt, TOKEN, '4711', 'ab']);
  assert.equal(safe, 'login with [redacted] failed; token [redacted]; pin [redacted]; id ab');
});

test('printable ASCII only, at most MAX_CHARS characters, and no string gives the empty text', () => {
  assert.equal(safeServerText('a\nb\u0000c\u00e9d'), 'a?b?c?d');
  const long = safeServerText('x'.repeat(10_000));
  assert.equal(long.length, MAX_CHARS);
  assert.ok(long.endsWith('...'));
  assert.equal(safeServerText(undefined), '');
  assert.equal(safeServerText({ message: TOKEN }, [TOKEN]), '');
  // A credential just past what is printed is cut off, never shown in part.
  const late = safeServerText(`${'y'.repeat(MAX_CHARS - 6)}${TOKEN}`, [TOKEN]);
  assert.ok(longestRun(late, TOKEN) < MIN_PIECE, late);
});

test('a megabyte of server text with many credentials costs a bounded scan', () => {
  const text = `${TOKEN} `.repeat(30_000);
  const credentials = Array.from({ length: 4 }, () => randomBytes(64).toString('base64url')).concat(TOKEN);
  const safe = safeServerText(text, credentials);
  assert.ok(safe.length <= MAX_CHARS);
  assert.ok(longestRun(safe, TOKEN) < MIN_PIECE);
});
