/**
 * The `file` backend (`gateway.backend.file`): secrets from one YAML file, the local
 * default and the demo's.
 *
 * ```yaml
 * payments/db: {username: app, password: "s3cret"}
 * public/ca: {pem: "-----BEGIN CERTIFICATE-----..."}
 * ```
 *
 * Each top-level key is a secret path (the policy's `paths` see it: segments of
 * `A-Z a-z 0-9 . _ -`), each value a flat mapping of keys to string values. A value that is
 * no string (a number, a list) is refused rather than converted: `port: 5432` and
 * `port: "5432"` are different YAML, and a secret should not change type on its way out.
 * A secret's `version` is a hash of its content, so it changes exactly when the data does.
 *
 * The whole file is held in memory; `read` is a map lookup. The file is re-read when its
 * size, mtime, ctime or inode change (checked once a second: a rename over it, as a
 * ConfigMap or Secret volume does, is one); a file that fails to load keeps the last good
 * content in force and is reported once per change. Problems name the line, the secret path
 * and the key, never a value.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { parseDocument, LineCounter, isMap, isScalar, type Node } from 'yaml';
import { FileReadError, readRegularFile } from '../../files/index.js';
import { yamlFaultHint, yamlFaults } from '../../registry-sync/index.js';
import { checkSecretPath } from '../../trust-vector/index.js';
import type { SecretValue, SecretsBackend } from '../backend.js';
import type { SecretsLog } from '../log.js';

/** Longest secrets file read. */
export const MAX_SECRETS_FILE_BYTES = 16 * 1024 * 1024;
/** Longest key within a secret. */
const MAX_KEY_LENGTH = 253;
const KEY = /^[A-Za-z0-9._-]+$/;

/** One thing wrong with the file: `line` when known, `path` the secret path (and key). */
export interface SecretsFileProblem {
  readonly line: number | undefined;
  readonly path: string;
  readonly message: string;
}

export class SecretsFileError extends Error {
  readonly code = 'NOISEMESH_SECRETS_FILE';
  constructor(
    readonly file: string,
    readonly problems: readonly SecretsFileProblem[],
    /** The read failure, when the file could not be read at all. */
    readonly readError?: FileReadError,
  ) {
    super(
      readError !== undefined
        ? readError.explain('gateway.backend.file')
        : problems.length === 1
          ? `${file}: ${formatSecretsFileProblem(problems[0]!)}`
          : `${file}: ${problems.length} problems\n${problems.map((p) => `  ${formatSecretsFileProblem(p)}`).join('\n')}`,
    );
  }
}

export function formatSecretsFileProblem(p: SecretsFileProblem): string {
  return `${p.line === undefined ? '' : `line ${p.line}: `}${p.path === '' ? '' : `${p.path}: `}${p.message}`;
}

/** Parses the file's text into secrets; throws SecretsFileError with every problem. */
export function parseSecretsFile(text: string, file: string): Map<string, SecretValue> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const lineOf = (node: Node | null | undefined): number | undefined => (node?.range ? lineCounter.linePos(node.range[0]).line : undefined);
  const problems: SecretsFileProblem[] = [];
  const faults = yamlFaults(doc);
  if (faults.length > 0) {
    // yaml's own messages may quote the source (a secret value): only its code, its
    // position and a tag as written are kept, through yamlFaultHint.
    const seen = new Set<number>();
    for (const err of faults) {
      const line = lineCounter.linePos(err.pos[0]).line;
      if (seen.has(line)) continue;
      seen.add(line);
      problems.push({ line, path: '', message: `not valid YAML: ${yamlFaultHint(err, text)}` });
    }
    throw new SecretsFileError(file, problems);
  }
  const secrets = new Map<string, SecretValue>();
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) return secrets;
  if (!isMap(root)) throw new SecretsFileError(file, [{ line: lineOf(root), path: '', message: 'must be a mapping of secret paths to {key: value} mappings, e.g. payments/db: {password: "..."}' }]);
  for (const pair of root.items) {
    const keyNode = pair.key as Node | null;
    const path = isScalar(keyNode) ? keyNode.value : undefined;
    if (typeof path !== 'string') {
      problems.push({ line: lineOf(keyNode), path: '', message: 'a secret path must be a string such as payments/db' });
      continue;
    }
    const invalid = checkSecretPath(path);
    if (invalid !== undefined) {
      problems.push({ line: lineOf(keyNode), path: JSON.stringify(path).slice(0, 80), message: `is no secret path: it ${invalid}; write segments of A-Z a-z 0-9 . _ - joined by single slashes` });
      continue;
    }
    const value = pair.value as Node | null;
    if (!isMap(value)) {
      const empty = value === null || (isScalar(value) && value.value === null);
      problems.push({
        line: lineOf(value) ?? lineOf(keyNode),
        path,
        message: empty ? 'is empty (null): give it a mapping of keys to string values, e.g. {password: "..."}, or remove the secret' : 'must be a mapping of keys to string values, e.g. {password: "..."}',
      });
      continue;
    }
    const data: Record<string, string> = Object.create(null) as Record<string, string>;
    let ok = true;
    for (const item of value.items) {
      const k = isScalar(item.key) ? (item.key as { value: unknown }).value : undefined;
      if (typeof k !== 'string' || k.length > MAX_KEY_LENGTH || !KEY.test(k)) {
        problems.push({ line: lineOf(item.key as Node), path, message: `a key must be 1..${MAX_KEY_LENGTH} characters of A-Z a-z 0-9 . _ -` });
        ok = false;
        continue;
      }
      const v = isScalar(item.value) ? (item.value as { value: unknown }).value : undefined;
      if (item.value === null || (isScalar(item.value) && v === null)) {
        // `password:` with nothing after it: not an empty secret, which would be `password: ""`.
        problems.push({ line: lineOf(item.value as Node) ?? lineOf(item.key as Node), path: `${path}.${k}`, message: 'is empty (null): give it a value in quotes ("" for an empty one), or remove the key' });
        ok = false;
        continue;
      }
      if (typeof v !== 'string') {
        // Never the value itself: it is a secret, even when it is mistyped.
        problems.push({ line: lineOf(item.value as Node) ?? lineOf(item.key as Node), path: `${path}.${k}`, message: 'must be a string: quote it (a number, boolean, list or mapping is refused)' });
        ok = false;
        continue;
      }
      data[k] = v;
    }
    if (ok) secrets.set(path, Object.freeze({ data: Object.freeze({ ...data }), version: versionOf(data) }));
  }
  if (problems.length > 0) throw new SecretsFileError(file, problems);
  return secrets;
}

/** A content hash: the first 16 hex digits of SHA-256 over the keys in order with their values. */
function versionOf(data: Record<string, string>): string {
  const hash = createHash('sha256');
  for (const k of Object.keys(data).sort()) hash.update(`${k.length}:${k}${Buffer.byteLength(data[k]!)}:`).update(data[k]!);
  return hash.digest('hex').slice(0, 16);
}

async function load(file: string): Promise<Map<string, SecretValue>> {
  let bytes: Buffer;
  try {
    bytes = await readRegularFile(file, { maxBytes: MAX_SECRETS_FILE_BYTES });
  } catch (err) {
    if (err instanceof FileReadError) throw new SecretsFileError(file, [], err);
    throw err;
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new SecretsFileError(file, [{ line: undefined, path: '', message: 'is not UTF-8 text: save it as UTF-8' }]);
  } finally {
    bytes.fill(0);
  }
  return parseSecretsFile(text, file);
}

export interface FileBackendOptions {
  readonly log: SecretsLog;
  /** How often the file's metadata is checked for a change; default 1000 ms. */
  readonly pollMs?: number;
}

export class FileSecretsBackend implements SecretsBackend {
  readonly name = 'file';
  private timer: NodeJS.Timeout | null = null;
  private stamp = '';
  private checking = false;

  private constructor(
    readonly file: string,
    private secrets: Map<string, SecretValue>,
    private readonly o: FileBackendOptions,
  ) {}

  /** Loads the file; throws SecretsFileError (the gateway refuses to start). */
  static async open(file: string, options: FileBackendOptions): Promise<FileSecretsBackend> {
    const stamp = await stampOf(file);
    const backend = new FileSecretsBackend(file, await load(file), options);
    backend.stamp = stamp;
    backend.timer = setInterval(() => void backend.check(), options.pollMs ?? 1000);
    backend.timer.unref();
    return backend;
  }

  /** How many secrets are in force. */
  get size(): number {
    return this.secrets.size;
  }

  read(path: string): Promise<SecretValue | null> {
    return Promise.resolve(this.secrets.get(path) ?? null);
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.secrets = new Map();
  }

  /** Re-reads the file when its metadata changed; keeps the last good content on failure. */
  private async check(): Promise<void> {
    if (this.checking || this.timer === null) return;
    this.checking = true;
    try {
      const stamp = await stampOf(this.file);
      if (stamp === this.stamp) return;
      this.stamp = stamp;
      try {
        const next = await load(this.file);
        if (this.timer === null) return;
        this.secrets = next;
        this.o.log.info({ event: 'secrets-reload', file: this.file, secrets: next.size }, 'secrets file reloaded');
      } catch (err) {
        if (!(err instanceof SecretsFileError)) throw err;
        this.o.log.error({ event: 'secrets-reload-error', file: this.file, error: err.message }, 'secrets file not reloaded; the last good content stays in force');
      }
    } finally {
      this.checking = false;
    }
  }
}

/** What identifies a version of the file without reading it; '' when it cannot be stat'ed. */
async function stampOf(file: string): Promise<string> {
  try {
    const s = await stat(file, { bigint: true });
    return `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch (err) {
    return `error:${(err as NodeJS.ErrnoException).code ?? 'unknown'}`;
  }
}
