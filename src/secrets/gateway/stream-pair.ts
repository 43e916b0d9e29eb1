/**
 * Two connected in-memory streams, as a socketpair is two connected sockets: what one end
 * writes the other reads. The gateway hands one end to a mesh session (which writes the
 * caller's decrypted bytes into it) and the other to its HTTP server, as
 * `server.emit('connection', end)`. Node 20 has no `stream.duplexPair` (22.6 added one).
 *
 * Bounded: a write completes only once the other end's reader has room (its readable
 * highWaterMark), so each direction holds at most about two highWaterMarks, 32 KiB by
 * default, and a writer that outpaces its reader sees `write()` return false.
 *
 * Ends behave as a TCP connection's do: `end()` on one side is end-of-stream on the other
 * (half-close); `destroy()` on one side is a reset for the other, which is destroyed too,
 * except in one case: the server end destroyed right after writing a response (node:http
 * does that for a 4xx on a malformed request), whose bytes must still reach the session
 * before it ends. There the session end is ended instead, and destroyed if the session has
 * not finished with it within `lingerMs`, as the kernel bounds an orphaned connection.
 * Neither end ever emits 'error': a reset is a destroy without one, seen as 'close'.
 *
 * What the server end writes in one event-loop turn reaches the session as one chunk, at the
 * end of the turn (setImmediate), so the session seals it into one transport message and one
 * write(2): the answers to a burst of pipelined requests (node:http releases them one after
 * another, a few ticks apart) travel together, where each would otherwise cost a message and
 * a system call of its own. A write completes at once while less than GATHER_BYTES are
 * gathered and the session end's reader has room; beyond GATHER_BYTES it waits for the
 * hand-over, and once a hand-over found the reader full, nothing more is handed over and no
 * write completes until the reader wants more, so the bound above holds however the writes
 * are spread over turns (a caller that never reads stops the API reading its requests).
 */
import { Duplex } from 'node:stream';

/** How long the session end of a pair outlives its server end, at most. */
export const PAIR_LINGER_MS = 10_000;

/** Bytes the server end gathers for the session end before its writes wait (a readable highWaterMark). */
export const GATHER_BYTES = 16 * 1024;

export class PairEnd extends Duplex {
  /** The other end; set once by `streamPair`. */
  other!: PairEnd;
  /** The callback of our last write, held until the other end's reader wants more. */
  private blocked: (() => void) | null = null;
  /** This end's reader saw end-of-stream (or will, once what is buffered is read). */
  private readEnded = false;
  /** What the other end writes now goes nowhere: it was torn down or ended by us. */
  private sinkOnly = false;
  private idleTimer: NodeJS.Timeout | null = null;
  private idleMs = 0;
  /** Server end: what this turn wrote, for the session end; its byte count; the write that waits for the hand-over. */
  private gathered: Buffer[] = [];
  private gatheredBytes = 0;
  private gatherWaiting: (() => void) | null = null;
  private gatherScheduled = false;
  /** Server end: the session end's reader was full at the last hand-over; nothing more goes until it reads. */
  private otherFull = false;
  /** Server end: the write whose hand-over found the reader full, completed when it reads. */
  private heldWrite: (() => void) | null = null;
  /** Bytes given to write(), whether or not they went on yet. */
  accepted = 0;
  /** Bytes pushed to this end's reader; what it has not read of them is readableLength. */
  private pushed = 0;
  /** `taken` when this end was destroyed: what its buffer held then was dropped. */
  private takenAtDestroy = -1;

  constructor(private readonly lingerMs: number) {
    super({ allowHalfOpen: true, decodeStrings: true, emitClose: true, autoDestroy: true });
  }

  override write(chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    this.accepted += typeof chunk === 'string' ? Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8') : (chunk as Uint8Array).byteLength;
    return super.write(chunk, encoding as BufferEncoding, callback as (error: Error | null | undefined) => void);
  }

  /**
   * Bytes this end's reader took (read, or had as 'data'); after a destroy, those it took
   * before it. With `accepted` of the other end, what of the other end's writes the reader
   * has had: the gateway's measure of an answer a mesh session has taken.
   */
  get taken(): number {
    return this.takenAtDestroy >= 0 ? this.takenAtDestroy : this.pushed - this.readableLength;
  }

  /** Pushes `chunk` to this end's reader; push()'s answer. */
  private give(chunk: Buffer): boolean {
    this.pushed += chunk.length;
    return this.push(chunk);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.idleTimer?.refresh();
    const other = this.other;
    if (this.sinkOnly || other.readEnded || other.destroyed) {
      callback();
      return;
    }
    other.idleTimer?.refresh();
    if (this.isServer) {
      this.gathered.push(chunk);
      this.gatheredBytes += chunk.length;
      if (!this.gatherScheduled && !this.otherFull) {
        this.gatherScheduled = true;
        setImmediate(() => this.handOver());
      }
      if (this.gatheredBytes < GATHER_BYTES && !this.otherFull) callback();
      else this.gatherWaiting = callback;
      return;
    }
    if (other.give(chunk)) callback();
    else other.blocked = callback;
  }

  /**
   * Server end: gives the session end what was gathered, as one chunk. While the session end's
   * reader is full it waits for the reader (drained()), unless `force` (an end or a destroy:
   * the last bytes go before end-of-stream).
   */
  private handOver(force = false): void {
    this.gatherScheduled = false;
    if (this.otherFull && !force) return;
    const chunks = this.gathered;
    const waiting = this.gatherWaiting;
    this.gathered = [];
    this.gatheredBytes = 0;
    this.gatherWaiting = null;
    const other = this.other;
    if (chunks.length > 0 && !(this.sinkOnly || other.readEnded || other.destroyed)) {
      if (!other.give(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks))) {
        // The reader is full: the next writes wait for it, whatever their size.
        this.otherFull = true;
        this.heldWrite = waiting;
        other.blocked = () => this.drained();
        return;
      }
    }
    waiting?.();
  }

  /** Server end: the session end's reader wants more; what waited goes on. */
  private drained(): void {
    this.otherFull = false;
    const held = this.heldWrite;
    this.heldWrite = null;
    if (this.gathered.length > 0) this.handOver();
    held?.();
  }

  override _read(): void {
    const wake = this.blocked;
    if (wake !== null) {
      this.blocked = null;
      wake();
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    // What was gathered goes before the end-of-stream.
    if (this.gathered.length > 0) this.handOver(true);
    this.other.endReading();
    callback();
  }

  override _destroy(_error: Error | null, callback: (error?: Error | null) => void): void {
    this.takenAtDestroy = this.pushed - this.readableLength;
    this.clearIdle();
    // A response written just before the destroy (a 4xx) still reaches the session.
    if (this.gathered.length > 0) this.handOver(true);
    const other = this.other;
    const wake = other.blocked;
    other.blocked = null;
    if (!other.destroyed) {
      if (this.isServer) {
        // The server is done with the connection, perhaps right after writing a response
        // (a 4xx): let the session read it, then end-of-stream. Whatever the caller still
        // sends goes nowhere; if it never ends its side, the linger ends the session.
        other.sinkOnly = true;
        other.endReading();
        if (!other.writableFinished) setTimeout(() => other.destroy(), other.lingerMs).unref();
      } else {
        other.destroy();
      }
    }
    wake?.();
    // Never an 'error' event: the owner of each end treats a destroy as the reset.
    callback(null);
  }

  /**
   * A reset both ways, without the linger of a server end's destroy: the server refuses its
   * caller (gateway.ts: too many requests pipelined), and nothing it wrote is delivered.
   */
  reset(): void {
    this.gathered = [];
    this.gatheredBytes = 0;
    this.other.destroy();
    this.destroy();
  }

  /** Set on the end given to the HTTP server (see the header: the linger case). */
  isServer = false;

  /**
   * node:http arms the keep-alive and request timeouts through `socket.setTimeout`: emits
   * 'timeout' after `ms` without a byte either way; 0 disarms. One timer per end, refreshed.
   */
  setTimeout(ms: number, onTimeout?: () => void): this {
    if (onTimeout !== undefined) this.once('timeout', onTimeout);
    this.idleMs = ms;
    if (ms <= 0 || this.destroyed) {
      this.clearIdle();
      return this;
    }
    if (this.idleTimer === null) {
      this.idleTimer = setTimeout(() => {
        this.idleTimer = null;
        if (this.idleMs > 0 && !this.destroyed) this.emit('timeout');
      }, ms);
      this.idleTimer.unref();
    } else {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
      this.setTimeout(ms);
    }
    return this;
  }

  /** What node:http and its callers may ask of a socket; no-ops here. */
  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  private endReading(): void {
    if (this.readEnded) return;
    this.readEnded = true;
    this.push(null);
  }

  private clearIdle(): void {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }
}

/** `[session, server]`: write the caller's bytes into `session`, serve `server`. */
export function streamPair(lingerMs = PAIR_LINGER_MS): [PairEnd, PairEnd] {
  const a = new PairEnd(lingerMs);
  const b = new PairEnd(lingerMs);
  a.other = b;
  b.other = a;
  b.isServer = true;
  return [a, b];
}
