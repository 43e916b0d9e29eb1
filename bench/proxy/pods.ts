/**
 * The benchmark's ground: two pods (network namespaces on a private bridge, from
 * test/helpers/netns.ts), the servers every path ends at in pod B, and the plumbing for the
 * processes we start there: raised fd limits, output that is drained (a proxy that logs
 * into a full pipe would stall) and kept in a short tail for error messages.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PodNetwork, type ExecResult, type Pod } from '../../test/helpers/netns.js';
import { repoRoot } from '../../test/helpers/paths.js';
import { isExecutable } from '../../test/helpers/executable.js';

export { PodNetwork, type Pod };

export const CLI = join(repoRoot, 'dist/src/cli/main.js');
/** The compiled scripts of this folder, run with node inside the pods. */
export const SCRIPTS = join(repoRoot, 'dist/bench/proxy');
export const NODE = process.execPath;
/**
 * RLIMIT_NOFILE for the processes we start: 10,000 idle sessions cost a proxy two sockets
 * each. We raise it to 65,536 where we may (CAP_SYS_RESOURCE), else to the hard limit we
 * inherited, and the idle-session test opens as many sessions as that allows (idleSessionsFor).
 */
export const NOFILE = detectNofile();

function detectNofile(): number {
  if (spawnSync('prlimit', ['--nofile=65536:65536', 'true'], { timeout: 10_000 }).status === 0) return 65536;
  const hard = Number(spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8', timeout: 10_000 }).stdout.trim());
  return Number.isInteger(hard) && hard > 0 ? Math.min(hard, 65536) : 1024;
}

/**
 * Idle sessions one test may open: `wanted`, or fewer when a process holding two sockets per
 * session (a proxy: app + mesh, or mesh + target) would run out of descriptors; in steps of 500.
 */
export function idleSessionsFor(wanted: number): number {
  const fit = Math.floor((NOFILE - 256) / 2 / 500) * 500;
  return Math.min(wanted, fit);
}

/** Where pod B's servers listen for the baselines, through 127.0.0.1, eth0 or a wg interface. */
export const PORTS = {
  iperf: 5201,
  /** One byte in, one byte back, then the server closes: the new-connection test. */
  once: 7001,
  /** Echoes everything and stays open: the latency test, and the idle sessions. */
  echo: 7002,
} as const;
export type Service = keyof typeof PORTS;
export type ServicePorts = Readonly<Record<Service, number>>;

/**
 * The same servers again, for noisemesh only: captured and uncaptured connections never
 * share a 4-tuple, so no conntrack entry made while the nat rules were in place (TIME_WAIT
 * lasts two minutes there) can meet a baseline's connection after they are gone.
 */
export const MESH_PORTS: ServicePorts = { iperf: 5202, once: 7011, echo: 7012 };

/** Where a client in pod A connects to reach one of B's services over a given path. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

const TOOLS: readonly (readonly [string, string])[] = [
  ['ip', 'iproute2'],
  ['ss', 'iproute2'],
  ['iptables', 'iptables'],
  ['iptables-restore', 'iptables'],
  ['sysctl', 'procps'],
  ['setpriv', 'util-linux'],
  ['prlimit', 'util-linux'],
  ['curl', 'curl'],
  ['iperf3', 'iperf3'],
  ['wireguard-go', 'wireguard-go'],
  ['wg', 'wireguard-tools'],
  ['stunnel4', 'stunnel4'],
  ['openssl', 'openssl'],
];

/** What the load benchmark (bench/load.ts) runs: no iperf3 or wireguard, haproxy instead. */
export const LOAD_TOOLS: readonly (readonly [string, string])[] = [
  ...TOOLS.filter(([tool]) => !['iperf3', 'wireguard-go', 'wg'].includes(tool)),
  ['haproxy', 'haproxy'],
];

/** Fails, naming the Debian packages to install, when anything the benchmark runs is missing. */
export function requireBenchTools(tools: readonly (readonly [string, string])[] = TOOLS): void {
  // Shared by the proxy and load benchmarks: the message names neither (load makes no wg interface).
  if (process.getuid?.() !== 0) throw new Error('this benchmark needs root: it creates network namespaces, iptables rules and, for proxy, wg interfaces (run it as root)');
  const dirs = (process.env.PATH ?? '').split(delimiter).concat('/usr/sbin', '/sbin');
  const missing = tools.filter(([tool]) => !dirs.some((dir) => isExecutable(join(dir, tool))));
  if (missing.length > 0) {
    const packages = [...new Set(missing.map(([, pkg]) => pkg))].join(' ');
    throw new Error(`missing ${missing.map(([t]) => t).join(', ')}: install them with apt-get install -y ${packages}`);
  }
  for (const file of [CLI, join(SCRIPTS, 'conn-client.js')]) {
    if (!isReadable(file)) throw new Error(`${file} is missing: build first (npx tsc -p .)`);
  }
}


function isReadable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * A process we started: its output drained as it comes (the last 8 KiB kept for errors),
 * and a way to wait for a line announcing readiness on either stream.
 */
export class Running {
  #tail = '';
  readonly #waiters = new Set<() => void>();

  constructor(
    readonly what: string,
    readonly child: ChildProcess,
  ) {
    const take = (chunk: Buffer): void => {
      this.#tail = (this.#tail + chunk.toString('utf8')).slice(-8192);
      for (const wake of this.#waiters) wake();
    };
    child.stdout!.on('data', take);
    child.stderr!.on('data', take);
    child.once('exit', () => {
      for (const wake of this.#waiters) wake();
    });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.what} has no pid: it did not start`);
    return this.child.pid;
  }

  get tail(): string {
    return this.#tail;
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** Resolves once the output so far matches; rejects with the output if the process exits or time runs out. */
  waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (pattern.test(this.#tail)) return done();
        if (this.exited) return done(new Error(`${this.what} exited (${this.child.exitCode ?? this.child.signalCode}) before printing ${pattern}:\n${this.#tail}`));
      };
      const timer = setTimeout(() => done(new Error(`${this.what} did not print ${pattern} within ${timeoutMs} ms:\n${this.#tail}`)), timeoutMs);
      const done = (err?: Error): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        if (err) reject(err);
        else resolve();
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

export interface StartOptions {
  /** Drop to this UID (and GID) after raising the limits, as setpriv does in the mesh test. */
  readonly uid?: number;
  /** Leading environment assignments, through env(1): spawn in the pod inherits ours otherwise. */
  readonly env?: Readonly<Record<string, string>>;
}

/**
 * Starts `command` in `pod` with RLIMIT_NOFILE raised to NOFILE (prlimit execs in place, as do
 * `ip netns exec` and setpriv, so the pid we get is the command's own: /proc/<pid> is its).
 * It gets SIGKILL when the benchmark dies (PR_SET_PDEATHSIG): a benchmark killed without its
 * exit handlers (SIGKILL, the OOM killer) leaves no daemon running in its namespaces.
 */
export function start(net: PodNetwork, pod: Pod, what: string, command: string, args: readonly string[], options: StartOptions = {}): Running {
  const env = Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`);
  const drop = options.uid === undefined ? [] : ['setpriv', `--reuid=${options.uid}`, `--regid=${options.uid}`, '--clear-groups', '--'];
  // Last before the command: a change of uid clears the parent-death signal.
  const orphanKill = ['setpriv', '--pdeathsig', 'KILL', '--'];
  const argv = [`--nofile=${NOFILE}:${NOFILE}`, '--', ...drop, ...(env.length > 0 ? ['env', ...env] : []), ...orphanKill, command, ...args];
  return new Running(what, net.spawn(pod, 'prlimit', argv));
}

/** Runs to completion and throws, with its output, unless it exits 0. */
export async function run(net: PodNetwork, pod: Pod, command: string, args: readonly string[], timeoutMs = 60_000): Promise<ExecResult> {
  const result = await net.exec(pod, command, args, { timeoutMs });
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} in pod ${pod.name} failed (${result.code ?? result.signal}):\n${result.stderr}${result.stdout}`.slice(0, 4000));
  }
  return result;
}

/** Runs with RLIMIT_NOFILE raised (the idle-session client holds 10,000 sockets). */
export function runLimited(net: PodNetwork, pod: Pod, command: string, args: readonly string[], timeoutMs = 60_000): Promise<ExecResult> {
  return run(net, pod, 'prlimit', [`--nofile=${NOFILE}:${NOFILE}`, '--', command, ...args], timeoutMs);
}

/**
 * Per-namespace settings, never the host's. TIME_WAIT reuse for outgoing connections, or the
 * new-connection test would run a pod out of ephemeral ports (~28,000 of them, each held for
 * 60 s after a close) on the faster paths. And the nat table loaded from the start: it brings
 * connection tracking, which noisemesh's rules need, so every path pays it, not only noisemesh.
 */
export async function tunePod(net: PodNetwork, pod: Pod): Promise<void> {
  await run(net, pod, 'sysctl', ['-q', '-w', 'net.ipv4.tcp_tw_reuse=1']);
  await run(net, pod, 'iptables', ['-t', 'nat', '-S']);
}

/** Resident set size of a process, KiB (VmRSS of /proc/<pid>/status). */
export function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (match === null) throw new Error(`no VmRSS in /proc/${pid}/status: is it a live process?`);
  return Number(match[1]);
}

/** The command name of a pid, to check that it is the process we mean (node, stunnel4, ...). */
export function commOf(pid: number): string {
  return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
}

/** Polls `probe` every `intervalMs` until it returns true, at most `attempts` times. */
export async function poll(what: string, probe: () => Promise<boolean>, attempts = 100, intervalMs = 100): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (await probe()) return;
    await sleep(intervalMs);
  }
  throw new Error(`${what}: not ready after ${(attempts * intervalMs) / 1000} s`);
}

/**
 * Pod B's servers, as unmodified applications: iperf3, and our once/echo server. They bind
 * 0.0.0.0, so each path reaches them on eth0, a wg interface or loopback alike.
 */
export async function startServers(net: PodNetwork, b: Pod, ports: ServicePorts): Promise<Running[]> {
  const iperf = start(net, b, `iperf3 server :${ports.iperf}`, 'iperf3', ['-s', '-p', String(ports.iperf)]);
  const app = start(net, b, `once/echo server :${ports.once}`, NODE, [join(SCRIPTS, 'app-server.js'), String(ports.once), String(ports.echo)]);
  // iperf3 buffers what it prints into a pipe: ask the kernel what listens instead.
  await waitListening(net, b, ports.iperf, [iperf]);
  await app.waitFor(/^ready$/m);
  return [iperf, app];
}

/** Polls `ss` in the pod until a TCP socket listens on `port`; fails early if a server died. */
export async function waitListening(net: PodNetwork, pod: Pod, port: number, servers: readonly Running[]): Promise<void> {
  await poll(`a listener on port ${port} in pod ${pod.name}`, async () => {
    const dead = servers.find((s) => s.exited);
    if (dead) throw new Error(`${dead.what} exited (${dead.child.exitCode ?? dead.child.signalCode}):\n${dead.tail}`);
    const r = await net.exec(pod, 'ss', ['-Hltn', `sport = :${port}`]);
    return r.code === 0 && r.stdout.trim() !== '';
  });
}

/** One connect and one byte each way from `pod` to `to` (a `once` or `echo` service), within 2 s. */
export async function reachable(net: PodNetwork, pod: Pod, to: Endpoint): Promise<boolean> {
  const script = `const s=require('net').connect(${to.port},'${to.host}');s.setTimeout(2000,()=>process.exit(1));s.on('error',()=>process.exit(1));s.on('connect',()=>s.write('x'));s.on('data',()=>process.exit(0));`;
  const r = await net.exec(pod, NODE, ['-e', script], { timeoutMs: 5_000 });
  return r.code === 0;
}
