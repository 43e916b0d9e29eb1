/**
 * The gateway bench's load generator: HTTP/1.1 GETs on raw sockets, as wrk sends them, with
 * pipelining, so that one process can keep a gateway busy without becoming the bottleneck
 * (undici or node:http cost ~0.3 ms of CPU per request here, as much as the gateway). Requests
 * are prebuilt bytes; an answer is parsed only as far as its status line and Content-Length
 * (the gateway always sends one), and its body is checked to hold `expect`.
 *
 * Three ways to load, each for `ms` milliseconds, each answer's latency measured in ms:
 * - `closedLoop`: `connections` keep-alive connections (sessions), each with `depth` requests
 *   in flight (pipelined), a new one sent as each answer arrives: the ceiling;
 * - `openLoop`: requests at a fixed `rate`, spread round robin over `connections`, latency
 *   from each request's scheduled time (no coordinated omission): p99 at a given rate. At most
 *   MAX_OUTSTANDING requests are unanswered on one connection, the gateway's own limit (one
 *   more and it resets the connection): an arrival that finds every connection full is
 *   dropped and counted, as an open-model generator with a cap on requests in flight does
 *   (k6's dropped_iterations), never queued or pipelined without bound;
 * - `newConnectionEach`: `concurrency` loops, each request on a connection of its own
 *   (`Connection: close`): a Noise handshake per request through the mesh.
 *
 * Anything unexpected (another status, a body without `expect`, a malformed or over-long
 * answer, a reset) counts as an error and, for a keep-alive connection, fails the run: a
 * broken case must not look fast. Bounded: an answer's head at 16 KiB, its body at 1 MiB.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { DEFAULT_HTTP_LIMITS } from '../../src/secrets/index.js';

/** Requests one connection may have unanswered: the gateway's maxPipelined (src/secrets/gateway). */
export const MAX_OUTSTANDING = DEFAULT_HTTP_LIMITS.maxPipelined;

export interface LoadResult {
  readonly fetches: number;
  readonly errors: number;
  /** Arrivals not sent because every connection had MAX_OUTSTANDING unanswered (openLoop only). */
  readonly dropped: number;
  readonly seconds: number;
  /** Per-answer latencies, ms, sorted: from each request's scheduled time in the open loop, from its write otherwise. */
  readonly latencies: Float64Array;
  /**
   * Per-answer latencies from each request's write, ms, sorted: what k6's http_req_duration
   * measures. The same as `latencies` but in the open loop, where the difference is the
   * generator's own lag in sending what was due (its 1 ms tick, its event loop).
   */
  readonly sentLatencies: Float64Array;
}

/** `paths` are asked in turn, round robin (one path: every request the same). */
export interface LoadTarget {
  readonly port: number;
  readonly paths: readonly string[];
  /** A string every 200 answer's body holds. */
  readonly expect: string;
}

const MAX_HEAD = 16 * 1024;
const MAX_BODY = 1024 * 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n');

class Latencies {
  private values = new Float64Array(1 << 16);
  length = 0;
  push(v: number): void {
    if (this.length === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.length++] = v;
  }
  sorted(): Float64Array {
    return this.values.slice(0, this.length).sort();
  }
}

function requestBytes(target: LoadTarget, close: boolean): Buffer[] {
  return target.paths.map((p) => Buffer.from(`GET ${p} HTTP/1.1\r\nHost: gateway\r\n${close ? 'Connection: close\r\n' : ''}\r\n`, 'latin1'));
}

/**
 * One connection's answer parser: calls `onAnswer(ok)` per complete answer, in order;
 * `onFail(reason)` once on anything malformed.
 */
class AnswerParser {
  private buf: Buffer = Buffer.alloc(0);
  constructor(
    private readonly expect: Buffer,
    private readonly onAnswer: (ok: boolean) => void,
    private readonly onFail: (reason: string) => void,
  ) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      const end = this.buf.indexOf(CRLFCRLF);
      if (end < 0) {
        if (this.buf.length > MAX_HEAD) this.onFail('answer head over 16 KiB');
        return;
      }
      const head = this.buf.toString('latin1', 0, end);
      const status = /^HTTP\/1\.1 (\d{3}) /.exec(head);
      const length = /\r\ncontent-length: *(\d+)/i.exec(head);
      if (status === null || length === null || Number(length[1]) > MAX_BODY) {
        this.onFail('malformed answer');
        return;
      }
      const bodyEnd = end + 4 + Number(length[1]);
      if (this.buf.length < bodyEnd) return;
      const body = this.buf.subarray(end + 4, bodyEnd);
      this.buf = this.buf.subarray(bodyEnd);
      this.onAnswer(status[1] === '200' && body.indexOf(this.expect) >= 0);
    }
  }
}

function open(port: number): Socket {
  return connect({ host: '127.0.0.1', port, noDelay: true });
}

/** `connections` sessions, `depth` requests in flight on each, for `ms`. */
export function closedLoop(target: LoadTarget, connections: number, depth: number, ms: number): Promise<LoadResult> {
  const requests = requestBytes(target, false);
  const expect = Buffer.from(target.expect);
  const latencies = new Latencies();
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const until = started + ms;
  return new Promise((resolve, reject) => {
    let open_ = connections;
    const sockets: Socket[] = [];
    const done = (): void => {
      if (--open_ > 0) return;
      const sorted = latencies.sorted();
      resolve({ fetches: latencies.length, errors, dropped: 0, seconds: (performance.now() - started) / 1000, latencies: sorted, sentLatencies: sorted });
    };
    for (let c = 0; c < connections; c++) {
      const socket = open(target.port);
      sockets.push(socket);
      const sent: number[] = [];
      let ending = false;
      const send = (): void => {
        sent.push(performance.now());
        socket.write(requests[next++ % requests.length]!);
      };
      const parser = new AnswerParser(
        expect,
        (ok) => {
          const now = performance.now();
          latencies.push(now - sent.shift()!);
          if (!ok) errors++;
          if (now < until) send();
          else if (sent.length === 0 && !ending) {
            ending = true;
            socket.end();
            done();
          }
        },
        (reason) => {
          socket.destroy();
          reject(new Error(`gateway bench: ${reason}`));
        },
      );
      socket.on('data', (chunk: Buffer) => parser.push(chunk));
      socket.on('error', (err) => reject(new Error(`gateway bench: connection failed: ${err.message}`)));
      socket.on('close', () => {
        if (!ending) reject(new Error('gateway bench: the gateway closed a keep-alive connection'));
      });
      socket.once('connect', () => {
        for (let i = 0; i < depth; i++) send();
      });
    }
  });
}

/**
 * `rate` requests/s over `connections` sessions, for `ms`; latency from the scheduled time. At
 * most `maxOutstanding` unanswered per connection; an arrival finding all full is dropped.
 */
export function openLoop(target: LoadTarget, connections: number, rate: number, ms: number, maxOutstanding = MAX_OUTSTANDING): Promise<LoadResult> {
  const requests = requestBytes(target, false);
  const expect = Buffer.from(target.expect);
  const latencies = new Latencies();
  const sentLatencies = new Latencies();
  let errors = 0;
  let dropped = 0;
  const interval = 1000 / rate;
  const total = Math.floor((ms / 1000) * rate);
  return new Promise((resolve, reject) => {
    const conns = Array.from({ length: connections }, () => {
      const socket = open(target.port);
      const scheduled: number[] = [];
      const writtenAt: number[] = [];
      const parser = new AnswerParser(
        expect,
        (ok) => {
          const now = performance.now();
          latencies.push(now - scheduled.shift()!);
          sentLatencies.push(now - writtenAt.shift()!);
          if (!ok) errors++;
          if (latencies.length + dropped === total) finish();
        },
        (reason) => fail(new Error(`gateway bench: ${reason}`)),
      );
      socket.on('data', (chunk: Buffer) => parser.push(chunk));
      socket.on('error', (err) => fail(new Error(`gateway bench: connection failed: ${err.message}`)));
      return { socket, scheduled, writtenAt };
    });
    let sent = 0;
    let started = 0;
    let timer: NodeJS.Timeout | undefined;
    let over = false;
    const fail = (err: Error): void => {
      if (over) return;
      over = true;
      clearInterval(timer);
      for (const c of conns) c.socket.destroy();
      reject(err);
    };
    const finish = (): void => {
      if (over) return;
      over = true;
      clearInterval(timer);
      for (const c of conns) c.socket.end();
      resolve({ fetches: latencies.length, errors, dropped, seconds: (performance.now() - started) / 1000, latencies: latencies.sorted(), sentLatencies: sentLatencies.sorted() });
    };
    // A 1 ms tick sends every request whose time has come, each stamped with its own time, on
    // its connection in turn or the next one with room; with none, the arrival is dropped.
    const tick = (): void => {
      const now = performance.now();
      while (sent < total && started + sent * interval <= now) {
        let c: (typeof conns)[number] | undefined;
        for (let k = 0; k < connections && c === undefined; k++) {
          const candidate = conns[(sent + k) % connections]!;
          if (candidate.scheduled.length < maxOutstanding) c = candidate;
        }
        if (c === undefined) dropped++;
        else {
          c.scheduled.push(started + sent * interval);
          c.writtenAt.push(now);
          c.socket.write(requests[sent % requests.length]!);
        }
        sent++;
      }
      if (sent === total && latencies.length + dropped === total) finish();
      // Answers overdue by far: the gateway cannot keep this rate; the missing count as errors.
      else if (now > started + ms + 10_000) {
        errors += total - latencies.length - dropped;
        finish();
      }
    };
    let connected = 0;
    for (const c of conns) {
      c.socket.once('connect', () => {
        if (++connected < connections) return;
        started = performance.now();
        timer = setInterval(tick, 1);
      });
    }
  });
}

/** `concurrency` loops, each request on a new connection (a new session), for `ms`. */
export async function newConnectionEach(target: LoadTarget, concurrency: number, ms: number): Promise<LoadResult> {
  const requests = requestBytes(target, true);
  const expect = Buffer.from(target.expect);
  const latencies = new Latencies();
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const until = started + ms;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const socket = open(target.port);
      let answered = false;
      const parser = new AnswerParser(
        expect,
        (ok) => {
          answered = true;
          latencies.push(performance.now() - t0);
          if (!ok) errors++;
          socket.end();
        },
        () => socket.destroy(),
      );
      socket.on('data', (chunk: Buffer) => parser.push(chunk));
      socket.on('error', () => {});
      socket.on('close', () => {
        if (!answered) errors++;
        resolve();
      });
      socket.setTimeout(10_000, () => socket.destroy());
      socket.write(requests[next++ % requests.length]!);
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) await one();
    }),
  );
  const sorted = latencies.sorted();
  return { fetches: latencies.length, errors, dropped: 0, seconds: (performance.now() - started) / 1000, latencies: sorted, sentLatencies: sorted };
}
