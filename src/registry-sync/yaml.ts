/**
 * A registry file: one or more YAML documents, each a ClearanceRegistry (or a List of them,
 * as `kubectl get clearanceregistries -A -o yaml` prints). A YAML syntax error anywhere
 * refuses the whole file, because which peers a broken document meant to publish is unknown
 * and dropping them would revoke them.
 */
import { LineCounter, parseAllDocuments, type Document } from 'yaml';
import { KIND, LIST_KIND } from './model.js';
import { isYamlMapping } from './mapping.js';
import type { PathSegment, RegistryProblem } from './problems.js';
import { validateClearanceRegistry, type ValidatedObject } from './validate.js';

export interface ParsedRegistryFile {
  /** False when the file is not YAML or holds no document at all: nothing in it may be used. */
  readonly ok: boolean;
  readonly objects: readonly ValidatedObject[];
  readonly problems: readonly RegistryProblem[];
  /** `<namespace>/<name>` of documents refused as a whole (see ValidationResult.refusedLabel). */
  readonly refusedObjects: readonly string[];
  /** Non-empty documents (List items counted one each). */
  readonly documents: number;
}

/**
 * The yaml library's messages may quote the offending source line, which may hold a key, so
 * only its error code, and a hint we choose by its message, reach our message.
 */
const SYNTAX_HINTS: Readonly<Record<string, string>> = {
  BAD_INDENT: 'inconsistent indentation: align the keys of each mapping',
  TAB_AS_INDENT: 'a tab used as indentation: indent with spaces',
  DUPLICATE_KEY: 'a key appears twice in one mapping: keep one',
  MISSING_CHAR: 'a closing bracket or quote is missing',
  MULTILINE_IMPLICIT_KEY: 'a key spans lines: put each key on one line, or a missing colon',
  UNEXPECTED_TOKEN: 'unexpected characters: check quoting and colons',
  BAD_SCALAR_START: 'a plain value starts with a reserved character: quote it',
  BLOCK_AS_IMPLICIT_KEY: 'a block used as a key: check indentation and colons',
  BAD_ALIAS: 'an alias names no anchor defined before it',
  // At parse time the library reports only nesting too deep for its stack under this code;
  // too many aliases is found later, by toJS's maxAliasCount, and said there.
  RESOURCE_EXHAUSTION: 'lists or mappings nested too deeply to read: flatten the YAML',
};

/**
 * Hints for errors whose code covers several faults (the library reports an unclosed `[` as
 * BAD_INDENT), told apart by the library's fixed wording, which is matched but never printed.
 */
const MESSAGE_HINTS: readonly (readonly [RegExp, string])[] = [
  [/^Flow sequence .*end with a \]/, 'a flow sequence `[` opened on this line or above is not closed: end it with `]`'],
  [/^Flow map .*end with a \}/, 'a flow mapping `{` opened on this line or above is not closed: end it with `}`'],
  [/^Missing closing "quote/, 'a double-quoted string is not closed: end it with `"`'],
  [/^Missing closing 'quote/, "a single-quoted string is not closed: end it with `'`"],
  [/^Implicit map keys need to be followed by map values/, 'a key without a value: write `key: value`, with a colon and a space'],
  [/^Sequence item without - indicator/, 'a line of a list item is indented differently from the lines above it, or lacks its `- `: align the keys of each item'],
];

/** What to fix for one error of the yaml library: safe to print (never quotes the source). */
export function yamlSyntaxHint(code: string, message: string): string {
  return MESSAGE_HINTS.find(([pattern]) => pattern.test(message))?.[1] ?? SYNTAX_HINTS[code] ?? 'fix the YAML';
}

/**
 * Decodes, parses and validates a registry file's bytes: what a proxy loads and what
 * `registry validate` checks go through this one function, so the two cannot disagree. Bytes
 * that are not UTF-8 refuse the whole file (a replacement character in a key or an agentId
 * would be a different key or agentId).
 */
export function parseRegistryBytes(bytes: Uint8Array, file?: string): ParsedRegistryFile {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const problem: RegistryProblem = {
      code: 'REGISTRY_SYNTAX',
      severity: 'error',
      file,
      line: undefined,
      document: 'file',
      path: '',
      message: 'is not UTF-8 text: save it as UTF-8; the whole file is refused',
    };
    return { ok: false, objects: [], problems: [problem], refusedObjects: [], documents: 0 };
  }
  return parseRegistryYaml(text, file);
}

/** Parses and validates a registry file's text. */
export function parseRegistryYaml(text: string, file?: string): ParsedRegistryFile {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, intAsBigInt: true, uniqueKeys: true, prettyErrors: false });
  const lineOf = (offset: number | undefined): number | undefined => (offset === undefined ? undefined : lineCounter.linePos(offset).line);

  const syntax: RegistryProblem[] = [];
  const values: { value: unknown; doc: Document.Parsed; n: number }[] = [];
  let n = 0;
  for (const doc of docs) {
    n++;
    // One fault often yields several errors at one place (a badly indented line is also "a
    // nested mapping" and "a multi-line key"): the first is the fault, the rest its echoes.
    const byLine = new Map<number | undefined, { code: string; hint: string }>();
    for (const err of doc.errors) {
      const line = err.linePos?.[0].line ?? lineOf(err.pos[0]);
      if (!byLine.has(line)) byLine.set(line, { code: err.code, hint: yamlSyntaxHint(err.code, err.message) });
    }
    for (const [line, { code, hint }] of byLine) {
      syntax.push({
        code: 'REGISTRY_SYNTAX',
        severity: 'error',
        file,
        line,
        document: `document ${n}`,
        path: '',
        message: `YAML syntax error (${code}): ${hint}; the whole file is refused`,
      });
    }
    if (doc.errors.length > 0) continue;
    try {
      values.push({ value: doc.toJS({ maxAliasCount: 100 }), doc, n });
    } catch {
      syntax.push({
        code: 'REGISTRY_SYNTAX',
        severity: 'error',
        file,
        line: lineOf(doc.range[0]),
        document: `document ${n}`,
        path: '',
        message: 'YAML could not be resolved (too many or circular aliases): write the values out',
      });
    }
  }
  if (syntax.length > 0) return { ok: false, objects: [], problems: syntax, refusedObjects: [], documents: 0 };

  const objects: ValidatedObject[] = [];
  const problems: RegistryProblem[] = [];
  const refusedObjects: string[] = [];
  let documents = 0;
  for (const { value, doc, n } of values) {
    if (value === null || value === undefined) continue; // an empty document, e.g. a trailing `---`
    const locate = (path: readonly PathSegment[]): number | undefined => {
      // The line of the node itself, or of the nearest enclosing node when it is missing.
      for (let len = path.length; len >= 0; len--) {
        const node = len === 0 ? doc.contents : doc.getIn(path.slice(0, len), true);
        const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
        if (range !== undefined) return lineOf(range[0]);
      }
      return undefined;
    };
    const record = value as Record<string, unknown>;
    const isList = isYamlMapping(value) && (record.kind === 'List' || record.kind === LIST_KIND);
    if (isList && Array.isArray(record.items)) {
      for (const [i, item] of record.items.entries()) {
        documents++;
        const result = validateClearanceRegistry(item, { file, document: `document ${n} items[${i}]`, pathPrefix: ['items', i], locate });
        problems.push(...result.problems);
        if (result.object !== undefined) objects.push(result.object);
        if (result.refusedLabel !== undefined) refusedObjects.push(result.refusedLabel);
      }
      continue;
    }
    documents++;
    const result = validateClearanceRegistry(value, { file, document: `document ${n}`, locate });
    problems.push(...result.problems);
    if (result.object !== undefined) objects.push(result.object);
    if (result.refusedLabel !== undefined) refusedObjects.push(result.refusedLabel);
  }
  if (documents === 0) {
    // Most likely a file caught between truncation and rewrite; loading it would revoke every key.
    const empty: RegistryProblem = {
      code: 'REGISTRY_DOCUMENT',
      severity: 'error',
      file,
      line: undefined,
      document: 'document 1',
      path: '',
      message: `the file holds no document: to publish no peers, write a ${KIND} with \`peers: []\`; a running proxy keeps its previous registry`,
    };
    return { ok: false, objects: [], problems: [empty], refusedObjects: [], documents: 0 };
  }
  return { ok: true, objects, problems, refusedObjects, documents };
}
