/**
 * Request/response latency at a fixed rate, open loop: a request of `bytes` is sent every
 * 1/rate s whether or not earlier answers are back (a slow answer delays no later request,
 * so the tail is not hidden by coordinated omission), over one connection to a server that
 * echoes. A request's round trip ends when the last of its echoed bytes arrives.
 *   node latency-client.js <host> <port> <bytes> <rate> <seconds> <warmupMs>
 * Waits on timers and sockets, never spins: on a 2-core machine a busy-waiting client
 * (sockperf's pacing does) takes a core from the proxies it measures.
 * Prints one JSON line: {"sent", "rate", "samples"}: the round trips after the warm-up, µs.
 */
import { connect } from 'node:net';

const [host, portArg, bytesArg, rateArg, secondsArg, warmupArg] = process.argv.slice(2);
const [port, bytes, rate, seconds, warmupMs] = [portArg, bytesArg, rateArg, secondsArg, warmupArg].map(Number) as [number, number, number, number, number];
if (!host || ![port, bytes, rate, seconds, warmupMs].every((n) => Number.isFinite(n) && n > 0)) {
  console.error('usage: latency-client.js <host> <port> <bytes> <rate> <seconds> <warmupMs>');
  process.exit(2);
}
/** Answers still missing this long after the last request: the run fails. */
const DRAIN_TIMEOUT_MS = 10_000;

const total = Math.round(rate * seconds);
const skip = Math.round((rate * warmupMs) / 1000);
const request = Buffer.alloc(bytes, 0x61);
const sentAt = new Float64Array(total);
const rtts = new Float64Array(total);
let sent = 0;
let answered = 0;
let received = 0;
let startedAt = 0;

const socket = connect({ host, port, noDelay: true });
socket.on('error', (err) => fail(`socket error: ${err.message}`));
socket.on('close', () => {
  if (answered < total) fail(`connection closed after ${answered} of ${total} answers`);
});
socket.on('data', (chunk: Buffer) => {
  const now = performance.now();
  received += chunk.length;
  while (answered < sent && received >= (answered + 1) * bytes) {
    rtts[answered] = (now - sentAt[answered]!) * 1000;
    answered++;
  }
  if (answered === total) finish();
});
socket.once('connect', () => {
  startedAt = performance.now();
  // setInterval ticks about every millisecond; each tick sends every request now due, so
  // the rate holds even when a tick comes late.
  const ticker = setInterval(() => {
    const due = Math.min(total, Math.floor(((performance.now() - startedAt) * rate) / 1000) + 1);
    while (sent < due) {
      sentAt[sent] = performance.now();
      socket.write(request);
      sent++;
    }
    if (sent === total) {
      clearInterval(ticker);
      setTimeout(() => fail(`only ${answered} of ${total} answers within ${DRAIN_TIMEOUT_MS} ms`), DRAIN_TIMEOUT_MS).unref();
    }
  }, 1);
});

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

function finish(): void {
  // Microseconds to 0.1, in the order sent; the caller pools rounds and takes percentiles.
  const samples = Array.from(rtts.subarray(skip), (v) => Math.round(v * 10) / 10);
  const elapsed = (sentAt[total - 1]! - sentAt[0]!) / 1000;
  console.log(JSON.stringify({ sent, rate: Math.round((total - 1) / elapsed), samples }));
  socket.destroy();
  process.exit(0);
}
