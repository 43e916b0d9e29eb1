// `noisemesh gateway` as a process: its configuration refused with every problem and its fix
// (the planned backends and the cache as "not in this build"), a policy or secrets file that
// does not load refused at start, and a real gateway process serving a fetch to an
// in-process client proxy, then draining on SIGTERM.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { stringify } from 'yaml';
import { encodeKey, nativeBackend } from '../src/noise/index.js';
import { Proxy, silentLogger } from '../src/proxy/index.js';
import { TestDirectory, TRUST_DOMAIN, makeIdentity, peerOf } from './helpers/mesh.js';
import { repoRoot } from './helpers/paths.js';

const CLI = join(repoRoot, 'dist/src/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'noisemesh-gateway-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function run(config: unknown): { status: number | null; stderr: string } {
  const file = join(dir, `c${Math.random().toString(16).slice(2)}.yaml`);
  writeFileSync(file, typeof config === 'string' ? config : stringify(config));
  const r = spawnSync(process.execPath, [CLI, 'gateway', '--config', file], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stderr: r.stderr };
}

const BASE = { identity: { agentId: 'noisemesh-system/gateway' }, registry: { file: join(dir, 'registry.yaml') }, admin: false };

test('the planned backends and the cache are refused as not in this build, with every other problem', () => {
  const r = run({
    ...BASE,
    inbound: { meshPort: 15443 },
    gateway: { port: 15443, policy: 'p.yaml', backend: { vault: { address: 'https://vault:8200' } }, audit: { file: 'a.log', stdout: true }, cache: { ttlSeconds: 30 }, loopbak: {} },
  });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /gateway\.backend\.vault: not in this build: this noisemesh has only the file backend; use gateway\.backend\.file/);
  assert.match(r.stderr, /gateway\.cache: not in this build/);
  assert.match(r.stderr, /gateway\.loopbak: unknown key: did you mean 'loopback'\?/);
  assert.match(r.stderr, /gateway\.audit: set one of gateway\.audit\.file and gateway\.audit\.stdout, not both/);
  assert.match(r.stderr, /gateway\.port: 15443 is also inbound\.meshPort/);
  assert.ok(!r.stderr.includes('    at '), 'no stack trace');
});

test('a missing gateway section, and the kubernetes backend, each name the fix', () => {
  assert.match(run(BASE).stderr, /gateway: required: gateway: \{policy, backend: \{file\}, audit/);
  const r = run({ ...BASE, gateway: { policy: 'p.yaml', backend: { kubernetes: { namespace: 'x' } }, audit: { stdout: 'yes' } } });
  assert.match(r.stderr, /gateway\.backend\.kubernetes: not in this build/);
  assert.match(r.stderr, /gateway\.audit\.stdout: must be true/);
  assert.equal(run({ ...BASE, gateway: { policy: 'p.yaml', backend: { file: 's.yaml' }, audit: { stdout: true } }, inbound: { targetHost: '127.0.0.1' } }).status, 2);
});

test('a policy or a secrets file that does not load stops the gateway at start, naming the problem and never a value', () => {
  writeFileSync(join(dir, 'bad-policy.yaml'), 'rules:\n  - id: x\n    paths: ["a/*"]\n    require: {clearance: secret}\n');
  writeFileSync(join(dir, 'good-policy.yaml'), 'rules: []\n');
  writeFileSync(join(dir, 'bad-secrets.yaml'), 'payments/db: {password: 123456789}\n');
  writeFileSync(join(dir, 'registry.yaml'), '');
  const policy = run({ ...BASE, gateway: { policy: join(dir, 'bad-policy.yaml'), backend: { file: join(dir, 'bad-secrets.yaml') }, audit: { stdout: true } } });
  assert.equal(policy.status, 2);
  assert.match(policy.stderr, /gateway\.policy: invalid policy .*rules\[0\]\.require\.clearance: must be one of/s);
  const secrets = run({ ...BASE, gateway: { policy: join(dir, 'good-policy.yaml'), backend: { file: join(dir, 'bad-secrets.yaml') }, audit: { stdout: true } } });
  assert.equal(secrets.status, 2);
  assert.match(secrets.stderr, /gateway\.backend\.file: .*line 1: payments\/db\.password: must be a string: quote it/);
  assert.ok(!secrets.stderr.includes('123456789'));
});

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => resolve(s));
  })));
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

test('a gateway process serves a fetch through the mesh, audits it to stdout, and drains on SIGTERM', async (t) => {
  const [meshPort, adminPort] = await freePorts(2);
  const gatewayKey = nativeBackend.dh('25519').generateKeyPair();
  writeFileSync(join(dir, 'gw.key'), `${encodeKey(gatewayKey.privateKey)}\n`, { mode: 0o600 });
  const client = makeIdentity('payments/api');
  const doc = (ns: string, peers: object[]): string => stringify({ apiVersion: 'noisemesh.io/v1alpha1', kind: 'ClearanceRegistry', metadata: { name: 'p', namespace: ns }, spec: { peers } });
  writeFileSync(join(dir, 'registry.yaml'), [
    doc('noisemesh-system', [{ agentId: 'noisemesh-system/gateway', installationId: '11111111-2222-4333-8444-000000000001', publicKey: encodeKey(gatewayKey.publicKey), generation: 1, addresses: ['127.0.0.1'], meshPort }]),
    doc('payments', [{ agentId: 'payments/api', installationId: '11111111-2222-4333-8444-000000000002', publicKey: client.publicKeyB64, generation: 1, clearance: 'secrets-only', addresses: ['127.0.0.1'] }]),
  ].join('---\n'));
  writeFileSync(join(dir, 'policy.yaml'), 'rules:\n  - id: payments\n    paths: ["payments/**"]\n    agents: ["payments/*"]\n    require: {clearance: secrets-only}\n');
  writeFileSync(join(dir, 'secrets.yaml'), 'payments/db: {password: "SECRET-VALUE-cli"}\n');
  const config = join(dir, 'gateway.yaml');
  writeFileSync(config, stringify({
    identity: { agentId: 'noisemesh-system/gateway', privateKeyFile: join(dir, 'gw.key') },
    registry: { file: join(dir, 'registry.yaml') },
    inbound: { bind: '127.0.0.1', meshPort },
    admin: { bind: '127.0.0.1', port: adminPort },
    shutdown: { drainSeconds: 1 },
    gateway: { policy: join(dir, 'policy.yaml'), backend: { file: join(dir, 'secrets.yaml') }, audit: { stdout: true } },
  }));
  const child = spawn(process.execPath, [CLI, 'gateway', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(() => child.kill('SIGKILL'));

  const view = new TestDirectory();
  view.set(peerOf(client, 1));
  view.set({ ...peerOf(makeIdentity('noisemesh-system/gateway'), meshPort!), publicKey: gatewayKey.publicKey, publicKeyB64: encodeKey(gatewayKey.publicKey) });
  const proxy = new Proxy({
    trustDomain: TRUST_DOMAIN,
    backend: nativeBackend,
    identity: client,
    directory: view,
    log: silentLogger(),
    outbound: { mode: 'permissive', explicit: [{ listen: { host: '127.0.0.1', port: 0 }, peer: 'noisemesh-system/gateway', port: 8200 }] },
    inbound: { mesh: { host: '127.0.0.1', port: 0 } },
  });
  const entry = (await proxy.start()).explicit[0]!;
  t.after(() => proxy.shutdown(0));

  for (let i = 0; i < 200; i++) {
    try {
      const res = await request(`http://127.0.0.1:${adminPort}/readyz`);
      await res.body.dump();
      if (res.statusCode === 200) break;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  const res = await request(`http://127.0.0.1:${entry}/v1/secrets/payments/db`, { reset: true });
  const body = (await res.body.json()) as { data: { password: string } };
  assert.equal(res.statusCode, 200, stderr);
  assert.equal(body.data.password, 'SECRET-VALUE-cli');
  const metrics = await (await request(`http://127.0.0.1:${adminPort}/metrics`)).body.text();
  assert.match(metrics, /noisemesh_secret_requests_total\{decision="allow",rule="payments"\} 1/);

  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
  const audit = stdout.split('\n').filter((l) => l.includes('"decisionId"')).map((l) => JSON.parse(l));
  assert.equal(audit.length, 1);
  assert.equal(audit[0].agentId, 'payments/api');
  assert.equal(audit[0].decision, 'allow');
  assert.ok(!stdout.includes('SECRET-VALUE') && !stderr.includes('SECRET-VALUE'), 'no value in the audit line or any log');
});
