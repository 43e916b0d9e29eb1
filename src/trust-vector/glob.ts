/**
 * Secret paths, agentIds, and the globs that match them. Defined exactly, because a policy
 * author reads a glob as a promise about who gets which secret:
 *
 * - A **secret path** is 1 to MAX_SECRET_PATH_LENGTH characters: segments of `A-Z a-z 0-9 . _ -`
 *   separated by single slashes; no leading or trailing slash, no empty segment, no `.` or
 *   `..` segment. Case matters (`Payments/db` is not `payments/db`). Anything else is no path
 *   at all: it matches no rule, so a request for it is denied (`checkSecretPath` says why).
 * - An **agentId** is `<namespace>/<workload>` in lower case, as the registry holds it.
 * - In a glob, `*` matches any characters within one segment (none included), never a slash;
 *   a segment that is exactly `**` matches any number of whole segments, none included. So
 *   `payments/*` matches `payments/db` but not `payments/db/password` nor `payments`;
 *   `payments/**` matches `payments`, `payments/db` and `payments/db/password`; `**` matches
 *   every path; `*-db` matches `payments-db` and `-db`. Every other character is literal;
 *   there is no `?`, no `[...]`, no `{a,b}`, and no escaping.
 *
 * Globs are compiled once, when the policy loads; matching constructs no regular expression
 * and never backtracks more than once per `**` (O(segments x tokens) at worst).
 */

export const MAX_SECRET_PATH_LENGTH = 512;
/** Longest glob accepted in a policy. */
export const MAX_GLOB_LENGTH = 512;

function isAlnum(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 48 && c <= 57);
}

/**
 * True for a registry-shaped agentId, `<namespace>/<workload>`: the namespace a DNS-1123
 * label (a-z 0-9 '-', alphanumeric at both ends), the workload the same with '.' allowed
 * too. The same rule as the proxy configuration's, written out as a loop: evaluate runs it
 * on every request that reaches a rule with `agents`.
 */
export function isAgentId(id: string): boolean {
  const n = id.length;
  if (n < 3 || n > 317) return false;
  const slash = id.indexOf('/');
  if (slash < 1 || slash > 63 || n - slash - 1 > 253 || slash > n - 2 || !isAlnum(id.charCodeAt(0)) || !isAlnum(id.charCodeAt(slash - 1))) return false;
  if (!isAlnum(id.charCodeAt(slash + 1)) || !isAlnum(id.charCodeAt(n - 1))) return false;
  for (let i = 0; i < n; i++) {
    const c = id.charCodeAt(i);
    if (isAlnum(c) || c === 45 || i === slash) continue;
    if (c === 46 && i > slash) continue;
    return false;
  }
  return true;
}

/** `A-Z a-z 0-9 . _ -` */
function isPathChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 46 || c === 95 || c === 45;
}

/**
 * What is wrong with a secret path, or undefined when it is one. The message never quotes
 * the path (it comes from the network).
 */
export function checkSecretPath(path: string): string | undefined {
  const n = path.length;
  if (n === 0) return 'is empty';
  if (n > MAX_SECRET_PATH_LENGTH) return `is longer than ${MAX_SECRET_PATH_LENGTH} characters`;
  let segmentStart = 0;
  for (let i = 0; i <= n; i++) {
    const c = i === n ? 47 : path.charCodeAt(i);
    if (c === 47) {
      const len = i - segmentStart;
      if (len === 0) return 'has an empty segment (a leading, trailing or doubled slash)';
      if (path.charCodeAt(segmentStart) === 46 && (len === 1 || (len === 2 && path.charCodeAt(segmentStart + 1) === 46))) {
        return 'has a . or .. segment';
      }
      segmentStart = i + 1;
    } else if (!isPathChar(c)) {
      return 'has a character other than A-Z a-z 0-9 . _ - and /';
    }
  }
  return undefined;
}

/** Matching kinds, cheapest first. */
const EXACT = 0; // no wildcard: string equality
const SUBTREE = 1; // literal segments then `**` (or `**` alone): equality or a prefix ending at a slash
const CHILDREN = 2; // literal segments then `*`: one more non-empty segment
const GENERAL = 3; // anything else: token by token over the segments

/** `**`, or one segment: its literal pieces around each `*` (one piece: no `*`). */
export type Token = typeof ANY_SEGMENTS | readonly string[];
export const ANY_SEGMENTS = 0;

/** A compiled glob. Match only valid paths (checkSecretPath) or valid agentIds. */
export class Glob {
  readonly #kind: number;
  /** EXACT: the text; SUBTREE and CHILDREN: the literal prefix with a trailing slash ('' for none). */
  readonly #text: string;
  /** SUBTREE: the literal prefix without its slash. */
  readonly #bare: string;
  readonly #tokens: readonly Token[];

  private constructor(
    /** The glob as written. */
    readonly source: string,
    tokens: readonly Token[],
    /** The leading segments without wildcards. */
    readonly literalPrefix: readonly string[],
  ) {
    this.#tokens = tokens;
    const literal = literalPrefix.length;
    const last = tokens[tokens.length - 1];
    const prefix = literalPrefix.join('/');
    if (literal === tokens.length) {
      this.#kind = EXACT;
      this.#text = prefix;
      this.#bare = prefix;
    } else if (literal === tokens.length - 1 && last === ANY_SEGMENTS) {
      this.#kind = SUBTREE;
      this.#text = literal === 0 ? '' : `${prefix}/`;
      this.#bare = prefix;
    } else if (literal === tokens.length - 1 && last !== undefined && last !== ANY_SEGMENTS && last.length === 2 && last[0] === '' && last[1] === '') {
      this.#kind = CHILDREN;
      this.#text = literal === 0 ? '' : `${prefix}/`;
      this.#bare = prefix;
    } else {
      this.#kind = GENERAL;
      this.#text = '';
      this.#bare = '';
    }
  }

  /** The glob token by token (`**`, or a segment's pieces around its `*`s), for the rule index. */
  get tokens(): readonly Token[] {
    return this.#tokens;
  }

  /**
   * Compiles a glob, or says what is wrong with it. `agent: true` checks it against the
   * agentId syntax too, so that a glob which can never match any agentId is refused.
   */
  static compile(source: unknown, options: { readonly agent: boolean }): Glob | string {
    if (typeof source !== 'string') return 'must be a string glob';
    if (source.length === 0) return 'is empty: write a glob such as payments/* or payments/**';
    if (source.length > MAX_GLOB_LENGTH) return `is longer than ${MAX_GLOB_LENGTH} characters`;
    const segments = source.split('/');
    const tokens: Token[] = [];
    const literalPrefix: string[] = [];
    let wild = false;
    let fixedSegments = 0;
    let anySegments = false;
    for (const segment of segments) {
      if (segment === '') return 'has an empty segment (a leading, trailing or doubled slash): paths and agentIds have none, so it can never match';
      if (segment === '**') {
        wild = true;
        anySegments = true;
        // `**/**` is `**`: one token keeps matching linear.
        if (tokens[tokens.length - 1] !== ANY_SEGMENTS) tokens.push(ANY_SEGMENTS);
        continue;
      }
      if (segment.includes('**')) return `has '**' inside a segment: '**' must be a whole segment (any number of segments); use '*' within a segment`;
      if (segment === '.' || segment === '..') return 'has a . or .. segment: paths have none, so it can never match';
      for (let i = 0; i < segment.length; i++) {
        const c = segment.charCodeAt(i);
        if (c === 42) continue;
        if (options.agent) {
          if (c >= 65 && c <= 90) return 'has an upper-case letter: agentIds are lower case, so it can never match';
          if (!((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46)) {
            return "has a character other than a-z 0-9 - . and the wildcards '*' and '**': agentIds are <namespace>/<workload>";
          }
        } else if (!isPathChar(c)) {
          return "has a character other than A-Z a-z 0-9 . _ - / and the wildcards '*' and '**'";
        }
      }
      fixedSegments++;
      const pieces = segment.split('*');
      if (pieces.length > 1) wild = true;
      else if (!wild) literalPrefix.push(segment);
      tokens.push(Object.freeze(pieces));
    }
    if (options.agent && (fixedSegments > 2 || (!anySegments && fixedSegments !== 2))) {
      return 'must match <namespace>/<workload>: two segments (or use **), e.g. payments/* or payments/api';
    }
    return new Glob(source, Object.freeze(tokens), Object.freeze(literalPrefix));
  }

  /**
   * Whether the subject matches. Its text must be a valid secret path or agentId; only
   * GENERAL globs split it into segments, once per subject.
   *
   * The last answer is kept with its subject: policies repeat globs (one path, a rule per
   * team), the policy compiler shares one Glob per distinct source, and a subject lives for
   * one evaluation, so every repeat after the first is an identity check (this serves the
   * loop over every rule, evaluateLinear; evaluate matches through the rule index's tries).
   * Deterministic: the answer depends on the text only.
   */
  matches(subject: Subject): boolean {
    if (this.#lastSubject === subject) return this.#lastResult;
    const result = this.#match(subject);
    this.#lastSubject = subject;
    this.#lastResult = result;
    return result;
  }

  #lastSubject: Subject | undefined = undefined;
  #lastResult = false;

  #match(subject: Subject): boolean {
    const text = subject.text;
    const prefix = this.#text;
    switch (this.#kind) {
      case EXACT:
        return text === prefix;
      case SUBTREE:
        // The slash must sit right after the prefix: one comparison rejects most globs before startsWith.
        return prefix === '' || text === this.#bare || (text.charCodeAt(prefix.length - 1) === 47 && text.startsWith(prefix));
      case CHILDREN:
        return (
          text.length > prefix.length &&
          (prefix === '' || (text.charCodeAt(prefix.length - 1) === 47 && text.startsWith(prefix))) &&
          text.indexOf('/', prefix.length) < 0
        );
      default:
        return matchTokens(this.#tokens, subject.segments());
    }
  }
}

/** A path or agentId being matched, split into segments on first need. */
export class Subject {
  #segments: readonly string[] | undefined = undefined;
  constructor(readonly text: string) {}
  segments(): readonly string[] {
    return (this.#segments ??= this.text.split('/'));
  }
}

/**
 * Wildcard matching over segments with one backtrack point: on a mismatch, the last `**`
 * swallows one more segment. Correct because every other token matches exactly one segment.
 */
function matchTokens(tokens: readonly Token[], segments: readonly string[]): boolean {
  let t = 0;
  let s = 0;
  let starT = -1;
  let starS = 0;
  const nt = tokens.length;
  const ns = segments.length;
  while (s < ns) {
    const token = t < nt ? tokens[t]! : undefined;
    if (token === ANY_SEGMENTS) {
      starT = t++;
      starS = s;
    } else if (token !== undefined && matchSegment(token, segments[s]!)) {
      t++;
      s++;
    } else if (starT >= 0) {
      t = starT + 1;
      s = ++starS;
    } else {
      return false;
    }
  }
  while (t < nt && tokens[t] === ANY_SEGMENTS) t++;
  return t === nt;
}

/**
 * One segment against its pieces (a Token other than `**`): first is a prefix, last a
 * suffix, the middle in order. O(segment length).
 */
export function matchSegment(pieces: readonly string[], segment: string): boolean {
  const n = pieces.length;
  if (n === 1) return segment === pieces[0];
  const first = pieces[0]!;
  const last = pieces[n - 1]!;
  const end = segment.length - last.length;
  if (end < first.length || !segment.startsWith(first) || !segment.endsWith(last)) return false;
  let at = first.length;
  for (let i = 1; i < n - 1; i++) {
    const piece = pieces[i]!;
    if (piece === '') continue;
    const found = segment.indexOf(piece, at);
    if (found < 0 || found + piece.length > end) return false;
    at = found + piece.length;
  }
  return true;
}
