/**
 * The gateway bench's processes: a `noisemesh gateway --config` process (the real CLI, file
 * or vault backend, audit lines to a file, a plain loopback listener for the baseline), a
 * `noisemesh proxy --config` process for the caller `payments/api` with an explicit listener
 * to the gateway's port 8200, and for the vault cases the Vault test double in a third. The
 * load generator is the bench's own process: none of the four shares a thread.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { encodeKey, nativeBackend } from '../../src/noise/index.js';
import { freePorts, get } from '../../test/helpers/process.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const VAULT_MAIN = fileURLToPath(new URL('./vault-main.js', import.meta.url));

export const GATEWAY_AGENT = 'noisemesh-system/gateway';
export const CALLER_AGENT = 'payments/api';

/** One rule for the caller through the mesh, one for the gateway's own pod over loopback: the same requirements. */
export const POLICY = `rules:
  - id: payments-db
    paths: ["payments/**"]
    agents: ["payments/*"]
    require: {clearance: secrets-only, authnStrength: high, maxFreshnessSeconds: 3600}
  - id: self
    paths: ["payments/**"]
    agents: ["noisemesh-system/*"]
    require: {clearance: secrets-only, authnStrength: high, maxFreshnessSeconds: 3600, networkExposure: loopback}
`;

export type BackendSetup =
  | { readonly kind: 'file' }
  /** The Vault double, `paths` secrets beside payments/db, behind a cache of this TTL. */
  | { readonly kind: 'vault'; readonly ttlSeconds: number; readonly paths: number };

export interface GatewaySetup {
  /** The client proxy's listener to the gateway port: through the mesh. */
  readonly meshPort: number;
  /** The gateway's plain loopback listener: the baseline. */
  readonly loopbackPort: number;
  readonly adminPort: number;
  readonly auditFile: string;
  /** CPU seconds (user + system) the gateway process and the client proxy process have used so far. */
  cpuSeconds(): { readonly gateway: number; readonly client: number };
  close(): Promise<void>;
}

/** Linux: user + system CPU seconds of `pid`, from /proc (clock ticks: 10 ms resolution). */
function processCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime: fields 14 and 15 of proc(5), 12 and 13 after the command.
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** USER_HZ: 100 on every Linux architecture node runs on. */
const CLOCK_TICKS = 100;

function track(child: ChildProcess, name: string, output: { text: string }): void {
  const keep = (d: Buffer): void => {
    output.text = (output.text + d.toString()).slice(-8192);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.once('exit', (code, signal) => {
    if (code !== 0 && signal === null) console.error(`${name} exited with ${code}: ${output.text}`);
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(10_000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

async function ready(port: number, what: string, output: { text: string }): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if ((await get(port, '/readyz', 1000)).status === 200) return;
    await sleep(50);
  }
  throw new Error(`${what} did not turn ready within 15 s: ${output.text}`);
}

/**
 * Starts the processes; `nodeFlags` go to the gateway's node (`--cpu-prof`, say), and
 * `clientNodeFlags` to the client proxy's. Resolves once the gateway and the client proxy are ready.
 */
export async function startGateway(backend: BackendSetup, nodeFlags: readonly string[] = [], clientNodeFlags: readonly string[] = []): Promise<GatewaySetup> {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-gwbench-'));
  const children: ChildProcess[] = [];
  const file = (name: string, text: string, mode = 0o644): string => {
    const path = join(dir, name);
    writeFileSync(path, text, { mode });
    return path;
  };
  try {
    const [gwMesh, gwAdmin, loopbackPort, clientMesh, clientAdmin, meshPort] = await freePorts(6) as [number, number, number, number, number, number];
    const dh = nativeBackend.dh('25519');
    const gwKey = dh.generateKeyPair();
    const clientKey = dh.generateKeyPair();
    const attestation = { authnStrength: 'high', attestedAt: new Date().toISOString(), devicePosture: 0.9 };
    const entry = (agentId: string, key: Uint8Array, meshPortOf: number, n: number): object => ({
      agentId,
      installationId: `11111111-2222-4333-8444-00000000000${n}`,
      publicKey: encodeKey(key),
      generation: 1,
      clearance: 'secrets-only',
      addresses: ['127.0.0.1'],
      meshPort: meshPortOf,
      agentType: 'service',
      delegationDepth: 0,
      attestation,
    });
    const doc = (ns: string, peer: object): string => stringify({ apiVersion: 'noisemesh.io/v1alpha1', kind: 'ClearanceRegistry', metadata: { name: 'peers', namespace: ns }, spec: { peers: [peer] } });
    const registry = file('registry.yaml', [doc('noisemesh-system', entry(GATEWAY_AGENT, gwKey.publicKey, gwMesh, 1)), doc('payments', entry(CALLER_AGENT, clientKey.publicKey, clientMesh, 2))].join('---\n'));
    const policy = file('policy.yaml', POLICY);
    // Not beside the registry and the secrets: their watchers would wake on every audit write.
    mkdirSync(join(dir, 'audit'));
    const auditFile = join(dir, 'audit', 'audit.log');

    let backendSection: object;
    if (backend.kind === 'file') {
      backendSection = { backend: { file: file('secrets.yaml', 'payments/db: {username: app, password: "bench-password"}\n') } };
    } else {
      const vault = spawn(process.execPath, [VAULT_MAIN, String(backend.paths)], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(vault);
      const out = { text: '' };
      const line = await new Promise<string>((resolve, reject) => {
        vault.stdout!.on('data', (d: Buffer) => {
          out.text += d.toString();
          if (out.text.includes('\n')) resolve(out.text.split('\n')[0]!);
        });
        vault.once('exit', (code) => reject(new Error(`the Vault double exited with ${code}`)));
      });
      const [url, token] = line.split(' ') as [string, string];
      backendSection = {
        backend: { vault: { address: url, mount: 'secret', auth: { token: { file: file('vault-token', `${token}\n`, 0o600) } }, timeoutSeconds: 5 } },
        cache: { ttlSeconds: backend.ttlSeconds, notFoundTtlSeconds: 0 },
      };
    }

    const gwConfig = file('gateway.yaml', stringify({
      identity: { agentId: GATEWAY_AGENT, privateKeyFile: file('gw.key', `${encodeKey(gwKey.privateKey)}\n`, 0o600) },
      registry: { file: registry },
      inbound: { bind: '127.0.0.1', meshPort: gwMesh },
      admin: { bind: '127.0.0.1', port: gwAdmin },
      log: { level: 'warn' },
      shutdown: { drainSeconds: 1 },
      gateway: { policy, ...backendSection, audit: { file: auditFile }, loopback: { port: loopbackPort } },
    }));
    const clientConfig = file('client.yaml', stringify({
      identity: { agentId: CALLER_AGENT, privateKeyFile: file('client.key', `${encodeKey(clientKey.privateKey)}\n`, 0o600) },
      registry: { file: registry },
      inbound: { bind: '127.0.0.1', meshPort: clientMesh },
      admin: { bind: '127.0.0.1', port: clientAdmin },
      outbound: { explicit: [{ listen: `127.0.0.1:${meshPort}`, peer: GATEWAY_AGENT, port: 8200 }] },
      log: { level: 'warn' },
      shutdown: { drainSeconds: 1 },
    }));
    const gwOut = { text: '' };
    const gw = spawn(process.execPath, [...nodeFlags, CLI, 'gateway', '--config', gwConfig], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(gw);
    track(gw, 'noisemesh gateway', gwOut);
    const clientOut = { text: '' };
    const client = spawn(process.execPath, [...clientNodeFlags, CLI, 'proxy', '--config', clientConfig], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(client);
    track(client, 'noisemesh proxy', clientOut);
    await ready(gwAdmin, 'the gateway', gwOut);
    await ready(clientAdmin, 'the client proxy', clientOut);
    return {
      meshPort,
      loopbackPort,
      adminPort: gwAdmin,
      auditFile,
      cpuSeconds: () => ({ gateway: processCpuSeconds(gw.pid), client: processCpuSeconds(client.pid) }),
      async close() {
        // The gateway last but one: its CPU profile (if any) is written as it exits.
        await stop(client);
        await stop(gw);
        await Promise.all(children.map(stop));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all(children.map(stop));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

const FLOOR_MAIN = fileURLToPath(new URL('./floor-main.js', import.meta.url));

/** The host floor's process (floor-main.ts): a bare node:http server answering `body` to every request. */
export interface FloorSetup {
  readonly port: number;
  /** CPU seconds (user + system) the floor process has used so far. */
  cpuSeconds(): number;
  close(): Promise<void>;
}

/** Starts floor-main.ts answering `body` (the bytes the gateway answered for the same fetch); resolves once it listens. */
export async function startFloor(body: string): Promise<FloorSetup> {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-gwfloor-'));
  const bodyFile = join(dir, 'body.json');
  writeFileSync(bodyFile, body);
  const child = spawn(process.execPath, [FLOOR_MAIN, bodyFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const close = async (): Promise<void> => {
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let text = '';
      child.stdout!.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('\n')) resolve(Number(text.split('\n')[0]));
      });
      child.once('exit', (code) => reject(new Error(`the floor server exited with ${code} before it listened`)));
    });
    return { port, cpuSeconds: () => processCpuSeconds(child.pid), close };
  } catch (err) {
    await close();
    throw err;
  }
}
