/**
 * The path under test, set up as test/mesh-netns.test.ts does it: `noisemesh proxy` in each
 * pod as UID 1337 (setpriv), both pods in one registry file, and `noisemesh init-iptables` in
 * both. The client in A connects to B's pod IP and knows nothing of the mesh. The rules are
 * installed only for noisemesh's turns (capture(true)) and removed with `init-iptables
 * --cleanup` for the baselines', which run in the same pods. For the secrets-gateway scenarios,
 * B runs `noisemesh gateway` instead (the same identity, registry and ports, plus a policy, a
 * file backend and an audit file): A's proxy carries the client's plaintext to it over Noise.
 */
import { chmodSync, chownSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { encodeKey, nativeBackend } from '../../src/noise/index.js';
import { CLI, MESH_PORTS, NODE, poll, run, start, type Endpoint, type Pod, type PodNetwork, type Running, type Service } from './pods.js';

const PROXY_UID = 1337;
/** The gateway's target port for the secrets API (docs/gateway.md's default). */
export const GATEWAY_PORT = 8200;

/** What B's gateway serves: the policy and the file backend's content, both YAML (bench/load/gateway.ts). */
export interface GatewayFiles {
  readonly policy: string;
  readonly secrets: string;
}

export class NoisemeshPair {
  #proxies: Running[] = [];
  #suite = '';
  #gateway = false;

  private constructor(
    private readonly net: PodNetwork,
    private readonly pods: readonly [Pod, Pod],
    private readonly dir: string,
  ) {}

  /** Keys and the registry; no proxy runs and no rule is installed yet. */
  static async install(net: PodNetwork, a: Pod, b: Pod, dir: string): Promise<NoisemeshPair> {
    const pair = new NoisemeshPair(net, [a, b], dir);
    const dh = nativeBackend.dh('25519');
    const publicKeys: string[] = [];
    for (const pod of [a, b]) {
      const kp = dh.generateKeyPair();
      publicKeys.push(encodeKey(kp.publicKey));
      const file = join(dir, `${pod.name}.nm.key`);
      writeFileSync(file, `${encodeKey(kp.privateKey)}\n`, { mode: 0o600 });
      chownSync(file, PROXY_UID, PROXY_UID);
      kp.privateKey.fill(0);
    }
    const registry = stringify({
      apiVersion: 'noisemesh.io/v1alpha1',
      kind: 'ClearanceRegistry',
      metadata: { name: 'bench', namespace: 'bench' },
      spec: {
        peers: [a, b].map((pod, i) => ({
          agentId: `bench/${pod.name}`,
          installationId: `00000000-0000-4000-8000-00000000000${i + 1}`,
          publicKey: publicKeys[i],
          generation: 1,
          clearance: 'internal',
          addresses: [pod.ipv4],
          serviceAccount: pod.name,
          agentType: 'service',
          delegationDepth: 0,
          revoked: false,
          attestation: { authnStrength: 'high', attestedAt: new Date().toISOString() },
        })),
      },
    });
    writeFileSync(join(dir, 'registry.yaml'), registry);
    chmodSync(join(dir, 'registry.yaml'), 0o644);
    return pair;
  }

  get suite(): string {
    return this.#suite;
  }

  /** Whether B runs `noisemesh gateway` (start with files) rather than `noisemesh proxy`. */
  get gateway(): boolean {
    return this.#gateway;
  }

  /** B's audit file while it runs the gateway: one JSON line per decision. */
  get auditFile(): string {
    return join(this.dir, 'gateway-audit.log');
  }

  get proxies(): readonly Running[] {
    return this.#proxies;
  }

  /**
   * Starts both proxies with `suite` (restarting them if they run) and waits until both are
   * ready; with `gateway`, B runs `noisemesh gateway` serving those files, as UID 1337 like
   * the proxy (so it reads them and appends to a fresh audit file it owns).
   */
  async start(suite: string, gateway?: GatewayFiles): Promise<void> {
    await this.stop();
    this.#suite = suite;
    this.#gateway = gateway !== undefined;
    for (const pod of this.pods) {
      const isGateway = gateway !== undefined && pod === this.pods[1];
      const config: Record<string, unknown> = {
        suite,
        identity: { agentId: `bench/${pod.name}`, privateKeyFile: join(this.dir, `${pod.name}.nm.key`) },
        registry: { file: join(this.dir, 'registry.yaml') },
        outbound: { mode: 'permissive', capture: { port: 15001 } },
        inbound: { meshPort: 15443, capture: { port: 15006, mode: 'strict', excludePorts: [15020] } },
        admin: { bind: '0.0.0.0', port: 15020 },
        shutdown: { drainSeconds: 1 },
      };
      if (isGateway) {
        const policy = join(this.dir, 'gateway-policy.yaml');
        const secrets = join(this.dir, 'gateway-secrets.yaml');
        writeFileSync(policy, gateway.policy);
        writeFileSync(secrets, gateway.secrets);
        chmodSync(policy, 0o644);
        // The gateway reads it as UID 1337; nothing else on the bench reads it.
        chownSync(secrets, PROXY_UID, PROXY_UID);
        chmodSync(secrets, 0o600);
        writeFileSync(this.auditFile, '');
        chownSync(this.auditFile, PROXY_UID, PROXY_UID);
        chmodSync(this.auditFile, 0o600);
        config.gateway = { port: GATEWAY_PORT, policy, backend: { file: secrets }, audit: { file: this.auditFile } };
      }
      const command = isGateway ? 'gateway' : 'proxy';
      const file = join(this.dir, `${pod.name}.${command}.yaml`);
      writeFileSync(file, stringify(config));
      chmodSync(file, 0o644);
      const proxy = start(this.net, pod, `noisemesh ${command} in ${pod.name}`, NODE, [CLI, command, '--config', file], { uid: PROXY_UID });
      this.#proxies.push(proxy);
      await proxy.waitFor(/"msg":"proxy listening"/);
      await poll(`noisemesh proxy in ${pod.name} /readyz`, async () => (await this.net.exec(pod, 'curl', ['-sf', 'http://127.0.0.1:15020/readyz'])).code === 0);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.#proxies.map((p) => p.stop()));
    this.#proxies = [];
  }

  /** Installs (noisemesh init-iptables) or removes (--cleanup) both pods' capture rules. */
  async capture(on: boolean): Promise<void> {
    for (const pod of this.pods) await run(this.net, pod, NODE, [CLI, 'init-iptables', ...(on ? [] : ['--cleanup'])]);
  }

  /** Clients connect to B's pod IP and B's own ports: iptables does the rest. */
  endpoint(service: Service): Endpoint {
    return { host: this.pods[1].ipv4, port: MESH_PORTS[service] };
  }

  /**
   * Handshakes B's proxy accepted so far: proof that the traffic measured went through
   * Noise, and was not passed through in plaintext.
   */
  async acceptedHandshakes(): Promise<number> {
    const r = await run(this.net, this.pods[1], 'curl', ['-s', 'http://127.0.0.1:15020/metrics']);
    const m = /noisemesh_handshakes_total\{role="responder",result="accepted"\} (\d+)/.exec(r.stdout);
    return m === null ? 0 : Number(m[1]);
  }

  /**
   * Decisions B's gateway has made so far, allow and deny, over every rule (its
   * noisemesh_secret_requests_total): proof that the answers measured were the gateway's.
   */
  async secretDecisions(): Promise<{ allow: number; deny: number }> {
    const r = await run(this.net, this.pods[1], 'curl', ['-s', 'http://127.0.0.1:15020/metrics']);
    const counts = { allow: 0, deny: 0 };
    for (const m of r.stdout.matchAll(/^noisemesh_secret_requests_total\{([^}]*)\} (\d+)$/gm)) {
      const decision = /decision="(\w+)"/.exec(m[1]!)?.[1];
      if (decision === 'allow' || decision === 'deny') counts[decision] += Number(m[2]);
    }
    return counts;
  }
}
