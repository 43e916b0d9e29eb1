/**
 * A small HTTP/1.1 client on raw sockets for the load generator, as wrk has one: requests
 * are prebuilt bytes, answers are parsed only as far as the status, the headers that frame
 * the body (Content-Length, chunked, Connection: close) and the body's length. On this
 * 2-core machine node:http's client took ~0.35 ms of CPU per request, a third of a core at
 * 1,000 requests/s, taken from the proxies under measurement; this one takes a fraction of it.
 *
 * One request at a time per connection (no pipelining). Keep-alive connections are reused
 * most recently used first, at most `maxConnections` of them; a request that finds none free
 * waits its turn in FIFO order (its wait counts in its latency, measured by the caller from
 * its scheduled time). With `newConnectionPerRequest` every request opens a connection, says
 * `Connection: close`, and the connection ends with its answer.
 *
 * Everything from the target is bounded: headers at 16 KiB, a body at 64 MiB, a request at
 * timeoutMs; anything malformed fails that request (outcome `other`) and closes its connection.
 */
import { connect, type Socket } from 'node:net';

/** What became of a request. Closed set; `ok` is the only success. */
export const OUTCOMES = ['ok', 'dropped', 'status', 'body', 'reset', 'refused', 'timeout', 'other'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export interface Target {
  readonly host: string;
  readonly port: number;
}

/** One request: what to ask, and what answer counts as success. */
export interface RequestPlan {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly expectStatus: number;
  /** Required body length of the answer; null: any. */
  readonly bodyBytes: number | null;
}

const MAX_HEADER_BYTES = 16 * 1024;
const MAX_BODY_BYTES = 64 * 1024 * 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n');

/** What became of a request, and when (performance.now(), ms). */
export interface RequestResult {
  readonly outcome: Outcome;
  /** When it was written to a connection; NaN if it never was (it timed out waiting for one). */
  readonly sentAt: number;
  readonly endedAt: number;
}

interface Pending {
  readonly bytes: Buffer;
  readonly plan: RequestPlan;
  readonly resolve: (r: RequestResult) => void;
  timer: NodeJS.Timeout | null;
  conn: Connection | null;
  sentAt: number;
}

/** Response parsing state of one connection. */
class Connection {
  readonly socket: Socket;
  current: Pending | null = null;
  #head: Buffer[] = [];
  #headBytes = 0;
  #inBody = false;
  #status = 0;
  #remaining = 0;
  #chunked = false;
  /** Chunked: bytes of the size line(s) and trailers not yet complete. */
  #chunkLine = '';
  #chunkState: 'size' | 'data' | 'crlf' | 'trailer' = 'size';
  #bodyBytes = 0;
  #closeAfter = false;
  #errorCode: string | undefined;

  constructor(
    readonly pool: Http1Pool,
    target: Target,
  ) {
    this.socket = connect({ host: target.host, port: target.port, noDelay: true });
    this.socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.socket.on('error', (err: NodeJS.ErrnoException) => (this.#errorCode = err.code));
    this.socket.on('close', () => this.pool.closed(this, this.#errorCode));
  }

  send(p: Pending): void {
    this.current = p;
    p.conn = this;
    this.#head = [];
    this.#headBytes = 0;
    this.#inBody = false;
    this.#bodyBytes = 0;
    this.#chunked = false;
    this.#chunkState = 'size';
    this.#chunkLine = '';
    this.#closeAfter = this.pool.newConnectionPerRequest;
    p.sentAt = performance.now();
    this.socket.write(p.bytes);
  }

  #fail(outcome: Outcome): void {
    const p = this.current;
    this.current = null;
    this.socket.destroy();
    if (p) this.pool.settle(p, outcome);
  }

  #onData(chunk: Buffer): void {
    if (this.current === null) return this.#fail('other');
    let data = chunk;
    if (!this.#inBody) {
      this.#head.push(data);
      this.#headBytes += data.length;
      const head = this.#head.length === 1 ? this.#head[0]! : Buffer.concat(this.#head, this.#headBytes);
      const end = head.indexOf(CRLFCRLF);
      if (end < 0) {
        if (this.#headBytes > MAX_HEADER_BYTES) this.#fail('other');
        else this.#head = [head];
        return;
      }
      if (!this.#parseHead(head.toString('latin1', 0, end))) return this.#fail('other');
      this.#inBody = true;
      data = head.subarray(end + 4);
    }
    if (this.#chunked ? !this.#chunkedBody(data) : !this.#plainBody(data)) return;
  }

  /** Status line and the framing headers; false if malformed. */
  #parseHead(head: string): boolean {
    const lines = head.split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0]!);
    if (status === null) return false;
    this.#status = Number(status[1]);
    let length: number | null = null;
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i]!.indexOf(':');
      if (colon <= 0) return false;
      const name = lines[i]!.slice(0, colon).trim().toLowerCase();
      const value = lines[i]!.slice(colon + 1).trim().toLowerCase();
      if (name === 'content-length') {
        if (!/^\d{1,9}$/.test(value) || (length !== null && length !== Number(value))) return false;
        length = Number(value);
      } else if (name === 'transfer-encoding') {
        if (value !== 'chunked') return false;
        this.#chunked = true;
      } else if (name === 'connection' && value === 'close') {
        this.#closeAfter = true;
      }
    }
    if (this.#chunked) return length === null;
    // Neither: only a body-less answer can be framed (we never read to close).
    this.#remaining = length ?? 0;
    return this.#remaining <= MAX_BODY_BYTES;
  }

  #plainBody(data: Buffer): boolean {
    if (data.length > this.#remaining) {
      // Bytes past the answer: nothing was asked for them.
      this.#fail('other');
      return false;
    }
    this.#remaining -= data.length;
    this.#bodyBytes += data.length;
    if (this.#remaining === 0) this.#complete();
    return true;
  }

  #chunkedBody(data: Buffer): boolean {
    let at = 0;
    // Bounded: each pass consumes at least one byte or completes the answer.
    while (at < data.length) {
      if (this.#chunkState === 'data') {
        const take = Math.min(this.#remaining, data.length - at);
        at += take;
        this.#remaining -= take;
        this.#bodyBytes += take;
        if (this.#remaining === 0) this.#chunkState = 'crlf';
        continue;
      }
      const nl = data.indexOf(0x0a, at);
      const piece = data.toString('latin1', at, nl < 0 ? data.length : nl + 1);
      at = nl < 0 ? data.length : nl + 1;
      this.#chunkLine += piece;
      if (this.#chunkLine.length > 1024 || this.#bodyBytes > MAX_BODY_BYTES) {
        this.#fail('other');
        return false;
      }
      if (nl < 0) continue;
      const line = this.#chunkLine.replace(/\r?\n$/, '');
      this.#chunkLine = '';
      if (this.#chunkState === 'crlf') {
        if (line !== '') {
          this.#fail('other');
          return false;
        }
        this.#chunkState = 'size';
      } else if (this.#chunkState === 'size') {
        const size = /^([0-9a-fA-F]{1,7})(;.*)?$/.exec(line);
        if (size === null) {
          this.#fail('other');
          return false;
        }
        this.#remaining = parseInt(size[1]!, 16);
        this.#chunkState = this.#remaining === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        if (at !== data.length) {
          this.#fail('other');
          return false;
        }
        this.#complete();
        return true;
      }
    }
    return true;
  }

  #complete(): void {
    const p = this.current!;
    this.current = null;
    const ok = this.#status === p.plan.expectStatus;
    const outcome: Outcome = !ok ? 'status' : p.plan.bodyBytes !== null && this.#bodyBytes !== p.plan.bodyBytes ? 'body' : 'ok';
    if (this.#closeAfter) this.socket.destroy();
    this.pool.settle(p, outcome);
    if (!this.#closeAfter) this.pool.idle(this);
  }
}

export interface PoolOptions {
  readonly target: Target;
  /** Keep-alive connections at most (ignored with newConnectionPerRequest). */
  readonly maxConnections: number;
  readonly newConnectionPerRequest: boolean;
  readonly timeoutMs: number;
  /** POST body. */
  readonly body: Buffer;
}

export class Http1Pool {
  readonly newConnectionPerRequest: boolean;
  readonly #o: PoolOptions;
  readonly #idle: Connection[] = [];
  readonly #all = new Set<Connection>();
  readonly #waiting: Pending[] = [];
  #waitingHead = 0;
  readonly #requests = new Map<string, Buffer>();

  constructor(o: PoolOptions) {
    this.#o = o;
    this.newConnectionPerRequest = o.newConnectionPerRequest;
  }

  /** Sends one request; resolves (never rejects) with its outcome, when it was sent and when it ended. */
  request(plan: RequestPlan): Promise<RequestResult> {
    return new Promise((resolve) => {
      const p: Pending = { bytes: this.#bytesFor(plan), plan, resolve, timer: null, conn: null, sentAt: Number.NaN };
      p.timer = setTimeout(() => this.#timeout(p), this.#o.timeoutMs);
      const conn = this.#idle.pop();
      if (conn !== undefined) conn.send(p);
      else if (this.newConnectionPerRequest || this.#all.size < this.#o.maxConnections) this.#open().send(p);
      else this.#waiting.push(p);
    });
  }

  /** Ends every connection. */
  close(): void {
    for (const c of this.#all) c.socket.destroy();
  }

  #bytesFor(plan: RequestPlan): Buffer {
    const key = `${plan.method} ${plan.path}`;
    let bytes = this.#requests.get(key);
    if (bytes === undefined) {
      const body = plan.method === 'POST' ? this.#o.body : Buffer.alloc(0);
      const head =
        `${plan.method} ${plan.path} HTTP/1.1\r\nHost: ${this.#o.target.host}:${this.#o.target.port}\r\n` +
        (plan.method === 'POST' ? `Content-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n` : '') +
        (this.newConnectionPerRequest ? 'Connection: close\r\n' : '') +
        '\r\n';
      bytes = Buffer.concat([Buffer.from(head, 'latin1'), body]);
      this.#requests.set(key, bytes);
    }
    return bytes;
  }

  #open(): Connection {
    const c = new Connection(this, this.#o.target);
    this.#all.add(c);
    return c;
  }

  #timeout(p: Pending): void {
    p.timer = null;
    if (p.conn !== null) {
      p.conn.current = null;
      p.conn.socket.destroy();
    } else {
      const i = this.#waiting.indexOf(p, this.#waitingHead);
      if (i >= 0) this.#waiting.splice(i, 1);
    }
    this.settle(p, 'timeout');
  }

  /** @internal */
  settle(p: Pending, outcome: Outcome): void {
    if (p.timer !== null) clearTimeout(p.timer);
    p.timer = null;
    p.resolve({ outcome, sentAt: p.sentAt, endedAt: performance.now() });
  }

  /** @internal A connection is free again: the next waiting request takes it. */
  idle(c: Connection): void {
    const next = this.#nextWaiting();
    if (next !== undefined) c.send(next);
    else this.#idle.push(c);
  }

  /** @internal A connection closed: its request, if any, failed; a waiting one may open another. */
  closed(c: Connection, errorCode: string | undefined): void {
    this.#all.delete(c);
    const i = this.#idle.indexOf(c);
    if (i >= 0) this.#idle.splice(i, 1);
    const p = c.current;
    c.current = null;
    if (p !== null) this.settle(p, errorCode === 'ECONNREFUSED' ? 'refused' : errorCode === undefined || errorCode === 'ECONNRESET' || errorCode === 'EPIPE' ? 'reset' : 'other');
    const next = this.#nextWaiting();
    if (next !== undefined) this.#open().send(next);
  }

  #nextWaiting(): Pending | undefined {
    if (this.#waitingHead >= this.#waiting.length) return undefined;
    const p = this.#waiting[this.#waitingHead++]!;
    if (this.#waitingHead > 1024 && this.#waitingHead * 2 > this.#waiting.length) {
      this.#waiting.splice(0, this.#waitingHead);
      this.#waitingHead = 0;
    }
    return p;
  }
}
