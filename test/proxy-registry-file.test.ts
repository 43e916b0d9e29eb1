// The registry file as real `noisemesh proxy` processes meet it: rewritten in place while
// they read it (a half-written file must revoke nothing the finished one keeps; deliberate
// revocations still end sessions within 1 s), replaced by a FIFO (refused, logged, counted,
// the last good registry kept, later files loaded, SIGTERM still ends the process), and
// configuration and key files that are FIFOs (refused at once, exit 2, one line).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { encodeKey, nativeBackend } from '../src/noise/index.js';
import { dial } from './helpers/mesh.js';
import { repoRoot } from './helpers/paths.js';
import { freePorts, get, waitFor, exited, startProxyProcess, type ProxyPod } from './helpers/process.js';

const CLI = join(repoRoot, 'dist/src/cli/main.js');
const DRAIN_SECONDS = 1.5;

type Pod = ProxyPod;

let dir: string;
let registryFile: string;
let http: Server;
let httpPort: number;
let entryPort: number;
const pods: Pod[] = [];

interface PeerState {
  readonly generation?: number;
  readonly revoked?: boolean;
  readonly removed?: boolean;
}

/** web first, api second, fields in the order the cut depends on (generation after publicKey). */
function registry(state: { web?: PeerState; api?: PeerState } = {}, comment = ''): string {
  const peers = pods
    .filter((pod) => state[pod.name as 'web' | 'api']?.removed !== true)
    .map((pod) => {
      const s = state[pod.name as 'web' | 'api'] ?? {};
      return {
        agentId: `shop/${pod.name}`,
        installationId: `11111111-2222-4333-8444-00000000000${pods.indexOf(pod)}`,
        publicKey: encodeKey(pod.keyPair.publicKey),
        generation: s.generation ?? 1,
        addresses: ['127.0.0.1'],
        meshPort: pod.meshPort,
        revoked: s.revoked ?? false,
      };
    });
  const text = stringify({ apiVersion: 'noisemesh.io/v1alpha1', kind: 'ClearanceRegistry', metadata: { name: 'shop', namespace: 'shop' }, spec: { peers } });
  return comment === '' ? text : `${text}# ${comment}\n`;
}

/**
 * Rewrites the file in place as a shell's `>` or an editor does: truncate, then three chunks
 * 300 ms apart, the first ending right after the second peer's `publicKey:` line (or, in a
 * file without one, a third of the way in). Resolves when the last chunk is written.
 */
async function writeInPlace(text: string): Promise<void> {
  const second = text.indexOf('publicKey:', text.indexOf('publicKey:') + 1);
  const first = second >= 0 ? text.indexOf('\n', second) + 1 : Math.floor(text.length / 3);
  const middle = first + Math.floor((text.length - first) / 2);
  const fd = openSync(registryFile, 'w'); // O_TRUNC: the same inode, empty
  try {
    for (const [i, chunk] of [text.slice(0, first), text.slice(first, middle), text.slice(middle)].entries()) {
      if (i > 0) await sleep(300);
      writeSync(fd, chunk);
    }
  } finally {
    closeSync(fd);
  }
}

function writeAtomically(text: string): void {
  const tmp = `${registryFile}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, registryFile);
}

/** The registry is `registryFile`, which is `<dir>/registry.yaml` (set in before()). */
function startProxy(pod: Pod, extra: Record<string, unknown> = {}): Promise<void> {
  return startProxyProcess(pod, dir, { cli: CLI, extra, logLevel: 'debug', drainSeconds: DRAIN_SECONDS });
}

function metric(text: string, line: RegExp): number {
  const m = line.exec(text);
  return m === null ? 0 : Number(m[1]);
}

async function revocationsCounted(pod: Pod): Promise<number> {
  return metric((await get(pod.adminPort, '/metrics')).body, /^noisemesh_revocations_total (\d+)$/m);
}

function revocationLines(pod: Pod): number {
  return (pod.log.match(/"event":"revocation"/g) ?? []).length;
}

/** A live HTTP keep-alive session through web's explicit listener to api. */
interface Live {
  readonly socket: Socket;
  ask(path: string): Promise<boolean>;
  readonly closed: Promise<number>;
}

async function liveSession(): Promise<Live> {
  const socket = await dial(entryPort);
  let received = '';
  socket.on('data', (c: Buffer) => (received += c.toString()));
  socket.on('error', () => {});
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now())));
  const ask = async (path: string): Promise<boolean> => {
    if (socket.destroyed) return false;
    socket.write(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`);
    const deadline = Date.now() + 5_000;
    while (!received.includes(`ok ${path}`) && !socket.destroyed && Date.now() < deadline) await sleep(10);
    return received.includes(`ok ${path}`);
  };
  assert.ok(await ask('/open'), 'the session carries a request');
  return { socket, ask, closed };
}

/** A new connection through web gets an answer (the mesh works for it). */
async function newSessionWorks(): Promise<boolean> {
  try {
    const live = await liveSession();
    live.socket.destroy();
    return true;
  } catch {
    return false;
  }
}

function mkfifo(path: string): void {
  const r = spawnSync('mkfifo', [path], { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) assert.fail(`mkfifo failed (install the Debian package coreutils): ${r.error?.message ?? r.stderr}`);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'noisemesh-regfile-'));
  registryFile = join(dir, 'registry.yaml');
  const [webMesh, webAdmin, apiMesh, apiAdmin, entry] = await freePorts(5);
  entryPort = entry!;
  pods.push(
    { name: 'web', keyPair: nativeBackend.dh('25519').generateKeyPair(), meshPort: webMesh!, adminPort: webAdmin!, log: '' },
    { name: 'api', keyPair: nativeBackend.dh('25519').generateKeyPair(), meshPort: apiMesh!, adminPort: apiAdmin!, log: '' },
  );
  for (const pod of pods) writeFileSync(join(dir, `${pod.name}.key`), encodeKey(pod.keyPair.privateKey), { mode: 0o600 });
  writeFileSync(registryFile, registry());
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

test('a registry rewritten in place, read half-written, revokes nothing: the live session goes on', async () => {
  const [web, api] = pods as [Pod, Pod];
  const live = await liveSession();
  const reloads = (pod: Pod): number => (pod.log.match(/"event":"registry-reload"/g) ?? []).length;
  const before = [reloads(web), reloads(api)];
  await writeInPlace(registry({}, 'the same peers, and this comment'));
  await waitFor(() => reloads(web) > before[0]! && reloads(api) > before[1]!, 'both proxies reloaded the finished file');
  await sleep(1000); // past the settle time: anything held back would have landed by now
  assert.ok(await live.ask('/after-rewrite'), 'the session still carries requests');
  assert.equal(live.socket.destroyed, false);
  for (const pod of [web, api]) {
    assert.equal(revocationLines(pod), 0, `${pod.name}: no revocation logged`);
    assert.equal(await revocationsCounted(pod), 0, `${pod.name}: no revocation counted`);
    assert.doesNotMatch(pod.log, /"event":"registry-error"/, `${pod.name}: a file being written is no error`);
  }
  live.socket.destroy();
});

/** api's generation in force: the bump raises it for the cases after it. */
let apiGeneration = 1;

const deliberate: [string, () => PeerState, (text: string) => Promise<void> | void][] = [
  ['revoked: true, written in place', () => ({ revoked: true }), writeInPlace],
  ['a removal, written in place', () => ({ removed: true }), writeInPlace],
  ['a generation bump, written atomically', () => ({ generation: ++apiGeneration }), writeAtomically],
  ['a generation bump, written in place', () => ({ generation: ++apiGeneration }), writeInPlace],
];

for (const [what, revoke, write] of deliberate) {
  test(`a deliberate revocation (${what}) ends the live session within 1 s`, async () => {
    const [web] = pods as [Pod, Pod];
    // The previous case left api revoked or removed: restore it.
    writeAtomically(registry({ api: { generation: apiGeneration } }));
    await waitFor(newSessionWorks, 'a new session to api works');
    const revocationsBefore = revocationLines(web);

    const live = await liveSession();
    await write(registry({ api: { generation: apiGeneration, ...revoke() } }));
    const written = performance.now();
    const closedAt = await Promise.race([live.closed, sleep(10_000).then(() => Number.NaN)]);
    assert.ok(!Number.isNaN(closedAt), 'the session was ended');
    const latency = closedAt - written;
    process.stdout.write(`# ${what}: session ended ${latency.toFixed(0)} ms after the write completed\n`);
    assert.ok(latency < 1000, `ended within 1 s of the write (${latency.toFixed(0)} ms)`);
    await waitFor(() => revocationLines(web) > revocationsBefore, 'the revocation log line');
  });
}

test('a FIFO at the registry path: refused, logged and counted; the last good registry stays; the next file revokes; SIGTERM ends the process', async () => {
  const [web, api] = pods as [Pod, Pod];
  writeAtomically(registry({ api: { generation: apiGeneration } }));
  await waitFor(newSessionWorks, 'a new session to api works');
  const live = await liveSession();

  const fifo = join(dir, 'fifo');
  mkfifo(fifo);
  renameSync(fifo, registryFile); // mkfifo, then mv over the registry file
  await sleep(3000);
  for (const pod of [web, api]) {
    assert.match(pod.log, /"event":"registry-error".*is a FIFO \(named pipe\), not a regular file: point registry\.file at the YAML file itself; the last good registry stays in force/, `${pod.name}: the error is logged`);
    assert.match(pod.log, /registry not reloaded; the last good snapshot stays in force/);
    const metrics = (await get(pod.adminPort, '/metrics')).body;
    assert.equal(metric(metrics, /^noisemesh_registry_reloads_total\{result="error"\} (\d+)$/m), 1, `${pod.name}: one error counted`);
    assert.equal((await get(pod.adminPort, '/readyz')).status, 200, `${pod.name}: still ready on the last good registry`);
  }
  assert.ok(await live.ask('/during-fifo'), 'the last good registry still carries the session');

  const revocationsBefore = revocationLines(api);
  writeAtomically(registry({ web: { revoked: true }, api: { generation: apiGeneration } }));
  await waitFor(() => revocationLines(api) > revocationsBefore, 'the revocation of web, applied by api');
  const closedAt = await Promise.race([live.closed, sleep(10_000).then(() => Number.NaN)]);
  assert.ok(!Number.isNaN(closedAt), 'the live session of the revoked peer was ended');
  assert.match(api.log, /"event":"revocation","peer":"shop\/web"/);

  // A new session of the revoked peer is refused: the request gets no answer (the connection
  // may be reset before it is even seen as open).
  let answer = '';
  try {
    const socket = await dial(entryPort);
    socket.on('data', (c: Buffer) => (answer += c.toString()));
    socket.on('error', () => {});
    socket.write('GET /revoked HTTP/1.1\r\nhost: x\r\n\r\n');
    await Promise.race([new Promise((r) => socket.once('close', r)), sleep(10_000)]);
    assert.equal(socket.destroyed, true, 'the connection was ended');
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ECONNRESET', String(err));
  }
  assert.equal(answer, '', 'no answer for a revoked peer');

  for (const pod of [web, api]) {
    const signalled = performance.now();
    pod.child!.kill('SIGTERM');
    const code = await Promise.race([exited(pod.child!), sleep(DRAIN_SECONDS * 1000 + 5000).then(() => 'still running')]);
    const took = performance.now() - signalled;
    assert.equal(code, 0, `${pod.name}: exits cleanly on SIGTERM`);
    assert.ok(took < DRAIN_SECONDS * 1000 + 1000, `${pod.name}: within the drain deadline (${took.toFixed(0)} ms)`);
  }
});

test('a configuration, key or psk file that is a FIFO is refused at once: one line, exit 2', () => {
  const fifo = join(dir, 'config-fifo');
  mkfifo(fifo);
  const base = { identity: { agentId: 'shop/x', privateKeyFile: join(dir, 'web.key') }, registry: { file: join(dir, 'none.yaml') }, admin: false };
  const cases: [string, string, RegExp][] = [
    ['--config', fifo, /^noisemesh proxy: --config: \S+config-fifo is a FIFO \(named pipe\), not a regular file: point --config at a regular file/],
  ];
  const keyConfig = join(dir, 'key-fifo.yaml');
  writeFileSync(keyConfig, stringify({ ...base, identity: { agentId: 'shop/x', privateKeyFile: fifo } }));
  cases.push(['identity.privateKeyFile', keyConfig, /^noisemesh proxy: identity\.privateKeyFile: \S+config-fifo is a FIFO \(named pipe\), not a regular file: point identity\.privateKeyFile at a regular file/]);
  const pskConfig = join(dir, 'psk-fifo.yaml');
  writeFileSync(pskConfig, stringify({ ...base, suite: 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s', psk: { file: fifo } }));
  cases.push(['psk.file', pskConfig, /^noisemesh proxy: psk\.file: \S+config-fifo is a FIFO \(named pipe\), not a regular file: point psk\.file at a regular file/]);
  const dirConfig = join(dir, 'key-dir.yaml');
  writeFileSync(dirConfig, stringify({ ...base, identity: { agentId: 'shop/x', privateKeyFile: '/dev/zero' } }));
  cases.push(['a device as key file', dirConfig, /^noisemesh proxy: identity\.privateKeyFile: \/dev\/zero is a character device, not a regular file/]);

  for (const [what, config, line] of cases) {
    const started = Date.now();
    const r = spawnSync(process.execPath, [CLI, 'proxy', '--config', config], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.signal, null, `${what}: it did not hang (killed after 20 s)`);
    assert.equal(r.status, 2, `${what}: exit 2\n${r.stderr}`);
    assert.match(r.stderr, line, what);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, `${what}: one line\n${r.stderr}`);
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, `${what}: no stack trace`);
    process.stdout.write(`# ${what}: refused in ${Date.now() - started} ms\n`);
  }
});
