// The secrets gateway end to end on loopback: real client proxies, a real gateway proxy whose
// responder serves the secrets API in-process, the registry file source, the file backend and
// a file audit sink. Allowed and denied fetches (each requirement with its reasons), dry run,
// 404, another target port (status 4), whoami, plaintext through inbound capture, loopback,
// the hostile requests (methods, bodies, traversal, encodings, long paths and headers, slow
// senders), keep-alive, audit lines without values, and revocation on a live connection.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, request } from 'undici';
import { dial, readAll } from './helpers/mesh.js';
import { GATEWAY_AGENT, GOOD, OTHER_PORT, startGatewayFixture, type GatewayFixture } from './helpers/gateway.js';
import { keyFingerprint } from '../src/secrets/index.js';

const POLICY = `rules:
  - id: payments-dry
    paths: ["payments/dry"]
    agents: ["payments/*"]
    mode: dry-run
    require: {clearance: secrets-only, minDevicePosture: 0.95}
  - id: payments-db
    paths: ["payments/**"]
    agents: ["payments/*"]
    require: {clearance: secrets-only, authnStrength: high, maxFreshnessSeconds: 3600, maxDelegationDepth: 1, minDevicePosture: 0.5, agentTypes: [service]}
  - id: public-ca
    paths: ["public/ca"]
    require: {networkExposure: plaintext}
  - id: public-internal
    paths: ["public/**"]
    require: {clearance: open}
`;
const SECRETS = `payments/db: {username: app, password: "SECRET-VALUE-db-1"}
payments/dry: {token: "SECRET-VALUE-dry"}
public/ca: {pem: "SECRET-VALUE-ca"}
public/internal: {note: "SECRET-VALUE-internal"}
`;

/** One caller per requirement the payments-db rule sets, each failing only that one. */
const FAILING = {
  clearance: { agentId: 'payments/low-clearance', clearance: 'internal', reason: { required: 'secrets-only', actual: 'internal' } },
  authnStrength: { agentId: 'payments/weak-authn', authnStrength: 'low', reason: { required: 'high', actual: 'low' } },
  maxFreshnessSeconds: { agentId: 'payments/stale', attestedAgo: 7200, reason: { required: 3600, actual: 7200 } },
  maxDelegationDepth: { agentId: 'payments/deep', delegationDepth: 3, reason: { required: 1, actual: 3 } },
  minDevicePosture: { agentId: 'payments/low-posture', devicePosture: 0.2, reason: { required: 0.5, actual: 0.2 } },
  agentTypes: { agentId: 'payments/person', agentType: 'human', reason: { required: ['service'], actual: 'human' } },
} as const;

let f: GatewayFixture;

before(async () => {
  f = await startGatewayFixture({
    policy: POLICY,
    secrets: SECRETS,
    callers: [
      { agentId: 'payments/api' },
      { agentId: 'payments/batch' },
      { agentId: 'billing/api' },
      ...Object.values(FAILING).map(({ reason: _r, ...spec }) => spec),
    ],
    http: { headersTimeoutMs: 1500, requestTimeoutMs: 3000, checkIntervalMs: 250, maxPlaintextConnections: 16 },
  });
});

after(async () => {
  await f?.close();
});

function entry(agentId: string): number {
  return f.callers.get(agentId)!.entryPort;
}

async function get(port: number, path: string): Promise<{ status: number; body: any; headers: Record<string, unknown> }> {
  const res = await request(`http://127.0.0.1:${port}${path}`, { reset: true });
  const text = await res.body.text();
  return { status: res.statusCode, body: text === '' ? null : JSON.parse(text), headers: res.headers };
}

/** Sends raw bytes on a fresh connection through `port` and reads until the connection ends. */
async function raw(port: number, bytes: string | Buffer, timeoutMs = 10_000): Promise<{ text: string; ending: string }> {
  const socket = await dial(port);
  socket.write(bytes);
  const { data, ending } = await readAll(socket, timeoutMs);
  return { text: data.toString('latin1'), ending };
}

function auditLines(): any[] {
  return readFileSync(f.auditFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
}

function auditFor(decisionId: string): any {
  const line = auditLines().find((l) => l.decisionId === decisionId);
  assert.ok(line, `no audit line for decision ${decisionId}`);
  return line;
}

async function metrics(): Promise<string> {
  const res = await request(`http://127.0.0.1:${f.adminPort}/metrics`);
  return res.body.text();
}

test('an allowed caller gets {path, data, version}; the audit line has who, what, the rule and the vector, and no value', async () => {
  const r = await get(entry('payments/api'), '/v1/secrets/payments/db');
  assert.equal(r.status, 200);
  assert.deepEqual(Object.keys(r.body).sort(), ['data', 'path', 'version']);
  assert.equal(r.body.path, 'payments/db');
  assert.deepEqual(r.body.data, { username: 'app', password: 'SECRET-VALUE-db-1' });
  assert.match(r.body.version, /^[0-9a-f]{16}$/);
  assert.equal(r.headers['cache-control'], 'no-store');
  const id = r.headers['x-noisemesh-decision-id'] as string;
  assert.match(id, /^[0-9a-f]{32}$/);
  const line = auditFor(id);
  assert.equal(line.agentId, 'payments/api');
  assert.equal(line.keyFingerprint, keyFingerprint(f.callers.get('payments/api')!.identity.publicKeyB64));
  assert.equal(line.networkExposure, 'encrypted');
  assert.equal(line.path, 'payments/db');
  assert.equal(line.decision, 'allow');
  assert.equal(line.ruleId, 'payments-db');
  assert.deepEqual(line.failed, []);
  assert.equal(line.status, 200);
  assert.equal(line.trustVector.clearance, 'secrets-only');
  assert.equal(typeof line.latencyMs, 'number');
  assert.ok(!Number.isNaN(Date.parse(line.time)));
  assert.ok(!JSON.stringify(line).includes('SECRET-VALUE'));
});

for (const [requirement, spec] of Object.entries(FAILING)) {
  test(`denied on ${requirement} alone: 403 names the rule and exactly that requirement, required and actual`, async () => {
    const r = await get(entry(spec.agentId), '/v1/secrets/payments/db');
    assert.equal(r.status, 403);
    assert.equal(r.body.error, 'denied');
    assert.equal(r.body.ruleId, 'payments-db');
    assert.match(r.body.decisionId, /^[0-9a-f]{32}$/);
    assert.deepEqual(r.body.reasons.map((x: any) => x.requirement), [requirement]);
    const got = r.body.reasons[0];
    if (requirement === 'maxFreshnessSeconds') {
      // Seconds pass between writing the registry and this request.
      assert.equal(got.required, 3600);
      assert.ok(got.actual >= 7200 && got.actual < 7260, `attested ${got.actual} s ago`);
    } else {
      assert.deepEqual({ required: got.required, actual: got.actual }, spec.reason);
    }
    assert.equal(typeof r.body.reasons[0].message, 'string');
    assert.equal(r.body.trustVector.agentType.unit, spec.agentId);
    assert.ok(!JSON.stringify(r.body).includes('SECRET-VALUE'));
    const line = auditFor(r.body.decisionId);
    assert.equal(line.decision, 'deny');
    assert.equal(line.status, 403);
    assert.deepEqual(line.failed, [{ requirement, required: got.required, actual: got.actual }]);
  });
}

test('no rule selects another namespace: 403 with a rule reason', async () => {
  const r = await get(entry('billing/api'), '/v1/secrets/payments/db');
  assert.equal(r.status, 403);
  assert.equal(r.body.ruleId, null);
  assert.equal(r.body.reasons[0].requirement, 'rule');
  assert.match(r.body.reasons[0].message, /payments-db/);
});

test('a dry-run rule that would deny does not: 200, and the audit line says which rule would have and why', async () => {
  const r = await get(entry('payments/api'), '/v1/secrets/payments/dry');
  assert.equal(r.status, 200);
  const line = auditFor(r.headers['x-noisemesh-decision-id'] as string);
  assert.equal(line.decision, 'allow');
  assert.equal(line.ruleId, 'payments-db');
  assert.equal(line.dryRunDenied, true);
  assert.deepEqual(line.dryRun, [{ ruleId: 'payments-dry', allow: false, failed: [{ requirement: 'minDevicePosture', required: 0.95, actual: 0.9 }] }]);
});

test('an allowed path with no secret is 404, audited', async () => {
  const r = await get(entry('payments/api'), '/v1/secrets/payments/nothing-here');
  assert.equal(r.status, 404);
  assert.equal(auditFor(r.body.decisionId).status, 404);
});

test('a session to any other target port is refused with status 4: the connection is reset', async () => {
  const before = (await metrics()).match(/noisemesh_handshakes_total\{role="responder",result="targetPortNotAllowed"\} (\d+)/)?.[1] ?? '0';
  const { ending, text } = await raw(f.callers.get('payments/api')!.otherPort, 'GET /v1/whoami HTTP/1.1\r\nhost: g\r\n\r\n');
  assert.equal(text, '');
  assert.notEqual(ending, 'end');
  const after = (await metrics()).match(/noisemesh_handshakes_total\{role="responder",result="targetPortNotAllowed"\} (\d+)/)?.[1];
  assert.equal(Number(after), Number(before) + 1, `status 4 counted (port ${OTHER_PORT})`);
});

test('whoami: the agentId, the entry with a key fingerprint and no key, the vector; counted as whoami, not as a policy decision', async () => {
  const count = (m: string, series: string): number => Number(m.match(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm'))?.[1] ?? 0);
  const ALLOW_NONE = 'noisemesh_secret_requests_total{decision="allow",rule="none"}';
  const ALLOW_SECONDS = 'noisemesh_secret_request_duration_seconds_count{decision="allow"}';
  const ANSWERED = 'noisemesh_gateway_whoami_requests_total{result="answered"}';
  const before = await metrics();
  const r = await get(entry('payments/api'), '/v1/whoami');
  const after = await metrics();
  assert.equal(count(after, ANSWERED), count(before, ANSWERED) + 1, 'one whoami answered');
  assert.match(after, /^noisemesh_gateway_whoami_requests_total\{result="refused"\} \d+$/m, 'the refused series exists from the start');
  assert.equal(count(after, ALLOW_NONE), count(before, ALLOW_NONE), 'no allow decision without a rule');
  assert.equal(count(after, ALLOW_SECONDS), count(before, ALLOW_SECONDS), 'the secrets latency histogram holds secrets requests only');
  assert.equal(r.status, 200);
  const key = f.callers.get('payments/api')!.identity.publicKeyB64;
  assert.equal(r.body.agentId, 'payments/api');
  assert.equal(r.body.networkExposure, 'encrypted');
  assert.equal(r.body.entry.keyFingerprint, keyFingerprint(key));
  assert.equal(r.body.entry.generation, '1');
  assert.equal(r.body.entry.clearance, GOOD.clearance);
  assert.equal(r.body.trustVector.networkExposure, 'encrypted');
  assert.equal(r.body.trustVector.authnStrength, 'high');
  const text = JSON.stringify(r.body);
  assert.ok(!text.includes(key) && !text.includes('publicKey'), 'no key material beyond the fingerprint');
});

test('plaintext through inbound capture is an anonymous plaintext caller: refused by default, allowed only where a rule says plaintext', async () => {
  const denied = await raw(f.capturePort, 'GET /v1/secrets/public/internal HTTP/1.1\r\nhost: g\r\nconnection: close\r\n\r\n');
  assert.match(denied.text, /^HTTP\/1\.1 403 /);
  const body = JSON.parse(denied.text.slice(denied.text.indexOf('\r\n\r\n') + 4));
  assert.equal(body.ruleId, 'public-internal');
  assert.deepEqual(body.reasons.map((x: any) => x.requirement), ['clearance', 'networkExposure']);
  assert.equal(body.trustVector.authnStrength, 'none');
  assert.equal(body.trustVector.networkExposure, 'plaintext');
  const line = auditFor(body.decisionId);
  assert.equal(line.agentId, null);
  assert.equal(line.keyFingerprint, null);
  assert.equal(line.networkExposure, 'plaintext');

  const secretsOfMesh = await raw(f.capturePort, 'GET /v1/secrets/payments/db HTTP/1.1\r\nhost: g\r\nconnection: close\r\n\r\n');
  assert.match(secretsOfMesh.text, /^HTTP\/1\.1 403 /);
  assert.ok(!secretsOfMesh.text.includes('SECRET-VALUE'));

  const allowed = await raw(f.capturePort, 'GET /v1/secrets/public/ca HTTP/1.1\r\nhost: g\r\nconnection: close\r\n\r\n');
  assert.match(allowed.text, /^HTTP\/1\.1 200 /);

  const who = await raw(f.capturePort, 'GET /v1/whoami HTTP/1.1\r\nhost: g\r\nconnection: close\r\n\r\n');
  const whoBody = JSON.parse(who.text.slice(who.text.indexOf('\r\n\r\n') + 4));
  assert.deepEqual({ agentId: whoBody.agentId, entry: whoBody.entry, exposure: whoBody.trustVector.networkExposure }, { agentId: null, entry: null, exposure: 'plaintext' });
});

// An unmeshed caller proves nothing and costs a descriptor per connection, served in the
// gateway's own process: without a bound, anyone who can reach the gateway port in plaintext
// could hold connections until the gateway has no descriptor left for the mesh sessions of
// the pods it serves. Past the bound the oldest plaintext connection is closed for the
// newcomer (the Strangers rule: an idle holder loses the race to a caller that speaks).
test('hostile: plaintext connections are bounded; past the bound the oldest is closed, a newcomer is served, meshed callers unaffected', async () => {
  const held = await Promise.all(Array.from({ length: 100 }, () => dial(f.capturePort)));
  let closed = 0;
  for (const socket of held) {
    let ended = false;
    const end = (): void => {
      if (!ended) closed++;
      ended = true;
    };
    socket.on('error', end);
    socket.once('end', end);
    socket.once('close', end);
  }
  try {
    // Well inside headersTimeout (1.5 s): only the bound can have closed them.
    await sleep(800);
    assert.ok(closed >= 100 - 16, `${closed} of 100 idle plaintext connections closed; at most 16 may stay`);
    const served = await raw(f.capturePort, 'GET /v1/secrets/public/ca HTTP/1.1\r\nhost: g\r\nconnection: close\r\n\r\n');
    assert.match(served.text, /^HTTP\/1\.1 200 /);
    const meshed = await get(entry('payments/api'), '/v1/secrets/payments/db');
    assert.equal(meshed.status, 200);
  } finally {
    for (const socket of held) socket.destroy();
  }
});

test("the loopback listener serves the gateway's own pod as loopback, with the gateway's entry", async () => {
  const r = await get(f.loopbackPort, '/v1/whoami');
  assert.equal(r.status, 200);
  assert.equal(r.body.agentId, GATEWAY_AGENT);
  assert.equal(r.body.trustVector.networkExposure, 'loopback');
});

test('keep-alive: many requests on one connection, one session', async () => {
  const handshakesBefore = Number((await metrics()).match(/noisemesh_handshakes_total\{role="responder",result="accepted"\} (\d+)/)?.[1] ?? 0);
  const client = new Client(`http://127.0.0.1:${entry('payments/api')}`, { pipelining: 1 });
  try {
    for (let i = 0; i < 50; i++) {
      const res = await client.request({ path: '/v1/secrets/payments/db', method: 'GET' });
      assert.equal(res.statusCode, 200);
      await res.body.dump();
    }
  } finally {
    await client.close();
  }
  const handshakesAfter = Number((await metrics()).match(/noisemesh_handshakes_total\{role="responder",result="accepted"\} (\d+)/)?.[1]);
  assert.equal(handshakesAfter - handshakesBefore, 1);
  const m = await metrics();
  assert.match(m, /noisemesh_secret_requests_total\{decision="allow",rule="payments-db"\} \d+/);
  assert.match(m, /noisemesh_secret_request_duration_seconds_bucket\{le="[^"]+",decision="allow"\} \d+/);
});

const HOSTILE: readonly [string, string, number][] = [
  ['a method other than GET', 'DELETE /v1/secrets/payments/db HTTP/1.1\r\nhost: g\r\n\r\n', 405],
  ['a GET with a body', 'GET /v1/secrets/payments/db HTTP/1.1\r\nhost: g\r\ncontent-length: 5\r\n\r\nhello', 400],
  ['a chunked body', 'GET /v1/secrets/payments/db HTTP/1.1\r\nhost: g\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 400],
  ['a .. segment', 'GET /v1/secrets/payments/../admin HTTP/1.1\r\nhost: g\r\n\r\n', 400],
  ['%2e%2e', 'GET /v1/secrets/payments/%2e%2e/admin HTTP/1.1\r\nhost: g\r\n\r\n', 400],
  ['an encoded slash', 'GET /v1/secrets/payments%2fdb HTTP/1.1\r\nhost: g\r\n\r\n', 400],
  ['double encoding', 'GET /v1/secrets/payments/%252e%252e/db HTTP/1.1\r\nhost: g\r\n\r\n', 400],
  ['an empty segment', 'GET /v1/secrets/payments//db HTTP/1.1\r\nhost: g\r\n\r\n', 400],
  ['a query', 'GET /v1/secrets/payments/db?version=2 HTTP/1.1\r\nhost: g\r\n\r\n', 400],
  ['a path over 512 characters', `GET /v1/secrets/${'a'.repeat(600)} HTTP/1.1\r\nhost: g\r\n\r\n`, 414],
  ['headers over 8 KiB', `GET /v1/secrets/payments/db HTTP/1.1\r\nhost: g\r\nx-pad: ${'p'.repeat(9000)}\r\n\r\n`, 431],
  ['an unknown API path', 'GET /v1/secret/payments/db HTTP/1.1\r\nhost: g\r\n\r\n', 404],
  ['garbage', 'HELLO\r\n\r\n', 400],
];

for (const [what, bytes, status] of HOSTILE) {
  test(`hostile: ${what} gets ${status} and no value`, async () => {
    const socket = await dial(entry('payments/api'));
    socket.write(bytes);
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    const deadline = Date.now() + 10_000;
    while (!text.includes('\r\n\r\n') && Date.now() < deadline && !socket.destroyed) await sleep(10);
    socket.destroy();
    assert.match(text, new RegExp(`^HTTP/1\\.1 ${status} `), text.slice(0, 200));
    assert.ok(!text.includes('SECRET-VALUE'));
  });
}

// node:http's maxHeadersCount drops the headers past it without a word, so a count limit
// that relied on it answered 200 to 100 headers, and a content-length placed past the 64th
// slipped by the body check. Every header counts, and past the limit the answer is 431 and
// the connection is closed (a body may follow).
test('hostile: more than 64 headers get 431 and the connection closed, whatever header comes last', async () => {
  const pad = Array.from({ length: 100 }, (_, i) => `x-pad-${i}: p\r\n`).join('');
  for (const last of ['', 'content-length: 5\r\n', 'transfer-encoding: chunked\r\n']) {
    const body = last === '' ? '' : last.startsWith('content') ? 'hello' : '5\r\nhello\r\n0\r\n\r\n';
    // raw() fails unless the gateway ends the connection within 5 s.
    const { text } = await raw(entry('payments/api'), `GET /v1/secrets/payments/db HTTP/1.1\r\nhost: g\r\n${pad}${last}\r\n${body}`, 5000);
    assert.match(text, /^HTTP\/1\.1 431 /, `${JSON.stringify(last)}: ${text.slice(0, 80)}`);
    assert.ok(!text.includes('SECRET-VALUE'));
    assert.match(text, /connection: close/i);
  }
  // 64 headers (host, 62 more, connection) are served.
  const sixtyFour = Array.from({ length: 62 }, (_, i) => `x-pad-${i}: p\r\n`).join('');
  const ok = await raw(entry('payments/api'), `GET /v1/secrets/payments/db HTTP/1.1\r\nhost: g\r\n${sixtyFour}connection: close\r\n\r\n`, 5000);
  assert.match(ok.text, /^HTTP\/1\.1 200 /);
});

test('hostile: a 64 MiB body is answered and the connection closed long before it is all sent (the gateway reads none of it)', async () => {
  const socket = await dial(entry('payments/api'));
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  // The gateway's end of the connection: END-OF-STREAM after the answer, a FIN here.
  const closed = new Promise<void>((resolve) => {
    socket.once('end', () => resolve());
    socket.once('close', () => resolve());
  });
  socket.on('error', () => {});
  socket.write(`POST /v1/secrets/payments/db HTTP/1.1\r\nhost: g\r\ncontent-length: ${64 * 1024 * 1024}\r\n\r\n`);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let sent = 0;
  while (!socket.destroyed && sent < 64 * 1024 * 1024 && !text.includes('\r\n\r\n')) {
    if (!socket.write(chunk)) await Promise.race([once(socket, 'drain'), closed, sleep(200)]);
    sent += chunk.length;
  }
  await Promise.race([closed, sleep(15_000)]);
  socket.destroy();
  assert.match(text, /^HTTP\/1\.1 405 /);
  assert.match(text, /connection: close/i);
  assert.ok(sent < 16 * 1024 * 1024, `the sender got an answer after ${sent} bytes`);
});

test('hostile: a slow sender (headers never finished) gets 408 after headersTimeout, and the session ends', async () => {
  const socket = await dial(entry('payments/api'));
  socket.write('GET /v1/secrets/payments/db HTTP/1.1\r\nhost: g\r\n');
  const started = Date.now();
  const { data } = await readAll(socket, 10_000);
  assert.match(data.toString('latin1'), /^HTTP\/1\.1 408 /);
  const took = Date.now() - started;
  assert.ok(took >= 1000 && took < 8000, `408 after ${took} ms (headersTimeout 1.5 s, checked every 0.25 s)`);
});

// The refusals node:http's parser makes itself (headers too large, a malformed request, a
// slow sender) are requests refused before a decision like the others: the docs promise them
// in noisemesh_secret_requests_total{decision="invalid"}, where an operator sees a probe.
test('hostile requests the HTTP parser refuses (431, 400, 408) are counted as invalid', async () => {
  const invalid = async (): Promise<number> => Number((await metrics()).match(/^noisemesh_secret_requests_total\{decision="invalid",rule="none"\} (\d+)/m)?.[1] ?? 0);
  const before = await invalid();
  const refused: [string, RegExp][] = [];
  for (const bytes of [
    `GET /v1/secrets/payments/db HTTP/1.1\r\nhost: g\r\nx-pad: ${'p'.repeat(9000)}\r\n\r\n`,
    'GET /v1/secrets/payments/db HTTP/1.1\r\nhost: g\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n',
    'GET /v1/secrets/payments/db\0 HTTP/1.1\r\nhost: g\r\n\r\n',
    'GET /v1/secrets/payments/db HTTP/1.1\r\nhost: g\r\n',
  ]) {
    const { text } = await raw(entry('payments/api'), bytes);
    refused.push([text.slice(0, 40), /^HTTP\/1\.1 (431|400|408) /]);
  }
  for (const [text, expected] of refused) assert.match(text, expected);
  assert.equal(await invalid(), before + 4);
});

test('the audit log holds one line per decision and no value; no log line holds a value', async () => {
  const lines = auditLines();
  assert.ok(lines.length >= 10);
  for (const line of lines) {
    assert.deepEqual(
      Object.keys(line).filter((k) => !['backend', 'backendOutcome', 'backendFailure'].includes(k)),
      ['time', 'decisionId', 'agentId', 'keyFingerprint', 'networkExposure', 'path', 'decision', 'ruleId', 'failed', 'dryRunDenied', 'dryRun', 'trustVector', 'status', 'latencyMs'],
    );
    // An allowed request read the backend: the file backend, which has no cache.
    if (line.status !== 403) assert.deepEqual([line.backend, line.backendOutcome], ['file', 'uncached'], JSON.stringify(line));
  }
  assert.ok(lines.some((l) => l.backend === undefined), 'a denied request asks no backend and records none');
  assert.equal(new Set(lines.map((l) => l.decisionId)).size, lines.length, 'decision ids are unique');
  assert.ok(!readFileSync(f.auditFile, 'utf8').includes('SECRET-VALUE'));
  assert.ok(f.logLines.length > 0);
  assert.ok(!f.logLines.join('').includes('SECRET-VALUE'));
  assert.ok(!(await metrics()).includes('SECRET-VALUE'));
});

test('the secrets file is re-read on change; a broken one keeps the last good content', async () => {
  const { writeFileSync, renameSync } = await import('node:fs');
  const file = `${f.dir}/secrets.yaml`;
  writeFileSync(`${file}.tmp`, SECRETS.replace('SECRET-VALUE-db-1', 'SECRET-VALUE-db-2'));
  renameSync(`${file}.tmp`, file);
  let r = await get(entry('payments/api'), '/v1/secrets/payments/db');
  for (let i = 0; i < 50 && r.body.data.password !== 'SECRET-VALUE-db-2'; i++) {
    await sleep(50);
    r = await get(entry('payments/api'), '/v1/secrets/payments/db');
  }
  assert.equal(r.body.data.password, 'SECRET-VALUE-db-2');
  writeFileSync(`${file}.tmp`, 'payments/db: {password: 5432}\n');
  renameSync(`${file}.tmp`, file);
  await sleep(400);
  r = await get(entry('payments/api'), '/v1/secrets/payments/db');
  assert.equal(r.body.data.password, 'SECRET-VALUE-db-2');
  const error = f.logLines.find((l) => l.includes('secrets-reload-error'));
  assert.ok(error, 'the refused reload is logged');
  assert.match(error!, /payments\/db\.password: must be a string/);
  assert.ok(!error!.includes('5432'), 'the refused value is not quoted');
});

test('a revoked caller is refused at once: the next request on its keep-alive connection fails, and a new connection is refused', async () => {
  const client = new Client(`http://127.0.0.1:${entry('payments/batch')}`, { pipelining: 1 });
  try {
    const first = await client.request({ path: '/v1/secrets/payments/db', method: 'GET' });
    assert.equal(first.statusCode, 200);
    await first.body.dump();
    const key = f.callers.get('payments/batch')!.identity.publicKeyB64;
    f.writeRegistry(['payments/batch']);
    const deadline = Date.now() + 5000;
    while (f.registry.registry.index.byPublicKey(key)?.revoked !== true && Date.now() < deadline) await sleep(10);
    assert.equal(f.registry.registry.index.byPublicKey(key)?.revoked, true, 'the gateway applied the revocation');
    // The same connection: the session was aborted, or the request is refused; never a value.
    const next = await client.request({ path: '/v1/secrets/payments/db', method: 'GET' }).then(
      async (res) => ({ status: res.statusCode, text: await res.body.text() }),
      (err: Error) => ({ status: 0, text: String(err) }),
    );
    assert.ok(next.status === 0 || next.status === 403, `the next request got ${next.status}`);
    assert.ok(!next.text.includes('SECRET-VALUE'));
  } finally {
    await client.close().catch(() => {});
  }
  const fresh = await raw(entry('payments/batch'), 'GET /v1/secrets/payments/db HTTP/1.1\r\nhost: g\r\n\r\n');
  assert.equal(fresh.text, '', 'a new connection gets no answer');
  assert.notEqual(fresh.ending, 'end');
  assert.match(await metrics(), /noisemesh_revocations_total [1-9]/);
  // Other callers are untouched.
  assert.equal((await get(entry('payments/api'), '/v1/secrets/payments/db')).status, 200);
});
