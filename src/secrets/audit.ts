/**
 * The audit sink: one JSON line per decision (DESIGN.md, Secret fetch; OPA decision logs),
 * written before the answer leaves, so that no secret is released without its line. A write
 * that fails throws AuditWriteError and the gateway answers 503 and releases nothing (fail
 * closed, as Vault does when no audit device can be written).
 *
 * Writes are synchronous (one write(2) of one whole line): the line is in the kernel before
 * the response is written, and a failure is known before it. On a local file that costs a
 * few microseconds; the benchmark's gateway figures include it. An `O_APPEND` file keeps
 * each line whole against other appenders; a write cut short by a full disk leaves a partial
 * line, which the next line starts after a newline to keep the log parseable line by line.
 */
import { closeSync, constants, fstatSync, openSync, writeSync } from 'node:fs';

export class AuditWriteError extends Error {
  readonly code = 'NOISEMESH_AUDIT_WRITE';
  constructor(readonly errno: string | undefined) {
    super(`the audit sink cannot be written (${errno ?? 'unknown error'})`);
  }
}

/** Where audit lines go. */
export interface AuditSink {
  /** `{file}` or `stdout`, for logs. */
  readonly description: string;
  /** Writes one line (`line` without its newline); throws AuditWriteError. */
  write(line: string): void;
  close(): void;
}

/** Why an audit file could not be opened, with the setting and the fix. */
export class AuditOpenError extends Error {
  readonly code = 'NOISEMESH_AUDIT_OPEN';
}

/** How long a write to a full non-blocking pipe (stdout into a slow reader) is retried. */
const EAGAIN_RETRY_MS = 100;

class FdSink implements AuditSink {
  /** A previous write was cut short: the next line begins with a newline. */
  private torn = false;

  constructor(
    private fd: number,
    readonly description: string,
    private readonly owned: boolean,
  ) {}

  write(line: string): void {
    if (this.fd < 0) throw new AuditWriteError('EBADF');
    const bytes = Buffer.from(this.torn ? `\n${line}\n` : `${line}\n`, 'utf8');
    let offset = 0;
    let waitedSince = 0;
    while (offset < bytes.length) {
      try {
        offset += writeSync(this.fd, bytes, offset);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') {
          const now = performance.now();
          if (waitedSince === 0) waitedSince = now;
          if (now - waitedSince < EAGAIN_RETRY_MS) {
            Atomics.wait(SLEEP, 0, 0, 1);
            continue;
          }
        }
        if (offset > 0) this.torn = true;
        throw new AuditWriteError(code);
      }
    }
    this.torn = false;
  }

  close(): void {
    if (this.owned && this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

const SLEEP = new Int32Array(new SharedArrayBuffer(4));

/**
 * Opens `file` for appending (created 0600 if absent). Never blocks: opened O_NONBLOCK, and
 * anything but a regular file or a character device (a FIFO, a socket, a directory) is
 * refused; for a stream, use `{stdout: true}`. Throws AuditOpenError naming `setting`.
 */
export function openAuditFile(file: string, setting = 'gateway.audit.file'): AuditSink {
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK | constants.O_NOCTTY, 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const fix =
      code === 'ENOENT' ? 'create its directory, or fix the path'
      : code === 'EACCES' || code === 'EPERM' ? 'make it (or its directory) writable by the user noisemesh runs as'
      : code === 'ENXIO' ? 'it is a FIFO with no reader: point it at a regular file, or use gateway.audit.stdout: true'
      : code === 'EISDIR' ? 'it is a directory: name a file in it'
      : 'check the path';
    throw new AuditOpenError(`${setting}: ${file} cannot be opened for appending (${code ?? 'error'}): ${fix}`);
  }
  const stats = fstatSync(fd);
  if (!stats.isFile() && !stats.isCharacterDevice()) {
    closeSync(fd);
    throw new AuditOpenError(`${setting}: ${file} is not a regular file: point it at a regular file, or use gateway.audit.stdout: true`);
  }
  return new FdSink(fd, file, true);
}

/** Audit lines to the process's standard output (a container's log). */
export function stdoutAuditSink(): AuditSink {
  return new FdSink(1, 'stdout', false);
}
