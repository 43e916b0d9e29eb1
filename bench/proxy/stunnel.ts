/**
 * Baseline: what a TLS mesh puts on the path, a pair of TLS 1.3 proxies with mutual
 * certificates (stunnel). A's stunnel accepts plaintext on 127.0.0.1 and dials B's stunnel
 * over TLS; B's stunnel verifies A's certificate and forwards to 127.0.0.1. The certificates
 * come from a throwaway CA made here with openssl (ECDSA P-256, as linkerd uses), and both sides
 * check the chain (verifyChain) and pin the peer's certificate (verifyPeer). Session
 * resumption is off, so every connection is a full handshake, as every Noise IK one is.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PORTS, poll, reachable, start, type Endpoint, type Pod, type PodNetwork, type Running, type Service } from './pods.js';

/** A's stunnel accepts on 127.0.0.1:(CLIENT_BASE + n), B's on its eth0:(SERVER_BASE + n). */
const CLIENT_BASE = 20000;
const SERVER_BASE = 30000;

export interface StunnelPath<S extends string = Service> {
  readonly endpoint: (service: S) => Endpoint;
  /** A's then B's. */
  readonly daemons: readonly [Running, Running];
  stop(): Promise<void>;
}

function openssl(dir: string, args: readonly string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

/**
 * A CA and one certificate per pod (CN and subjectAltName IP = the pod's address), in `dir`:
 * `<pod>.pem` and `<pod>.key`, and `<pod>-trust.pem` (the CA and the peer's certificate).
 * The haproxy pair (haproxy.ts) uses the same files.
 */
export function makeCertificates(dir: string, pods: readonly Pod[]): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(dir, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=noisemesh-bench-ca']);
  for (const pod of pods) {
    writeFileSync(
      join(dir, `${pod.name}.ext`),
      `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:${pod.ipv4}\n`,
    );
    openssl(dir, ['req', ...ec, '-keyout', `${pod.name}.key`, '-out', `${pod.name}.csr`, '-subj', `/CN=pod-${pod.name}`]);
    openssl(dir, ['x509', '-req', '-in', `${pod.name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', `${pod.name}.pem`, '-extfile', `${pod.name}.ext`]);
  }
  // verifyPeer accepts only a peer certificate found in CAfile: the CA plus the peer's own.
  const ca = readFileSync(join(dir, 'ca.pem'), 'utf8');
  const [a, b] = pods;
  writeFileSync(join(dir, `${a!.name}-trust.pem`), ca + readFileSync(join(dir, `${b!.name}.pem`), 'utf8'));
  writeFileSync(join(dir, `${b!.name}-trust.pem`), ca + readFileSync(join(dir, `${a!.name}.pem`), 'utf8'));
}

function config(dir: string, pod: Pod, client: boolean, peer: Pod, ports: Readonly<Record<string, number>>): string {
  const common = [
    'foreground = yes',
    'pid =',
    'syslog = no',
    // Per-connection notices, as stunnel logs by default; the bench drains them.
    'debug = notice',
    `cert = ${join(dir, `${pod.name}.pem`)}`,
    `key = ${join(dir, `${pod.name}.key`)}`,
    `CAfile = ${join(dir, `${pod.name}-trust.pem`)}`,
    'verifyChain = yes',
    'verifyPeer = yes',
    `checkIP = ${peer.ipv4}`,
    'sslVersionMin = TLSv1.3',
    'sessionResume = no',
    'socket = l:TCP_NODELAY=1',
    'socket = r:TCP_NODELAY=1',
  ];
  const services = Object.keys(ports).flatMap((service) => {
    const n = ports[service]!;
    return client
      ? [`[${service}]`, 'client = yes', `accept = 127.0.0.1:${CLIENT_BASE + n}`, `connect = ${peer.ipv4}:${SERVER_BASE + n}`]
      : [`[${service}]`, `accept = ${pod.ipv4}:${SERVER_BASE + n}`, `connect = 127.0.0.1:${n}`];
  });
  return [...common, ...services, ''].join('\n');
}

/**
 * The pair, with one stunnel service per entry of `ports` (B's server ports; default: PORTS),
 * ready once `ready` says the first service answers through it (default: a byte to `once`).
 */
export async function startStunnel(net: PodNetwork, a: Pod, b: Pod, dir: string): Promise<StunnelPath>;
export async function startStunnel<S extends string>(
  net: PodNetwork,
  a: Pod,
  b: Pod,
  dir: string,
  ports: Readonly<Record<S, number>>,
  ready: (first: Endpoint) => Promise<boolean>,
): Promise<StunnelPath<S>>;
export async function startStunnel(
  net: PodNetwork,
  a: Pod,
  b: Pod,
  dir: string,
  ports: Readonly<Record<string, number>> = PORTS,
  ready?: (first: Endpoint) => Promise<boolean>,
): Promise<StunnelPath<string>> {
  makeCertificates(dir, [a, b]);
  const daemons: Running[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(daemons.map((d) => d.stop()));
  };
  try {
    for (const [pod, client, peer] of [[b, false, a], [a, true, b]] as const) {
      const file = join(dir, `stunnel-${pod.name}.conf`);
      writeFileSync(file, config(dir, pod, client, peer, ports));
      chmodSync(file, 0o600);
      const daemon = start(net, pod, `stunnel in ${pod.name}`, 'stunnel4', [file]);
      daemons.push(daemon);
      await daemon.waitFor(/Configuration successful/);
    }
    const endpoint = (service: string): Endpoint => ({ host: '127.0.0.1', port: CLIENT_BASE + ports[service]! });
    const first = endpoint(ready === undefined ? 'once' : Object.keys(ports)[0]!);
    await poll('a TCP connection through stunnel', () => (ready ?? ((e: Endpoint) => reachable(net, a, e)))(first), 20, 200);
    return { endpoint, daemons: [daemons[1]!, daemons[0]!], stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
