/**
 * Reference path: node-relay.ts as a pair, A's relay on 127.0.0.1 dialling B's on its eth0,
 * B's forwarding to 127.0.0.1, like the stunnel pair but with no cryptography. What a
 * Node.js proxy costs before any Noise: the floor under noisemesh's figures.
 */
import { join } from 'node:path';
import { NODE, PORTS, SCRIPTS, poll, reachable, start, type Endpoint, type Pod, type PodNetwork, type Running, type Service } from './pods.js';

const CLIENT_BASE = 40000;
const SERVER_BASE = 50000;

export interface RelayPath {
  readonly endpoint: (service: Service) => Endpoint;
  /** A's then B's. */
  readonly relays: readonly [Running, Running];
  stop(): Promise<void>;
}

export async function startRelay(net: PodNetwork, a: Pod, b: Pod): Promise<RelayPath> {
  const ports = Object.values(PORTS);
  const relays: Running[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(relays.map((r) => r.stop()));
  };
  try {
    for (const [pod, routes] of [
      [b, ports.map((n) => `${b.ipv4}:${SERVER_BASE + n}=127.0.0.1:${n}`)],
      [a, ports.map((n) => `127.0.0.1:${CLIENT_BASE + n}=${b.ipv4}:${SERVER_BASE + n}`)],
    ] as const) {
      const relay = start(net, pod, `node relay in ${pod.name}`, NODE, [join(SCRIPTS, 'node-relay.js'), ...routes]);
      relays.push(relay);
      await relay.waitFor(/^ready$/m);
    }
    const endpoint = (service: Service): Endpoint => ({ host: '127.0.0.1', port: CLIENT_BASE + PORTS[service] });
    await poll('a TCP connection through the node relays', () => reachable(net, a, endpoint('once')), 20, 200);
    return { endpoint, relays: [relays[1]!, relays[0]!], stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
