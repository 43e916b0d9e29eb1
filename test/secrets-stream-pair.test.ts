// The gateway's stream pair (src/secrets/gateway/stream-pair.ts): what the server end writes in
// one turn reaches the session end as one chunk (one transport message), in order, before an
// end or a destroy; a reader that does not read holds the writer back (bounded); the session
// end's writes reach the server end as they are written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { GATHER_BYTES, streamPair } from '../src/secrets/gateway/stream-pair.js';

test('the server end\'s writes of one turn reach the session end as one chunk, at the end of the turn', async () => {
  const [session, server] = streamPair(1000);
  const chunks: string[] = [];
  session.on('data', (d: Buffer) => chunks.push(d.toString()));
  // As node:http writes the answers to pipelined requests: a few ticks apart.
  server.write('HTTP/1.1 200 OK\r\n\r\none');
  process.nextTick(() => {
    server.write('two');
    queueMicrotask(() => server.write('three'));
  });
  await new Promise<void>((resolve) => process.nextTick(() => process.nextTick(resolve)));
  assert.deepEqual(chunks, [], 'nothing before the end of the turn');
  await turn();
  await turn();
  assert.deepEqual(chunks, ['HTTP/1.1 200 OK\r\n\r\nonetwothree']);
  server.write('four');
  await turn();
  await turn();
  assert.deepEqual(chunks, ['HTTP/1.1 200 OK\r\n\r\nonetwothree', 'four'], 'the next turn, the next chunk');
  session.destroy();
});

test('the session end\'s writes reach the server end as written, within the turn', async () => {
  const [session, server] = streamPair(1000);
  const chunks: string[] = [];
  server.on('data', (d: Buffer) => chunks.push(d.toString()));
  session.write('GET / HTTP/1.1\r\n\r\n');
  session.write('GET /2 HTTP/1.1\r\n\r\n');
  await new Promise<void>((resolve) => process.nextTick(resolve));
  assert.deepEqual(chunks, ['GET / HTTP/1.1\r\n\r\n', 'GET /2 HTTP/1.1\r\n\r\n']);
  session.destroy();
});

test('an end right after a write: the bytes, then end-of-stream', async () => {
  const [session, server] = streamPair(1000);
  let text = '';
  const ended = new Promise<void>((resolve) => session.on('end', resolve));
  session.on('data', (d: Buffer) => (text += d.toString()));
  server.end('last words');
  await ended;
  assert.equal(text, 'last words');
  session.destroy();
});

test('a destroy right after a write (a 4xx): the bytes still reach the session, then end-of-stream', async () => {
  const [session, server] = streamPair(1000);
  let text = '';
  const ended = new Promise<void>((resolve) => session.on('end', resolve));
  session.on('data', (d: Buffer) => (text += d.toString()));
  server.write('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
  server.destroy();
  await ended;
  assert.equal(text, 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
  session.destroy();
});

test('a session end that is not read holds the server end back: its buffers stay bounded', async () => {
  const [session, server] = streamPair(1000);
  session.pause();
  const block = Buffer.alloc(1024, 0x61);
  let accepted = 0;
  for (let i = 0; i < 1000 && server.write(block); i++) accepted++;
  for (let i = 0; i < 20; i++) await turn();
  assert.ok(accepted < 64, `write() said stop after ${accepted} KiB`);
  // Everything written is in one of: the session's readable buffer, the gathered bytes, the server's writable buffer.
  const held = session.readableLength + server.writableLength;
  assert.ok(held <= 4 * GATHER_BYTES + 4 * 1024, `${held} bytes held`);
  let read = 0;
  session.on('data', (d: Buffer) => (read += d.length));
  session.resume();
  const drained = new Promise<void>((resolve) => server.once('drain', resolve));
  await drained;
  for (let i = 0; i < 5; i++) await turn();
  assert.equal(read, (accepted + 1) * 1024, 'every byte arrives once the reader reads');
  session.destroy();
});

test('a session end that is not read holds back small writes spread over turns too: no hand-over into a full reader', async () => {
  const [session, server] = streamPair(1000);
  session.pause();
  const block = Buffer.alloc(1024, 0x62);
  // Less than GATHER_BYTES a turn: each turn's hand-over alone is small, the reader's buffer is what fills.
  let accepted = 0;
  for (let i = 0; i < 2000; i++) {
    if (!server.write(block)) break;
    accepted++;
    await turn();
  }
  for (let i = 0; i < 20; i++) await turn();
  assert.ok(accepted < 64, `write() said stop after ${accepted} KiB`);
  const held = session.readableLength + server.writableLength;
  assert.ok(held <= 4 * GATHER_BYTES + 4 * 1024, `${held} bytes held`);
  let read = 0;
  session.on('data', (d: Buffer) => (read += d.length));
  session.resume();
  await new Promise<void>((resolve) => server.once('drain', resolve));
  for (let i = 0; i < 5; i++) await turn();
  assert.equal(read, (accepted + 1) * 1024, 'every byte arrives once the reader reads, in one piece each turn');
  server.end();
  await new Promise<void>((resolve) => session.once('end', resolve));
  assert.equal(read, (accepted + 1) * 1024);
  session.destroy();
});
