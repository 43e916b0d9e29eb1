/**
 * Handshake patterns as data (spec sections 7 and 18.1), written in the spec's own notation
 * and parsed once at load. The state machine reads these tables; no code anywhere is
 * specific to a pattern. Adding a pattern is adding a block below.
 */
import { ProtocolNameError } from './errors.js';

export type Token = 'e' | 's' | 'ee' | 'es' | 'se' | 'ss' | 'psk';
export type Role = 'initiator' | 'responder';

export interface MessagePattern {
  readonly from: Role;
  readonly tokens: readonly Token[];
}

export interface HandshakePattern {
  /** The full pattern section of a protocol name, modifiers included (e.g. `IKpsk2`). */
  readonly name: string;
  readonly preMessages: { readonly initiator: readonly Token[]; readonly responder: readonly Token[] };
  readonly messages: readonly MessagePattern[];
  /** One-way patterns (7.4): only the initiator ever sends transport messages. */
  readonly oneWay: boolean;
  /** Any psk modifier present: `e` tokens also call MixKey (9.4). */
  readonly hasPsk: boolean;
}

const NOTATION = `
N:
  <- s
  ...
  -> e, es

K:
  -> s
  <- s
  ...
  -> e, es, ss

X:
  <- s
  ...
  -> e, es, s, ss

NN:
  -> e
  <- e, ee

NK:
  <- s
  ...
  -> e, es
  <- e, ee

NX:
  -> e
  <- e, ee, s, es

KN:
  -> s
  ...
  -> e
  <- e, ee, se

KK:
  -> s
  <- s
  ...
  -> e, es, ss
  <- e, ee, se

KX:
  -> s
  ...
  -> e
  <- e, ee, se, s, es

XN:
  -> e
  <- e, ee
  -> s, se

XK:
  <- s
  ...
  -> e, es
  <- e, ee
  -> s, se

XX:
  -> e
  <- e, ee, s, es
  -> s, se

IN:
  -> e, s
  <- e, ee, se

IK:
  <- s
  ...
  -> e, es, s, ss
  <- e, ee, se

IX:
  -> e, s
  <- e, ee, se, s, es

NK1:
  <- s
  ...
  -> e
  <- e, ee, es

NX1:
  -> e
  <- e, ee, s
  -> es

X1N:
  -> e
  <- e, ee
  -> s
  <- se

X1K:
  <- s
  ...
  -> e, es
  <- e, ee
  -> s
  <- se

XK1:
  <- s
  ...
  -> e
  <- e, ee, es
  -> s, se

X1K1:
  <- s
  ...
  -> e
  <- e, ee, es
  -> s
  <- se

X1X:
  -> e
  <- e, ee, s, es
  -> s
  <- se

XX1:
  -> e
  <- e, ee, s
  -> es, s, se

X1X1:
  -> e
  <- e, ee, s
  -> es, s
  <- se

K1N:
  -> s
  ...
  -> e
  <- e, ee
  -> se

K1K:
  -> s
  <- s
  ...
  -> e, es
  <- e, ee
  -> se

KK1:
  -> s
  <- s
  ...
  -> e
  <- e, ee, se, es

K1K1:
  -> s
  <- s
  ...
  -> e
  <- e, ee, es
  -> se

K1X:
  -> s
  ...
  -> e
  <- e, ee, s, es
  -> se

KX1:
  -> s
  ...
  -> e
  <- e, ee, se, s
  -> es

K1X1:
  -> s
  ...
  -> e
  <- e, ee, s
  -> se, es

I1N:
  -> e, s
  <- e, ee
  -> se

I1K:
  <- s
  ...
  -> e, es, s
  <- e, ee
  -> se

IK1:
  <- s
  ...
  -> e, s
  <- e, ee, se, es

I1K1:
  <- s
  ...
  -> e, s
  <- e, ee, es
  -> se

I1X:
  -> e, s
  <- e, ee, s, es
  -> se

IX1:
  -> e, s
  <- e, ee, se, s
  -> es

I1X1:
  -> e, s
  <- e, ee, s
  -> se, es
`;

const TOKENS: ReadonlySet<string> = new Set<Token>(['e', 's', 'ee', 'es', 'se', 'ss', 'psk']);
const PRE_MESSAGE_TOKENS: ReadonlySet<string> = new Set<Token>(['e', 's']);

function parseTokens(list: string, allowed: ReadonlySet<string>, where: string): Token[] {
  return list.split(',').map((raw) => {
    const token = raw.trim();
    if (!allowed.has(token)) throw new Error(`pattern table: bad token '${token}' in ${where}`);
    return token as Token;
  });
}

/** Parses the notation above. A mistake in the table is a programming error, found at load. */
function parseNotation(text: string): Map<string, HandshakePattern> {
  const patterns = new Map<string, HandshakePattern>();
  for (const block of text.trim().split(/\n\s*\n/)) {
    const [header, ...lines] = block.split('\n').map((l) => l.trim());
    const name = header!.replace(/:$/, '');
    const hasPreMessages = lines.includes('...');
    const pre = { initiator: [] as Token[], responder: [] as Token[] };
    const messages: MessagePattern[] = [];
    let inPreMessages = hasPreMessages;
    for (const line of lines) {
      if (line === '...') {
        inPreMessages = false;
        continue;
      }
      const from: Role = line.startsWith('->') ? 'initiator' : 'responder';
      const tokens = line.slice(2);
      if (inPreMessages) pre[from] = parseTokens(tokens, PRE_MESSAGE_TOKENS, name);
      else messages.push({ from, tokens: parseTokens(tokens, TOKENS, name) });
    }
    patterns.set(name, {
      name,
      preMessages: pre,
      messages,
      oneWay: name.length === 1,
      hasPsk: false,
    });
  }
  return patterns;
}

const BASE_PATTERNS = parseNotation(NOTATION);

/** The base pattern names this build knows, for diagnostics and tests. */
export const basePatternNames: readonly string[] = [...BASE_PATTERNS.keys()];

/**
 * The pattern for a pattern section such as `XX`, `IKpsk2` or `NNpsk0+psk2` (spec 8.1):
 * the base pattern's table with each modifier applied.
 */
export function handshakePattern(section: string): HandshakePattern {
  const match = /^([NKXI]1?[NKX]?1?)(.*)$/.exec(section);
  const base = match === null ? undefined : BASE_PATTERNS.get(match[1]!);
  if (match === null || base === undefined) {
    throw new ProtocolNameError('pattern', `unknown handshake pattern '${section}'`);
  }
  const modifiers = match[2] === '' ? [] : match[2]!.split('+');
  let pattern = base;
  for (const modifier of modifiers) pattern = applyModifier(pattern, modifier);
  return { ...pattern, name: section };
}

/** Section 9.4: psk0 puts `psk` first in the first message; pskN last in the Nth. */
function applyModifier(pattern: HandshakePattern, modifier: string): HandshakePattern {
  const psk = /^psk(\d+)$/.exec(modifier);
  if (psk === null) {
    throw new ProtocolNameError('modifier', `unsupported modifier '${modifier}' (supported: pskN)`);
  }
  const n = Number(psk[1]);
  if (n > pattern.messages.length) {
    throw new ProtocolNameError('modifier', `${modifier} needs ${n} messages; ${pattern.name} has ${pattern.messages.length}`);
  }
  const messages = pattern.messages.map((m, i): MessagePattern => {
    if (n === 0 && i === 0) return { from: m.from, tokens: ['psk', ...m.tokens] };
    if (n > 0 && i === n - 1) return { from: m.from, tokens: [...m.tokens, 'psk'] };
    return m;
  });
  return { ...pattern, messages, hasPsk: true };
}
