/**
 * The proxy's data plane against its baselines, all in one run on one pair of pods: plain
 * TCP, wireguard-go, a TLS 1.3 mutual-certificate stunnel pair, a plain Node.js relay pair
 * (the floor under any Node proxy), and noisemesh with its default suite and with
 * AESGCM/SHA256. Same namespaces, same servers in pod B, same unmodified clients in pod A
 * (iperf3 and the node clients of bench/proxy/). bench/README.md, section Proxy, explains
 * every figure and records the last results.
 *
 *   npm run bench -- proxy            (root; about 6 minutes)
 *   npm run bench -- proxy --quick    (one short round, 2,000 idle sessions: checks the bench itself)
 *
 * The paths are measured in interleaved rounds (each round measures every path in turn), so a
 * burst of load elsewhere on the machine lands on all of them rather than on one. Every
 * baseline's daemons stay up throughout; noisemesh's iptables rules are installed for its
 * turns and removed for the others'.
 */
import { mkdtempSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchModule } from './lib/module.js';
import { exitOnInterrupt } from './lib/interrupt.js';
import { summarize } from './lib/stats.js';
import { cpuTicks, stealShare, ticksBetween, type CpuTicks } from './lib/machine.js';
import {
  CONNECT_CONCURRENCY,
  IDLE_SESSIONS,
  IDLE_WARMUP,
  LATENCY_RATE,
  LATENCY_SIZES,
  LATENCY_WARMUP_MS,
  connectRate,
  idleMemory,
  latencyRound,
  summarizeLatency,
  throughput,
  type Durations,
  type IdleMemory,
} from './proxy/measure.js';
import { NoisemeshPair } from './proxy/noisemesh.js';
import {
  MESH_PORTS,
  NOFILE,
  PORTS,
  PodNetwork,
  idleSessionsFor,
  requireBenchTools,
  startServers,
  tunePod,
  type Endpoint,
  type Pod,
  type Service,
} from './proxy/pods.js';
import { startRelay, type RelayPath } from './proxy/relay.js';
import {
  SUITES,
  goals,
  goalsTable,
  latencyTable,
  memoryTable,
  suiteComparison,
  throughputTable,
  type PathKey,
  type PathResult,
} from './proxy/report.js';
import { startStunnel, type StunnelPath } from './proxy/stunnel.js';
import { removeStaleControlSockets, startWireguard } from './proxy/wireguard.js';

const FULL: Durations = { rounds: 3, throughputSeconds: 2, latencySeconds: 4, connectWarmupMs: 500, connectMs: 2000 };
const QUICK: Durations = { rounds: 1, throughputSeconds: 2, latencySeconds: 2, connectWarmupMs: 500, connectMs: 1500 };
const WARM_UP = { throughputSeconds: 1, latencySeconds: 2 } as const;

function log(line: string): void {
  process.stderr.write(`[proxy bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

/** One path under measurement: where its client connects, and what its turn needs set up. */
interface PathUnderTest {
  readonly key: PathKey;
  readonly name: string;
  endpoint(service: Service): Endpoint;
  /**
   * Before its turn (install capture rules, switch suite); after it (remove them). Resolves
   * true when it had to start its daemons afresh, which are then warmed up before measuring.
   */
  enter(): Promise<boolean>;
  leave(): Promise<void>;
}

/**
 * Traffic that is not counted: a daemon's first seconds are not its steady state (V8 is
 * still compiling a Node proxy's hot paths: in the first 3.5 s after a bulk run, a freshly
 * started noisemesh pair had 2-5x the round trips over 2 ms it had later in the same
 * process). Every path gets this before the first round, and noisemesh again after each
 * restart, so every path is measured warm.
 */
async function warmUp(net: PodNetwork, a: Pod, path: PathUnderTest): Promise<void> {
  await throughput(net, a, path.endpoint('iperf'), WARM_UP.throughputSeconds);
  for (const bytes of LATENCY_SIZES) await latencyRound(net, a, path.endpoint('echo'), bytes, WARM_UP.latencySeconds);
}

/** What one path collected over all rounds. */
interface Collected {
  readonly throughput: number[];
  readonly latency: Map<number, number[][]>;
  /** CPU ticks of the machine during each latency round, by message size. */
  readonly latencyTicks: Map<number, (CpuTicks | null)[]>;
  readonly connect: number[];
  failed: number;
}

async function measureRound(net: PodNetwork, a: Pod, path: PathUnderTest, d: Durations, into: Collected): Promise<void> {
  into.throughput.push(await throughput(net, a, path.endpoint('iperf'), d.throughputSeconds));
  for (const bytes of LATENCY_SIZES) {
    const before = cpuTicks();
    into.latency.get(bytes)!.push(await latencyRound(net, a, path.endpoint('echo'), bytes, d.latencySeconds));
    into.latencyTicks.get(bytes)!.push(ticksBetween(before, cpuTicks()));
  }
  const c = await connectRate(net, a, path.endpoint('once'), d);
  into.connect.push(c.perSecond);
  into.failed += c.failed;
}

async function run(args: readonly string[]): Promise<void> {
  const quick = args.includes('--quick');
  const d = quick ? QUICK : FULL;
  requireBenchTools();
  const idleSessions = idleSessionsFor(quick ? 2000 : IDLE_SESSIONS);
  if (idleSessions < IDLE_SESSIONS && !quick) {
    log(`RLIMIT_NOFILE is ${NOFILE} and cannot be raised here (no CAP_SYS_RESOURCE): ${idleSessions} idle sessions, not ${IDLE_SESSIONS}`);
  }

  const net = await PodNetwork.create(2);
  const [a, b] = net.pods as [Pod, Pod];
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-bench-proxy-'));
  chmodSync(dir, 0o755);
  // Ctrl-C, a kill or a hang-up still removes the namespaces: exit runs PodNetwork's own cleanup.
  const onExit = (): void => {
    rmSync(dir, { recursive: true, force: true });
    removeStaleControlSockets();
  };
  const stopExitingOnInterrupt = exitOnInterrupt();
  process.once('exit', onExit);
  const began = Date.now();
  const results: PathResult[] = [];
  try {
    for (const pod of [a, b]) await tunePod(net, pod);
    await startServers(net, b, PORTS);
    await startServers(net, b, MESH_PORTS);
    log('starting wireguard-go, stunnel, the node relays and the noisemesh proxies');
    const wg = await startWireguard(net, a, b, dir, (process.pid % 250) + 1);
    let tls: StunnelPath = await startStunnel(net, a, b, dir);
    let relay: RelayPath = await startRelay(net, a, b);
    const mesh = await NoisemeshPair.install(net, a, b, dir);
    await mesh.start(SUITES.chacha);

    const nothing = async (): Promise<void> => {};
    const alreadyRunning = async (): Promise<boolean> => false;
    const noisemesh = (key: 'chacha' | 'aesgcm'): PathUnderTest => ({
      key,
      name: `noisemesh ${SUITES[key].replace('Noise_IK_25519_', '')}`,
      endpoint: (s) => mesh.endpoint(s),
      enter: async () => {
        const restart = mesh.suite !== SUITES[key];
        if (restart) await mesh.start(SUITES[key]);
        await mesh.capture(true);
        return restart;
      },
      leave: () => mesh.capture(false),
    });
    const paths: PathUnderTest[] = [
      { key: 'plain', name: 'plain TCP', endpoint: (s) => ({ host: b.ipv4, port: PORTS[s] }), enter: alreadyRunning, leave: nothing },
      { key: 'wireguard', name: 'wireguard-go', endpoint: wg.endpoint, enter: alreadyRunning, leave: nothing },
      { key: 'tls', name: 'stunnel TLS 1.3 mTLS', endpoint: (s) => tls.endpoint(s), enter: alreadyRunning, leave: nothing },
      { key: 'relay', name: 'node relay (no crypto)', endpoint: (s) => relay.endpoint(s), enter: alreadyRunning, leave: nothing },
      noisemesh('chacha'),
      noisemesh('aesgcm'),
    ];
    const collected = new Map<PathKey, Collected>(
      paths.map((p) => [
        p.key,
        { throughput: [], latency: new Map(LATENCY_SIZES.map((s) => [s, []])), latencyTicks: new Map(LATENCY_SIZES.map((s) => [s, []])), connect: [], failed: 0 },
      ]),
    );
    log('warming up every path (not counted)');
    for (const path of paths) {
      await path.enter();
      try {
        await warmUp(net, a, path);
      } finally {
        await path.leave();
      }
    }
    for (let round = 0; round < d.rounds; round++) {
      // The two suites alternate which goes first, so each round restarts the proxies once.
      const order = round % 2 === 0 ? paths : [...paths.slice(0, 4), paths[5]!, paths[4]!];
      for (const path of order) {
        log(`round ${round + 1}/${d.rounds}: ${path.name}`);
        const fresh = await path.enter();
        try {
          if (fresh) {
            log(`${path.name}: restarted, warming up (not counted)`);
            await warmUp(net, a, path);
          }
          const into = collected.get(path.key)!;
          const isMesh = path.key === 'chacha' || path.key === 'aesgcm';
          const handshakesBefore = isMesh ? await mesh.acceptedHandshakes() : 0;
          await measureRound(net, a, path, d, into);
          if (isMesh) {
            // Proof that the turn went through Noise, not around it: B's proxy accepted at
            // least one handshake per connection the new-connection test counted.
            const handshakes = (await mesh.acceptedHandshakes()) - handshakesBefore;
            const counted = into.connect.at(-1)! * (d.connectMs / 1000);
            if (handshakes < counted) {
              throw new Error(`${path.name}: B's proxy accepted ${handshakes} handshakes, fewer than the ${Math.round(counted)} connections counted: traffic bypassed Noise`);
            }
          }
        } finally {
          await path.leave();
        }
      }
    }

    // Idle sessions: each proxy pair freshly started, so all start from the same state.
    const idle = new Map<PathKey, IdleMemory | { error: string }>();
    await wg.stop();
    await tls.stop();
    tls = await startStunnel(net, a, b, dir);
    log(`stunnel: ${idleSessions} idle sessions`);
    idle.set(
      'tls',
      await idleMemory(net, a, tls.endpoint('echo'), [
        { label: 'stunnel A', pid: tls.daemons[0].pid },
        { label: 'stunnel B', pid: tls.daemons[1].pid },
      ], /^stunnel/, idleSessions).catch((err: Error) => ({ error: err.message.split('\n')[0]! })),
    );
    await tls.stop();
    await relay.stop();
    relay = await startRelay(net, a, b);
    log(`node relay: ${idleSessions} idle sessions`);
    idle.set(
      'relay',
      await idleMemory(net, a, relay.endpoint('echo'), [
        { label: 'relay A', pid: relay.relays[0].pid },
        { label: 'relay B', pid: relay.relays[1].pid },
      ], /^node$/, idleSessions),
    );
    await relay.stop();
    await mesh.capture(true);
    for (const key of ['chacha', 'aesgcm'] as const) {
      await mesh.start(SUITES[key]);
      log(`noisemesh ${key}: ${idleSessions} idle sessions`);
      idle.set(
        key,
        await idleMemory(net, a, mesh.endpoint('echo'), mesh.proxies.map((p, i) => ({ label: `proxy ${i === 0 ? 'A' : 'B'}`, pid: p.pid })), /^node$/, idleSessions),
      );
    }
    await mesh.stop();
    await mesh.capture(false);

    for (const path of paths) {
      const c = collected.get(path.key)!;
      results.push({
        key: path.key,
        name: path.name,
        throughput: summarize(c.throughput),
        latency: LATENCY_SIZES.map((bytes) => ({
          ...summarizeLatency(bytes, c.latency.get(bytes)!),
          stealShare: stealShare(c.latencyTicks.get(bytes)!),
        })),
        connect: summarize(c.connect),
        failed: c.failed,
        ...(idle.has(path.key) && { idle: idle.get(path.key)! }),
      });
    }
  } finally {
    stopExitingOnInterrupt();
    await net.destroy();
    onExit();
    process.off('exit', onExit);
  }

  const minutes = ((Date.now() - began) / 60_000).toFixed(1);
  console.log(`Pods A and B: network namespaces on a veth bridge; ${d.rounds} interleaved round(s); ${minutes} min.`);
  console.log(
    `Warm-up, not counted: every path before round 1, and noisemesh after each restart (the suites alternate): ` +
      `iperf3 -t ${WARM_UP.throughputSeconds}, then ${WARM_UP.latencySeconds} s of each latency test.`,
  );
  console.log(`Throughput: iperf3 -t ${d.throughputSeconds} -O 1 per round; the median of the rounds, and their range.`);
  console.log(
    `Latency: open loop, ${LATENCY_RATE} requests/s on one connection, ${d.latencySeconds} s per round (the first ${LATENCY_WARMUP_MS / 1000} s not counted); round trips of all rounds pooled;` +
      ` host steal: the share of the machine's CPU time the hypervisor took while they ran (/proc/stat).`,
  );
  console.log(`New connections: ${CONNECT_CONCURRENCY} concurrent clients, ${d.connectMs / 1000} s per round after ${d.connectWarmupMs / 1000} s warm-up; the median of the rounds.\n`);
  console.log('## Throughput (iperf3, one TCP stream A -> B) and new connections per second\n');
  console.log(throughputTable(results));
  console.log('\n## Request/response latency, round trip (µs)\n');
  console.log(latencyTable(results, LATENCY_SIZES));
  console.log(`\n## RSS per idle session (${idleSessions} sessions, fresh processes, ${IDLE_WARMUP} opened and closed first; RLIMIT_NOFILE ${NOFILE})\n`);
  console.log(memoryTable(results));
  console.log('\n## Noise suites: AESGCM/SHA256 against ChaChaPoly/BLAKE2s\n');
  console.log(suiteComparison(results, LATENCY_SIZES));
  console.log('\n## Goals (ratio to target: >= 1 meets an "at least" goal, <= 1 an "at most" one)\n');
  console.log(goalsTable(goals(results, LATENCY_SIZES)));
}

export const proxyBench: BenchModule = {
  name: 'proxy',
  options: ['--quick'],
  requires: () => requireBenchTools(),
  // bench/README.md, proxy: "~7 minutes" for the full run; --quick is not timed there.
  estimateSeconds: (args) => (args.includes('--quick') ? null : 7 * 60),
  description: 'noisemesh data plane in two network namespaces against plain TCP, wireguard-go, a TLS 1.3 mTLS stunnel pair and a Node relay',
  run,
};
