/**
 * Group commit of audit lines, as databases commit their log: the lines of the requests
 * decided in one event-loop turn are written together, in one write(2) (AuditSink.writeLines),
 * at the end of that turn (setImmediate: after the I/O callbacks that decided them, before the
 * loop waits again), and only then is each request told whether its line is in the sink.
 * The guarantee is the one of a write per line: no answer leaves before its line is written;
 * a line that could not be written fails its own request (the gateway answers 503 and
 * releases nothing); the lines before it in the batch were written and their requests go on.
 * Requests wait for nothing but the end of their turn: no timer, no batch size to fill.
 *
 * Bounded: a batch holds what one turn decided, and is written at once when it passes
 * `maxBatchChars` characters (a lower bound of its UTF-8 bytes): a turn that decides
 * many requests writes several batches, never a buffer of unbounded size.
 */
import { AuditWriteError, type AuditSink } from './audit.js';

/** A batch is written at once beyond this many characters: 256 KiB, some 500 audit lines. */
export const MAX_BATCH_CHARS = 256 * 1024;

/** Told once whether the line is in the sink: null, or why it is not. Must not throw. */
export type CommitCallback = (error: AuditWriteError | null) => void;

export interface GroupCommitOptions {
  readonly maxBatchChars?: number;
  /** Runs the write at the end of the turn; setImmediate unless a test says otherwise. */
  readonly schedule?: (write: () => void) => void;
}

export class AuditGroupCommit {
  #lines: string[] = [];
  #callbacks: CommitCallback[] = [];
  #chars = 0;
  #scheduled = false;
  readonly #maxChars: number;
  readonly #schedule: (write: () => void) => void;
  /** Batches written (one write(2) each, retries of a short write aside), for tests and stats. */
  batches = 0;

  constructor(
    private readonly sink: AuditSink,
    options: GroupCommitOptions = {},
  ) {
    this.#maxChars = options.maxBatchChars ?? MAX_BATCH_CHARS;
    this.#schedule = options.schedule ?? setImmediate;
  }

  /** Lines waiting for the end of this turn. */
  get pending(): number {
    return this.#lines.length;
  }

  /** Queues `line` (one JSON text, no newline); `done` is called once it is written, or not. */
  append(line: string, done: CommitCallback): void {
    this.#lines.push(line);
    this.#callbacks.push(done);
    this.#chars += line.length + 1;
    if (this.#chars >= this.#maxChars) {
      this.flush();
      return;
    }
    if (!this.#scheduled) {
      this.#scheduled = true;
      this.#schedule(() => {
        this.#scheduled = false;
        this.flush();
      });
    }
  }

  /** Writes what is queued now, and tells each request. */
  flush(): void {
    if (this.#lines.length === 0) return;
    const lines = this.#lines;
    const callbacks = this.#callbacks;
    this.#lines = [];
    this.#callbacks = [];
    this.#chars = 0;
    this.batches++;
    const { written, error } = this.sink.writeLines(lines);
    for (let i = 0; i < callbacks.length; i++) callbacks[i]!(i < written ? null : (error ?? new AuditWriteError(undefined)));
  }
}
