/**
 * What is wrong with registry input, as data. A problem names the document, the path inside
 * it and the fix; it never carries a key or any other value that might be secret, so it is
 * safe to log and to print.
 */

/**
 * - `REGISTRY_SYNTAX`: the file is not YAML; the whole file is refused.
 * - `REGISTRY_DOCUMENT`: a document is no usable ClearanceRegistry; its peers are skipped.
 * - `REGISTRY_FIELD`: a peer field is wrong; that peer is skipped.
 * - `REGISTRY_NAMESPACE`: a peer claims an agentId outside its object's namespace; skipped.
 * - `REGISTRY_CONFLICT`: two entries claim one key, installation, address or object name.
 * - `REGISTRY_SUPERSEDED`: (warning) an entry is revoked by a later generation of its peer.
 * - `REGISTRY_READ`: the source could not be read (missing, unreadable, too large, no regular file).
 * - `REGISTRY_KEPT`: (warning) a broken entry or document: its last good version stays in force.
 */
export type RegistryProblemCode =
  | 'REGISTRY_SYNTAX'
  | 'REGISTRY_DOCUMENT'
  | 'REGISTRY_FIELD'
  | 'REGISTRY_NAMESPACE'
  | 'REGISTRY_CONFLICT'
  | 'REGISTRY_SUPERSEDED'
  | 'REGISTRY_READ'
  | 'REGISTRY_KEPT';

export type Severity = 'error' | 'warning';

export type PathSegment = string | number;

export interface RegistryProblem {
  readonly code: RegistryProblemCode;
  readonly severity: Severity;
  /** The file, when the input came from one. */
  readonly file: string | undefined;
  /** 1-based line in `file`, when known. */
  readonly line: number | undefined;
  /** `<namespace>/<name>` of the object, or `document N` (1-based) when it has no usable name. */
  readonly document: string;
  /** Path inside the document, e.g. `spec.peers[2].publicKey`; empty for the whole document. */
  readonly path: string;
  /** What is wrong and how to fix it. */
  readonly message: string;
}

/** `spec.peers[2].publicKey` from `['spec', 'peers', 2, 'publicKey']`. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? segment : `.${segment}`;
  }
  return out;
}

/** One line: `file:line: document: path: message`, parts that are unknown left out. */
export function formatProblem(p: RegistryProblem): string {
  const where = p.file === undefined ? '' : p.line === undefined ? `${p.file}: ` : `${p.file}:${p.line}: `;
  const level = p.severity === 'warning' ? 'warning: ' : '';
  const path = p.path === '' ? '' : `${p.path}: `;
  // A file that cannot be read, or not decoded, has no document to name.
  const document = p.code === 'REGISTRY_READ' || p.document === 'file' ? '' : `${p.document}: `;
  return `${where}${level}${document}${path}${p.message}`;
}

/**
 * A source failed as a whole (unreadable file, YAML syntax): the registry keeps its previous
 * snapshot. `problems` holds the details, already safe to log.
 */
export class RegistrySourceError extends Error {
  /** The code of the first problem: `REGISTRY_READ`, `REGISTRY_SYNTAX` or `REGISTRY_DOCUMENT`. */
  readonly code: RegistryProblemCode;
  constructor(readonly problems: readonly RegistryProblem[]) {
    const first = problems[0];
    super(first === undefined ? 'registry source failed' : formatProblem(first) + (problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''));
    this.code = first?.code ?? 'REGISTRY_READ';
  }
  override get name(): string {
    return 'RegistrySourceError';
  }
}
