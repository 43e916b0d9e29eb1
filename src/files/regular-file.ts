/**
 * Reading a file that someone else controls: the configuration, key files, the registry.
 *
 * open(2) on a FIFO blocks until a writer appears, and a read from /dev/zero never ends, so a
 * path that is not a regular file can hang whoever reads it: the whole process for a
 * synchronous read, and for an asynchronous one a libuv threadpool thread plus everything
 * queued behind it (a later check, shutdown). Every open here is non-blocking (O_NONBLOCK,
 * which a regular file ignores), the type is taken from fstat of what was opened (so a symlink
 * is followed and judged by its target, with no race between a stat and the open), anything
 * but a regular file is refused before a byte is read, and reads stop one byte past a limit.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type BigIntStats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

const FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;
const CHUNK = 64 * 1024;

/**
 * - `missing`: no such file (ENOENT, or a directory on the way is missing: ENOTDIR);
 * - `permission`: EACCES or EPERM;
 * - `not-regular`: a FIFO, socket, device or directory, after following symlinks;
 * - `too-large`: longer than the caller's limit;
 * - `unreadable`: any other errno (EIO, ELOOP, ENXIO, ...).
 */
export type FileReadFailure = 'missing' | 'permission' | 'not-regular' | 'too-large' | 'unreadable';

/** Why a file was not read. `message` is `<path> <what is wrong>`; it never holds file content. */
export class FileReadError extends Error {
  constructor(
    readonly path: string,
    readonly failure: FileReadFailure,
    /** What is wrong, without the path: `is a FIFO (named pipe), not a regular file`. */
    readonly reason: string,
    /** The errno code behind it, when there is one. */
    readonly code: string | undefined,
  ) {
    super(`${path} ${reason}`);
  }
  override get name(): string {
    return 'FileReadError';
  }

  /**
   * One line for a person: the setting, the path, what is wrong and the fix, e.g.
   * `registry.file: /etc/r.yaml is a FIFO (named pipe), not a regular file: point registry.file at a regular file`.
   */
  explain(setting: string): string {
    const fix =
      this.failure === 'missing' ? `create it, or fix ${setting}`
      : this.failure === 'permission' ? 'make it readable by the user noisemesh runs as'
      : this.failure === 'not-regular' ? `point ${setting} at a regular file (a symlink to one is fine)`
      : this.failure === 'too-large' ? `point ${setting} at the intended file`
      : `check the file and ${setting}`;
    return `${setting}: ${this.message}: ${fix}`;
  }

  /**
   * One line for a file named on the command line, where no setting names it: the path, what
   * is wrong and the fix, e.g. `/tmp/r.yaml is a FIFO (named pipe), not a regular file: name a regular file (a symlink to one is fine)`.
   */
  explainArgument(): string {
    const fix =
      this.failure === 'missing' ? 'check the path'
      : this.failure === 'permission' ? 'make it readable by the user noisemesh runs as'
      : this.failure === 'not-regular' ? 'name a regular file (a symlink to one is fine)'
      : this.failure === 'too-large' ? 'name the intended file'
      : 'check the file';
    return `${this.message}: ${fix}`;
  }
}

export interface ReadLimit {
  /** Longest content accepted, in bytes; longer is `too-large`. */
  readonly maxBytes: number;
}

/** What fstat says a non-regular file is, in words. */
function kindOf(st: BigIntStats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

function notRegular(path: string, st: BigIntStats): FileReadError {
  const kind = kindOf(st);
  return new FileReadError(path, 'not-regular', kind === 'not a regular file' ? 'is not a regular file' : `is ${kind}, not a regular file`, undefined);
}

function tooLarge(path: string, maxBytes: number): FileReadError {
  return new FileReadError(path, 'too-large', `is larger than ${maxBytes} bytes`, undefined);
}

function fromErrno(path: string, err: unknown): FileReadError {
  if (err instanceof FileReadError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  // A Unix socket cannot be open(2)ed: ENXIO. Say what it is rather than what errno says.
  if (code === 'ENOENT' || code === 'ENOTDIR') return new FileReadError(path, 'missing', 'does not exist', code);
  if (code === 'EACCES' || code === 'EPERM') return new FileReadError(path, 'permission', 'cannot be read: permission denied', code);
  if (code === 'ENXIO') return new FileReadError(path, 'not-regular', 'is a socket or a device without a reader, not a regular file', code);
  if (code === 'EISDIR') return new FileReadError(path, 'not-regular', 'is a directory, not a regular file', code);
  return new FileReadError(path, 'unreadable', `cannot be read (${code ?? (err as Error).message})`, code);
}

/** An open regular file and the fstat of what was opened. Close it. */
export interface OpenedFile {
  readonly handle: FileHandle;
  readonly stat: BigIntStats;
}

/**
 * Opens `path` for reading without ever blocking on its type; refuses (and closes) anything
 * that is not a regular file. Throws FileReadError.
 */
export async function openRegularFile(path: string): Promise<OpenedFile> {
  let handle: FileHandle;
  try {
    handle = await open(path, FLAGS);
  } catch (err) {
    throw fromErrno(path, err);
  }
  try {
    const stat = await handle.stat({ bigint: true });
    if (!stat.isFile()) throw notRegular(path, stat);
    return { handle, stat };
  } catch (err) {
    await handle.close().catch(() => {});
    throw fromErrno(path, err);
  }
}

/**
 * Reads an opened regular file to its end, at most `maxBytes`: the size fstat gave is only a
 * hint (the file may grow while it is read), so the limit is enforced on what is read.
 */
export async function readOpenedFile(opened: OpenedFile, path: string, limit: ReadLimit): Promise<Buffer> {
  if (opened.stat.size > BigInt(limit.maxBytes)) throw tooLarge(path, limit.maxBytes);
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for (;;) {
      const want = Math.min(CHUNK, limit.maxBytes + 1 - total);
      const chunk = Buffer.allocUnsafe(want);
      const { bytesRead } = await opened.handle.read(chunk, 0, want, null);
      if (bytesRead === 0) break;
      chunks.push(bytesRead === want ? chunk : chunk.subarray(0, bytesRead));
      total += bytesRead;
      if (total > limit.maxBytes) throw tooLarge(path, limit.maxBytes);
    }
  } catch (err) {
    throw fromErrno(path, err);
  }
  return Buffer.concat(chunks, total);
}

/** Opens, checks and reads a regular file of at most `maxBytes`. Throws FileReadError. */
export async function readRegularFile(path: string, limit: ReadLimit): Promise<Buffer> {
  const opened = await openRegularFile(path);
  try {
    return await readOpenedFile(opened, path, limit);
  } finally {
    await opened.handle.close().catch(() => {});
  }
}

/**
 * readRegularFile for start-up, before there is anything to block but the caller itself.
 * Throws FileReadError.
 */
export function readRegularFileSync(path: string, limit: ReadLimit): Buffer {
  let fd: number;
  try {
    fd = openSync(path, FLAGS);
  } catch (err) {
    throw fromErrno(path, err);
  }
  try {
    const stat = fstatSync(fd, { bigint: true });
    if (!stat.isFile()) throw notRegular(path, stat);
    if (stat.size > BigInt(limit.maxBytes)) throw tooLarge(path, limit.maxBytes);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const want = Math.min(CHUNK, limit.maxBytes + 1 - total);
      const chunk = Buffer.allocUnsafe(want);
      const n = readSync(fd, chunk, 0, want, null);
      if (n === 0) break;
      chunks.push(n === want ? chunk : chunk.subarray(0, n));
      total += n;
      if (total > limit.maxBytes) throw tooLarge(path, limit.maxBytes);
    }
    return Buffer.concat(chunks, total);
  } catch (err) {
    throw fromErrno(path, err);
  } finally {
    closeSync(fd);
  }
}
