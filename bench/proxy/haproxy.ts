/**
 * Baseline: a TLS 1.3 mutual-certificate pair of haproxy 2.6 (Debian's), the stronger TLS
 * anchor on this machine (multi-threaded, OpenSSL, event-driven C). Layer 4 (`mode tcp`),
 * as noisemesh is: A's haproxy accepts plaintext on 127.0.0.1 and opens one TLS connection
 * to B's per client connection; B's verifies A's certificate and forwards to 127.0.0.1.
 * Both sides verify the peer's chain against a CA made for the run (stunnel.ts
 * makeCertificates: ECDSA P-256, one certificate per pod). No session resumption (no
 * tickets, no session cache, no-ssl-reuse), so each connection is a full handshake, as each
 * Noise IK one is. Threads: haproxy's default, one per CPU.
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeCertificates } from './stunnel.js';
import { NOFILE, poll, start, type Endpoint, type Pod, type PodNetwork, type Running } from './pods.js';

const CLIENT_BASE = 21000;
const SERVER_BASE = 31000;

export interface HaproxyPath<S extends string> {
  readonly endpoint: (service: S) => Endpoint;
  /** A's then B's. */
  readonly daemons: readonly [Running, Running];
  stop(): Promise<void>;
}

function config(dir: string, pod: Pod, client: boolean, peer: Pod, ports: Readonly<Record<string, number>>): string {
  const lines = [
    'global',
    // Two descriptors per connection, within the limit the bench raised (pods.ts NOFILE).
    `  maxconn ${Math.floor((NOFILE - 200) / 2)}`,
    '  tune.ssl.cachesize 0',
    '  ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets',
    '  ssl-default-server-options ssl-min-ver TLSv1.3 no-tls-tickets',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 120s',
    '  timeout server 120s',
  ];
  const crt = join(dir, `haproxy-${pod.name}.pem`);
  const trust = join(dir, `${pod.name}-trust.pem`);
  for (const [service, n] of Object.entries(ports)) {
    if (client) {
      lines.push(`listen ${service}`, `  bind 127.0.0.1:${CLIENT_BASE + n}`, `  server ${peer.name} ${peer.ipv4}:${SERVER_BASE + n} ssl crt ${crt} ca-file ${trust} verify required no-ssl-reuse`);
    } else {
      lines.push(`listen ${service}`, `  bind ${pod.ipv4}:${SERVER_BASE + n} ssl crt ${crt} ca-file ${trust} verify required`, `  server app 127.0.0.1:${n}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Starts B's haproxy, then A's, with one listener per entry of `ports` (B's server ports);
 * resolves once `ready` says the first answers through the pair.
 */
export async function startHaproxy<S extends string>(
  net: PodNetwork,
  a: Pod,
  b: Pod,
  dir: string,
  ports: Readonly<Record<S, number>>,
  ready: (first: Endpoint) => Promise<boolean>,
): Promise<HaproxyPath<S>> {
  makeCertificates(dir, [a, b]);
  for (const pod of [a, b]) {
    // haproxy wants the certificate and its key in one file.
    const file = join(dir, `haproxy-${pod.name}.pem`);
    writeFileSync(file, readFileSync(join(dir, `${pod.name}.pem`), 'utf8') + readFileSync(join(dir, `${pod.name}.key`), 'utf8'));
    chmodSync(file, 0o600);
  }
  const daemons: Running[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(daemons.map((d) => d.stop()));
  };
  try {
    for (const [pod, client, peer] of [[b, false, a], [a, true, b]] as const) {
      const file = join(dir, `haproxy-${pod.name}.cfg`);
      writeFileSync(file, config(dir, pod, client, peer, ports));
      chmodSync(file, 0o600);
      const check = await net.exec(pod, 'haproxy', ['-c', '-f', file]);
      if (check.code !== 0) throw new Error(`haproxy -c -f ${file} in pod ${pod.name} failed:\n${check.stderr}${check.stdout}`);
      // -db: foreground, no daemon, so the pid is haproxy's own (its threads share it).
      daemons.push(start(net, pod, `haproxy in ${pod.name}`, 'haproxy', ['-db', '-f', file]));
    }
    const endpoint = (service: S): Endpoint => ({ host: '127.0.0.1', port: CLIENT_BASE + ports[service] });
    const first = endpoint(Object.keys(ports)[0] as S);
    await poll('a request through the haproxy pair', async () => {
      const dead = daemons.find((d) => d.exited);
      if (dead) throw new Error(`${dead.what} exited (${dead.child.exitCode ?? dead.child.signalCode}):\n${dead.tail}`);
      return ready(first);
    }, 20, 200);
    return { endpoint, daemons: [daemons[1]!, daemons[0]!], stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
