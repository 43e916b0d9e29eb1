/**
 * New connections per second, each a full round: connect, send one byte, read one byte,
 * close, and only then the next, on `concurrency` workers at once.
 *   node conn-client.js <host> <port> <concurrency> <warmupMs> <measureMs>
 * Counts the rounds that complete inside the measured window (after the warm-up), and
 * prints one JSON line: {"completed", "failed", "seconds"}. A round fails on any socket
 * error, a missing byte, or 10 s without an answer.
 */
import { connect } from 'node:net';

const [host, portArg, concurrencyArg, warmupArg, measureArg] = process.argv.slice(2);
const port = Number(portArg);
const concurrency = Number(concurrencyArg);
const warmupMs = Number(warmupArg);
const measureMs = Number(measureArg);
if (!host || ![port, concurrency, warmupMs, measureMs].every((n) => Number.isInteger(n) && n > 0)) {
  console.error('usage: conn-client.js <host> <port> <concurrency> <warmupMs> <measureMs>');
  process.exit(2);
}
const ROUND_TIMEOUT_MS = 10_000;
const ONE = Buffer.from('x');

const startedAt = performance.now();
const measureFrom = startedAt + warmupMs;
const measureTo = measureFrom + measureMs;
let completed = 0;
let failed = 0;

function round(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, noDelay: true });
    let answered = false;
    let failedRound = false;
    const timer = setTimeout(() => {
      failedRound = true;
      socket.destroy();
    }, ROUND_TIMEOUT_MS);
    socket.once('connect', () => socket.write(ONE));
    socket.once('data', () => {
      answered = true;
      socket.end();
    });
    socket.on('error', () => (failedRound = true));
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(answered && !failedRound);
    });
  });
}

async function worker(): Promise<void> {
  // Bounded by the clock: each round ends within ROUND_TIMEOUT_MS.
  while (performance.now() < measureTo) {
    const ok = await round();
    const now = performance.now();
    if (now < measureFrom || now > measureTo) continue;
    if (ok) completed++;
    else failed++;
  }
}

await Promise.all(Array.from({ length: concurrency }, worker));
console.log(JSON.stringify({ completed, failed, seconds: measureMs / 1000 }));
