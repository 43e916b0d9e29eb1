// Pods for tests: network namespaces on a private bridge, so real iptables rules and real
// connections can be exercised without touching the host's network. Needs root.
//
//   const net = await PodNetwork.create(2);
//   try { await net.exec(net.pods[0]!, 'iptables-save', []) } finally { await net.destroy() }
//
// Each pod has `lo` up and `eth0` on a bridge that lives in a namespace of its own, with
// 10.251.<k>.<i+1>/24 and fd00:251:<k>::<i+1>/64. All traffic stays inside namespaces the
// network created; nothing is routed anywhere else (there is no default route).
import { spawn as spawnChild, spawnSync, type ChildProcess } from 'node:child_process';
import { delimiter, join } from 'node:path';
import { isExecutable } from './executable.js';

export interface Pod {
  /** `a`, `b`, ... for messages. */
  readonly name: string;
  /** The network namespace, for `ip netns exec`. */
  readonly netns: string;
  readonly ipv4: string;
  readonly ipv6: string;
}

export interface ExecOptions {
  /** Run as this UID (and `gid`, default the same), dropped after entering the namespace. */
  readonly uid?: number;
  readonly gid?: number;
  /** Written to stdin, which is then closed. */
  readonly input?: string;
  /** Killed (SIGKILL) after this long; exec's default 30 s. */
  readonly timeoutMs?: number;
}

export interface ExecResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Every namespace we create starts with this, then the creating process's pid. */
const PREFIX = 'nmtest-';
const EXEC_TIMEOUT_MS = 30_000;
const EXIT_WAIT_MS = 5_000;
let networksCreated = 0;

/** Fails (never skips) with what to install when a command the tests need is missing. */
export function requireTools(tools: readonly string[]): void {
  if (process.getuid?.() !== 0) {
    throw new Error('these tests need root: they create network namespaces and iptables rules (run as root, as CI does)');
  }
  const path = (process.env.PATH ?? '').split(delimiter).concat('/usr/sbin', '/sbin');
  const missing = tools.filter((tool) => !path.some((dir) => isExecutable(join(dir, tool))));
  if (missing.length > 0) {
    throw new Error(
      `missing ${missing.join(', ')}: install them (Debian: apt-get install -y iproute2 iptables util-linux), as .ci/run does`,
    );
  }
}


function ip(args: readonly string[]): void {
  const result = spawnSync('ip', args, { encoding: 'utf8', timeout: EXEC_TIMEOUT_MS });
  if (result.status !== 0) {
    throw new Error(`ip ${args.join(' ')} failed: ${(result.stderr || result.error?.message || '').trim()}`);
  }
}

function listNamespaces(): string[] {
  const result = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: EXEC_TIMEOUT_MS });
  return (result.stdout ?? '').split('\n').map((line) => line.split(' ')[0]!).filter((n) => n !== '');
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes namespaces of ours left by runs that crashed (their pid is gone). Returns their names. */
export function sweepStaleNamespaces(): string[] {
  const stale = listNamespaces().filter((name) => {
    const pid = /^nmtest-(\d+)-/.exec(name)?.[1];
    return pid !== undefined && Number(pid) !== process.pid && !processAlive(Number(pid));
  });
  for (const name of stale) spawnSync('ip', ['netns', 'del', name], { timeout: EXEC_TIMEOUT_MS });
  return stale;
}

export class PodNetwork {
  readonly pods: readonly Pod[];
  /** The namespace holding the bridge. */
  readonly bridgeNetns: string;
  readonly #namespaces: string[] = [];
  readonly #children = new Set<ChildProcess>();
  #destroyed: Promise<void> | undefined;
  readonly #onExit = () => this.#destroyNow();

  private constructor(bridgeNetns: string, pods: Pod[]) {
    this.bridgeNetns = bridgeNetns;
    this.pods = pods;
  }

  /**
   * Creates `count` pods (1..250) on one bridge. `subnet` is the <k> of 10.251.<k>.0/24;
   * networks are isolated from each other, so any k works, and by default it follows the pid.
   */
  static async create(count: number, subnet = (process.pid % 250) + 1): Promise<PodNetwork> {
    if (!Number.isInteger(count) || count < 1 || count > 250) throw new Error(`count ${count}: 1..250 pods`);
    sweepStaleNamespaces();
    const base = `${PREFIX}${process.pid}-${++networksCreated}`;
    const pods: Pod[] = [];
    for (let i = 0; i < count; i++) {
      pods.push({
        name: String.fromCharCode(97 + (i % 26)) + (i >= 26 ? String(i) : ''),
        netns: `${base}-${i}`,
        ipv4: `10.251.${subnet}.${i + 1}`,
        ipv6: `fd00:251:${subnet.toString(16)}::${(i + 1).toString(16)}`,
      });
    }
    const network = new PodNetwork(`${base}-br`, pods);
    process.once('exit', network.#onExit);
    try {
      network.#addNamespace(network.bridgeNetns);
      ip(['-n', network.bridgeNetns, 'link', 'add', 'br0', 'type', 'bridge']);
      ip(['-n', network.bridgeNetns, 'link', 'set', 'br0', 'up']);
      for (const [i, pod] of pods.entries()) {
        network.#addNamespace(pod.netns);
        // Both ends are born inside our namespaces: no interface ever appears on the host.
        ip(['-n', network.bridgeNetns, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.netns]);
        ip(['-n', network.bridgeNetns, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
        ip(['-n', pod.netns, 'addr', 'add', `${pod.ipv4}/24`, 'dev', 'eth0']);
        // nodad: the address is usable at once instead of after duplicate detection (~1-2 s).
        ip(['-n', pod.netns, '-6', 'addr', 'add', `${pod.ipv6}/64`, 'dev', 'eth0', 'nodad']);
        ip(['-n', pod.netns, 'link', 'set', 'eth0', 'up']);
      }
    } catch (err) {
      await network.destroy();
      throw err;
    }
    return network;
  }

  #addNamespace(name: string): void {
    ip(['netns', 'add', name]);
    this.#namespaces.push(name);
    ip(['-n', name, 'link', 'set', 'lo', 'up']);
  }

  #argv(pod: Pod, command: string, args: readonly string[], options: ExecOptions): string[] {
    // `ip netns exec` must run as root (setns needs CAP_SYS_ADMIN), so spawn's own uid option
    // would stop it from entering the namespace: the UID is dropped inside, by setpriv.
    const drop =
      options.uid === undefined
        ? []
        : ['setpriv', `--reuid=${options.uid}`, `--regid=${options.gid ?? options.uid}`, '--clear-groups', '--'];
    return ['netns', 'exec', pod.netns, ...drop, command, ...args];
  }

  /** Starts `command` in the pod; killed by destroy() if still running. stdio is piped. */
  spawn(pod: Pod, command: string, args: readonly string[], options: ExecOptions = {}): ChildProcess {
    if (this.#destroyed !== undefined) throw new Error('the pod network is destroyed');
    const child = spawnChild('ip', this.#argv(pod, command, args, options), { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    child.stdin!.on('error', () => {});
    if (options.input !== undefined) child.stdin!.end(options.input);
    return child;
  }

  /** Runs `command` in the pod to completion (or the timeout); never rejects on a non-zero exit. */
  exec(pod: Pod, command: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const child = this.spawn(pod, command, args, { ...options, input: options.input ?? '' });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? EXEC_TIMEOUT_MS);
    return new Promise((resolve, reject) => {
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr });
      });
    });
  }

  /** Kills every process started here and deletes every namespace. Safe to call more than once. */
  destroy(): Promise<void> {
    this.#destroyed ??= (async () => {
      process.removeListener('exit', this.#onExit);
      const exits = [...this.#children].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(resolve, EXIT_WAIT_MS);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill('SIGKILL');
          }),
      );
      await Promise.all(exits);
      this.#destroyNow();
    })();
    return this.#destroyed;
  }

  /** The synchronous part, also run at process exit if a test run ends without destroy(). */
  #destroyNow(): void {
    for (const child of this.#children) child.kill('SIGKILL');
    for (const name of this.#namespaces.splice(0).reverse()) {
      spawnSync('ip', ['netns', 'del', name], { timeout: EXEC_TIMEOUT_MS });
    }
  }
}

/**
 * Resolves with the first stdout line of `child` that matches, or rejects with what the
 * child printed when it exits first or `timeoutMs` passes. For servers that announce readiness.
 */
export function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const finish = (error: Error | undefined, line?: string) => {
      clearTimeout(timer);
      child.stdout!.off('data', onStdout);
      child.stderr!.off('data', onStderr);
      child.off('exit', onExit);
      if (error !== undefined) reject(error);
      else resolve(line!);
    };
    const onStdout = (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      const line = stdout.split('\n').find((l) => pattern.test(l));
      if (line !== undefined) finish(undefined, line);
    };
    const onStderr = (chunk: Buffer) => (stderr += chunk.toString('utf8'));
    const onExit = (code: number | null) =>
      finish(new Error(`exited (${code}) before printing ${pattern}: stdout ${JSON.stringify(stdout)} stderr ${JSON.stringify(stderr)}`));
    const timer = setTimeout(
      () => finish(new Error(`no line matching ${pattern} within ${timeoutMs} ms: stdout ${JSON.stringify(stdout)} stderr ${JSON.stringify(stderr)}`)),
      timeoutMs,
    );
    child.stdout!.on('data', onStdout);
    child.stderr!.on('data', onStderr);
    child.once('exit', onExit);
  });
}
