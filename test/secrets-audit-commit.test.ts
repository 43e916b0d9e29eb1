// The audit group commit (src/secrets/audit-commit.ts) and the sink's batch write: the lines
// of one event-loop turn go out in one write, each request is told only after its line is in
// the file, and a write that fails (a full disk: a tmpfs filled to the last block; /dev/full)
// fails exactly the requests whose lines are not whole, while those before them go on. The
// gateway answers pipelined requests from one batch. The tmpfs case needs root (mount) and
// util-linux.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as turn } from 'node:timers/promises';
import { AuditGroupCommit, AuditOpenError, AuditWriteError, descriptorAuditSink, openAuditFile, type AuditSink } from '../src/secrets/index.js';
import { fillToLastByte, mountSmallTmpfs } from './helpers/full-disk.js';
import { startGatewayFixture } from './helpers/gateway.js';

const dir = mkdtempSync(join(tmpdir(), 'noisemesh-audit-commit-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const line = (i: number, pad = 0): string => JSON.stringify({ i, pad: 'x'.repeat(pad) });

test('the lines appended in one turn are written together, in order, and each request is told only after the write', async () => {
  const file = join(dir, 'one-turn.log');
  const sink = openAuditFile(file);
  const commit = new AuditGroupCommit(sink);
  const told: (AuditWriteError | null)[] = [];
  const seenAtTelling: number[] = [];
  for (let i = 0; i < 50; i++) {
    commit.append(line(i), (err) => {
      told.push(err);
      seenAtTelling.push(readFileSync(file, 'utf8').split('\n').length - 1);
    });
  }
  assert.equal(commit.pending, 50);
  assert.equal(readFileSync(file, 'utf8'), '', 'nothing written before the end of the turn');
  assert.deepEqual(told, [], 'nobody told before the write');
  await turn();
  assert.equal(commit.batches, 1, 'one batch for the turn');
  assert.deepEqual(told, Array(50).fill(null));
  assert.ok(seenAtTelling.every((n) => n === 50), 'every line was in the file before the first request was told');
  assert.deepEqual(readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l).i), Array.from({ length: 50 }, (_, i) => i));

  // The next turn is the next batch.
  commit.append(line(50), () => {});
  await turn();
  assert.equal(commit.batches, 2);
  sink.close();
});

test('a batch is written at once when it passes maxBatchChars: memory is bounded within one turn', () => {
  const file = join(dir, 'bounded.log');
  const sink = openAuditFile(file);
  const scheduled: (() => void)[] = [];
  const commit = new AuditGroupCommit(sink, { maxBatchChars: 1000, schedule: (w) => scheduled.push(w) });
  let told = 0;
  for (let i = 0; i < 30; i++) commit.append(line(i, 90), () => told++);
  // 100-character lines: every 10th fills a batch, written there and then.
  assert.equal(commit.batches, 3);
  assert.equal(told, 30);
  assert.equal(commit.pending, 0);
  assert.equal(readFileSync(file, 'utf8').split('\n').length - 1, 30);
  for (const w of scheduled) w();
  assert.equal(commit.batches, 3, 'the end of the turn finds nothing left');
  sink.close();
});

test('a revise hook runs just before the write: its line replaces the one appended; one that throws fails only its own request', async () => {
  const file = join(dir, 'revise.log');
  const sink = openAuditFile(file);
  const commit = new AuditGroupCommit(sink);
  const told: (AuditWriteError | null)[] = [];
  let revisedAt = -1;
  commit.append(line(0), (err) => told.push(err));
  commit.append(line(1), (err) => told.push(err), () => {
    revisedAt = readFileSync(file, 'utf8').length;
    return line(101);
  });
  commit.append(line(2), (err) => told.push(err), () => {
    throw new Error('a handler that breaks');
  });
  commit.append(line(3), (err) => told.push(err), () => undefined);
  await turn();
  assert.equal(revisedAt, 0, 'revised before anything of the batch was written');
  assert.deepEqual(readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l).i), [0, 101, 3]);
  assert.equal(told.length, 4);
  assert.ok(told[0] instanceof AuditWriteError, 'the throwing one is told first, its line never written');
  assert.deepEqual(told.slice(1), [null, null, null]);
  sink.close();
});

test('a sink that throws (against its contract) fails its batch: every request is told, nothing escapes the turn', async () => {
  // An AuditSink of another kind than the file's, whose writeLines breaks its promise not to throw.
  const throwing: AuditSink = {
    description: 'throwing',
    write: () => {
      throw new Error('EIO');
    },
    writeLines: () => {
      throw Object.assign(new Error('broken'), { code: 'EIO' });
    },
    close: () => {},
  };
  const commit = new AuditGroupCommit(throwing);
  const told: (AuditWriteError | null)[] = [];
  for (let i = 0; i < 3; i++) commit.append(line(i), (err) => told.push(err));
  commit.flush();
  assert.equal(told.length, 3);
  for (const err of told) {
    assert.ok(err instanceof AuditWriteError);
    assert.equal(err.errno, 'EIO');
  }
});

test('/dev/full: every request of the batch is told the write failed', async () => {
  // openAuditFile takes regular files only; the descriptor sink takes what it is given.
  const fd = openSync('/dev/full', 'a');
  const sink = descriptorAuditSink(fd, '/dev/full');
  const commit = new AuditGroupCommit(sink);
  const told: (AuditWriteError | null)[] = [];
  for (let i = 0; i < 5; i++) commit.append(line(i), (err) => told.push(err));
  await turn();
  assert.equal(told.length, 5);
  for (const err of told) {
    assert.ok(err instanceof AuditWriteError);
    assert.equal(err.errno, 'ENOSPC');
  }
  sink.close();
  closeSync(fd);
});

test('the audit file is a regular file from the first open: a device (/dev/null takes every line and keeps none), a directory or a FIFO is refused in one line naming the setting', () => {
  for (const path of ['/dev/null', '/dev/full', dir]) {
    assert.throws(() => openAuditFile(path), (err: Error) => err instanceof AuditOpenError && /^gateway\.audit\.file: .* (is not a regular file \(a device, FIFO, socket or directory\)|cannot be opened for appending \(EISDIR\))/.test(err.message));
  }
  const link = join(dir, 'to-null.log');
  symlinkSync('/dev/null', link);
  assert.throws(() => openAuditFile(link), /to-null\.log is not a regular file/);
});

test('a closed sink fails the batch with EBADF, not an exception', async () => {
  const sink = openAuditFile(join(dir, 'closed.log'));
  sink.close();
  const commit = new AuditGroupCommit(sink);
  let told: AuditWriteError | null | undefined;
  commit.append(line(0), (err) => (told = err));
  await turn();
  assert.ok(told instanceof AuditWriteError);
  assert.equal(told.errno, 'EBADF');
});

test('a disk that fills in the middle of a batch: the whole lines\' requests go on, the rest fail; the cut line stands alone', async (t) => {
  const mountpoint = mountSmallTmpfs(t, 'noisemesh-audit-commit-fs-');
  const file = join(mountpoint, 'audit.log');
  // 100 bytes: the file holds one 4 KiB page, with 3,996 bytes of room left in it.
  writeFileSync(file, `${'#'.repeat(99)}\n`);
  const filler = fillToLastByte(mountpoint);

  const sink = openAuditFile(file);
  const commit = new AuditGroupCommit(sink);
  const told: (AuditWriteError | null)[] = [];
  // Six lines of 1,000 bytes (with the newline): three fit in the page, the fourth is cut.
  for (let i = 0; i < 6; i++) commit.append(line(i, 999 - line(i).length), (err) => told.push(err));
  await turn();
  assert.deepEqual(told.slice(0, 3), [null, null, null], 'the three whole lines: their requests go on');
  for (const err of told.slice(3)) {
    assert.ok(err instanceof AuditWriteError, 'the cut line and those after it: their requests fail');
    assert.equal(err.errno, 'ENOSPC');
  }

  unlinkSync(filler);
  let after: AuditWriteError | null | undefined;
  commit.append(line(99), (err) => (after = err));
  await turn();
  assert.equal(after, null, 'answers resume once there is room');
  const lines = readFileSync(file, 'utf8').split('\n');
  assert.equal(lines.at(-1), '', 'the file ends with a whole line');
  const parsed = lines.slice(1, -1).flatMap((l) => {
    try {
      return [JSON.parse(l).i as number];
    } catch {
      return [];
    }
  });
  assert.deepEqual(parsed, [0, 1, 2, 99], 'the cut line is a line of its own, and the next starts after it');
  assert.equal(lines.length, 1 + 5 + 1, 'the 100-byte head, three lines, the cut one, the next, and the end');
  sink.close();
});

test('the gateway answers a burst of pipelined requests, each after its audit line, every line whole', async (t) => {
  const policy = `rules:
  - id: self
    paths: ["payments/**"]
    agents: ["noisemesh-system/*"]
    require: {clearance: secrets-only, networkExposure: loopback}
`;
  const f = await startGatewayFixture({ policy, secrets: 'payments/db: {password: "SECRET-VALUE-commit"}\n', callers: [], logLevel: 'warn' });
  t.after(() => f.close());
  const count = 40;
  const socket = connect({ host: '127.0.0.1', port: f.loopbackPort });
  t.after(() => socket.destroy());
  socket.write('GET /v1/secrets/payments/db HTTP/1.1\r\nHost: g\r\n\r\n'.repeat(count));
  let text = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${text.split('HTTP/1.1 ').length - 1} answers`)), 10_000);
    socket.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.split('HTTP/1.1 200 ').length - 1 === count && text.endsWith('}')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const ids = [...text.matchAll(/x-noisemesh-decision-id: ([0-9a-f]{32})/gi)].map((m) => m[1]);
  assert.equal(ids.length, count);
  assert.equal(new Set(ids).size, count, 'a decision id each');
  const audit = readFileSync(f.auditFile, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(audit.map((l) => l.decisionId), ids, 'one whole line per answer, in order');
  assert.ok(audit.every((l) => l.status === 200 && l.networkExposure === 'loopback'));
  assert.ok(!readFileSync(f.auditFile, 'utf8').includes('SECRET-VALUE'));
});
