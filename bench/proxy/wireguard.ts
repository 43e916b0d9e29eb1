/**
 * Baseline: a WireGuard tunnel between the pods, in userspace (wireguard-go, as a mesh that
 * cannot load the kernel module would run it). Each pod gets a wg interface with an address on a /24 of
 * its own, the peer's eth0 address as the endpoint; clients reach B's servers at B's tunnel address.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeKey, nativeBackend } from '../../src/noise/index.js';
import { PORTS, poll, reachable, run, start, type Endpoint, type Pod, type PodNetwork, type Running, type Service } from './pods.js';

const LISTEN_PORT = 51820;

export interface WireguardPath {
  readonly endpoint: (service: Service) => Endpoint;
  readonly daemons: readonly Running[];
  stop(): Promise<void>;
}

/** wireguard-go's control sockets live on the host's filesystem, outside the namespaces. */
const CONTROL_DIR = '/var/run/wireguard';
const controlSockets = new Set<string>();

/**
 * Removes the control sockets of our interfaces that a killed wireguard-go left behind
 * (a SIGTERM lets it remove its own). Synchronous, for process exit.
 */
export function removeStaleControlSockets(): void {
  for (const file of controlSockets) rmSync(file, { force: true });
  controlSockets.clear();
}

/** `subnet` picks 10.253.<subnet>.0/24 for the tunnel addresses (inside the pods only). */
export async function startWireguard(net: PodNetwork, a: Pod, b: Pod, dir: string, subnet: number): Promise<WireguardPath> {
  const pods = [a, b] as const;
  const tunnelIp = (i: number): string => `10.253.${subnet}.${i + 1}`;
  // wireguard-go's control socket is /var/run/wireguard/<name>.sock, on the filesystem every
  // namespace shares: the names must differ between the pods, and from other runs'.
  const ifname = (i: number): string => `wgnm${process.pid % 1_000_000}${pods[i]!.name}`;
  const dh = nativeBackend.dh('25519');
  const keys = pods.map(() => dh.generateKeyPair());
  const daemons: Running[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(daemons.map((d) => d.stop()));
    removeStaleControlSockets();
  };
  try {
    for (const [i, pod] of pods.entries()) {
      // -f and WG_PROCESS_FOREGROUND: stay our child, so stopping it removes the interface.
      controlSockets.add(join(CONTROL_DIR, `${ifname(i)}.sock`));
      const daemon = start(net, pod, `wireguard-go in ${pod.name}`, 'wireguard-go', ['-f', ifname(i)], {
        env: { WG_PROCESS_FOREGROUND: '1', WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1', LOG_LEVEL: 'error' },
      });
      daemons.push(daemon);
      await poll(`${ifname(i)} in pod ${pod.name}`, async () => {
        if (daemon.exited) throw new Error(`${daemon.what} exited:\n${daemon.tail}`);
        return (await net.exec(pod, 'wg', ['show', ifname(i)])).code === 0;
      });
    }
    for (const [i, pod] of pods.entries()) {
      const peer = 1 - i;
      // The private key goes through a root-only file that lives only for this command.
      const keyFile = join(dir, `wg-${pod.name}.key`);
      writeFileSync(keyFile, `${encodeKey(keys[i]!.privateKey)}\n`, { mode: 0o600 });
      try {
        await run(net, pod, 'wg', ['set', ifname(i), 'listen-port', String(LISTEN_PORT), 'private-key', keyFile,
          'peer', encodeKey(keys[peer]!.publicKey), 'allowed-ips', `${tunnelIp(peer)}/32`, 'endpoint', `${pods[peer]!.ipv4}:${LISTEN_PORT}`]);
      } finally {
        rmSync(keyFile, { force: true });
      }
      await run(net, pod, 'ip', ['addr', 'add', `${tunnelIp(i)}/24`, 'dev', ifname(i)]);
      await run(net, pod, 'ip', ['link', 'set', ifname(i), 'up']);
    }
    for (const k of keys) k.privateKey.fill(0);
    const endpoint = (service: Service): Endpoint => ({ host: tunnelIp(1), port: PORTS[service] });
    // The first packet triggers the WireGuard handshake; wait until a TCP connection gets through.
    await poll('a TCP connection through the tunnel', () => reachable(net, a, endpoint('once')), 50, 200);
    return { endpoint, daemons, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
