/**
 * Gated secret fetches per second through the mesh, and their latency: a client proxy, a
 * gateway proxy serving the secrets API in-process (file backend, a one-rule policy, audit
 * lines to a file), real sockets on loopback. Cases:
 *
 * - `keep-alive, 1 connection`: one session, requests one after another (latency p50/p99);
 * - `keep-alive, 16 connections`: sixteen sessions, each with one request in flight (throughput);
 * - `new session per request`: a connection (a Noise handshake) for every request.
 *
 * Same-run baseline: the same SecretsGateway, policy, backend and audit sink, reached over
 * its plain loopback listener (`gateway.loopback`) instead of through two proxies: what the
 * mesh adds is the difference. Client and servers share this process (and its 2 cores with
 * whatever else runs), so absolute figures are a floor; bench/README.md, section gateway.
 */
import { performance } from 'node:perf_hooks';
import { Client, request } from 'undici';
import { startGatewayFixture } from '../test/helpers/gateway.js';
import type { BenchModule } from './lib/module.js';
import { quantile } from './lib/stats.js';
import { formatRate, formatTable } from './lib/table.js';

const POLICY = `rules:
  - id: payments-db
    paths: ["payments/**"]
    agents: ["payments/*"]
    require: {clearance: secrets-only, authnStrength: high, maxFreshnessSeconds: 3600}
`;
const SECRETS = 'payments/db: {username: app, password: "bench-password"}\n';
const PATH = '/v1/secrets/payments/db';
const CASE_MS = 3000;
const WARMUP_MS = 1000;

interface Result {
  readonly fetches: number;
  readonly seconds: number;
  /** Per-request latencies, ms, sorted. */
  readonly latencies: number[];
}

async function keepAlive(port: number, connections: number, ms: number): Promise<Result> {
  const clients = Array.from({ length: connections }, () => new Client(`http://127.0.0.1:${port}`, { pipelining: 1 }));
  const latencies: number[] = [];
  const started = performance.now();
  const until = started + ms;
  await Promise.all(
    clients.map(async (client) => {
      while (performance.now() < until) {
        const t0 = performance.now();
        const res = await client.request({ path: PATH, method: 'GET' });
        const body = await res.body.text();
        if (res.statusCode !== 200 || !body.includes('bench-password')) throw new Error(`fetch failed: ${res.statusCode}`);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(clients.map((c) => c.close()));
  return { fetches: latencies.length, seconds, latencies: latencies.sort((a, b) => a - b) };
}

async function newSessionEach(port: number, ms: number): Promise<Result> {
  const latencies: number[] = [];
  const started = performance.now();
  while (performance.now() < started + ms) {
    const t0 = performance.now();
    const res = await request(`http://127.0.0.1:${port}${PATH}`, { reset: true });
    const body = await res.body.text();
    if (res.statusCode !== 200 || !body.includes('bench-password')) throw new Error(`fetch failed: ${res.statusCode}`);
    latencies.push(performance.now() - t0);
  }
  return { fetches: latencies.length, seconds: (performance.now() - started) / 1000, latencies: latencies.sort((a, b) => a - b) };
}

function row(name: string, path: string, r: Result): string[] {
  return [name, path, formatRate(r.fetches / r.seconds), quantile(r.latencies, 0.5).toFixed(3), quantile(r.latencies, 0.99).toFixed(3), String(r.fetches)];
}

export const gatewayBench: BenchModule = {
  name: 'gateway',
  description: 'gated secret fetches through the mesh (client proxy -> gateway), against the same API over plain loopback',
  async run() {
    const f = await startGatewayFixture({ policy: POLICY, secrets: SECRETS, callers: [{ agentId: 'payments/api' }], logLevel: 'warn' });
    try {
      const mesh = f.callers.get('payments/api')!.entryPort;
      // The loopback listener's caller is the gateway itself: a rule for it, the same shape.
      f.gateway.setPolicy((await import('../src/trust-vector/index.js')).parsePolicy(`${POLICY}  - id: self\n    paths: ["payments/**"]\n    agents: ["noisemesh-system/*"]\n    require: {clearance: secrets-only, authnStrength: high, maxFreshnessSeconds: 3600, networkExposure: loopback}\n`));
      const plain = f.loopbackPort;
      const rows: string[][] = [];
      const cases: [string, (port: number, ms: number) => Promise<Result>][] = [
        ['keep-alive, 1 connection', (p, ms) => keepAlive(p, 1, ms)],
        ['keep-alive, 16 connections', (p, ms) => keepAlive(p, 16, ms)],
        ['new session per request', newSessionEach],
      ];
      for (const [name, run] of cases) {
        // Interleaved: mesh, plain, mesh, plain; each pair's second half reported.
        await run(mesh, WARMUP_MS);
        await run(plain, WARMUP_MS);
        rows.push(row(name, 'mesh', await run(mesh, CASE_MS)));
        rows.push(row(name, 'plain loopback (baseline)', await run(plain, CASE_MS)));
      }
      console.log(formatTable(['case', 'path', 'fetches/s', 'p50 ms', 'p99 ms', 'fetches'], rows));
      console.log('\ngoals (issue 11): >= 5,000 fetches/s warm, p99 <= 5 ms');
    } finally {
      await f.close();
    }
  },
};
