// The audit sink fails closed: when the audit line cannot be written (a full disk: a tmpfs
// filled to the last block; /dev/full), the gateway answers 503 and releases nothing, counts
// it, and answers again once the sink can be written. Needs root (mount) and util-linux.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { fillToLastByte, mountSmallTmpfs } from './helpers/full-disk.js';
import { startGatewayFixture, type GatewayFixture } from './helpers/gateway.js';
import { descriptorAuditSink } from '../src/secrets/index.js';

const POLICY = `rules:
  - id: payments-db
    paths: ["payments/**"]
    agents: ["payments/*"]
    require: {clearance: secrets-only}
`;
const SECRETS = 'payments/db: {password: "SECRET-VALUE-audit"}\n';

async function fetchDb(f: GatewayFixture): Promise<{ status: number; text: string }> {
  const res = await request(`http://127.0.0.1:${f.callers.get('payments/api')!.entryPort}/v1/secrets/payments/db`, { reset: true });
  return { status: res.statusCode, text: await res.body.text() };
}

async function metric(f: GatewayFixture, name: RegExp): Promise<number> {
  const res = await request(`http://127.0.0.1:${f.adminPort}/metrics`);
  return Number((await res.body.text()).match(name)?.[1] ?? 0);
}

test('a full disk under the audit file: 503, nothing released, counted; answers resume once there is room', async (t) => {
  const mountpoint = mountSmallTmpfs(t, 'noisemesh-audit-fs-');
  const f = await startGatewayFixture({ policy: POLICY, secrets: SECRETS, callers: [{ agentId: 'payments/api' }], auditFile: join(mountpoint, 'audit.log') });
  t.after(() => f.close());

  assert.equal((await fetchDb(f)).status, 200);

  // Fill the filesystem to its last byte.
  const filler = fillToLastByte(mountpoint);

  // The audit file's last page may still hold a few lines: the disk fills as it would.
  const failuresBefore = await metric(f, /^noisemesh_secret_audit_failures_total (\d+)/m);
  const answered: string[] = [];
  let first503 = -1;
  for (let i = 0; i < 20 && first503 < 0; i++) {
    const r = await fetchDb(f);
    if (r.status === 503) first503 = i;
    else {
      assert.equal(r.status, 200);
      answered.push(r.text);
    }
  }
  assert.ok(first503 >= 0, 'a 503 once the disk is full');
  for (let i = 0; i < 3; i++) {
    const r = await fetchDb(f);
    assert.equal(r.status, 503);
    assert.ok(!r.text.includes('SECRET-VALUE'), 'no value with a 503');
    assert.match(JSON.parse(r.text).error, /audit log cannot be written/);
  }
  assert.equal(await metric(f, /^noisemesh_secret_audit_failures_total (\d+)/m), failuresBefore + 4);
  assert.equal(await metric(f, /^noisemesh_secret_requests_total\{decision="unavailable",rule="payments-db"\} (\d+)/m), 4);
  assert.ok(f.logLines.some((l) => l.includes('"event":"audit-error"') && l.includes('ENOSPC')));

  unlinkSync(filler);
  const again = await fetchDb(f);
  assert.equal(again.status, 200);
  const text = readFileSync(f.auditFile, 'utf8');
  assert.ok(!text.includes('SECRET-VALUE'));
  // Every answered request has its whole line; a line cut by the full disk stands alone.
  const whole = text.split('\n').flatMap((l) => {
    try {
      return [JSON.parse(l)];
    } catch {
      return [];
    }
  });
  assert.equal(whole.filter((l) => l.status === 200).length, answered.length + 2);
  assert.equal(whole.at(-1).status, 200);
});

test('/dev/full as the audit sink: every fetch and every denial is 503', async (t) => {
  // The gateway's audit file takes regular files only; a descriptor sink takes /dev/full.
  const fd = openSync('/dev/full', 'a');
  const f = await startGatewayFixture({
    policy: POLICY,
    secrets: SECRETS,
    callers: [{ agentId: 'payments/api' }, { agentId: 'payments/low', clearance: 'internal' }],
    auditSink: descriptorAuditSink(fd, '/dev/full'),
  });
  t.after(async () => {
    await f.close();
    closeSync(fd);
  });
  const allowed = await fetchDb(f);
  assert.equal(allowed.status, 503);
  assert.ok(!allowed.text.includes('SECRET-VALUE'));
  const res = await request(`http://127.0.0.1:${f.callers.get('payments/low')!.entryPort}/v1/secrets/payments/db`, { reset: true });
  assert.equal(res.statusCode, 503, 'a denial that cannot be audited is not answered either');
  await res.body.dump();
});

// The audit path is what an operator reads: a line written to a file that was deleted,
// rotated away or replaced is a line nobody will see, so the sink follows the path, and
// when the path names something it cannot append to (a FIFO, a directory), it fails closed.
test('the audit file deleted, rotated or replaced: each line lands at the path, or 503 when the path cannot take it (a FIFO, anything but a regular file)', async (t) => {
  const f = await startGatewayFixture({ policy: POLICY, secrets: SECRETS, callers: [{ agentId: 'payments/api' }] });
  t.after(() => f.close());
  const lines = (file: string): { decisionId: string; status: number }[] =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l));
  const decisionOf = (text: string): string => JSON.parse(text).decisionId ?? '';
  const fetchIdOf = async (): Promise<{ status: number; id: string }> => {
    const res = await request(`http://127.0.0.1:${f.callers.get('payments/api')!.entryPort}/v1/secrets/payments/db`, { reset: true });
    const text = await res.body.text();
    return { status: res.statusCode, id: res.headers['x-noisemesh-decision-id'] as string ?? decisionOf(text) };
  };

  const first = await fetchIdOf();
  assert.equal(first.status, 200);
  assert.equal(lines(f.auditFile).at(-1)!.decisionId, first.id);

  // Deleted: the line goes to a new file at the path (created 0600), not into the unlinked one.
  unlinkSync(f.auditFile);
  const afterDelete = await fetchIdOf();
  assert.equal(afterDelete.status, 200);
  assert.deepEqual(lines(f.auditFile).map((l) => l.decisionId), [afterDelete.id]);
  assert.equal(statSync(f.auditFile).mode & 0o777, 0o600);

  // Rotated (renamed away, as logrotate does without copytruncate): the next line is in the new file.
  renameSync(f.auditFile, `${f.auditFile}.1`);
  const afterRotate = await fetchIdOf();
  assert.equal(afterRotate.status, 200);
  assert.deepEqual(lines(`${f.auditFile}.1`).map((l) => l.decisionId), [afterDelete.id]);
  assert.deepEqual(lines(f.auditFile).map((l) => l.decisionId), [afterRotate.id]);

  // Replaced by a FIFO, or by a symlink to one: nothing can be appended, so nothing is released.
  const fifo = `${f.auditFile}.fifo`;
  const made = spawnSync('mkfifo', [fifo]);
  if (made.error) assert.fail(`mkfifo is missing: install coreutils (${made.error.message})`);
  for (const replace of [() => renameSync(fifo, f.auditFile), () => symlinkSync(fifo, f.auditFile)]) {
    if (!existsSync(fifo)) assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    rmSync(f.auditFile, { force: true });
    replace();
    const refused = await request(`http://127.0.0.1:${f.callers.get('payments/api')!.entryPort}/v1/secrets/payments/db`, { reset: true });
    const text = await refused.body.text();
    assert.equal(refused.statusCode, 503);
    assert.ok(!text.includes('SECRET-VALUE'));
    assert.equal(JSON.parse(text).reason, 'audit_unavailable');
  }
  assert.ok(f.logLines.some((l) => l.includes('"event":"audit-error"')));

  // Replaced by a symlink to a character device that swallows what it is given (/dev/null):
  // the path was a regular file, so nothing else takes its lines.
  rmSync(f.auditFile, { force: true });
  symlinkSync('/dev/null', f.auditFile);
  const swallowed = await request(`http://127.0.0.1:${f.callers.get('payments/api')!.entryPort}/v1/secrets/payments/db`, { reset: true });
  const swallowedText = await swallowed.body.text();
  assert.equal(swallowed.statusCode, 503, 'a symlink to /dev/null in place of the audit file');
  assert.ok(!swallowedText.includes('SECRET-VALUE'));
  assert.equal(JSON.parse(swallowedText).reason, 'audit_unavailable');

  // A regular file again: answers resume, with their lines in it.
  rmSync(f.auditFile, { force: true });
  rmSync(fifo, { force: true });
  const resumed = await fetchIdOf();
  assert.equal(resumed.status, 200);
  assert.deepEqual(lines(f.auditFile).map((l) => l.decisionId), [resumed.id]);
});
