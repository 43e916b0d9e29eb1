// The gateway bench's own logic (bench/gateway.ts, bench/gateway/client.ts): its open loop
// never has more requests unanswered on one connection than the gateway allows (64; one more
// and the gateway resets the connection), so a gateway that falls behind for a moment costs
// dropped arrivals, counted, instead of a reset that kills the bench; and its --cases filter
// refuses a name no case has, in one line, before anything starts. Against a real gateway on
// loopback (test/helpers/gateway.ts); no timing bound here is about speed. Its two latencies
// (from the schedule, from the write) keep their order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { request } from 'undici';
import { selectCases } from '../bench/gateway.js';
import { MAX_OUTSTANDING, openLoop, type LoadTarget } from '../bench/gateway/client.js';
import { DEFAULT_HTTP_LIMITS } from '../src/secrets/index.js';
import { startGatewayFixture, type GatewayFixture } from './helpers/gateway.js';
import { repoRoot } from './helpers/paths.js';

const RUN = join(repoRoot, 'dist/bench/run.js');

const POLICY = `rules:
  - id: bench
    paths: ["bench/**"]
    require: {clearance: internal}
`;
const SECRETS = 'bench/db: {password: "bench-password"}\n';

async function invalidCount(f: GatewayFixture): Promise<number> {
  const text = await (await request(`http://127.0.0.1:${f.adminPort}/metrics`)).body.text();
  return Number(/^noisemesh_secret_requests_total\{decision="invalid",rule="none"\} (\d+)$/m.exec(text)?.[1] ?? 0);
}

/**
 * The open loop at 4,000/s over 4 connections for 1 s against the gateway of this process,
 * which is blocked for 300 ms 100 ms in (as a cold gateway falls behind): the ~1,200 arrivals
 * due meanwhile all come due at the first tick after it, before the gateway answers any.
 */
function stalledRun(f: GatewayFixture, maxOutstanding: number) {
  const target: LoadTarget = { port: f.loopbackPort, paths: ['/v1/secrets/bench/db'], expect: 'bench-password' };
  const stall = setTimeout(() => {
    const until = performance.now() + 300;
    while (performance.now() < until);
  }, 100);
  return openLoop(target, 4, 4000, 1000, maxOutstanding).finally(() => clearTimeout(stall));
}

test("the open loop keeps at most the gateway's limit unanswered per connection: behind a stalled gateway it drops and counts, and nothing is reset", async () => {
  assert.equal(MAX_OUTSTANDING, DEFAULT_HTTP_LIMITS.maxPipelined, "the generator's cap is the gateway's own limit");
  const f = await startGatewayFixture({ policy: POLICY, secrets: SECRETS, callers: [{ agentId: 'bench/a' }] });
  try {
    // The fault this guards against: without the cap, the burst after the stall is pipelined
    // on each connection past the gateway's limit, and the gateway resets it.
    await assert.rejects(stalledRun(f, Number.POSITIVE_INFINITY), /gateway bench: connection failed: (read|write) (ECONNRESET|EPIPE)/);
    const invalidBefore = await invalidCount(f);
    const r = await stalledRun(f, MAX_OUTSTANDING);
    assert.equal(r.errors, 0);
    assert.equal(r.fetches + r.dropped, 4000, 'every arrival answered or dropped');
    // At most 4 x 64 of the ~1,200 due at once could be sent.
    assert.ok(r.dropped > 0, 'the arrivals that found every connection full were dropped');
    assert.equal(r.latencies.length, r.fetches);
    // Each request's latency from its write is at most the one from its scheduled time (it is
    // written at or after that time), so the sorted lists hold it rank by rank too; the arrivals
    // due during the stall were written after it, late by up to its 300 ms.
    assert.equal(r.sentLatencies.length, r.fetches);
    for (let i = 0; i < r.fetches; i++) assert.ok(r.sentLatencies[i]! <= r.latencies[i]!, `rank ${i}: ${r.sentLatencies[i]} ms from the write, ${r.latencies[i]} from the schedule`);
    assert.ok(r.latencies[r.fetches - 1]! - r.sentLatencies[r.fetches - 1]! > 0 || r.latencies[Math.floor(r.fetches / 2)]! > r.sentLatencies[Math.floor(r.fetches / 2)]!, 'the generator\'s lag shows between the two');
    assert.equal(await invalidCount(f), invalidBefore, 'the gateway refused nothing (a reset for too many pipelined counts invalid)');
  } finally {
    await f.close();
  }
});

test('--cases picks cases by part of their name; an unknown one is one line, exit 1, before anything starts', () => {
  const picked = selectCases(['file', 'hit', 'miss'], ['offered']);
  assert.deepEqual(picked.map((b) => [b.name, b.cases.map((c) => c.name)]), [['file', ['5,000/s offered, 8 sessions']], ['hit', ['5,000/s offered, 8 sessions']]]);
  assert.equal(selectCases(['miss'], null)[0]!.cases.length, 2, 'no --cases: every case');
  assert.throws(() => selectCases(['miss'], ['offered']), /^Error: --cases: no case of miss is named with 'offered': the cases are '1 session, 1 in flight'; '8 sessions x 8 pipelined'$/);
  assert.throws(() => selectCases(['file'], ['offered', '']), /--cases: no case of file is named with ''/);
  assert.throws(() => selectCases(['disk'], null), /^Error: --backends: unknown 'disk': choose from file, hit, miss$/);

  for (const [args, message] of [
    [['--cases=bogus'], /^--cases: no case of file, hit, miss is named with 'bogus': the cases are '1 session, 1 in flight'; /],
    [['--backends=file', '--cases=offered,nope'], /^--cases: no case of file is named with 'nope'/],
    // Every other mistake too: an unknown option, one without its '=', a duration that is no
    // number (it made the open loop wait forever), an empty or repeated list item, twice one option.
    [['--bogus'], /^unknown option --bogus \(gateway takes --ms= --profile= --backends= --cases=\)$/],
    [['--case=offered'], /^unknown option --case=offered \(gateway takes /],
    [['--cases'], /^unknown option --cases \(gateway takes /],
    [['--ms=abc'], /^--ms=abc: must be milliseconds from 100 to 3600000$/],
    [['--ms=0'], /^--ms=0: must be milliseconds from 100 to 3600000$/],
    [['--ms=1e3'], /^--ms=1e3: must be milliseconds/],
    [['--backends='], /^--backends=: a comma-separated list of backends \(file, hit, miss\), with no empty item$/],
    [['--backends=file,file'], /^--backends: file is named twice$/],
    [['--profile='], /^--profile=: give the directory/],
    // A profile directory node could not write into: node only warns in the gateway's stderr.
    [['--profile=/etc/hostname'], /^--profile=\/etc\/hostname: not a directory the gateway can write its profiles into \((EEXIST|ENOTDIR)\)$/],
    [['--profile=/etc/hostname/x'], /^--profile=\/etc\/hostname\/x: not a directory the gateway can write its profiles into \(ENOTDIR\)$/],
    [['--ms=500', '--ms=600'], /^--ms is given more than once$/],
  ] as const) {
    // Bounded: an option that slipped through would start the bench; the timeout ends it.
    const r = spawnSync(process.execPath, [RUN, 'gateway', ...args], { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGTERM' });
    assert.equal(r.status, 1, `${args.join(' ')}: exit 1 (${r.signal ?? ''}); stderr ${r.stderr}`);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, `one line, no stack: ${r.stderr}`);
    assert.match(lines[0]!, message);
    assert.equal(r.stdout, '', `${args.join(' ')}: refused before anything started or was printed`);
  }
});
