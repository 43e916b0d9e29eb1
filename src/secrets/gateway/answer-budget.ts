/**
 * The bytes of answers the gateway holds for its callers: built (by node:http, into its
 * outgoing queue or the connection's write buffer, or into a stream pair for a mesh session)
 * and not yet taken by the transport (the kernel for a socket, the session for a stream
 * pair). node:http parses every pipelined request of a chunk it reads and the gateway answers
 * each, so without this a caller that sends requests and never reads made the gateway hold
 * one answer per request, the size of the secret each.
 *
 * Each request takes a ticket, in the order its connection sent it. A request waits, before
 * it is decided and again once its answer's size is known (before its audit line), until:
 * - its connection holds at most `maxHeldBytesPerConnection` with its answer added, or it is
 *   the head of its connection and the caller has taken every answer before it (its answer
 *   is the next to leave, so a connection always progresses, whatever the size of one
 *   answer; answers reserved behind it wait for it and do not count);
 * - all connections hold at most `maxHeldBytes` with its answer added, or nothing else is
 *   held (but for those answers behind a head).
 * So a connection holds at most its limit plus one answer, and all of them the global limit
 * plus one connection's. A connection that holds answers over its limit, or while another
 * request waits for global room, and whose caller takes none of them for `stallMs`, is
 * reset (onStall).
 */

export interface AnswerLimits {
  /** Bytes of answers one connection may hold before its next request waits. */
  readonly maxHeldBytesPerConnection: number;
  /** Bytes of answers all connections together may hold before any request waits. */
  readonly maxHeldBytes: number;
  /** A connection that holds answers over a limit and takes none for this long is reset. */
  readonly stallMs: number;
}

/** One connection's answers. */
export class ConnectionAnswers {
  /** Bytes reserved for answers not yet taken. */
  held = 0;
  /** Of those, the bytes of answers not yet written (behind the head, or the head's own). */
  heldUnwritten = 0;
  /** Tickets given out: the next request's sequence number. */
  issued = 0;
  /** The lowest sequence number whose answer is not yet written. */
  firstUnwritten = 0;
  /** Written answers after firstUnwritten (out of order). */
  readonly writtenAhead = new Set<number>();
  /** When the caller last took an answer, or the connection began holding. */
  lastProgress = 0;
  closed = false;
}

/** A request's place on its connection, and the bytes reserved for its answer. */
export interface Ticket {
  readonly conn: ConnectionAnswers;
  readonly seq: number;
  bytes: number;
  written: boolean;
}

interface Waiter {
  readonly ticket: Ticket;
  readonly size: number;
  readonly resume: (admitted: boolean) => void;
}

export class AnswerBudget {
  /** Bytes held across connections. */
  held = 0;
  /** Waiting requests, oldest first. */
  private waiters: Waiter[] = [];
  /** Connections that hold answers. */
  private readonly holding = new Set<ConnectionAnswers>();
  private sweep: NodeJS.Timeout | null = null;

  constructor(
    private readonly limits: AnswerLimits,
    private readonly onStall: (conn: ConnectionAnswers) => void,
    private readonly now: () => number = () => performance.now(),
  ) {}

  ticket(conn: ConnectionAnswers): Ticket {
    return { conn, seq: conn.issued++, bytes: 0, written: false };
  }

  /**
   * Reserves `size` bytes for the ticket's answer (0: only waits for room, before a decision).
   * True at once when it fits, else a promise: true once it fits, false if the connection
   * closed meanwhile.
   */
  reserve(t: Ticket, size: number): true | Promise<boolean> {
    if (this.fits(t, size)) {
      this.take(t, size);
      return true;
    }
    return new Promise<boolean>((resume) => this.waiters.push({ ticket: t, size, resume }));
  }

  /** Holds `size` more bytes for the ticket's answer without waiting (a small answer, or a request decided again after it waited). */
  charge(t: Ticket, size: number): void {
    if (!t.conn.closed) this.take(t, size);
  }

  /** The ticket's answer is written (node:http has all of it): the next one is its connection's head. */
  written(t: Ticket): void {
    const c = t.conn;
    t.written = true;
    c.heldUnwritten -= t.bytes;
    if (t.seq === c.firstUnwritten) {
      c.firstUnwritten++;
      while (c.writtenAhead.delete(c.firstUnwritten)) c.firstUnwritten++;
      this.admit();
    } else {
      c.writtenAhead.add(t.seq);
    }
  }

  /** The transport took the ticket's answer. */
  taken(t: Ticket): void {
    if (t.bytes === 0 || t.conn.closed) return;
    this.release(t.conn, t.bytes);
    t.conn.lastProgress = this.now();
    t.bytes = 0;
    this.admit();
  }

  /** The connection is gone: what it held is freed, its waiting requests told. */
  closed(c: ConnectionAnswers): void {
    if (c.closed) return;
    c.closed = true;
    c.heldUnwritten = 0;
    this.release(c, c.held);
    this.admit();
  }

  /** Stops the stall sweep. */
  stop(): void {
    if (this.sweep !== null) clearInterval(this.sweep);
    this.sweep = null;
  }

  private fits(t: Ticket, size: number): boolean {
    const c = t.conn;
    // The head, once the caller has taken every answer before it.
    const head = t.seq === c.firstUnwritten && c.held === c.heldUnwritten;
    if (!head && c.held + size > this.limits.maxHeldBytesPerConnection) return false;
    const others = head ? this.held - c.heldUnwritten : this.held;
    return others === 0 || this.held + size <= this.limits.maxHeldBytes;
  }

  private take(t: Ticket, size: number): void {
    if (size <= 0) return;
    const c = t.conn;
    if (c.held === 0) {
      c.lastProgress = this.now();
      this.holding.add(c);
      this.sweep ??= setInterval(() => this.stalls(), Math.max(10, Math.min(1000, this.limits.stallMs / 4))).unref();
    }
    c.held += size;
    if (!t.written) c.heldUnwritten += size;
    this.held += size;
    t.bytes += size;
  }

  private release(c: ConnectionAnswers, bytes: number): void {
    c.held -= bytes;
    this.held -= bytes;
    if (c.held === 0) {
      this.holding.delete(c);
      if (this.holding.size === 0) this.stop();
    }
  }

  /** Lets every waiting request that now fits go on, oldest first. */
  private admit(): void {
    if (this.waiters.length === 0) return;
    const still: Waiter[] = [];
    const waiters = this.waiters;
    this.waiters = still;
    for (const w of waiters) {
      if (w.ticket.conn.closed) w.resume(false);
      else if (this.fits(w.ticket, w.size)) {
        this.take(w.ticket, w.size);
        w.resume(true);
      } else still.push(w);
    }
  }

  /** Resets the connections that have held answers over a limit for stallMs without the caller taking one. */
  private stalls(): void {
    const now = this.now();
    // Connections whose requests wait for global room are waiting on the others, not stalling them.
    const waitingGlobally = new Set<ConnectionAnswers>();
    for (const w of this.waiters) {
      const c = w.ticket.conn;
      const head = w.ticket.seq === c.firstUnwritten && c.held === c.heldUnwritten;
      if (head || c.held + w.size <= this.limits.maxHeldBytesPerConnection) waitingGlobally.add(c);
    }
    for (const c of [...this.holding]) {
      if (now - c.lastProgress < this.limits.stallMs) continue;
      const over = c.held > this.limits.maxHeldBytesPerConnection || (waitingGlobally.size > 0 && !waitingGlobally.has(c));
      if (over) this.onStall(c);
    }
  }
}
