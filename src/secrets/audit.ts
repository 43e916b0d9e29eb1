/**
 * The audit sink: one JSON line per decision (DESIGN.md, Secret fetch; OPA decision logs),
 * written before the answer leaves, so that no secret is released without its line. A write
 * that fails throws AuditWriteError and the gateway answers 503 and releases nothing (fail
 * closed, as Vault does when no audit device can be written).
 *
 * Writes are synchronous: the lines are in the kernel before the responses are written, and a
 * failure is known before them. `writeLines` writes a batch in one write(2) (the gateway's
 * group commit, audit-commit.ts, gives it the lines of one event-loop turn): a write(2) to a
 * file costs tens of microseconds here, whatever its length, so one per line capped the
 * gateway's throughput. An `O_APPEND` file keeps each write whole against other appenders; a
 * write cut short by a full disk leaves a partial line, which the next write starts after a
 * newline to keep the log parseable line by line, and says which lines are whole.
 *
 * A file sink follows its path: before each write it checks that the path still names the
 * file it holds open (one stat), and when the file was deleted, rotated away or replaced, it
 * opens the path afresh (created 0600) with the checks of the first open. A line written to
 * an unlinked or renamed file is a line no operator reads; a path that now names something
 * that cannot be appended to (a FIFO, a directory, a missing directory) fails the write, so
 * the request is answered 503; so does anything but a regular file (a symlink to /dev/null
 * or a terminal). The path must name a regular file when it is first opened too, by the same
 * rule: a device such as /dev/null would take every line and keep none.
 */
import { closeSync, constants, fstatSync, openSync, statSync, writeSync } from 'node:fs';

export class AuditWriteError extends Error {
  readonly code = 'NOISEMESH_AUDIT_WRITE';
  constructor(readonly errno: string | undefined) {
    super(`the audit sink cannot be written (${errno ?? 'unknown error'})`);
  }
}

/** What became of a batch of lines: the first `written` are whole in the sink, the rest are not. */
export interface AuditBatchResult {
  readonly written: number;
  /** Why the rest were not; undefined when all were written. */
  readonly error: AuditWriteError | undefined;
}

/** Where audit lines go. A line is one JSON text: no newline in it. */
export interface AuditSink {
  /** `{file}` or `stdout`, for logs. */
  readonly description: string;
  /** Writes one line (`line` without its newline); throws AuditWriteError. */
  write(line: string): void;
  /** Writes the lines in order, in one write(2) when the sink takes it whole; never throws. */
  writeLines(lines: readonly string[]): AuditBatchResult;
  close(): void;
}

/** Why an audit file could not be opened, with the setting and the fix. */
export class AuditOpenError extends Error {
  readonly code = 'NOISEMESH_AUDIT_OPEN';
}

/** How long a write to a full non-blocking pipe (stdout into a slow reader) is retried. */
const EAGAIN_RETRY_MS = 100;

/** The file an audit path named when it was opened. */
interface FileIdentity {
  readonly path: string;
  dev: number;
  ino: number;
}

class FdSink implements AuditSink {
  /** A previous write was cut short: the next line begins with a newline. */
  private torn = false;

  constructor(
    private fd: number,
    readonly description: string,
    private readonly owned: boolean,
    /** For a file sink: the path it follows. */
    private readonly file?: FileIdentity,
  ) {}

  write(line: string): void {
    const { error } = this.writeLines([line]);
    if (error !== undefined) throw error;
  }

  writeLines(lines: readonly string[]): AuditBatchResult {
    if (lines.length === 0) return { written: 0, error: undefined };
    if (this.fd < 0) return { written: 0, error: new AuditWriteError('EBADF') };
    if (this.file !== undefined) {
      try {
        this.follow(this.file);
      } catch (err) {
        if (err instanceof AuditWriteError) return { written: 0, error: err };
        throw err;
      }
    }
    const lead = this.torn ? 1 : 0;
    const text = `${this.torn ? '\n' : ''}${lines.join('\n')}\n`;
    const total = Buffer.byteLength(text, 'utf8');
    // The text is written as it is (node encodes it outside the JavaScript heap); a Buffer of
    // it is made only when a write falls short and the rest must go from a byte offset, or
    // when a failure needs the bytes to count the whole lines.
    let bytes: Buffer | undefined;
    let offset = 0;
    let waitedSince = 0;
    while (offset < total) {
      try {
        offset += bytes === undefined ? writeSync(this.fd, text, null, 'utf8') : writeSync(this.fd, bytes, offset);
        if (offset > 0 && offset < total) bytes ??= Buffer.from(text, 'utf8');
      } catch (err) {
        bytes ??= Buffer.from(text, 'utf8');
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') {
          const now = performance.now();
          if (waitedSince === 0) waitedSince = now;
          if (now - waitedSince < EAGAIN_RETRY_MS) {
            Atomics.wait(SLEEP, 0, 0, 1);
            continue;
          }
        }
        // The lines whose newline made it are whole; the one cut short stands alone once
        // the next write starts with a newline.
        let written = 0;
        for (let i = bytes.indexOf(NEWLINE, lead); i >= 0 && i < offset; i = bytes.indexOf(NEWLINE, i + 1)) written++;
        if (offset > 0) this.torn = offset > lead && bytes[offset - 1] !== NEWLINE;
        return { written, error: new AuditWriteError(code) };
      }
    }
    this.torn = false;
    return { written: lines.length, error: undefined };
  }

  close(): void {
    if (this.owned && this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  /** Reopens the path when it no longer names the open file; throws AuditWriteError when it cannot. */
  private follow(file: FileIdentity): void {
    let now;
    try {
      now = statSync(file.path, { throwIfNoEntry: false });
    } catch (err) {
      throw new AuditWriteError((err as NodeJS.ErrnoException).code);
    }
    if (now !== undefined && now.dev === file.dev && now.ino === file.ino) return;
    let opened: { fd: number; dev: number; ino: number };
    try {
      opened = openAppend(file.path);
    } catch (err) {
      throw new AuditWriteError(err instanceof OpenFailure ? err.errno : (err as NodeJS.ErrnoException).code);
    }
    closeSync(this.fd);
    this.fd = opened.fd;
    file.dev = opened.dev;
    file.ino = opened.ino;
    // A line cut short belongs to the old file; the new one starts clean.
    this.torn = false;
  }
}

/** Why openAppend refused a path: an errno, or NOT_APPENDABLE for anything but a regular file. */
class OpenFailure extends Error {
  constructor(readonly errno: string) {
    super(errno);
  }
}
const NOT_APPENDABLE = 'not a regular file';

/**
 * Opens `file` for appending, created 0600, never blocking (O_NONBLOCK: a FIFO with no
 * reader is ENXIO, not a hang); a regular file only, at the first open and at every reopen
 * alike (a device such as /dev/null, named at start or put in the file's place later, would
 * swallow every line while secrets are released).
 */
function openAppend(file: string): { fd: number; dev: number; ino: number } {
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK | constants.O_NOCTTY, 0o600);
  } catch (err) {
    throw new OpenFailure((err as NodeJS.ErrnoException).code ?? 'error');
  }
  const stats = fstatSync(fd);
  if (!stats.isFile()) {
    closeSync(fd);
    throw new OpenFailure(NOT_APPENDABLE);
  }
  return { fd, dev: stats.dev, ino: stats.ino };
}

const SLEEP = new Int32Array(new SharedArrayBuffer(4));
const NEWLINE = 0x0a;

/**
 * Opens `file` for appending (created 0600 if absent). Never blocks: opened O_NONBLOCK, and
 * anything but a regular file (a device, a FIFO, a socket, a directory) is refused; for a
 * stream, use `{stdout: true}`. Throws AuditOpenError naming `setting`.
 */
export function openAuditFile(file: string, setting = 'gateway.audit.file'): AuditSink {
  let opened: { fd: number; dev: number; ino: number };
  try {
    opened = openAppend(file);
  } catch (err) {
    if (!(err instanceof OpenFailure)) throw err;
    const code = err.errno;
    if (code === NOT_APPENDABLE) {
      throw new AuditOpenError(`${setting}: ${file} is not a regular file (a device, FIFO, socket or directory): point it at a regular file, or use gateway.audit.stdout: true`);
    }
    const fix =
      code === 'ENOENT' ? 'create its directory, or fix the path'
      : code === 'EACCES' || code === 'EPERM' ? 'make it (or its directory) writable by the user noisemesh runs as'
      : code === 'ENXIO' ? 'it is a FIFO with no reader: point it at a regular file, or use gateway.audit.stdout: true'
      : code === 'EISDIR' ? 'it is a directory: name a file in it'
      : 'check the path';
    throw new AuditOpenError(`${setting}: ${file} cannot be opened for appending (${code}): ${fix}`);
  }
  return new FdSink(opened.fd, file, true, { path: file, dev: opened.dev, ino: opened.ino });
}

/** Audit lines to the process's standard output (a container's log). */
export function stdoutAuditSink(): AuditSink {
  return descriptorAuditSink(1, 'stdout');
}

/**
 * Audit lines to `fd`, a descriptor the caller opened and keeps (standard output; a test's
 * /dev/full). Nothing is checked of it, and close() leaves it open.
 */
export function descriptorAuditSink(fd: number, description: string): AuditSink {
  return new FdSink(fd, description, false);
}
