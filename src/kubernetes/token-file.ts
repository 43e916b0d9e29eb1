/**
 * A bearer token read from a file that is replaced while we run: the kubelet rotates a
 * projected service-account token (by default hourly, well before it expires) by swapping
 * the `..data` symlink of the volume, so the path stays and its content changes.
 *
 * Every request asks for the token; the file is stat()ed each time and re-read only when its
 * inode, size or mtime moved, so a rotation is picked up by the next request rather than up to
 * a minute later (client-node 1.4.0's FileAuth re-reads on a 60 s timer). A 401 forces a
 * re-read as well. The token never appears in an error, a log or a metric. The read itself goes
 * through src/files (non-blocking open, judged by fstat of what was opened, bounded), so a
 * path swapped for a FIFO or a device between the stat and the read cannot hang the process.
 */
import { statSync } from 'node:fs';
import { FileReadError, readRegularFileSync } from '../files/index.js';

/** Projected tokens are ~1 KiB; anything far larger is not a token. */
const MAX_TOKEN_BYTES = 64 * 1024;

export class TokenFileError extends Error {
  override get name(): string {
    return 'TokenFileError';
  }
}

export class TokenFile {
  #stamp: string | undefined;
  #token: string | undefined;
  #reads = 0;

  /**
   * `fix`: what to do when the file cannot be read, for the message (the Vault backend's token
   * file is configured elsewhere than the Kubernetes service account's).
   */
  constructor(
    readonly path: string,
    readonly fix = 'mount the service-account token, or set registry.kubernetes.kubeconfig',
  ) {}

  /** How many times the file was actually read (for tests of rotation). */
  get reads(): number {
    return this.#reads;
  }

  /** The current token; throws TokenFileError naming the file and the fix (never the content). */
  token(): string {
    let stamp: string;
    try {
      const st = statSync(this.path);
      if (!st.isFile()) throw new TokenFileError(`the token file ${this.path} is not a regular file`);
      if (st.size > MAX_TOKEN_BYTES) throw new TokenFileError(`the token file ${this.path} is larger than ${MAX_TOKEN_BYTES} bytes: it is no bearer token`);
      stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    } catch (err) {
      if (err instanceof TokenFileError) throw err;
      throw new TokenFileError(`the token file ${this.path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}): ${this.fix}`);
    }
    if (stamp === this.#stamp && this.#token !== undefined) return this.#token;
    let text: string;
    try {
      text = readRegularFileSync(this.path, { maxBytes: MAX_TOKEN_BYTES }).toString('utf8').trim();
    } catch (err) {
      if (err instanceof FileReadError) throw new TokenFileError(`the token file ${err.message}${err.failure === 'missing' ? `: ${this.fix}` : ''}`);
      throw err;
    }
    this.#reads++;
    // A token goes into a header: refuse anything that could split it.
    if (text === '' || /[\s\0-\x1f\x7f]/.test(text)) throw new TokenFileError(`the token file ${this.path} holds no single-line token`);
    this.#stamp = stamp;
    this.#token = text;
    return text;
  }

  /** The server refused the token: read the file again on the next request. */
  invalidate(): void {
    this.#stamp = undefined;
  }
}
