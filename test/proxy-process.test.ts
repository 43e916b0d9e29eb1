// `noisemesh proxy` as a real process, the way a pod runs it: admin endpoints, log lines
// (and the absence of keys in them), SIGTERM draining, and configuration refused with the
// path and the fix.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { stringify } from 'yaml';
import { encodeKey, nativeBackend } from '../src/noise/index.js';
import { dial, rawHandshake, readAll } from './helpers/mesh.js';
import { Status } from '../src/proxy/index.js';
import { repoRoot } from './helpers/paths.js';
import { freePorts, get, waitFor, exited, shopRegistryYaml, startProxyProcess, type ProxyPod } from './helpers/process.js';

const CLI = join(repoRoot, 'dist/src/cli/main.js');

type Pod = ProxyPod;

let dir: string;
let http: Server;
let httpPort: number;
let entryPort: number;
const pods: Pod[] = [];

function registry(revoked: string[] = []): string {
  return shopRegistryYaml(pods, revoked);
}

function startProxy(pod: Pod, extra: Record<string, unknown> = {}, cli = CLI): Promise<void> {
  return startProxyProcess(pod, dir, { cli, extra, logLevel: 'debug', drainSeconds: 1.5 });
}

/**
 * An installation whose addons were never built: the compiled tree and its dependencies, but
 * no build/ directory (addons are looked up relative to the compiled code). Made once.
 */
function installWithoutAddons(): string {
  const install = join(dir, 'no-addon');
  if (existsSync(install)) return install;
  mkdirSync(install);
  cpSync(join(repoRoot, 'dist'), join(install, 'dist'), { recursive: true });
  cpSync(join(repoRoot, 'package.json'), join(install, 'package.json'));
  symlinkSync(join(repoRoot, 'node_modules'), join(install, 'node_modules'));
  return install;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'noisemesh-process-'));
  const [webMesh, webAdmin, apiMesh, apiAdmin, entry] = await freePorts(5);
  entryPort = entry!;
  pods.push(
    { name: 'web', keyPair: nativeBackend.dh('25519').generateKeyPair(), meshPort: webMesh!, adminPort: webAdmin!, log: '' },
    { name: 'api', keyPair: nativeBackend.dh('25519').generateKeyPair(), meshPort: apiMesh!, adminPort: apiAdmin!, log: '' },
  );
  for (const pod of pods) writeFileSync(join(dir, `${pod.name}.key`), encodeKey(pod.keyPair.privateKey), { mode: 0o600 });
  writeFileSync(join(dir, 'registry.yaml'), registry());
  http = createHttpServer((req, res) => res.end(`ok ${req.url}`));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  httpPort = (http.address() as AddressInfo).port;
  await startProxy(pods[1]!);
  await startProxy(pods[0]!, { outbound: { explicit: [{ listen: `127.0.0.1:${entryPort}`, peer: 'shop/api', port: httpPort }] } });
});

after(async () => {
  for (const pod of pods) pod.child?.kill('SIGKILL');
  http?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('admin endpoints: /healthz, /readyz, /metrics and /debug/sessions', async () => {
  const [web] = pods;
  assert.deepEqual(await get(web!.adminPort, '/healthz'), { status: 200, body: 'ok\n' });
  const ready = await get(web!.adminPort, '/readyz');
  assert.equal(ready.status, 200);
  assert.deepEqual(JSON.parse(ready.body), { ready: true, checks: { registry: true, listeners: true } });

  const socket = await dial(entryPort);
  socket.write('GET /live HTTP/1.1\r\nhost: x\r\n\r\n');
  await new Promise((r) => socket.once('data', r));
  const sessions = JSON.parse((await get(web!.adminPort, '/debug/sessions')).body) as { sessions: Record<string, unknown>[] };
  assert.equal(sessions.sessions.length, 1);
  assert.equal(sessions.sessions[0]!.peer, 'shop/api');
  assert.equal(sessions.sessions[0]!.direction, 'outbound');
  assert.equal(sessions.sessions[0]!.targetPort, httpPort);
  socket.destroy();

  const metrics = (await get(web!.adminPort, '/metrics')).body;
  for (const name of ['noisemesh_handshakes_total', 'noisemesh_handshake_duration_seconds_bucket', 'noisemesh_sessions_active', 'noisemesh_session_bytes_total', 'noisemesh_session_aborts_total', 'noisemesh_registry_peers', 'noisemesh_registry_reloads_total']) {
    assert.match(metrics, new RegExp(`^# TYPE ${name.replace(/_bucket$/, '')} `, 'm'), name);
  }
  assert.match(metrics, /noisemesh_registry_peers 2/);
  assert.equal((await get(web!.adminPort, '/nope')).status, 404);
});

test('log lines for sessions, reloads and revocations carry no key material', async () => {
  const res = await request(`http://127.0.0.1:${entryPort}/logged`, { reset: true });
  assert.equal(await res.body.text(), 'ok /logged');
  const [web, api] = pods as [Pod, Pod];
  writeFileSync(join(dir, 'registry.yaml'), registry(['web']));
  await waitFor(() => api.log.includes('"event":"revocation"'), 'the revocation log line');
  writeFileSync(join(dir, 'registry.yaml'), registry());
  for (const pod of [web, api]) {
    await waitFor(() => (pod.log.match(/"event":"registry-reload"/g) ?? []).length >= 3, `${pod.name}: the reload log lines`);
  }

  const lines = (web.log + api.log).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  const end = lines.find((l) => l.event === 'session-end' && l.direction === 'outbound' && l.result === 'closed');
  assert.ok(end, 'a session-end line');
  assert.equal(end.peer, 'shop/api');
  assert.equal(typeof end.bytesIn, 'number');
  assert.equal(typeof end.durationMs, 'number');
  const revocation = lines.find((l) => l.event === 'revocation');
  assert.equal(revocation?.peer, 'shop/web');
  assert.equal(revocation?.reason, 'revoked');

  const everything = web.log + api.log;
  for (const pod of pods) {
    for (const key of [pod.keyPair.publicKey, pod.keyPair.privateKey]) {
      for (const text of [encodeKey(key), Buffer.from(key).toString('hex'), Buffer.from(key).toString('base64url')]) {
        assert.equal(everything.includes(text), false, `a key of ${pod.name} appears in the logs`);
      }
    }
  }
});

test('a registry reload that does not touch a peer leaves its sessions alone', async () => {
  const [web, api] = pods as [Pod, Pod];
  const socket = await dial(entryPort);
  const replies: Buffer[] = [];
  socket.on('data', (c: Buffer) => replies.push(c));
  socket.write('GET /before HTTP/1.1\r\nhost: x\r\n\r\n');
  await waitFor(() => Buffer.concat(replies).includes('ok /before'), 'the first reply');
  const reloads = (pod: Pod): number => (pod.log.match(/"event":"registry-reload"/g) ?? []).length;
  const before = [reloads(web), reloads(api)];
  // A new, unrelated peer appears; web and api are untouched.
  const other = nativeBackend.dh('25519').generateKeyPair();
  writeFileSync(join(dir, 'registry.yaml'), registry() + stringify({
    apiVersion: 'noisemesh.io/v1alpha1',
    kind: 'ClearanceRegistry',
    metadata: { name: 'other', namespace: 'other' },
    spec: { peers: [{ agentId: 'other/x', installationId: '99999999-2222-4333-8444-000000000000', publicKey: encodeKey(other.publicKey), generation: 1 }] },
  }).replace(/^/, '---\n'));
  await waitFor(() => reloads(web) > before[0]! && reloads(api) > before[1]!, 'both proxies reloaded');
  socket.write('GET /after HTTP/1.1\r\nhost: x\r\n\r\n');
  await waitFor(() => Buffer.concat(replies).includes('ok /after'), 'a reply on the same connection after the reload');
  assert.equal(socket.destroyed, false);
  socket.destroy();
  writeFileSync(join(dir, 'registry.yaml'), registry());
  await waitFor(() => reloads(web) > before[0]! + 1 && reloads(api) > before[1]! + 1, 'back to two peers');
});

test('a message 1 replayed after its key was revoked and restored is still a replay (status 3)', async () => {
  const [web, api] = pods as [Pod, Pod];
  const webIdentity = { agentId: 'shop/web', keyPair: web.keyPair, publicKeyB64: encodeKey(web.keyPair.publicKey) };
  const ephemeral = nativeBackend.dh('25519').generateKeyPair();
  const wire: Buffer[] = [];
  const replay = {
    port: api.meshPort,
    identity: webIdentity,
    responderKey: api.keyPair.publicKey,
    targetPort: httpPort,
    timestampNs: BigInt(Date.now()) * 1_000_000n,
    ephemeral,
    mangle: (bytes: Buffer) => (wire.push(bytes), bytes),
  };
  const recorded = await rawHandshake(replay);
  assert.equal(recorded.status, Status.accepted);
  recorded.socket.destroy();
  const refused = await rawHandshake(replay);
  assert.equal(refused.status, Status.replay);

  const revocations = (): number => (api.log.match(/"event":"revocation"/g) ?? []).length;
  const reloads = (): number => (api.log.match(/"event":"registry-reload"/g) ?? []).length;
  const revoked = revocations();
  writeFileSync(join(dir, 'registry.yaml'), registry(['web']));
  await waitFor(() => revocations() > revoked, 'the revocation');
  await sleep(500);
  const restored = reloads();
  writeFileSync(join(dir, 'registry.yaml'), registry());
  await waitFor(() => reloads() > restored, 'the restored entry');
  await sleep(500);

  const again = await rawHandshake(replay);
  assert.equal(Buffer.compare(wire[0]!, wire.at(-1)!), 0, 'the same bytes, replayed');
  assert.equal(again.status, Status.replay, 'a timestamp once accepted stays refused within the window');
  again.socket.destroy();
  // The restored key itself is welcome: a fresh message 1 from it is accepted.
  const fresh = await rawHandshake({ ...replay, timestampNs: BigInt(Date.now()) * 1_000_000n, mangle: (b: Buffer) => b });
  assert.equal(fresh.status, Status.accepted);
  fresh.socket.destroy();
});

test('without the AEAD and TCP liveness addons a proxy still works, on node:crypto and Node keepalive, and warns with the fix', async () => {
  const api = pods[1]!;
  api.child!.kill('SIGKILL');
  await exited(api.child!);
  await startProxy(api, {}, join(installWithoutAddons(), 'dist/src/cli/main.js'));
  try {
    // web seals with its AEAD contexts, api opens with node:crypto, and back: same bytes.
    const socket = await dial(entryPort);
    const path = `/fallback?${'x'.repeat(8000)}`; // echoed back: 8 KB each way
    socket.end(`GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
    assert.ok((await readAll(socket)).data.toString().endsWith(`ok ${path}`));
    assert.match(api.log, /"aead":"node-crypto"/);
    assert.match(api.log, /the AEAD context addon is unavailable \(.*aead_context\.node is missing\)/);
    assert.match(api.log, /run `npm ci`/);
    assert.doesNotMatch(pods[0]!.log, /AEAD context addon is unavailable/, 'a proxy with the addon does not warn');
    // The same install lacks the TCP liveness addon: keepalive falls back to Node's, and says what is lost.
    assert.match(api.log, /"event":"keepalive","boundSeconds":25,.*the TCP liveness addon is unavailable \(.*tcp_liveness\.node is missing\).*no TCP_USER_TIMEOUT.*instead of 25 s; run `npm ci`/);
    assert.doesNotMatch(pods[0]!.log, /TCP liveness addon is unavailable/, 'a proxy with the addon does not warn');
  } finally {
    api.child!.kill('SIGKILL');
    await exited(api.child!);
    await startProxy(api);
  }
});

test('SIGTERM drains: new connections are refused, open sessions get the deadline, then a reset', async () => {
  const [web] = pods as [Pod, Pod];
  await waitFor(async () => (await get(web.adminPort, '/readyz')).status === 200, 'web ready again');
  const socket = await dial(entryPort);
  socket.write('GET /hold HTTP/1.1\r\nhost: x\r\n\r\n');
  await new Promise((r) => socket.once('data', r));
  const ending = readAll(socket);
  const stoppedAt = Date.now();
  web.child!.kill('SIGTERM');
  await waitFor(async () => (await get(web.adminPort, '/readyz')).status === 503, 'not ready while draining');
  await assert.rejects(dial(entryPort), 'the listener is closed');
  // Still carried during the drain:
  socket.write('GET /during-drain HTTP/1.1\r\nhost: x\r\n\r\n');
  const { ending: how } = await ending;
  assert.equal(how, 'reset', 'aborted at the deadline');
  assert.ok(Date.now() - stoppedAt >= 1400, 'not before the 1.5 s deadline');
  assert.equal(await exited(web.child!), 0);
  assert.match(web.log, /"event":"shutdown","outcome":"deadline","aborted":1/);
});

test('a broken configuration is refused at start with every path and its fix', () => {
  const file = join(dir, 'broken.yaml');
  writeFileSync(file, stringify({
    identity: { privateKeyFile: join(dir, 'web.key') },
    registry: { file: join(dir, 'registry.yaml') },
    outbond: { mode: 'strict' },
    inbound: { meshPort: 70000, capture: { mode: 'sometimes' } },
    admin: { port: 15443 },
  }));
  const r = spawnSync(process.execPath, [CLI, 'proxy', '--config', file], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /identity.agentId: required: write <namespace>\/<workload>/);
  assert.match(r.stderr, /outbond: unknown key: did you mean 'outbound'\?/);
  assert.match(r.stderr, /inbound.meshPort: must be a TCP port, an integer 1..65535; got 70000/);
  assert.match(r.stderr, /inbound.capture.mode: must be one of permissive, strict; got "sometimes"/);
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
});

test('a bad or missing key file is named, with a fix that works as printed, and its content is never echoed', async () => {
  const keyFile = join(dir, 'bad.key');
  writeFileSync(keyFile, 'c2VjcmV0LXNlY3JldC1zZWNyZXQ=\n');
  const missingKey = join(dir, 'missing.key');
  const file = join(dir, 'badkey.yaml');
  const [meshPort] = await freePorts(1);
  const config = (privateKeyFile: string): string =>
    stringify({ identity: { agentId: 'shop/x', privateKeyFile }, registry: { file: join(dir, 'registry.yaml') }, inbound: { bind: '127.0.0.1', meshPort }, admin: false });
  const start = () => spawnSync(process.execPath, [CLI, 'proxy', '--config', file], { encoding: 'utf8', timeout: 20_000 });

  for (const [key, problem] of [[keyFile, /identity.privateKeyFile must decode to 32 bytes, got 20/], [missingKey, /identity.privateKeyFile: .*missing\.key does not exist: create it, or fix identity.privateKeyFile; make one with: noisemesh keygen --out /]] as const) {
    writeFileSync(file, config(key));
    const r = start();
    assert.equal(r.status, 2);
    assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
    assert.match(r.stderr, problem);
    assert.equal(r.stderr.includes('c2VjcmV0'), false);

    // Followed literally, the hint makes a key the proxy then starts with.
    const hint = /make one with: (noisemesh keygen .*)$|replace it with a new key: (noisemesh keygen .*)$/m.exec(r.stderr);
    assert.ok(hint, r.stderr);
    const [program, ...args] = (hint[1] ?? hint[2])!.split(' ');
    assert.equal(program, 'noisemesh');
    const keygen = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(keygen.status, 0, `${hint[0]}: ${keygen.stderr}`);
    const child = spawn(process.execPath, [CLI, 'proxy', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    try {
      await waitFor(() => log.includes('"event":"listening"') || child.exitCode !== null, 'the proxy to start with the new key');
      assert.match(log, /"event":"listening"/, log);
    } finally {
      child.kill('SIGKILL');
      await exited(child);
    }
  }
});

test('with capture configured and no addon, the proxy refuses to start and says why and how to fix it', async () => {
  const install = installWithoutAddons();
  const [meshPort, capturePort] = await freePorts(2);
  const file = join(dir, 'capture.yaml');
  writeFileSync(file, stringify({
    identity: { agentId: 'shop/web', privateKeyFile: join(dir, 'web.key') },
    registry: { file: join(dir, 'registry.yaml') },
    outbound: { mode: 'strict', capture: { bind: '127.0.0.1', port: capturePort } },
    inbound: { bind: '127.0.0.1', meshPort },
    admin: false,
  }));
  const r = spawnSync(process.execPath, [join(install, 'dist/src/cli/main.js'), 'proxy', '--config', file], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /capture is configured but the original-destination addon is unavailable/);
  assert.match(r.stderr, /original_dst\.node is missing: it is built from native\/original_dst\.c at install/);
  assert.match(r.stderr, /run `npm ci`/);
  assert.match(r.stderr, /explicit listeners do not/);
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
  // It stopped before binding anything: the mesh port is still free.
  await new Promise<void>((resolve, reject) => {
    const probe = createServer().once('error', reject);
    probe.listen(meshPort, '127.0.0.1', () => probe.close(() => resolve()));
  });
});

test('a registry missing at start: /healthz at once, /readyz says why, no claim of a previous registry; then ready when it appears', async () => {
  const registryFile = join(dir, 'late-registry.yaml');
  const [meshPort, adminPort, listenPort] = await freePorts(3);
  const file = join(dir, 'late.yaml');
  writeFileSync(file, stringify({
    identity: { agentId: 'shop/web', privateKeyFile: join(dir, 'web.key') },
    registry: { file: registryFile },
    inbound: { bind: '127.0.0.1', meshPort },
    admin: { bind: '127.0.0.1', port: adminPort },
    outbound: { explicit: [{ listen: `127.0.0.1:${listenPort}`, peer: 'shop/nobody', port: 80 }] },
  }));
  const spawnedAt = Date.now();
  const child = spawn(process.execPath, [CLI, 'proxy', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  try {
    // Start-up used to wait 10 s for a first snapshot before it listened; now the admin port
    // answers as soon as the process is up (the bound is generous for a loaded machine).
    await waitFor(async () => (await get(adminPort!, '/healthz')).status === 200, '/healthz', 8_000);
    assert.ok(Date.now() - spawnedAt < 8_000);
    const notReady = await get(adminPort!, '/readyz');
    assert.equal(notReady.status, 503);
    const body = JSON.parse(notReady.body) as { ready: boolean; checks: Record<string, boolean>; reasons: Record<string, string> };
    assert.deepEqual(body.checks, { registry: false, listeners: true });
    assert.match(body.reasons.registry!, /late-registry\.yaml: does not exist \(yet\): create it, or fix registry.file; no registry is loaded until this is fixed/);
    assert.deepEqual(Object.keys(body.reasons), ['registry']);
    await waitFor(() => log.includes('"event":"registry-error"'), 'the registry error line');
    assert.doesNotMatch(log, /previous registry|last good snapshot|stays in force/, 'no previous registry to keep');
    assert.match(log, /no registry loaded: the proxy is not ready and refuses every peer until the registry loads/);

    writeFileSync(registryFile, registry());
    await waitFor(async () => (await get(adminPort!, '/readyz')).status === 200, 'ready once the file appears');
    // shop/nobody is in no registry: said once the registry is there to ask.
    await waitFor(() => log.includes('outbound.explicit[0].peer: shop/nobody is not in the registry'), 'the unknown-peer warning');
    assert.doesNotMatch(log, /outbound.explicit\[0\].peer: shop\/api/);
  } finally {
    child.kill('SIGKILL');
    await exited(child);
  }
});
