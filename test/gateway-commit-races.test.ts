// What can happen between a request's decision and its answer now that answers wait for the
// end of the turn (the audit group commit, src/secrets/audit-commit.ts; the stream pair's
// gathering, src/secrets/gateway/stream-pair.ts): a revocation applied later in the same turn
// refuses the request; a caller that sends requests and never reads the answers is no longer
// read from once its answers fill the session's buffers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as turn } from 'node:timers/promises';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { DEFAULT_HTTP_LIMITS, SecretsGateway, openAuditFile, type HttpLimits } from '../src/secrets/index.js';
import { parsePolicy } from '../src/trust-vector/index.js';
import type { RegistryEntry } from '../src/registry-sync/index.js';
import { GATEWAY_PORT, startGatewayFixture, type GatewayFixture } from './helpers/gateway.js';

const POLICY = `rules:
  - id: payments-db
    paths: ["payments/**"]
    agents: ["payments/*"]
    require: {clearance: secrets-only}
`;
const SECRETS = 'payments/db: {password: "SECRET-VALUE-races"}\n';
const REQUEST = 'GET /v1/secrets/payments/db HTTP/1.1\r\nHost: g\r\n\r\n';

/**
 * A second gateway over the fixture's backend, with its own audit file, whose registry lookup
 * is the fixture's real one except that `revoke()` makes it answer the entry revoked, as a
 * registry update does.
 */
function gatewayOver(f: GatewayFixture, name: string, http: Partial<HttpLimits> = {}): { gateway: SecretsGateway; auditFile: string; key: string; revoke: () => void; onLookup: (fn: () => void) => void; close: () => Promise<void> } {
  const key = f.callers.get('payments/api')!.identity.publicKeyB64;
  const auditFile = join(f.dir, `${name}.log`);
  const audit = openAuditFile(auditFile);
  let revoked = false;
  let hook: (() => void) | undefined;
  const gateway = new SecretsGateway({
    port: GATEWAY_PORT,
    policy: parsePolicy(POLICY, 'policy.yaml'),
    backend: f.backend,
    audit,
    entryByKey: (k): RegistryEntry | undefined => {
      const entry = f.registry.registry.index.byPublicKey(k);
      const h = hook;
      hook = undefined;
      h?.();
      return entry === undefined || !revoked ? entry : { ...entry, revoked: true };
    },
    ownPublicKeyB64: f.gatewayId.publicKeyB64,
    metrics: new Registry(),
    log: pino({ level: 'silent' }),
    http,
  });
  return {
    gateway,
    auditFile,
    key,
    revoke: () => (revoked = true),
    onLookup: (fn) => (hook = fn),
    close: async () => {
      await gateway.close();
      audit.close();
    },
  };
}

async function answer(gateway: SecretsGateway, key: string): Promise<string> {
  const session = gateway.openMeshStream(GATEWAY_PORT, key)!;
  let text = '';
  session.on('data', (d: Buffer) => (text += d.toString()));
  session.write(REQUEST);
  for (let i = 0; i < 200 && !/\r\n\r\n[\s\S]*\}$/.test(text); i++) await turn();
  session.destroy();
  return text;
}

test('a revocation applied later in the turn that decided a request: refused, and its audit line says so', async (t) => {
  const f = await startGatewayFixture({ policy: POLICY, secrets: SECRETS, callers: [{ agentId: 'payments/api' }], logLevel: 'warn' });
  t.after(() => f.close());
  const g = gatewayOver(f, 'races');
  t.after(() => g.close());

  // Without a revocation: released.
  const first = await answer(g.gateway, g.key);
  assert.match(first, /^HTTP\/1\.1 200 /);
  assert.ok(first.includes('SECRET-VALUE-races'));

  // The revocation lands in the same turn as the decision, after the request's handler has
  // run (as a registry file event after the session's data in one poll phase), before the
  // end of the turn when its audit line is written.
  g.onLookup(() => setImmediate(g.revoke));
  const second = await answer(g.gateway, g.key);
  assert.match(second, /^HTTP\/1\.1 403 /, `answered after the revocation: ${second.split('\r\n')[0]}`);
  assert.ok(!second.includes('SECRET-VALUE'), 'no value released');
  const id = second.match(/x-noisemesh-decision-id: ([0-9a-f]{32})/i)![1];
  const lines = readFileSync(g.auditFile, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  assert.equal(lines[1].decisionId, id);
  assert.equal(lines[1].decision, 'deny');
  assert.equal(lines[1].status, 403);
});

test('a caller that pipelines requests and never reads: the gateway stops reading them, its buffers stay bounded', async (t) => {
  const f = await startGatewayFixture({ policy: POLICY, secrets: SECRETS, callers: [{ agentId: 'payments/api' }], logLevel: 'warn' });
  t.after(() => f.close());
  // No cap on pipelined requests here: what stops the reading is the stream pair's backpressure.
  const g = gatewayOver(f, 'reader', { maxPipelined: 1_000_000 });
  t.after(() => g.close());
  const session = g.gateway.openMeshStream(GATEWAY_PORT, g.key)!;
  t.after(() => session.destroy());
  session.pause();
  // One request a turn, as a session delivers a caller's stream message by message.
  let sent = 0;
  for (; sent < 5000; sent++) {
    if (!session.write(REQUEST)) break;
    await turn();
  }
  for (let i = 0; i < 20; i++) await turn();
  const answered = readFileSync(g.auditFile, 'utf8').split('\n').length - 1;
  assert.ok(sent < 5000, `write() never said stop: ${sent} requests taken, ${answered} answered, ${session.readableLength} bytes of answers held`);
  assert.ok(session.readableLength <= 64 * 1024, `${session.readableLength} bytes of answers held for a caller that does not read`);
  assert.ok(answered < 1000, `${answered} answered`);
});

test('a caller that pipelines a whole message of requests and never reads: a bounded number are decided, then its connection is reset', async (t) => {
  const f = await startGatewayFixture({ policy: POLICY, secrets: `payments/db: {password: "SECRET-VALUE-races-${'x'.repeat(2000)}"}\n`, callers: [{ agentId: 'payments/api' }], logLevel: 'warn' });
  t.after(() => f.close());
  const g = gatewayOver(f, 'flood');
  t.after(() => g.close());
  // Four sessions, each one transport message's worth (64 KiB) of requests: ~1,300 each, in one chunk.
  const sessions = Array.from({ length: 4 }, () => g.gateway.openMeshStream(GATEWAY_PORT, g.key)!);
  t.after(() => sessions.forEach((s) => s.destroy()));
  const closed = sessions.map((s) => new Promise<void>((resolve) => s.once('close', resolve)));
  for (const s of sessions) {
    s.pause();
    s.write(REQUEST.repeat(Math.floor(65535 / REQUEST.length)));
  }
  for (let i = 0; i < 100; i++) await turn();
  const decided = readFileSync(g.auditFile, 'utf8').split('\n').length - 1;
  // Each decided request's answer (2 KiB here) is held for a caller that does not read:
  // what one caller can make the gateway hold must not grow with what it sends.
  const cap = DEFAULT_HTTP_LIMITS.maxPipelined;
  assert.ok(decided <= 4 * cap, `${decided} requests decided and answered into memory for 4 callers that do not read`);
  await Promise.race([Promise.all(closed), new Promise((_, reject) => setTimeout(() => reject(new Error('the sessions were not reset')), 5000))]);

  // A caller that pipelines up to the cap in one chunk and reads gets every answer.
  const session = g.gateway.openMeshStream(GATEWAY_PORT, g.key)!;
  t.after(() => session.destroy());
  let text = '';
  session.on('data', (d: Buffer) => (text += d.toString()));
  session.write(REQUEST.repeat(cap));
  const count = (): number => text.split('HTTP/1.1 200 ').length - 1;
  for (let i = 0; i < 2000 && count() < cap; i++) await turn();
  assert.equal(count(), cap, `${count()} of ${cap} pipelined requests answered`);
});
