/**
 * Revocation at scale (bench/README.md, section revocation).
 *
 * 1. Sessions: one client proxy (the real Proxy, its registry opened by the real
 *    `openRegistry` with `registry.kubernetes`, i.e. KubernetesRegistrySource and its
 *    reflector, through a kubeconfig) holds 1,000 or 10,000 open sessions across 100 peers
 *    on loopback (each peer a Proxy of its own, on 127.0.1.<i>). One peer is revoked: its
 *    ClearanceRegistry object is modified to `revoked: true` in the API-server test double,
 *    which sends the MODIFIED event down the open watch. Measured per revocation: the event
 *    sent -> the index updated (delivery, parse, snapshot, index diff) -> the last of that
 *    peer's sessions aborted. The peer is then restored and its sessions reopened, so every
 *    revocation sees the full count. 20 revocations per size.
 * 2. The index alone: the cost of a one-object change as the Kubernetes source applies it
 *    (RegistryState.set + commit, then RegistryIndex.replace applying the delta), at 100,
 *    1,000, 10,000 and 50,000 peers (one ClearanceRegistry object each); beside it the full
 *    rebuild the file source does (buildSnapshot over every object, then a full index diff),
 *    which is what the Kubernetes source did before; and the memory per 10,000 peers.
 *
 * The client proxy runs in this process; the 100 peers (two processes of 50 responder
 * proxies and a target application each) and the applications' 10,000 connections
 * (bench/revocation-child.ts) in others, so that the proxy's own descriptors are the only
 * ones counted against this process's limit.
 */
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeKey, nativeBackend } from '../src/noise/index.js';
import { pino } from 'pino';
import { Proxy, type Identity, type Logger } from '../src/proxy/index.js';
import { RegistryIndex, RegistryState, buildSnapshot, validateClearanceRegistry, type RegistrySnapshot, type ValidationResult } from '../src/registry-sync/index.js';
import { openRegistry } from '../src/cli/registry-wiring.js';
import { parseProxyConfig } from '../src/cli/config/proxy-config.js';
import { FakeApiServer, kubeconfigFor } from '../test/helpers/fake-apiserver.js';
import { optionValue, wholeOption, type BenchModule } from './lib/module.js';
import { collectGarbage } from './lib/gc.js';
import { quantile } from './lib/stats.js';
import { formatTable } from './lib/table.js';

const PEERS = 100;
/**
 * 9,800, not 10,000: the client proxy holds two descriptors a session, and this machine's
 * hard limit is 20,000 a process (raising it needs CAP_SYS_RESOURCE, which we lack).
 */
const SESSION_COUNTS = [1000, 9800] as const;
const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'revocation-child.js');
const REVOCATIONS = 20;
const INDEX_SIZES = [100, 1000, 10_000, 50_000] as const;
const INDEX_ROUNDS = 15;
const NS = 'bench';
const TOKEN = 'bench-token';

/**
 * The client proxy logs as in production (createLogger: pino, info level, synchronous lines),
 * to /dev/null, the cheapest sink there is: a pod's stdout pipe costs more per line.
 */
function productionLogger(): Logger {
  return pino({ name: 'noisemesh', level: 'info', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: '/dev/null', sync: true }));
}

const ms = (ns: bigint): number => Number(ns) / 1e6;
const fmt = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

function identity(agentId: string): Identity {
  const keyPair = nativeBackend.dh('25519').generateKeyPair();
  return { agentId, keyPair, publicKeyB64: encodeKey(keyPair.publicKey) };
}

interface Row {
  readonly sessions: number;
  readonly perPeer: number;
  readonly toIndex: number[];
  readonly toAbort: number[];
  readonly total: number[];
  readonly aborted: number[];
}

/** A child process of bench/revocation-child.ts, spoken to in lines. */
class Child {
  readonly #proc: ChildProcessByStdio<Writable, Readable, null>;
  readonly #lines: string[] = [];
  #waiters: (() => void)[] = [];

  constructor(args: readonly string[]) {
    this.#proc = spawn(process.execPath, [CHILD, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.#proc.stdout }).on('line', (line) => {
      this.#lines.push(line);
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  send(line: string): void {
    this.#proc.stdin.write(`${line}\n`);
  }

  async line(match: (line: string) => boolean, timeoutMs = 120_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#lines.findIndex(match);
      if (i >= 0) return this.#lines.splice(i, 1)[0]!;
      if (Date.now() > deadline || this.#proc.exitCode !== null) throw new Error('a benchmark child process did not answer');
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 1000);
      });
    }
  }

  async stop(): Promise<void> {
    if (this.#proc.exitCode !== null) return;
    const exited = new Promise((resolve) => this.#proc.once('exit', resolve));
    this.#proc.stdin.end();
    const timer = setTimeout(() => this.#proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

async function sessionsBench(total: number): Promise<Row> {
  const api = await new FakeApiServer({ tokens: [TOKEN] }).start();
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-bench-rev-'));
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, kubeconfigFor(api.url, TOKEN));
  const client = identity(`${NS}/client`);
  const config = parseProxyConfig({ identity: { agentId: client.agentId }, registry: { kubernetes: { kubeconfig, namespaces: [NS] } } });
  const log = productionLogger();
  const opened = await openRegistry(config.registry, log);
  const children: Child[] = [];
  let clientProxy: Proxy | undefined;
  try {
    // The peers learn the client's key now; its mesh port only matters for their own outbound, unused here.
    children.push(new Child(['peers', '0', String(PEERS / 2), client.publicKeyB64, '0']));
    children.push(new Child(['peers', String(PEERS / 2), String(PEERS / 2), client.publicKeyB64, '0']));
    const infos = await Promise.all(children.map((c) => c.line((l) => l.startsWith('{'))));
    const peers: PeerInfo[] = [];
    let appPorts: number[] = [];
    for (const text of infos) {
      const info = JSON.parse(text) as { peers: PeerInfo[]; appPort: number };
      for (const p of info.peers) peers.push({ ...p, appPort: info.appPort, installationId: randomUUID() });
      appPorts = [...appPorts, info.appPort];
    }
    // Now that the targets are known, the real client proxy (each explicit route to its peer's target port).
    clientProxy = new Proxy({
      trustDomain: 'cluster.local',
      backend: nativeBackend,
      log,
      identity: client,
      directory: opened.directory,
      outbound: { mode: 'strict', explicit: peers.map((p) => ({ listen: { host: '127.0.0.1', port: 0 }, peer: p.agentId, port: p.appPort! })) },
      inbound: { mesh: { host: '127.0.0.1', port: 0 } },
    });
    // Before the wiring's listeners: the index's tables are in force, no session aborted yet.
    let indexed = 0n;
    opened.registry.on('revoked', () => {
      if (indexed === 0n) indexed = process.hrtime.bigint();
    });
    opened.attach(clientProxy);
    const clientPorts = await clientProxy.start();
    const proxy = clientProxy;
    const object = (i: number, revoked: boolean): Record<string, unknown> => {
      const p = peers[i]!;
      return {
        apiVersion: 'noisemesh.io/v1alpha1',
        kind: 'ClearanceRegistry',
        metadata: { name: `p${i}`, namespace: NS },
        spec: { peers: [{ agentId: p.agentId, installationId: p.installationId, publicKey: p.publicKeyB64, generation: 1, addresses: [p.address], meshPort: p.meshPort, revoked }] },
      };
    };
    api.apply({ apiVersion: 'noisemesh.io/v1alpha1', kind: 'ClearanceRegistry', metadata: { name: 'client', namespace: NS }, spec: { peers: [{ agentId: client.agentId, installationId: randomUUID(), publicKey: client.publicKeyB64, generation: 1, addresses: ['127.0.0.1'], meshPort: clientPorts.mesh }] } });
    for (let i = 0; i < PEERS; i++) api.apply(object(i, false));
    for (let i = 0; i < 2000 && opened.registry.index.size < PEERS + 1; i++) await sleep(10);
    if (opened.registry.index.size < PEERS + 1) throw new Error('the client never saw every peer');

    const apps = new Child(['apps']);
    children.push(apps);
    const perPeer = total / PEERS;
    const open = async (i: number): Promise<void> => {
      apps.send(`open ${i} ${perPeer} ${clientPorts.explicit[i]!}`);
      await apps.line((l) => l === `opened ${i}`);
    };
    for (let i = 0; i < PEERS; i += 10) await Promise.all(Array.from({ length: 10 }, (_, k) => open(i + k)));
    // A handshake that timed out on this loaded machine left its app connection reset: top up.
    const topUp = async (i: number): Promise<void> => {
      for (let attempt = 0; attempt < 5; attempt++) {
        for (let k = 0; k < 200 && proxy.sessions.countOf(peers[i]!.publicKeyB64) < perPeer; k++) await sleep(10);
        const missing = perPeer - proxy.sessions.countOf(peers[i]!.publicKeyB64);
        if (missing <= 0) return;
        apps.send(`open ${i} ${missing} ${clientPorts.explicit[i]!}`);
        await apps.line((l) => l === `opened ${i}`);
      }
    };
    for (let i = 0; i < PEERS; i++) await topUp(i);
    for (let i = 0; i < 3000 && proxy.sessions.size < total; i++) await sleep(10);
    if (proxy.sessions.size !== total) {
      const handshakes = (await proxy.metrics.registry.getSingleMetricAsString('noisemesh_handshakes_total')).split('\n').filter((l) => !l.startsWith('#')).join('; ');
      throw new Error(`${proxy.sessions.size} sessions open, not ${total} (${handshakes})`);
    }

    const row: Row = { sessions: total, perPeer, toIndex: [], toAbort: [], total: [], aborted: [] };

    let sent = 0n;
    let abortedAt = 0n;
    let aborted = 0;
    // After the wiring's own listener (attached first), which aborts the sessions synchronously.
    opened.registry.on('revoked', (key) => {
      abortedAt = process.hrtime.bigint();
      aborted = perPeer - proxy.sessions.countOf(key);
    });
    for (let r = 0; r < REVOCATIONS; r++) {
      const i = (r * 37) % PEERS;
      collectGarbage();
      await sleep(50);
      abortedAt = 0n;
      indexed = 0n;
      sent = process.hrtime.bigint();
      api.apply(object(i, true));
      for (let k = 0; k < 1000 && abortedAt === 0n; k++) await sleep(1);
      if (abortedAt === 0n) throw new Error('the revocation never arrived');
      row.toIndex.push(ms(indexed - sent));
      row.toAbort.push(ms(abortedAt - indexed));
      row.total.push(ms(abortedAt - sent));
      row.aborted.push(aborted);
      // Restore the peer and its sessions for the next round.
      apps.send(`close ${i}`);
      await apps.line((l) => l === `closed ${i}`);
      api.apply(object(i, false));
      for (let k = 0; k < 1000 && opened.directory.peerByKey(peers[i]!.publicKeyB64) === undefined; k++) await sleep(5);
      await open(i);
      await topUp(i);
      for (let k = 0; k < 2000 && proxy.sessions.size < total; k++) await sleep(5);
      if (proxy.sessions.size !== total) throw new Error(`round ${r}: ${proxy.sessions.size} sessions, not ${total}`);
    }
    return row;
  } finally {
    await clientProxy?.shutdown(0);
    await Promise.all(children.map((c) => c.stop()));
    await opened.stop();
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface PeerInfo {
  readonly agentId: string;
  readonly publicKeyB64: string;
  readonly address: string;
  readonly meshPort: number;
  readonly appPort?: number;
  readonly installationId?: string;
}

/** One ClearanceRegistry object per peer, validated as the Kubernetes source caches them. */
function validatedObjects(n: number): ValidationResult[] {
  const out: ValidationResult[] = [];
  for (let i = 0; i < n; i++) out.push(validated(i, 1));
  return out;
}

const keys: string[] = [];
const installations: string[] = [];
function validated(i: number, generation: number): ValidationResult {
  keys[i] ??= randomBytes(32).toString('base64');
  installations[i] ??= randomUUID();
  const object = {
    apiVersion: 'noisemesh.io/v1alpha1',
    kind: 'ClearanceRegistry',
    metadata: { name: `p${i}`, namespace: NS, resourceVersion: String(i) },
    spec: { peers: [{ agentId: `${NS}/p${i}`, installationId: installations[i], publicKey: keys[i], generation, addresses: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`] }] },
  };
  const result = validateClearanceRegistry(object, { document: `${NS}/p${i}` });
  if (result.object === undefined) throw new Error(`object ${i} did not validate: ${result.problems.map((p) => p.message).join('; ')}`);
  return result;
}

interface IndexRow {
  readonly peers: number;
  /** RegistryState.set + commit + RegistryIndex.replace (the delta), ms. */
  readonly incremental: number[];
  /** buildSnapshot over every object + RegistryIndex.replace (a full diff), ms. */
  readonly full: number[];
  readonly revoked: number;
}

/**
 * One object changed per round (a new generation: a revocation), first as the Kubernetes
 * source applies it (the object validated outside the timing, as its cache does), then as a
 * full rebuild; both on an index holding n peers.
 */
function indexBench(n: number, fullRounds: number): IndexRow {
  const results = validatedObjects(n);
  const state = new RegistryState('bench');
  results.forEach((r, i) => state.set(`${NS}/p${i}`, r));
  const index = new RegistryIndex();
  let revoked = 0;
  index.on('revoked', () => revoked++);
  index.replace(state.commit());
  const incremental: number[] = [];
  // Three rounds untimed first: the first changes after building 50,000 peers pay for sweeping
  // that build's garbage (tens to hundreds of ms on this host), which is not the update's cost.
  for (let r = -3; r < INDEX_ROUNDS; r++) {
    const i = ((r + 3) * 7919) % n;
    const next = validated(i, 5 + r);
    results[i] = next;
    collectGarbage();
    const t0 = process.hrtime.bigint();
    state.set(`${NS}/p${i}`, next);
    index.replace(state.commit());
    if (r >= 0) incremental.push(ms(process.hrtime.bigint() - t0));
    else revoked = 0;
  }

  const objects = results.map((r) => r.object!);
  const fullIndex = new RegistryIndex();
  let snapshot: RegistrySnapshot = buildSnapshot(objects, { origin: 'bench' });
  fullIndex.replace(snapshot);
  const full: number[] = [];
  for (let r = 0; r < fullRounds; r++) {
    const i = (r * 7919 + 1) % n;
    objects[i] = validated(i, 100 + r).object!;
    collectGarbage();
    const t0 = process.hrtime.bigint();
    snapshot = buildSnapshot(objects, { origin: 'bench', previous: snapshot });
    fullIndex.replace(snapshot);
    full.push(ms(process.hrtime.bigint() - t0));
  }
  return { peers: n, incremental, full, revoked };
}

function heapOf(build: () => unknown): { bytes: number; keep: unknown } {
  collectGarbage();
  const before = process.memoryUsage().heapUsed;
  const keep = build();
  collectGarbage();
  return { bytes: process.memoryUsage().heapUsed - before, keep };
}

/** Heap of 10,000 peers: the validated objects (the source's cache), then state + snapshot + index. */
function memoryBench(): { objects: number; index: number } {
  const n = 10_000;
  const objects = heapOf(() => validatedObjects(n));
  const index = heapOf(() => {
    const state = new RegistryState('bench');
    (objects.keep as ValidationResult[]).forEach((r, i) => state.set(`${NS}/p${i}`, r));
    const idx = new RegistryIndex();
    idx.replace(state.commit());
    // A second commit, as the next change makes: the first one's delta (every entry) is let go.
    const snapshot = state.commit();
    idx.replace(snapshot);
    void snapshot.entries;
    return [state, idx];
  });
  void objects.keep;
  void index.keep;
  return { objects: objects.bytes, index: index.bytes };
}

const pct = (values: number[], q: number): number => quantile([...values].sort((a, b) => a - b), q);

/**
 * Options: `--only=sessions` or `--only=index` runs one part; `--sessions=N` one session count
 * (e.g. 9800, to profile it under `node --cpu-prof`).
 */
function revocationOptions(args: readonly string[]): { only: string | undefined; counts: readonly number[] } {
  const only = optionValue(args, 'only');
  if (only !== undefined && only !== 'sessions' && only !== 'index') throw new Error(`--only=${only}: choose sessions or index`);
  const sessions = wholeOption(args, 'sessions', 'a number of sessions', 1, 100_000);
  if (sessions !== undefined && only === 'index') throw new Error('--sessions: the index part has no sessions; it would change nothing (drop it, or --only=sessions)');
  return { only, counts: sessions === undefined ? SESSION_COUNTS : [sessions] };
}

/** The sessions part's descriptors: the client proxy holds two a session. */
function requireDescriptors(counts: readonly number[]): void {
  const limit = Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim());
  const largest = Math.max(...counts);
  if (Number.isFinite(limit) && limit < 2 * largest + 200) {
    throw new Error(`the client proxy needs two descriptors a session, ${2 * largest + 200} in all; ulimit -n is ${limit}: raise it`);
  }
}

async function run(args: readonly string[]): Promise<void> {
  const { only, counts } = revocationOptions(args);
  if (only !== 'index') await sessionsPart(counts);
  if (only !== 'sessions') indexPart();
}

async function sessionsPart(counts: readonly number[]): Promise<void> {
  requireDescriptors(counts);
  console.log(`Sessions: ${PEERS} peers, ${REVOCATIONS} revocations per size; event sent -> index updated -> last session aborted (ms).\n`);
  const rows: string[][] = [];
  for (const total of counts) {
    const r = await sessionsBench(total);
    const cell = (v: number[]): string => `${fmt(pct(v, 0.5))} / ${fmt(pct(v, 0.99))}`;
    rows.push([String(total), String(r.perPeer), cell(r.toIndex), cell(r.toAbort), cell(r.total), `${Math.min(...r.aborted)}-${Math.max(...r.aborted)}`]);
  }
  console.log(formatTable(['sessions', 'per peer', 'sent to index p50 / p99', 'index to last abort p50 / p99', 'total p50 / p99', 'aborted'], rows));
}

function indexPart(): void {
  console.log(`\nThe index: one object changed (a new generation). Incremental: RegistryState.set + commit + RegistryIndex.replace (the delta), ${INDEX_ROUNDS} rounds; full rebuild: buildSnapshot + a full replace (ms).\n`);
  const irows: string[][] = [];
  let previous: IndexRow | undefined;
  for (const n of INDEX_SIZES) {
    const r = indexBench(n, n >= 50_000 ? 5 : INDEX_ROUNDS);
    const p50 = pct(r.incremental, 0.5);
    irows.push([
      String(n),
      fmt(p50),
      fmt(pct(r.incremental, 0.99)),
      previous === undefined ? '' : `x${(p50 / pct(previous.incremental, 0.5)).toFixed(1)} for ${(n / previous.peers).toFixed(0)}x peers`,
      `${fmt(pct(r.full, 0.5))} / ${fmt(pct(r.full, 0.99))}`,
      String(r.revoked),
    ]);
    previous = r;
  }
  console.log(formatTable(['peers', 'incremental p50', 'p99', 'growth', 'full rebuild p50 / p99', 'revocations seen'], irows));
  const mem = memoryBench();
  console.log(`\nMemory per 10,000 peers: validated objects (the source's cache) ${(mem.objects / 2 ** 20).toFixed(1)} MiB; state + snapshot + index ${(mem.index / 2 ** 20).toFixed(1)} MiB (${Math.round(mem.index / 10_000)} B a peer).`);
}

export const revocationBench: BenchModule = {
  name: 'revocation',
  options: ['--only=', '--sessions='],
  check: revocationOptions,
  requires: (args) => {
    const { only, counts } = revocationOptions(args);
    if (only !== 'index') requireDescriptors(counts);
  },
  description: 'revoking one peer among 1,000 and 10,000 sessions through the Kubernetes source; the index update cost at 1k-50k peers',
  run,
};

