/**
 * JSON from the API server, with integers beyond 2^53 kept exact.
 *
 * A ClearanceRegistry `generation` may be up to 2^63-1 in the CRD (2^64-1 in a file), and
 * JSON.parse rounds such a number to the nearest double: generation 9007199254740993 would be
 * read as ...992, which can make a revoked key look current. Node 20's JSON.parse cannot show
 * a reviver the source text, so a body that holds an integer literal of 16 digits or more is
 * parsed by the small parser below, which returns such integers as `bigint` (and every other
 * number as JS does). Bodies without one, nearly all, take JSON.parse. The scan is
 * conservative: digits inside a string can send a body to the slow path, never the reverse.
 */

/** Nesting deeper than this is refused: a Kubernetes object is nowhere near it. */
const MAX_DEPTH = 128;
const LONG_INTEGER = /[:,[]\s*-?\d{16,}/;

export class JsonError extends Error {
  override get name(): string {
    return 'JsonError';
  }
}

/** Parses `text`; unsafe integers become bigint. Throws JsonError (never quoting the text). */
export function parseJson(text: string): unknown {
  if (!LONG_INTEGER.test(text)) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new JsonError('not valid JSON');
    }
  }
  return new Parser(text).document();
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

class Parser {
  #i = 0;
  constructor(private readonly s: string) {}

  document(): unknown {
    const v = this.#value(0);
    this.#ws();
    if (this.#i !== this.s.length) this.#fail('trailing characters');
    return v;
  }

  #fail(what: string): never {
    throw new JsonError(`not valid JSON: ${what} at offset ${this.#i}`);
  }

  #ws(): void {
    while (this.#i < this.s.length && WS.has(this.s.charCodeAt(this.#i))) this.#i++;
  }

  #value(depth: number): unknown {
    if (depth > MAX_DEPTH) this.#fail(`nesting deeper than ${MAX_DEPTH}`);
    this.#ws();
    const c = this.s[this.#i];
    if (c === '{') return this.#object(depth);
    if (c === '[') return this.#array(depth);
    if (c === '"') return this.#string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.#number();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.s.startsWith(word, this.#i)) {
        this.#i += word.length;
        return value;
      }
    }
    return this.#fail('unexpected character');
  }

  #object(depth: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    this.#i++;
    this.#ws();
    if (this.s[this.#i] === '}') {
      this.#i++;
      return out;
    }
    for (;;) {
      this.#ws();
      if (this.s[this.#i] !== '"') this.#fail('expected a key');
      const key = this.#string();
      this.#ws();
      if (this.s[this.#i] !== ':') this.#fail("expected ':'");
      this.#i++;
      // defineProperty: a key named __proto__ is data, as JSON.parse makes it.
      Object.defineProperty(out, key, { value: this.#value(depth + 1), enumerable: true, writable: true, configurable: true });
      this.#ws();
      const c = this.s[this.#i++];
      if (c === '}') return out;
      if (c !== ',') this.#fail("expected ',' or '}'");
    }
  }

  #array(depth: number): unknown[] {
    const out: unknown[] = [];
    this.#i++;
    this.#ws();
    if (this.s[this.#i] === ']') {
      this.#i++;
      return out;
    }
    for (;;) {
      out.push(this.#value(depth + 1));
      this.#ws();
      const c = this.s[this.#i++];
      if (c === ']') return out;
      if (c !== ',') this.#fail("expected ',' or ']'");
    }
  }

  #string(): string {
    const start = this.#i;
    this.#i++;
    // Find the closing quote, skipping escapes; JSON.parse then decodes the escapes exactly.
    for (;;) {
      const c = this.s.charCodeAt(this.#i);
      if (Number.isNaN(c)) this.#fail('unterminated string');
      if (c === 0x22) break;
      if (c === 0x5c) this.#i++;
      else if (c < 0x20) this.#fail('control character in string');
      this.#i++;
    }
    this.#i++;
    try {
      return JSON.parse(this.s.slice(start, this.#i)) as string;
    } catch {
      return this.#fail('bad escape in string');
    }
  }

  #number(): number | bigint {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?/.exec(this.s.slice(this.#i, this.#i + 400));
    if (m === null) return this.#fail('bad number');
    this.#i += m[0].length;
    if (m[2] === undefined && m[3] === undefined) {
      const n = Number(m[0]);
      return Number.isSafeInteger(n) ? n : BigInt(m[0]);
    }
    return Number(m[0]);
  }
}
