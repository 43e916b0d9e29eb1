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

/**
 * Called just before the batch is written, with nothing in between but the write and the
 * answers: the request's last look at the world (a revocation that landed between its
 * decision and the end of the turn). Returns the line to write instead (the request's answer
 * changed with it), or undefined to keep the line appended. A revise that throws fails its
 * request as an unwritten line.
 */
export type ReviseLine = () => string | undefined;

export interface GroupCommitOptions {
  readonly maxBatchChars?: number;
  /** Runs the write at the end of the turn; setImmediate unless a test says otherwise. */
  readonly schedule?: (write: () => void) => void;
}

export class AuditGroupCommit {
  #lines: string[] = [];
  #callbacks: CommitCallback[] = [];
  #revisers: (ReviseLine | undefined)[] = [];
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

  /**
   * Queues `line` (one JSON text, no newline); `done` is called once it is written, or not;
   * `revise`, if given, may replace the line just before the write.
   */
  append(line: string, done: CommitCallback, revise?: ReviseLine): void {
    this.#lines.push(line);
    this.#callbacks.push(done);
    this.#revisers.push(revise);
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

  /**
   * Writes what is queued now, and tells each request. Never throws: a sink that throws
   * (writeLines promises not to) fails the whole batch, every request is told.
   */
  flush(): void {
    if (this.#lines.length === 0) return;
    let lines = this.#lines;
    let callbacks = this.#callbacks;
    const revisers = this.#revisers;
    this.#lines = [];
    this.#callbacks = [];
    this.#revisers = [];
    this.#chars = 0;
    this.batches++;
    if (revisers.some((r) => r !== undefined)) {
      const kept: string[] = [];
      const told: CommitCallback[] = [];
      for (let i = 0; i < lines.length; i++) {
        let line = lines[i]!;
        try {
          line = revisers[i]?.() ?? line;
        } catch {
          callbacks[i]!(new AuditWriteError('EREVISE'));
          continue;
        }
        kept.push(line);
        told.push(callbacks[i]!);
      }
      lines = kept;
      callbacks = told;
    }
    let result;
    try {
      result = this.sink.writeLines(lines);
    } catch (err) {
      result = { written: 0, error: new AuditWriteError((err as NodeJS.ErrnoException).code) };
    }
    const { written, error } = result;
    for (let i = 0; i < callbacks.length; i++) callbacks[i]!(i < written ? null : (error ?? new AuditWriteError(undefined)));
  }
}
