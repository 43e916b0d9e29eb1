// The whole data path in network namespaces, as root: three pods on a bridge. Pods A and B
// are meshed (init-iptables, then a `noisemesh proxy` process as UID 1337); pod C is not.
// Unmodified clients (curl, node) in A reach B by pod IP; a packet capture on B's interface
// shows no plaintext; strict inbound refuses C, permissive lets it through; revoking A in the
// registry file ends A's live session.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { encodeKey, nativeBackend, type KeyPair } from '../src/noise/index.js';
import { PodNetwork, requireTools, waitForLine, type Pod } from './helpers/netns.js';
import { repoRoot } from './helpers/paths.js';

const CLI = join(repoRoot, 'dist/src/cli/main.js');
const PROXY_UID = 1337;
const APP_UID = 1000;

let net: PodNetwork;
let dir: string;
let a: Pod, b: Pod, c: Pod;
const keys = new Map<string, KeyPair>();
const proxies = new Map<string, ChildProcess>();
const marker = `MARKER-${randomBytes(8).toString('hex')}`;

function registry(revokeA: boolean): string {
  return stringify({
    apiVersion: 'noisemesh.io/v1alpha1',
    kind: 'ClearanceRegistry',
    metadata: { name: 'shop', namespace: 'shop' },
    spec: {
      peers: [a, b].map((pod, i) => ({
        agentId: `shop/${pod.name}`,
        installationId: `00000000-0000-4000-8000-00000000000${i + 1}`,
        publicKey: encodeKey(keys.get(pod.name)!.publicKey),
        generation: 1,
        clearance: 'internal',
        addresses: [pod.ipv4, pod.ipv6],
        serviceAccount: pod.name,
        agentType: 'service',
        delegationDepth: 0,
        revoked: revokeA && pod === a,
        attestation: { authnStrength: 'high', attestedAt: new Date().toISOString() },
      })),
    },
  });
}

async function startProxy(pod: Pod, inboundMode: 'strict' | 'permissive'): Promise<void> {
  const config = {
    identity: { agentId: `shop/${pod.name}`, privateKeyFile: join(dir, `${pod.name}.key`) },
    registry: { file: join(dir, 'registry.yaml') },
    outbound: { mode: 'permissive', capture: { bind: '::', port: 15001 } },
    inbound: { bind: '::', meshPort: 15443, capture: { port: 15006, mode: inboundMode, excludePorts: [15020] } },
    admin: { bind: '0.0.0.0', port: 15020 },
    shutdown: { drainSeconds: 1 },
  };
  const file = join(dir, `${pod.name}.yaml`);
  writeFileSync(file, stringify(config));
  chmodSync(file, 0o644);
  const child = net.spawn(pod, process.execPath, [CLI, 'proxy', '--config', file], { uid: PROXY_UID });
  proxies.set(pod.name, child);
  await waitForLine(child, /"msg":"proxy listening"/, 20_000);
  for (let i = 0; i < 100; i++) {
    const r = await net.exec(pod, 'curl', ['-sf', 'http://127.0.0.1:15020/readyz']);
    if (r.code === 0) return;
    await sleep(100);
  }
  throw new Error(`proxy in pod ${pod.name} never became ready`);
}

/** tshark (dumpcap) on the pod's eth0, writing classic pcap; resolves once it captures. */
async function startCapture(pod: Pod, name: string): Promise<ChildProcess> {
  const child = net.spawn(pod, 'tshark', ['-i', 'eth0', '-n', '-F', 'pcap', '-f', 'tcp', '-w', join(dir, name)]);
  await waitForStderr(child, /Capturing on/);
  // dumpcap announces itself a little before its socket is attached to the interface.
  await sleep(1000);
  return child;
}

async function stopCapture(child: ChildProcess): Promise<void> {
  await sleep(500); // the last packets reach the file
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGINT');
  await exited;
}

function waitForStderr(child: ChildProcess, pattern: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`tshark did not start: ${text}`)), 15_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (pattern.test(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

async function stopProxy(pod: Pod): Promise<void> {
  const child = proxies.get(pod.name);
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

before(async () => {
  requireTools(['ip', 'iptables', 'iptables-restore', 'setpriv', 'curl', 'tshark']);
  net = await PodNetwork.create(3);
  [a, b, c] = net.pods as [Pod, Pod, Pod];
  dir = mkdtempSync(join(tmpdir(), 'noisemesh-netns-'));
  chmodSync(dir, 0o755);
  for (const pod of [a, b]) {
    const kp = nativeBackend.dh('25519').generateKeyPair();
    keys.set(pod.name, kp);
    const file = join(dir, `${pod.name}.key`);
    writeFileSync(file, `${encodeKey(kp.privateKey)}\n`, { mode: 0o600 });
    chownSync(file, PROXY_UID, PROXY_UID);
  }
  writeFileSync(join(dir, 'registry.yaml'), registry(false));
  chmodSync(join(dir, 'registry.yaml'), 0o644);
  for (const pod of [a, b]) {
    const r = await net.exec(pod, process.execPath, [CLI, 'init-iptables']);
    assert.equal(r.code, 0, `init-iptables in ${pod.name}: ${r.stderr}`);
  }
  // B's application: an HTTP server on 8080 that echoes the path and adds the marker, and a
  // TCP server on 8081 that ticks a byte every 100 ms (a long-lived session).
  const app = `
    const http = require('http'), net = require('net');
    http.createServer((q, s) => s.end('reply ' + q.url + ' ${marker}-RESPONSE')).listen(8080, '::');
    net.createServer((s) => { s.on('error', () => {}); const t = setInterval(() => s.write('.'), 100); s.on('close', () => clearInterval(t)); }).listen(8081, '::');
    console.log('app ready');`;
  await waitForLine(net.spawn(b, process.execPath, ['-e', app], { uid: APP_UID }), /app ready/);
  await startProxy(a, 'strict');
  await startProxy(b, 'strict');
});

after(async () => {
  for (const pod of [a, b]) if (pod) await stopProxy(pod).catch(() => {});
  await net?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('an unmodified client in pod A reaches pod B by pod IP, over IPv4 and IPv6, through Noise', async () => {
  const capture = await startCapture(b, 'b.pcap');
  try {
    const v4 = await net.exec(a, 'curl', ['-sS', '--max-time', '10', `http://${b.ipv4}:8080/${marker}-REQUEST`], { uid: APP_UID });
    assert.equal(v4.code, 0, v4.stderr);
    assert.equal(v4.stdout, `reply /${marker}-REQUEST ${marker}-RESPONSE`);
    const v6 = await net.exec(a, 'curl', ['-sS', '-g', '--max-time', '10', `http://[${b.ipv6}]:8080/${marker}-REQUEST6`], { uid: APP_UID });
    assert.equal(v6.code, 0, v6.stderr);
    assert.equal(v6.stdout, `reply /${marker}-REQUEST6 ${marker}-RESPONSE`);
  } finally {
    await stopCapture(capture);
  }
  const pcap = readFileSync(join(dir, 'b.pcap'));
  assert.ok(pcap.length > 2000, `the capture holds the exchange (${pcap.length} bytes)`);
  assert.equal(pcap.includes(marker), false, 'no plaintext of the request or the response on the wire');
  // The capture did see the traffic: to the mesh port 15443, and none to 8080.
  const seen = await net.exec(b, 'tshark', ['-r', join(dir, 'b.pcap'), '-n', '-Y', 'tcp.dstport == 15443']);
  assert.ok(seen.stdout.split('\n').filter(Boolean).length >= 4, `packets to the mesh port: ${seen.stdout}`);
  const plain = await net.exec(b, 'tshark', ['-r', join(dir, 'b.pcap'), '-n', '-Y', 'tcp.port == 8080']);
  assert.equal(plain.stdout.trim(), '', 'nothing crossed the wire to port 8080');
  const metrics = await net.exec(b, 'curl', ['-s', 'http://127.0.0.1:15020/metrics']);
  assert.match(metrics.stdout, /noisemesh_handshakes_total\{role="responder",result="accepted"\} 2/);
});

test('strict inbound refuses a plaintext client from an unmeshed pod', async () => {
  const r = await net.exec(c, 'curl', ['-sS', '--max-time', '10', `http://${b.ipv4}:8080/from-c`], { uid: APP_UID });
  assert.notEqual(r.code, 0, 'curl must fail');
  assert.equal(r.stdout, '');
  const metrics = await net.exec(b, 'curl', ['-s', 'http://127.0.0.1:15020/metrics']);
  assert.match(metrics.stdout, /noisemesh_plaintext_connections_total\{direction="inbound",result="refused"\} 1/);
});

test('permissive inbound lets the unmeshed client through, in plaintext', async () => {
  await stopProxy(b);
  await startProxy(b, 'permissive');
  const capture = await startCapture(b, 'c.pcap');
  try {
    const r = await net.exec(c, 'curl', ['-sS', '--max-time', '10', `http://${b.ipv4}:8080/${marker}-PLAIN`], { uid: APP_UID });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `reply /${marker}-PLAIN ${marker}-RESPONSE`);
  } finally {
    await stopCapture(capture);
  }
  // The positive control for the capture above: unmeshed plaintext is visible on the wire.
  const dump = await net.exec(b, 'tshark', ['-r', join(dir, 'c.pcap'), '-n']);
  assert.equal(readFileSync(join(dir, 'c.pcap')).includes(`${marker}-PLAIN`), true, dump.stdout + dump.stderr);
});

test("revoking pod A's registry entry ends its live session", async () => {
  const client = net.spawn(a, process.execPath, ['-e', `
    const s = require('net').connect(8081, '${b.ipv4}');
    let ticks = 0;
    s.on('data', (d) => { ticks += d.length; if (ticks === 3) console.log('flowing'); });
    s.on('error', (e) => { console.log('ended ' + e.code + ' after ' + ticks); process.exit(0); });
    s.on('end', () => { console.log('ended FIN after ' + ticks); process.exit(0); });
    setTimeout(() => { console.log('still open'); process.exit(1); }, 15000);`], { uid: APP_UID });
  await waitForLine(client, /flowing/, 10_000);
  const revokedAt = Date.now();
  writeFileSync(join(dir, 'registry.yaml'), registry(true));
  const line = await waitForLine(client, /ended|still open/, 20_000);
  const latency = Date.now() - revokedAt;
  assert.match(line, /ended ECONNRESET/, 'the application sees a reset, not a clean end');
  process.stdout.write(`# revocation: session reset ${latency} ms after the registry file changed\n`);
  const again = await net.exec(a, 'curl', ['-sS', '--max-time', '10', `http://${b.ipv4}:8080/after`], { uid: APP_UID });
  assert.notEqual(again.code, 0, 'new handshakes from the revoked key are refused');
  writeFileSync(join(dir, 'registry.yaml'), registry(false));
});
