// What one caller, or many, can make the gateway hold, end to end on loopback (real client
// proxies, the real gateway proxy and API, the file backend, a file audit sink): the bytes of
// answers a caller does not read (per connection and across connections, with a reset for a
// caller that takes none), the audit of answers that never left (delivered: false), requests
// past the pipelining cap decided not at all, the loopback listener's connection cap, and the
// refusals node:http used to answer itself (CONNECT, no Host, a malformed request).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { dial, readAll } from './helpers/mesh.js';
import { startGatewayFixture, type GatewayFixture } from './helpers/gateway.js';
import { DEFAULT_HTTP_LIMITS, type HttpLimits } from '../src/secrets/index.js';
import { descriptorBudget } from '../src/proxy/index.js';

const POLICY = `rules:
  - id: payments
    paths: ["payments/**"]
    agents: ["payments/*"]
    require: {clearance: secrets-only}
`;
const MB = 1024 * 1024;
const BIG = 4 * MB;
const SECRETS = `payments/big: {v: "${'x'.repeat(BIG)}"}\npayments/small: {v: "SECRET-VALUE-small"}\n`;
const GET_BIG = 'GET /v1/secrets/payments/big HTTP/1.1\r\nHost: g\r\n\r\n';
const GET_SMALL = 'GET /v1/secrets/payments/small HTTP/1.1\r\nHost: g\r\n\r\n';

function start(http: Partial<HttpLimits>): Promise<GatewayFixture> {
  return startGatewayFixture({ policy: POLICY, secrets: SECRETS, callers: [{ agentId: 'payments/api' }], logLevel: 'warn', http });
}

function audit(f: GatewayFixture): any[] {
  return readFileSync(f.auditFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
}

async function metric(f: GatewayFixture, pattern: RegExp): Promise<number> {
  const text = await (await request(`http://127.0.0.1:${f.adminPort}/metrics`)).body.text();
  return Number(text.match(pattern)?.[1] ?? 0);
}

const HELD = /^noisemesh_secret_answers_held_bytes (\d+)/m;

/** A connection to `port` that sends `bytes` and never reads. */
async function nonReader(port: number, bytes: string): Promise<Socket> {
  const s = connect(port, '127.0.0.1');
  s.on('error', () => {});
  s.pause();
  await new Promise((resolve) => s.once('connect', resolve));
  s.write(bytes);
  return s;
}

test('a caller that pipelines 64 requests for a 4 MiB secret and never reads: few are decided, the gateway holds about one answer, then the connection is reset and the undelivered answer audited', async (t) => {
  const f = await start({ stalledAnswerMs: 1500 });
  t.after(() => f.close());
  const entry = f.callers.get('payments/api')!.entryPort;
  const s = await nonReader(entry, GET_BIG.repeat(64));
  t.after(() => s.destroy());
  // The kernel's buffers on both hops take some answers (tens of MiB on loopback); the gateway
  // decides one more only when it holds less than its limit.
  let maxHeld = 0;
  for (let i = 0; i < 10; i++) {
    await sleep(100);
    maxHeld = Math.max(maxHeld, await metric(f, HELD));
  }
  const decided = audit(f).filter((l) => l.decision !== undefined).length;
  assert.ok(decided < 40, `${decided} of 64 requests decided for a caller that reads nothing`);
  assert.ok(maxHeld <= DEFAULT_HTTP_LIMITS.maxHeldBytesPerConnection + BIG + 1024, `${maxHeld} bytes of answers held`);
  // None of its answers taken for stalledAnswerMs while over its limit: reset (the client
  // proxy then still has what the kernel took to hand to a caller that does not read).
  const resets = (): Promise<number> => metric(f, /^noisemesh_gateway_connections_reset_total\{reason="stalled"\} (\d+)/m);
  for (let i = 0; i < 100 && (await resets()) === 0; i++) await sleep(100);
  assert.equal(await resets(), 1, 'the stalled connection was reset');
  assert.equal(await metric(f, HELD), 0, 'nothing held once it is gone');
  await sleep(200);
  const lines = audit(f);
  const undelivered = lines.filter((l) => l.delivered === false);
  assert.ok(undelivered.length >= 1, 'the answer the session never took has its delivered:false line');
  for (const u of undelivered) {
    assert.deepEqual(Object.keys(u).sort(), ['decisionId', 'delivered', 'reason', 'status', 'time']);
    assert.equal(u.reason, 'stalled');
    assert.equal(u.status, 200);
    assert.equal(lines.filter((l) => l.decisionId === u.decisionId && l.decision === 'allow').length, 1, 'it follows the decision line of the same decisionId');
  }
  assert.equal(await metric(f, /^noisemesh_secret_answers_undelivered_total\{decision="allow",reason="stalled"\} (\d+)/m), undelivered.length);
  // The gateway serves on.
  const res = await request(`http://127.0.0.1:${entry}/v1/secrets/payments/small`, { reset: true });
  assert.equal(res.statusCode, 200);
  await res.body.text();
});

test('many callers that do not read add up to at most the global bound; a reader is still served once the stalled ones are reset', async (t) => {
  const maxHeldBytes = 6 * MB;
  const f = await start({ stalledAnswerMs: 1500, maxHeldBytes });
  t.after(() => f.close());
  const entry = f.callers.get('payments/api')!.entryPort;
  const sockets = await Promise.all(Array.from({ length: 6 }, () => nonReader(entry, GET_BIG.repeat(64))));
  t.after(() => sockets.forEach((s) => s.destroy()));
  let maxHeld = 0;
  for (let i = 0; i < 10; i++) {
    await sleep(100);
    maxHeld = Math.max(maxHeld, await metric(f, HELD));
  }
  // The global bound, plus one connection's share (its limit and the answer at its head).
  assert.ok(maxHeld <= maxHeldBytes + DEFAULT_HTTP_LIMITS.maxHeldBytesPerConnection + BIG + 1024, `${maxHeld} bytes held by 6 callers that read nothing`);
  const started = Date.now();
  const res = await request(`http://127.0.0.1:${entry}/v1/secrets/payments/small`, { reset: true, headersTimeout: 15_000 });
  assert.equal(res.statusCode, 200);
  assert.match(await res.body.text(), /SECRET-VALUE-small/);
  assert.ok(Date.now() - started < 12_000);
});

test('65 requests pipelined in one message (64 allowed): the connection is reset and none of them is decided, audited or counted allowed', async (t) => {
  const f = await start({});
  t.after(() => f.close());
  const entry = f.callers.get('payments/api')!.entryPort;
  const socket = await dial(entry);
  socket.write(GET_SMALL.repeat(65));
  const { data } = await readAll(socket, 10_000);
  assert.equal(data.length, 0, 'no answer');
  await sleep(200);
  assert.equal(audit(f).length, 0, 'no audit line claims an answer that was not sent');
  assert.equal(await metric(f, /^noisemesh_secret_requests_total\{decision="allow",rule="payments"\} (\d+)/m), 0);
  assert.equal(await metric(f, /^noisemesh_gateway_connections_reset_total\{reason="pipelined"\} (\d+)/m), 1);
  // 64 in one message are answered, each audited once.
  const ok = await dial(entry);
  ok.write(GET_SMALL.repeat(64));
  let text = '';
  ok.on('data', (d: Buffer) => (text += d.toString('latin1')));
  for (let i = 0; i < 100 && text.split('HTTP/1.1 200 ').length - 1 < 64; i++) await sleep(50);
  ok.destroy();
  assert.equal(text.split('HTTP/1.1 200 ').length - 1, 64);
  assert.equal(audit(f).length, 64);
});

test('the loopback listener holds at most maxLoopbackConnections: a flood of half-sent requests sheds the oldest, a newcomer is served', async (t) => {
  const f = await start({ maxLoopbackConnections: 8 });
  t.after(() => f.close());
  const flood: Socket[] = [];
  const closed: boolean[] = [];
  t.after(() => flood.forEach((s) => s.destroy()));
  for (let i = 0; i < 40; i++) {
    const s = connect(f.loopbackPort, '127.0.0.1');
    s.on('error', () => {});
    closed.push(false);
    s.once('close', () => (closed[i] = true));
    await new Promise((resolve) => s.once('connect', resolve));
    s.write('GET /v1/secrets/payments/small HTTP/1.1\r\nHo');
    s.resume();
    flood.push(s);
  }
  for (let i = 0; i < 100 && closed.filter(Boolean).length < 32; i++) await sleep(20);
  assert.equal(closed.filter(Boolean).length, 32, 'all but 8 closed');
  assert.deepEqual(closed.slice(32), Array(8).fill(false), 'the newest 8 stay');
  const res = await request(`http://127.0.0.1:${f.loopbackPort}/v1/whoami`, { reset: true });
  assert.equal(res.statusCode, 200);
  await res.body.text();
  // Its listener and connections are held back from the proxy's caps.
  const plain = descriptorBudget(1024, 2);
  const withGateway = descriptorBudget(1024, 2, 2, 1 + 128 + 128);
  assert.equal(withGateway.reserved, plain.reserved + 257);
  assert.ok(withGateway.sessions < plain.sessions);
});

test('CONNECT gets 405 with allow: GET and a JSON body; no Host gets 400 with {error}; a malformed request 400 with {error}', async (t) => {
  const f = await start({});
  t.after(() => f.close());
  const entry = f.callers.get('payments/api')!.entryPort;
  const send = async (bytes: string): Promise<string> => {
    const socket = await dial(entry);
    socket.write(bytes);
    const timer = setTimeout(() => socket.destroy(), 3000);
    const { data } = await readAll(socket, 10_000);
    clearTimeout(timer);
    return data.toString('latin1');
  };
  const body = (text: string): any => JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));
  const connectAnswer = await send('CONNECT payments:443 HTTP/1.1\r\nHost: payments:443\r\n\r\n');
  assert.match(connectAnswer, /^HTTP\/1\.1 405 /);
  assert.match(connectAnswer, /\r\nallow: GET\r\n/i);
  assert.equal(body(connectAnswer).error, 'only GET is served');
  const noHost = await send('GET /v1/secrets/payments/small HTTP/1.1\r\n\r\n');
  assert.match(noHost, /^HTTP\/1\.1 400 /);
  assert.match(body(noHost).error, /Host/);
  const malformed = await send('GET /v1/secrets/payments/small HTTP/1.1\r\nHost: g\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n');
  assert.match(malformed, /^HTTP\/1\.1 400 /);
  assert.match(body(malformed).error, /not HTTP\/1\.1 the API can parse/);
  assert.equal(audit(f).length, 0, 'refused before any decision: nothing audited');
});
