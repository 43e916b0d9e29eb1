/**
 * A registry file: one or more YAML documents, each a ClearanceRegistry (or a List of them,
 * as `kubectl get clearanceregistries -A -o yaml` prints). A YAML syntax error anywhere
 * refuses the whole file, because which peers a broken document meant to publish is unknown
 * and dropping them would revoke them.
 */
import { LineCounter, parseAllDocuments, type Document, type YAMLError } from 'yaml';
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
 * Warnings that refuse a document like errors: a tag the library cannot apply. It then keeps
 * the value as if untagged (`!!int x` is the string 'x', `!custom payments/api` a plain
 * agentId, `!!omap {a: 1}` a plain mapping), so what the author meant is unknown.
 */
const REFUSED_WARNINGS: ReadonlySet<string> = new Set(['TAG_RESOLVE_FAILED', 'BAD_COLLECTION_TYPE']);

/** A document's faults: its errors, then the warnings that refuse it (REFUSED_WARNINGS). */
export function yamlFaults(doc: Pick<Document.Parsed, 'errors' | 'warnings'>): YAMLError[] {
  return [...doc.errors, ...doc.warnings.filter((w) => REFUSED_WARNINGS.has(w.code))];
}

/** A tag as written (`!!set`, `!custom`, `!<tag:x,2000:y>`): printed only when it is one. */
const TAG_TEXT = /^!(?:<[^<>\s]{1,62}>|[!A-Za-z0-9_.:/%#;,@&=+$~?-]{0,62})$/;

/**
 * What to fix for one fault of yamlFaults, safe to print. A tag fault names the tag, cut
 * from the source at the library's position (only when it is tag syntax, so nothing else of
 * the line is printed): `unsupported YAML tag !!set (...): <fix>`; others get yamlSyntaxHint.
 */
export function yamlFaultHint(err: YAMLError, text: string): string {
  if (err.code === 'TAG_RESOLVE_FAILED' || err.code === 'BAD_COLLECTION_TYPE') {
    const written = text.slice(err.pos[0], err.pos[1]);
    const tag = TAG_TEXT.test(written) ? written : 'a tag';
    const why =
      err.code === 'BAD_COLLECTION_TYPE'
        ? `${tag} does not fit this kind of value`
        : tag === '!!set'
          ? '!!set takes keys without values'
          : tag === '!!timestamp'
            ? '!!timestamp takes a date, yyyy-mm-dd'
            : `${tag} is not a tag this file may use`;
    return `unsupported YAML tag ${tag} (${why}): remove the tag and write a plain mapping, list or value`;
  }
  return yamlSyntaxHint(err.code, err.message);
}

/** A fault as one message: the tag message of yamlFaultHint, or `YAML syntax error (CODE): <hint>`. */
export function yamlFaultMessage(err: YAMLError, text: string): string {
  const hint = yamlFaultHint(err, text);
  return err.code === 'TAG_RESOLVE_FAILED' || err.code === 'BAD_COLLECTION_TYPE' ? hint : `YAML syntax error (${err.code}): ${hint}`;
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
    const faults = yamlFaults(doc);
    const byLine = new Map<number | undefined, string>();
    for (const err of faults) {
      const line = err.linePos?.[0].line ?? lineOf(err.pos[0]);
      if (!byLine.has(line)) byLine.set(line, yamlFaultMessage(err, text));
    }
    for (const [line, message] of byLine) {
      syntax.push({
        code: 'REGISTRY_SYNTAX',
        severity: 'error',
        file,
        line,
        document: `document ${n}`,
        path: '',
        message: `${message}; the whole file is refused`,
      });
    }
    if (faults.length > 0) continue;
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
