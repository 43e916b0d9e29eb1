/**
 * Gated secret fetches per second through the mesh, and their latency, with the gateway in a
 * process of its own: `noisemesh gateway --config` (the real CLI), a `noisemesh proxy
 * --config` process for the caller, and the load generator (bench/gateway/client.ts, raw
 * sockets, pipelined) in this process; for the cache cases the Vault test double in a fourth.
 * Every fetch is decided by the policy (bench/gateway/processes.ts) and audited to a file.
 *
 * Backends (one gateway process each):
 * - `file`: the file backend, in memory, no cache (as deployed with it);
 * - `cache hit`: the Vault double behind the cache, TTL 30 s, warmed: every fetch a hit;
 * - `cache miss`: the same with TTL 0 over 1,000 distinct paths: every fetch a Vault read.
 *
 * Cases: one session, one request in flight (latency); 8 sessions with 8 pipelined requests
 * each (the ceiling); 5,000 fetches/s offered over 8 sessions, latency from each request's
 * scheduled time (the goal's p99), at most the gateway's 64 unanswered per session, an arrival
 * finding every session full dropped and counted; a new session (a Noise handshake) per
 * request, 8 at a time. p50 and p99 as k6 computes p(N) (bench/lib/stats.ts, quantile).
 *
 * Beside throughput and latency, the CPU time the gateway process and the client proxy process
 * spent per fetch (/proc, user + system): the cost of a fetch, which a loaded machine moves
 * far less than it moves wall-clock figures; 1e6 / (gateway us) is the gateway's ceiling on
 * one core of its own.
 *
 * Same-run baselines: the same gateway process over its plain loopback listener
 * (`gateway.loopback`), without the client proxy and the Noise session; mesh and baseline
 * alternate, each after its own warm-up. For the offered case also the host floor: the same
 * generator at the same rate against a bare node:http server in a process of its own that
 * answers the gateway's bytes and does nothing else (bench/gateway/floor-main.ts), and each
 * open-loop latency twice: from the request's scheduled time (the goal's) and from its write
 * (k6's http_req_duration), the difference being the generator's own lag. Options: `--backends=file,hit,miss`, `--cases=` (a
 * comma-separated list of parts of case names, e.g. `--cases=offered,pipelined`), `--ms=3000`,
 * `--profile=DIR` (the gateway runs under `node --cpu-prof`, its profile written to DIR).
 */
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listOption, optionValue, wholeOption, type BenchModule } from './lib/module.js';
import { quantile } from './lib/stats.js';
import { formatRate, formatTable } from './lib/table.js';
import { MAX_OUTSTANDING, closedLoop, newConnectionEach, openLoop, type LoadResult, type LoadTarget } from './gateway/client.js';
import { startFloor, startGateway, type BackendSetup, type GatewaySetup } from './gateway/processes.js';
import { get } from '../test/helpers/process.js';

const WARMUP_MS = 1000;
const GOAL_RATE = 5000;
const MISS_PATHS = 1000;

/** A case's result, with the CPU each process spent per fetch (microseconds). */
interface Measured extends LoadResult {
  readonly gatewayUs: number;
  readonly clientUs: number;
}

interface Case {
  readonly name: string;
  run(target: LoadTarget, ms: number): Promise<LoadResult>;
}

const LATENCY: Case = { name: '1 session, 1 in flight', run: (t, ms) => closedLoop(t, 1, 1, ms) };
const CEILING: Case = { name: '8 sessions x 8 pipelined', run: (t, ms) => closedLoop(t, 8, 8, ms) };
const AT_GOAL: Case = { name: `${GOAL_RATE.toLocaleString('en-US')}/s offered, 8 sessions`, run: (t, ms) => openLoop(t, 8, GOAL_RATE, ms) };
const NEW_SESSION: Case = { name: 'new session per request, 8 at a time', run: (t, ms) => newConnectionEach(t, 8, ms) };

const BACKENDS: Readonly<Record<string, { label: string; setup: BackendSetup; paths: string[]; cases: Case[] }>> = {
  file: { label: 'file (no cache)', setup: { kind: 'file' }, paths: ['/v1/secrets/payments/db'], cases: [LATENCY, CEILING, AT_GOAL, NEW_SESSION] },
  hit: { label: 'cache hit (vault, ttl 30 s)', setup: { kind: 'vault', ttlSeconds: 30, paths: 0 }, paths: ['/v1/secrets/payments/db'], cases: [LATENCY, CEILING, AT_GOAL] },
  miss: {
    label: `cache miss (vault, ttl 0, ${MISS_PATHS} paths)`,
    setup: { kind: 'vault', ttlSeconds: 0, paths: MISS_PATHS },
    paths: Array.from({ length: MISS_PATHS }, (_, i) => `/v1/secrets/payments/s${i}`),
    cases: [LATENCY, CEILING],
  },
};

/**
 * The backends and, of each, the cases to run: every one, or those whose name holds one of
 * `cases` (parts of names). An unknown backend, or a part no case of those backends holds,
 * is refused in one line before anything starts.
 */
export function selectCases(backends: readonly string[], cases: readonly string[] | null): { name: string; cases: Case[] }[] {
  for (const name of backends) {
    if (BACKENDS[name] === undefined) throw new Error(`--backends: unknown '${name}': choose from ${Object.keys(BACKENDS).join(', ')}`);
  }
  const all = [...new Set(backends.flatMap((name) => BACKENDS[name]!.cases.map((c) => c.name)))];
  for (const part of cases ?? []) {
    if (part === '' || !all.some((c) => c.includes(part))) {
      throw new Error(`--cases: no case of ${backends.join(', ')} is named with '${part}': the cases are ${all.map((c) => `'${c}'`).join('; ')}`);
    }
  }
  return backends
    .map((name) => ({ name, cases: BACKENDS[name]!.cases.filter((c) => cases === null || cases.some((part) => c.name.includes(part))) }))
    .filter((b) => b.cases.length > 0);
}

/** Free ports are picked before the processes bind them: on a shared machine another may take one first. */
async function startWithRetries(setup: BackendSetup, nodeFlags: readonly string[]): Promise<GatewaySetup> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startGateway(setup, nodeFlags);
    } catch (err) {
      if (attempt === 3) throw err;
      console.error(`(start failed, trying again: ${(err as Error).message.split('\n')[0]})`);
    }
  }
}

export interface GatewayOptions {
  readonly ms: number;
  readonly profile: string | undefined;
  readonly selected: { name: string; cases: Case[] }[];
}

/**
 * The directory node will write the gateway's CPU profile into, made if missing and tried with
 * a file of our own: node only warns, in the gateway's stderr, when it cannot write a profile.
 */
function checkProfileDirectory(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    const probe = join(dir, `.noisemesh-probe-${process.pid}`);
    writeFileSync(probe, '', { flag: 'wx' });
    unlinkSync(probe);
  } catch (err) {
    throw new Error(`--profile=${dir}: not a directory the gateway can write its profiles into (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** The gateway module's options, each checked (one line naming it) before anything starts. */
export function parseGatewayOptions(args: readonly string[]): GatewayOptions {
  const ms = wholeOption(args, 'ms', 'milliseconds', 100, 3_600_000) ?? 3000;
  const profile = optionValue(args, 'profile');
  if (profile === '') throw new Error('--profile=: give the directory for the gateway\'s CPU profiles');
  if (profile !== undefined) checkProfileDirectory(profile);
  const names = listOption(args, 'backends', `backends (${Object.keys(BACKENDS).join(', ')})`) ?? ['file', 'hit', 'miss'];
  const cases = listOption(args, 'cases', 'parts of case names') ?? null;
  return { ms, profile, selected: selectCases(names, cases) };
}

export const gatewayBench: BenchModule = {
  name: 'gateway',
  description: 'gated secret fetches through the mesh (generator -> client proxy process -> gateway process), against the same gateway over plain loopback',
  options: ['--ms=', '--profile=', '--backends=', '--cases='],
  check: parseGatewayOptions,
  async run(options) {
    const { ms, profile, selected } = parseGatewayOptions(options);
    const rows: string[][] = [];
    // The open loop's latencies both ways, and the body the floor server answers (the gateway's own).
    const openRows: string[][] = [];
    let floorBody: string | undefined;
    const openCells = (r: LoadResult, serverUs: number): string[] =>
      r.latencies.length === 0
        ? [formatRate(r.fetches / r.seconds), '-', '-', '-', '-', '-']
        : [formatRate(r.fetches / r.seconds), quantile(r.latencies, 0.5).toFixed(2), quantile(r.latencies, 0.99).toFixed(2), quantile(r.sentLatencies, 0.99).toFixed(2), r.latencies[r.latencies.length - 1]!.toFixed(2), serverUs.toFixed(0)];
    for (const { name, cases } of selected) {
      const b = BACKENDS[name]!;
      const g = await startWithRetries(b.setup, profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profile]);
      let answered = 0;
      try {
        const mesh: LoadTarget = { port: g.meshPort, paths: b.paths, expect: 'bench-password' };
        const plain: LoadTarget = { ...mesh, port: g.loopbackPort };
        const run = async (c: Case, t: LoadTarget, d: number): Promise<Measured> => {
          const before = g.cpuSeconds();
          const r = await c.run(t, d);
          const after = g.cpuSeconds();
          answered += r.fetches;
          if (r.errors > 0) throw new Error(`${b.label}, ${c.name}: ${r.errors} of ${r.fetches} fetches failed`);
          return { ...r, gatewayUs: ((after.gateway - before.gateway) * 1e6) / r.fetches, clientUs: ((after.client - before.client) * 1e6) / r.fetches };
        };
        for (const c of cases) {
          await run(c, mesh, WARMUP_MS);
          const m = await run(c, mesh, ms);
          await run(c, plain, WARMUP_MS);
          const p = await run(c, plain, ms);
          const rate = (r: LoadResult): number => r.fetches / r.seconds;
          // A case where every arrival was dropped has no latency to take a percentile of: '-', not NaN.
          const percentile = (r: Measured, q: number): string => (r.latencies.length === 0 ? '-' : quantile(r.latencies, q).toFixed(2));
          const cells = (r: Measured): string[] => [formatRate(rate(r)), String(r.dropped), percentile(r, 0.5), percentile(r, 0.99), r.fetches === 0 ? '-' : r.gatewayUs.toFixed(0)];
          rows.push([b.label, c.name, ...cells(m), m.fetches === 0 ? '-' : m.clientUs.toFixed(0), ...cells(p), (rate(m) / rate(p)).toFixed(2)]);
          if (c === AT_GOAL) {
            openRows.push([b.label, 'mesh', ...openCells(m, m.gatewayUs)], [b.label, 'loopback', ...openCells(p, p.gatewayUs)]);
            if (floorBody === undefined) {
              const answer = await get(g.loopbackPort, b.paths[0]!);
              if (answer.status !== 200 || !answer.body.includes(mesh.expect)) throw new Error(`${b.label}: the floor's body: the gateway answered ${answer.status}`);
              floorBody = answer.body;
            }
          }
        }
        // Every answered fetch was audited first: a line each (a check that the bench measured that).
        const lines = readFileSync(g.auditFile, 'latin1').split('\n').length - 1;
        if (lines < answered) throw new Error(`${b.label}: ${answered} fetches answered but ${lines} audit lines written`);
      } finally {
        await g.close().catch(() => {});
      }
    }
    console.log(
      formatTable(['backend', 'case', 'mesh /s', 'dropped', 'p50 ms', 'p99 ms', 'gw us', 'client us', 'loopback /s', 'dropped', 'p50 ms', 'p99 ms', 'gw us', 'mesh/loopback'], rows),
    );
    console.log('\ngw us, client us: CPU time (user + system) of the gateway process and of the client proxy process per fetch, microseconds');
    console.log(`dropped: arrivals of the open loop not sent because every session had ${MAX_OUTSTANDING} requests unanswered (the gateway's per-connection limit); p50, p99: k6's p(N), interpolated between the two closest ranks`);
    if (floorBody !== undefined) {
      // The same generator at the same rate against a server that does nothing but answer the
      // same bytes: what this host and generator cost a request, measured in this run.
      const floor = await startFloor(floorBody);
      try {
        const target: LoadTarget = { port: floor.port, paths: selected.flatMap((s) => BACKENDS[s.name]!.paths).slice(0, 1), expect: 'bench-password' };
        await AT_GOAL.run(target, WARMUP_MS);
        const before = floor.cpuSeconds();
        const f = await AT_GOAL.run(target, ms);
        const us = ((floor.cpuSeconds() - before) * 1e6) / f.fetches;
        if (f.errors > 0) throw new Error(`the floor server: ${f.errors} of ${f.fetches} requests failed`);
        openRows.push(['-', 'bare node:http server (floor)', ...openCells(f, us)]);
      } finally {
        await floor.close();
      }
      console.log(`\n${AT_GOAL.name}: latency from each request's scheduled time (the goal's p99) and from its write (what k6's http_req_duration measures)`);
      console.log(formatTable(['backend', 'path', 'answered /s', 'p50 ms', 'p99 ms', 'p99 from write ms', 'max ms', 'server us'], openRows));
      console.log("floor: a bare node:http server in a process of its own answering the gateway's bytes, no decision, read or audit, the same generator in this run: what this host and generator cost any request; server us: CPU of the answering process per request");
    }
    console.log(`\ngoals (issue 11): >= ${GOAL_RATE.toLocaleString('en-US')} fetches/s warm, p99 <= 5 ms`);
    if (profile !== undefined) console.log(`gateway CPU profiles: ${profile}`);
  },
};
