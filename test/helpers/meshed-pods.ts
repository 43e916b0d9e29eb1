// Meshed pods in a PodNetwork, as a cluster would run them: a key and a registry entry
// each, `noisemesh init-iptables` in the pod, and a real `noisemesh proxy` process as UID
// 1337. Configuration beyond the pod's own identity comes from the test.
//
//   const mesh = await MeshedPods.create(net, [a, b]);
//   await mesh.startProxy(b, { inbound: { bind: '::', capture: { mode: 'permissive' } } });
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { encodeKey, nativeBackend, type KeyPair } from '../../src/noise/index.js';
import { waitForLine, type Pod, type PodNetwork } from './netns.js';
import { repoRoot } from './paths.js';

export const CLI = join(repoRoot, 'dist/src/cli/main.js');
export const PROXY_UID = 1337;
export const APP_UID = 1000;

export class MeshedPods {
  readonly #proxies = new Map<string, ChildProcess>();

  private constructor(
    readonly net: PodNetwork,
    readonly pods: readonly Pod[],
    /** Keys, the registry and configurations; readable by the proxy UID. */
    readonly dir: string,
    readonly keys: ReadonlyMap<string, KeyPair>,
  ) {}

  /** Keys and registry entries for `pods` (all of them meshed), and their iptables rules. */
  static async create(net: PodNetwork, pods: readonly Pod[]): Promise<MeshedPods> {
    const dir = mkdtempSync(join(tmpdir(), 'noisemesh-pods-'));
    chmodSync(dir, 0o755);
    const keys = new Map<string, KeyPair>();
    for (const pod of pods) {
      const kp = nativeBackend.dh('25519').generateKeyPair();
      keys.set(pod.name, kp);
      const file = join(dir, `${pod.name}.key`);
      writeFileSync(file, `${encodeKey(kp.privateKey)}\n`, { mode: 0o600 });
      chownSync(file, PROXY_UID, PROXY_UID);
    }
    const mesh = new MeshedPods(net, pods, dir, keys);
    writeFileSync(join(dir, 'registry.yaml'), mesh.registry());
    chmodSync(join(dir, 'registry.yaml'), 0o644);
    for (const pod of pods) {
      const r = await net.exec(pod, process.execPath, [CLI, 'init-iptables']);
      assert.equal(r.code, 0, `init-iptables in ${pod.name}: ${r.stderr}`);
    }
    return mesh;
  }

  registry(): string {
    return stringify({
      apiVersion: 'noisemesh.io/v1alpha1',
      kind: 'ClearanceRegistry',
      metadata: { name: 'shop', namespace: 'shop' },
      spec: {
        peers: this.pods.map((pod, i) => ({
          agentId: `shop/${pod.name}`,
          installationId: `00000000-0000-4000-8000-${String(i + 1).padStart(12, '0')}`,
          publicKey: encodeKey(this.keys.get(pod.name)!.publicKey),
          generation: 1,
          clearance: 'internal',
          addresses: [pod.ipv4, pod.ipv6],
          serviceAccount: pod.name,
          agentType: 'service',
          delegationDepth: 0,
          revoked: false,
          attestation: { authnStrength: 'high', attestedAt: new Date().toISOString() },
        })),
      },
    });
  }

  /**
   * Starts the pod's proxy as UID 1337 with `config` over its identity and the registry,
   * and waits until /readyz answers on the admin port (15020, which `config` must keep).
   */
  async startProxy(pod: Pod, config: Record<string, unknown>): Promise<void> {
    const file = join(this.dir, `${pod.name}.yaml`);
    writeFileSync(file, stringify({
      identity: { agentId: `shop/${pod.name}`, privateKeyFile: join(this.dir, `${pod.name}.key`) },
      registry: { file: join(this.dir, 'registry.yaml') },
      shutdown: { drainSeconds: 1 },
      ...config,
    }));
    chmodSync(file, 0o644);
    const child = this.net.spawn(pod, process.execPath, [CLI, 'proxy', '--config', file], { uid: PROXY_UID });
    this.#proxies.set(pod.name, child);
    await waitForLine(child, /"msg":"proxy listening"/, 20_000);
    for (let i = 0; i < 100; i++) {
      if ((await this.net.exec(pod, 'curl', ['-sf', 'http://127.0.0.1:15020/readyz'])).code === 0) return;
      await sleep(100);
    }
    throw new Error(`proxy in pod ${pod.name} never became ready`);
  }

  /** The pod's /metrics, read inside the pod. */
  async metrics(pod: Pod): Promise<string> {
    const r = await this.net.exec(pod, 'curl', ['-sS', '--max-time', '5', 'http://127.0.0.1:15020/metrics']);
    assert.equal(r.code, 0, `metrics of pod ${pod.name}: ${r.stderr}`);
    return r.stdout;
  }

  /** SIGTERM to every proxy, waiting for each to exit; then the files go. */
  async stop(): Promise<void> {
    for (const child of this.#proxies.values()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The value of one sample of `name` with exactly these labels in a /metrics text; 0 if absent. */
export function sample(metrics: string, name: string, labels: Record<string, string>): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(',');
  for (const line of metrics.split('\n')) {
    const match = /^(\w+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (match?.[1] !== name) continue;
    const have = (match[2] ?? '').split(',').filter(Boolean).sort().join(',');
    if (have === wanted) return Number(match[3]);
  }
  return 0;
}
