/**
 * For tests that run `noisemesh` as real processes on loopback: free ports to give them, their
 * admin endpoints, waiting (bounded) for what they do, and their exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { stringify } from 'yaml';
import { encodeKey, type KeyPair } from '../../src/noise/index.js';

/** `n` loopback ports that were free a moment ago (the kernel may hand them out again). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => resolve(s));
  })));
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** GET on 127.0.0.1; status 0 when nothing answered within `timeoutMs`. */
export async function get(port: number, path: string, timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  try {
    const res = await request(`http://127.0.0.1:${port}${path}`, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs, reset: true });
    return { status: res.statusCode, body: await res.body.text() };
  } catch {
    return { status: 0, body: '' };
  }
}

/** Polls `check` every 50 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The child's exit code (null when a signal ended it), once it has exited. */
export function exited(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((r) => child.once('exit', (code) => r(code)));
}

/** A pod of namespace `shop` run as a `noisemesh proxy` process: its key, ports, child and log. */
export interface ProxyPod {
  readonly name: string;
  readonly keyPair: KeyPair;
  readonly meshPort: number;
  readonly adminPort: number;
  child?: ChildProcess;
  log: string;
}

/** One ClearanceRegistry (`shop/shop`) holding every pod at 127.0.0.1, generation 1; `revoked` by name. */
export function shopRegistryYaml(pods: readonly ProxyPod[], revoked: readonly string[] = []): string {
  return stringify({
    apiVersion: 'noisemesh.io/v1alpha1',
    kind: 'ClearanceRegistry',
    metadata: { name: 'shop', namespace: 'shop' },
    spec: {
      peers: pods.map((pod, i) => ({
        agentId: `shop/${pod.name}`,
        installationId: `11111111-2222-4333-8444-00000000000${i}`,
        publicKey: encodeKey(pod.keyPair.publicKey),
        generation: 1,
        addresses: ['127.0.0.1'],
        meshPort: pod.meshPort,
        revoked: revoked.includes(pod.name),
      })),
    },
  });
}

export interface StartProxyOptions {
  /** The `noisemesh` entry point; default this tree's dist/src/cli/main.js. */
  readonly cli: string;
  /** Configuration keys merged over the defaults below. */
  readonly extra?: Record<string, unknown>;
  readonly logLevel?: string;
  readonly drainSeconds?: number;
  /** A command line the proxy runs under, e.g. `['prlimit', '--nofile=1024:1024']`. */
  readonly wrapper?: readonly string[];
}

/**
 * Writes `<dir>/<pod>.yaml` (its key at `<dir>/<pod>.key`, the registry `<dir>/registry.yaml`,
 * mesh and admin on 127.0.0.1), spawns the proxy with stdout and stderr into `pod.log`, and
 * resolves once its /readyz answers 200 (waitFor's bound).
 */
export function startProxyProcess(pod: ProxyPod, dir: string, options: StartProxyOptions): Promise<void> {
  const config = {
    identity: { agentId: `shop/${pod.name}`, privateKeyFile: join(dir, `${pod.name}.key`) },
    registry: { file: join(dir, 'registry.yaml') },
    inbound: { bind: '127.0.0.1', meshPort: pod.meshPort },
    admin: { bind: '127.0.0.1', port: pod.adminPort },
    log: { level: options.logLevel ?? 'info' },
    shutdown: { drainSeconds: options.drainSeconds ?? 1 },
    ...options.extra,
  };
  writeFileSync(join(dir, `${pod.name}.yaml`), stringify(config));
  const argv = [...(options.wrapper ?? []), process.execPath, options.cli, 'proxy', '--config', join(dir, `${pod.name}.yaml`)];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  pod.child = child;
  pod.log = '';
  child.stdout!.on('data', (c: Buffer) => (pod.log += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (pod.log += c.toString()));
  return waitFor(async () => (await get(pod.adminPort, '/readyz')).status === 200, `proxy ${pod.name} ready`);
}
