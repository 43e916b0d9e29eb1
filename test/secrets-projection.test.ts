// Projection in the sidecar, end to end on loopback: an in-process gateway (real Proxy,
// SecretsGateway, file backend; test/helpers/gateway.ts), and for each case a real Proxy for
// the pod whose projector (the one `noisemesh proxy` builds, src/cli/projection-wiring.ts)
// fetches through a mesh session. Files and modes, secrets.env through sh, atomic swaps under
// a reader in another process, refresh and SIGHUP to a counting child, readiness while the
// gateway is down or denies, and `noisemesh secrets fetch` as a real process.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync, readdirSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { request } from 'undici';
import { nativeBackend, encodeKey } from '../src/noise/index.js';
import { Proxy, type Identity } from '../src/proxy/index.js';
import { projectorFor } from '../src/cli/projection-wiring.js';
import { parsePolicy } from '../src/trust-vector/index.js';
import type { ProjectionConfig, SecretsProjector } from '../src/secrets/index.js';
import { GATEWAY_AGENT, GATEWAY_PORT, startGatewayFixture, type GatewayFixture } from './helpers/gateway.js';
import { TestDirectory, TRUST_DOMAIN, peerOf } from './helpers/mesh.js';
import { repoRoot } from './helpers/paths.js';

const CLI = join(repoRoot, 'dist/src/cli/main.js');

const POLICY = `rules:
  - id: payments
    paths: ["payments/**"]
    agents: ["payments/*"]
    require: {clearance: secrets-only}
`;
const ALLOW_ALL = `rules:
  - id: everyone
    paths: ["**"]
    require: {clearance: open}
`;

/** Strings a shell would love to interpret. */
const HOSTILE = [
  `it's "quoted" 'twice''`,
  '$(touch /tmp/noisemesh-pwned) `id` ${HOME} $HOME \\$ \\\\ \\n',
  'line one\nline two\n\nline four\n',
  'ünïcödé ✓ 𝄞 日本語 \u200b \t tab',
  "'",
  '',
  '-n',
  ' leading and trailing spaces ',
  '*?[a-z] ~ ; | & > < #',
];

let f: GatewayFixture;
let secretsFile: string;
let work: string;

function secretsYaml(password: string, extra: Record<string, Record<string, string>> = {}): string {
  const doc: Record<string, Record<string, string>> = {
    'payments/db': { username: 'app', password },
    'payments/hostile': Object.fromEntries(HOSTILE.map((v, i) => [`v${i}`, v])),
    ...extra,
  };
  return JSON.stringify(doc); // JSON is YAML, and escapes every character unambiguously
}

function writeSecrets(text: string): void {
  writeFileSync(`${secretsFile}.tmp`, text);
  renameSync(`${secretsFile}.tmp`, secretsFile);
}

before(async () => {
  f = await startGatewayFixture({
    policy: POLICY,
    secrets: secretsYaml('SECRET-VALUE-1'),
    callers: [{ agentId: 'payments/api' }, { agentId: 'payments/batch' }, { agentId: 'payments/fetcher' }, { agentId: 'billing/api' }],
  });
  secretsFile = join(f.dir, 'secrets.yaml');
  work = mkdtempSync(join(tmpdir(), 'noisemesh-projection-'));
});

after(async () => {
  await f?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Pod {
  readonly proxy: Proxy;
  readonly projector: SecretsProjector;
  readonly view: TestDirectory;
  readonly adminPort: number;
  readonly logs: string[];
  readonly dir: string;
  /** Points the pod's registry view at the gateway's real mesh port, or at one nobody listens on. */
  gatewayAt(port: number): void;
  close(): Promise<void>;
}

let podCount = 0;

/** A pod's proxy with a projector, as runSidecar builds them; not started. */
async function pod(agentId: string, project: Partial<ProjectionConfig> & { dir?: string }, gatewayPort = f.gatewayProxy.ports().mesh): Promise<Pod> {
  const identity: Identity = f.callers.get(agentId)!.identity;
  const view = new TestDirectory();
  const logs: string[] = [];
  const log = pino({ level: 'info' }, new Writable({ write(c: Buffer, _e, cb) { logs.push(c.toString()); cb(); } }));
  const proxy = new Proxy({
    trustDomain: TRUST_DOMAIN,
    backend: nativeBackend,
    identity,
    directory: view,
    log,
    outbound: { mode: 'permissive', explicit: [] },
    inbound: { mesh: { host: '127.0.0.1', port: 0 } },
    admin: { host: '127.0.0.1', port: 0 },
  });
  const ports = await proxy.start();
  view.set(peerOf(identity, ports.mesh));
  const gatewayAt = (port: number): void => view.set(peerOf(f.gatewayId, port));
  gatewayAt(gatewayPort);
  proxy.setRegistryReady(true);
  const dir = project.dir ?? join(work, `pod-${++podCount}`, 'secrets');
  const config: ProjectionConfig = {
    gateway: { peer: GATEWAY_AGENT, port: GATEWAY_PORT },
    refreshSeconds: 300,
    items: [{ path: 'payments/db', file: 'db.json', env: 'DB_PASSWORD', key: 'password' }],
    notify: null,
    fileMode: 0o400,
    dirMode: 0o700,
    ...project,
    dir,
  };
  const projector = projectorFor(config, proxy, log, true);
  return {
    proxy, projector, view, adminPort: ports.admin!, logs, dir, gatewayAt,
    async close() {
      await projector.stop();
      await proxy.shutdown(0);
    },
  };
}

async function readyz(p: Pod): Promise<{ status: number; body: any }> {
  const res = await request(`http://127.0.0.1:${p.adminPort}/readyz`);
  return { status: res.statusCode, body: await res.body.json() };
}

async function metric(p: Pod, line: RegExp): Promise<number> {
  const text = await (await request(`http://127.0.0.1:${p.adminPort}/metrics`)).body.text();
  const m = line.exec(text);
  assert.ok(m, `no metric ${line} in\n${text.split('\n').filter((l) => l.includes('projection')).join('\n')}`);
  return Number(m[1]);
}

/** Polls `check` every 50 ms for up to `ms`; the last failure's message if it never passes. */
async function eventually(what: string, check: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return;
    await sleep(50);
  }
  assert.fail(`not within ${ms} ms: ${what}`);
}

test('the first projection: 0400 files behind ..data, a 0700 directory, secrets.env and the JSON file; ready; no value in a log line', async () => {
  writeSecrets(secretsYaml('SECRET-VALUE-1'));
  await sleep(300);
  const p = await pod('payments/api', {
    items: [
      { path: 'payments/db', file: 'db.json', env: 'DB_PASSWORD', key: 'password' },
      { path: 'payments/db', file: 'password', env: null, key: 'password' },
      { path: 'payments/db', file: null, env: 'DB_USER', key: 'username' },
    ],
  });
  try {
    const before = await readyz(p);
    assert.equal(before.status, 503);
    assert.equal(before.body.checks.secrets, false);
    p.projector.start();
    await eventually('ready', async () => (await readyz(p)).status === 200);
    const r = await readyz(p);
    assert.equal(r.body.checks.secrets, true);
    assert.equal(typeof r.body.secrets.lastSuccessAt, 'string');

    assert.equal(statSync(p.dir).mode & 0o777, 0o700);
    const data = readlinkSync(join(p.dir, '..data'));
    assert.match(data, /^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.[\w-]+$/);
    assert.equal(statSync(join(p.dir, data)).mode & 0o777, 0o700);
    for (const name of ['db.json', 'password', 'secrets.env']) {
      assert.ok(lstatSync(join(p.dir, name)).isSymbolicLink(), `${name} is a link`);
      assert.equal(readlinkSync(join(p.dir, name)), `..data/${name}`);
      assert.equal(statSync(join(p.dir, name)).mode & 0o7777, 0o400, `${name} is 0400`);
    }
    assert.deepEqual(readdirSync(p.dir).filter((n) => !n.startsWith('..')).sort(), ['db.json', 'password', 'secrets.env']);
    // file with key: the value, byte for byte; with no newline added.
    assert.equal(readFileSync(join(p.dir, 'db.json'), 'utf8'), 'SECRET-VALUE-1');
    assert.equal(readFileSync(join(p.dir, 'password'), 'utf8'), 'SECRET-VALUE-1');
    assert.equal(
      readFileSync(join(p.dir, 'secrets.env'), 'utf8'),
      "# written by noisemesh (secrets.project); sh: . ./secrets.env\nDB_PASSWORD='SECRET-VALUE-1'\nDB_USER='app'\n",
    );
    assert.equal(await metric(p, /^noisemesh_secrets_projection_refreshes_total\{result="changed"\} (\d+)$/m), 1);
    const age = await metric(p, /^noisemesh_secrets_projection_age_seconds (\S+)$/m);
    assert.ok(age >= 0 && age < 60, `age ${age}`);
    assert.ok(p.logs.some((l) => l.includes('secrets projected: ready')));
    assert.ok(!p.logs.join('').includes('SECRET-VALUE'), 'no value in the logs');
    assert.ok(!JSON.stringify(r.body).includes('SECRET-VALUE'));
  } finally {
    await p.close();
  }
});

test('file without key is the whole data as JSON; env values of every hostile kind round-trip through sh exactly', async () => {
  const items = [
    { path: 'payments/hostile', file: 'hostile.json', env: null, key: null },
    ...HOSTILE.map((_, i) => ({ path: 'payments/hostile', file: null, env: `V${i}`, key: `v${i}` })),
  ];
  const p = await pod('payments/api', { items });
  try {
    const outcome = await p.projector.refreshOnce();
    assert.deepEqual(outcome, { ok: true, result: 'changed' });
    assert.deepEqual(JSON.parse(readFileSync(join(p.dir, 'hostile.json'), 'utf8')), Object.fromEntries(HOSTILE.map((v, i) => [`v${i}`, v])));
    assert.ok(readFileSync(join(p.dir, 'hostile.json'), 'utf8').endsWith('}\n'));
    const shells = ['sh', 'bash', 'dash'].filter((s) => spawnSync(s, ['-c', 'true']).status === 0);
    assert.ok(shells.includes('sh'), 'sh is required (Debian package dash)');
    for (const shell of shells) {
      for (const [i, value] of HOSTILE.entries()) {
        const r = spawnSync(shell, ['-c', `. ./secrets.env; printf %s "$V${i}"`], { cwd: p.dir, encoding: 'buffer', timeout: 10_000 });
        assert.equal(r.status, 0, `${shell}: ${r.stderr.toString()}`);
        assert.equal(r.stdout.toString('utf8'), value, `${shell} V${i}`);
      }
    }
    assert.ok(!existsSync('/tmp/noisemesh-pwned'), 'nothing in a value ran');
  } finally {
    await p.close();
  }
});

test('a value sh cannot hold (NUL) is refused: nothing is written, the item and key are named, the value is not', async () => {
  writeSecrets(secretsYaml('SECRET-VALUE-1', { 'payments/nul': { token: 'SECRET-VALUE-a\u0000b' } }));
  await sleep(300);
  const p = await pod('payments/api', { items: [{ path: 'payments/nul', file: null, env: 'TOKEN', key: 'token' }] });
  try {
    const outcome = await p.projector.refreshOnce();
    assert.equal(outcome.ok, false);
    assert.equal(outcome.result, 'invalid');
    assert.match((outcome as { message: string }).message, /items\[0\] \(payments\/nul\): the value of "token" contains a NUL byte/);
    assert.ok(!(outcome as { message: string }).message.includes('SECRET-VALUE'));
    assert.ok(!existsSync(join(p.dir, 'secrets.env')));
  } finally {
    await p.close();
    writeSecrets(secretsYaml('SECRET-VALUE-1'));
  }
});

test('a reader in another process polling through the user-visible paths never sees a partial or missing file across repeated swaps', async () => {
  const pad = 'x'.repeat(256 * 1024); // larger than one write to a pipe or a page: a partial file would show
  writeSecrets(secretsYaml(`v0-${pad}`));
  await sleep(300);
  const p = await pod('payments/api', {
    items: [
      { path: 'payments/db', file: 'db.json', env: 'DB_PASSWORD', key: 'password' },
      { path: 'payments/db', file: 'all.json', env: null, key: null },
    ],
  });
  const stopFile = join(work, `stop-reader-${process.pid}`);
  let reader: ChildProcess | undefined;
  try {
    assert.equal((await p.projector.refreshOnce()).ok, true);
    const script = `
      const fs = require('node:fs');
      const [dir, stop, padLength] = process.argv.slice(1);
      const pad = 'x'.repeat(Number(padLength));
      const problems = []; let reads = 0; const seen = new Set();
      for (let i = 0; i < 2000000 && !fs.existsSync(stop); i++) {
        for (const name of ['db.json', 'all.json', 'secrets.env']) {
          let text;
          try { text = fs.readFileSync(dir + '/' + name, 'utf8'); } catch (e) { problems.push(name + ': ' + e.code); continue; }
          reads++;
          let m;
          if (name === 'db.json') m = /^v(\\d+)-(x*)$/.exec(text);
          else if (name === 'secrets.env') m = /^# [^\\n]*\\nDB_PASSWORD='v(\\d+)-(x*)'\\n$/.exec(text);
          else { try { const d = JSON.parse(text); m = /^v(\\d+)-(x*)$/.exec(d.password); } catch { m = null; } }
          if (!m || m[2] !== pad) problems.push(name + ': partial or foreign content of ' + text.length + ' chars');
          else seen.add(m[1]);
        }
        if (problems.length > 10) break;
      }
      process.stdout.write(JSON.stringify({ reads, problems, versions: [...seen].length }));
    `;
    reader = spawn(process.execPath, ['-e', script, p.dir, stopFile, String(pad.length)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    reader.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    const exited = once(reader, 'exit');
    const VERSIONS = 12;
    for (let v = 1; v <= VERSIONS; v++) {
      writeSecrets(secretsYaml(`v${v}-${pad}`));
      // The file backend re-reads on change (100 ms poll); refresh until this version is in.
      await eventually(`version ${v} swapped in`, async () => (await p.projector.refreshOnce()).result === 'changed' && readFileSync(join(p.dir, 'db.json'), 'utf8').startsWith(`v${v}-`), 10_000);
    }
    writeFileSync(stopFile, '');
    await exited;
    const result = JSON.parse(out) as { reads: number; problems: string[]; versions: number };
    assert.deepEqual(result.problems, []);
    assert.ok(result.reads > 100, `the reader read ${result.reads} times`);
    assert.ok(result.versions >= 3, `the reader saw ${result.versions} versions: it ran across swaps`);
    // Old versions are cleared up: the current one and at most the previous remain.
    assert.ok(readdirSync(p.dir).filter((n) => /^\.\.\d/.test(n)).length <= 2, readdirSync(p.dir).join(' '));
  } finally {
    if (reader && reader.exitCode === null) reader.kill();
    await p.close();
    writeSecrets(secretsYaml('SECRET-VALUE-1'));
  }
});

test('refreshes on the interval when the secret changes, and signals the application once per change; a missing pid file is logged, not fatal', async () => {
  writeSecrets(secretsYaml('SECRET-VALUE-1'));
  await sleep(300);
  const pidFile = join(work, 'app.pid');
  const countFile = join(work, 'hups');
  const app = spawn(process.execPath, ['-e', `
    const fs = require('node:fs'); let n = 0;
    process.on('SIGHUP', () => fs.writeFileSync(process.argv[1], String(++n)));
    fs.writeFileSync(process.argv[2], String(process.pid));
    setTimeout(() => {}, 60000);
  `, countFile, pidFile], { stdio: 'ignore' });
  const hups = (): number => (existsSync(countFile) ? Number(readFileSync(countFile, 'utf8')) : 0);
  const p = await pod('payments/api', { refreshSeconds: 1, notify: { signal: 'SIGHUP', pidFile } });
  try {
    await eventually('the app wrote its pid file', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8') !== '');
    p.projector.start();
    await eventually('ready', async () => (await readyz(p)).status === 200);
    assert.equal(readFileSync(join(p.dir, 'db.json'), 'utf8'), 'SECRET-VALUE-1');
    assert.equal(hups(), 0, 'the first projection into an empty directory signals nobody');

    writeSecrets(secretsYaml('SECRET-VALUE-2'));
    await eventually('the change projected', () => readFileSync(join(p.dir, 'db.json'), 'utf8') === 'SECRET-VALUE-2');
    await eventually('one SIGHUP', () => hups() === 1, 5000);
    // Refreshes that find nothing new swap nothing and signal nobody.
    await eventually('an unchanged refresh', async () => (await metric(p, /^noisemesh_secrets_projection_refreshes_total\{result="unchanged"\} (\d+)$/m)) >= 2, 10_000);
    assert.equal(hups(), 1);
    assert.equal(await metric(p, /^noisemesh_secrets_projection_notifications_total\{result="sent"\} (\d+)$/m), 1);

    unlinkSync(pidFile);
    writeSecrets(secretsYaml('SECRET-VALUE-3'));
    await eventually('the next change projected', () => readFileSync(join(p.dir, 'db.json'), 'utf8') === 'SECRET-VALUE-3');
    await eventually('the failed signal counted', async () => (await metric(p, /^noisemesh_secrets_projection_notifications_total\{result="failed"\} (\d+)$/m)) === 1);
    assert.ok(p.logs.some((l) => l.includes('"event":"secrets-notify"') && l.includes('pidFile')), 'the missing pid file is logged');
    assert.equal((await readyz(p)).status, 200, 'still ready');
    assert.ok(!p.logs.join('').includes('SECRET-VALUE'));
  } finally {
    app.kill();
    await p.close();
    writeSecrets(secretsYaml('SECRET-VALUE-1'));
  }
});

test('not ready while the gateway is unreachable (the reason names the item); ready once it answers; then an outage keeps the files and ages them', async () => {
  const closed = await closedPort();
  const p = await pod('payments/batch', { refreshSeconds: 1 }, closed);
  try {
    p.projector.start();
    await eventually('a reason', async () => /connect-failed/.test((await readyz(p)).body.reasons?.secrets ?? ''));
    const r = await readyz(p);
    assert.equal(r.status, 503);
    assert.match(r.body.reasons.secrets, /^payments\/db: no session to the gateway noisemesh-system\/gateway: connect-failed/);
    assert.match(r.body.reasons.secrets, /retrying in \d/);
    assert.ok(!existsSync(join(p.dir, 'db.json')));

    p.gatewayAt(f.gatewayProxy.ports().mesh);
    await eventually('ready once the gateway answers', async () => (await readyz(p)).status === 200);
    assert.equal(readFileSync(join(p.dir, 'db.json'), 'utf8'), 'SECRET-VALUE-1');

    p.gatewayAt(closed);
    await eventually('a failed refresh', async () => (await metric(p, /^noisemesh_secrets_projection_refreshes_total\{result="unreachable"\} (\d+)$/m)) >= 3, 15_000);
    assert.equal((await readyz(p)).status, 200, 'ready: the last good files stay');
    assert.equal(readFileSync(join(p.dir, 'db.json'), 'utf8'), 'SECRET-VALUE-1');
    const age = await metric(p, /^noisemesh_secrets_projection_age_seconds (\S+)$/m);
    assert.ok(age >= 1, `the files age while the gateway is away: ${age}`);
    assert.match((await readyz(p)).body.secrets.lastError, /connect-failed/);
  } finally {
    await p.close();
  }
});

test('not ready while the gateway denies: the reason has the rule and each failed requirement; ready when the policy allows', async () => {
  const p = await pod('billing/api', { refreshSeconds: 1 });
  try {
    p.projector.start();
    await eventually('a denial', async () => /denied/.test((await readyz(p)).body.reasons?.secrets ?? ''));
    const r = await readyz(p);
    assert.equal(r.status, 503);
    assert.match(r.body.reasons.secrets, /^payments\/db: the gateway noisemesh-system\/gateway denied payments\/db: no rule matched: rule: .*\(decision [0-9a-f]{32}\)/);
    f.gateway.setPolicy(parsePolicy(`rules:
  - id: billing-needs-more
    paths: ["payments/**"]
    agents: ["billing/*"]
    require: {clearance: secrets-only, minDevicePosture: 0.99}
`, 'policy.yaml'));
    await eventually('the new denial', async () => /rule billing-needs-more: minDevicePosture requires 0\.99, this pod has 0\.9/.test((await readyz(p)).body.reasons?.secrets ?? ''));
    f.gateway.setPolicy(parsePolicy(ALLOW_ALL, 'policy.yaml'));
    await eventually('ready once allowed', async () => (await readyz(p)).status === 200);
    assert.equal(readFileSync(join(p.dir, 'db.json'), 'utf8'), 'SECRET-VALUE-1');
  } finally {
    f.gateway.setPolicy(parsePolicy(POLICY, 'policy.yaml'));
    await p.close();
  }
});

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

/** A configuration for `noisemesh secrets fetch` as payments/fetcher, with a registry file of its own. */
function fetchConfig(name: string, items: unknown[], meshPort = f.gatewayProxy.ports().mesh, extra: Record<string, unknown> = {}): { config: string; dir: string } {
  const base = join(work, name);
  rmSync(base, { recursive: true, force: true });
  mkdirSync(base, { recursive: true });
  const me = f.callers.get('payments/fetcher')!.identity;
  writeFileSync(join(base, 'key'), `${encodeKey(me.keyPair.privateKey)}\n`, { mode: 0o600 });
  const entry = (id: Identity, n: number, extra: Record<string, unknown>): Record<string, unknown> => ({
    agentId: id.agentId, installationId: `11111111-2222-4333-8444-${String(900 + n).padStart(12, '0')}`, publicKey: id.publicKeyB64,
    generation: 1, clearance: 'secrets-only', addresses: ['127.0.0.1'], agentType: 'service', delegationDepth: 0,
    attestation: { authnStrength: 'high', attestedAt: new Date().toISOString(), devicePosture: 0.9 }, ...extra,
  });
  const doc = (ns: string, peers: unknown[]): string => stringify({ apiVersion: 'noisemesh.io/v1alpha1', kind: 'ClearanceRegistry', metadata: { name: 'peers', namespace: ns }, spec: { peers } });
  writeFileSync(join(base, 'registry.yaml'), `${doc('noisemesh-system', [entry(f.gatewayId, 0, { meshPort })])}---\n${doc('payments', [entry(me, 1, {})])}`);
  const dir = join(base, 'secrets');
  writeFileSync(join(base, 'proxy.yaml'), stringify({
    identity: { agentId: 'payments/fetcher', privateKeyFile: join(base, 'key') },
    registry: { file: join(base, 'registry.yaml') },
    admin: false,
    secrets: { gateway: { peer: GATEWAY_AGENT, port: GATEWAY_PORT }, project: { dir, items } },
    ...extra,
  }));
  return { config: join(base, 'proxy.yaml'), dir };
}

function fetchOnce(config: string, args: readonly string[] = []): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'secrets', 'fetch', '--config', config, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

test('noisemesh secrets fetch: writes the files and exits 0; a second run finds them current', async () => {
  const { config, dir } = fetchConfig('fetch-ok', [{ path: 'payments/db', file: 'db.json', env: 'DB_PASSWORD', key: 'password' }]);
  const r = await fetchOnce(config);
  assert.equal(r.stderr, '');
  assert.equal(r.status, 0);
  assert.equal(r.stdout, `1 item written to ${dir}\n`);
  assert.equal(readFileSync(join(dir, 'db.json'), 'utf8'), 'SECRET-VALUE-1');
  assert.equal(statSync(join(dir, 'db.json')).mode & 0o777, 0o400);
  assert.match(readFileSync(join(dir, 'secrets.env'), 'utf8'), /^DB_PASSWORD='SECRET-VALUE-1'$/m);
  const again = await fetchOnce(config);
  assert.equal(again.status, 0);
  assert.equal(again.stdout, `1 item already current in ${dir}\n`);
});

test('noisemesh secrets fetch: exits 1 with one line when denied, absent or unreachable; 2 without a secrets section', async () => {
  const denied = await fetchOnce(fetchConfig('fetch-denied', [{ path: 'public/thing', file: 't' }]).config);
  assert.equal(denied.status, 1);
  assert.equal(denied.stdout, '');
  assert.match(denied.stderr, /^noisemesh secrets fetch: public\/thing: the gateway noisemesh-system\/gateway denied public\/thing: no rule matched: .*\n$/);
  assert.equal(denied.stderr.split('\n').length, 2, 'one line');

  const missing = await fetchOnce(fetchConfig('fetch-missing', [{ path: 'payments/nothing', file: 't' }]).config);
  assert.equal(missing.status, 1);
  assert.equal(missing.stderr, 'noisemesh secrets fetch: payments/nothing: the gateway noisemesh-system/gateway has no secret payments/nothing (404)\n');

  const down = fetchConfig('fetch-down', [{ path: 'payments/db', file: 't' }], await closedPort());
  const unreachable = await fetchOnce(down.config);
  assert.equal(unreachable.status, 1);
  assert.match(unreachable.stderr, /^noisemesh secrets fetch: payments\/db: no session to the gateway noisemesh-system\/gateway: connect-failed \(its mesh port did not accept a connection\)\n$/);
  assert.ok(!existsSync(join(down.dir, 't')));

  // No registry file: the one line says why the registry did not load, and no log line
  // comes before it.
  const noRegistry = fetchConfig('fetch-no-registry', [{ path: 'payments/db', file: 't' }]);
  rmSync(join(work, 'fetch-no-registry', 'registry.yaml'));
  const unloaded = await fetchOnce(noRegistry.config, ['--registry-wait', '1']);
  assert.equal(unloaded.status, 1);
  assert.equal(unloaded.stdout, '', 'no JSON log line before the outcome');
  assert.match(unloaded.stderr, /^noisemesh secrets fetch: the registry did not load within 1 s \(.*registry\.yaml.*\): nothing fetched\n$/);

  const plain = join(work, 'plain.yaml');
  writeFileSync(plain, stringify({ identity: { agentId: 'payments/x' }, registry: { file: join(work, 'none.yaml') } }));
  const none = await fetchOnce(plain);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /has no secrets section: nothing to fetch/);
});

test('noisemesh proxy with a secrets section: /readyz names the projection until the files are written, then ready', async () => {
  const admin = await closedPort();
  const { config, dir } = fetchConfig('sidecar', [{ path: 'payments/db', file: 'db.json', env: 'DB_PASSWORD', key: 'password' }], f.gatewayProxy.ports().mesh, {
    admin: { bind: '127.0.0.1', port: admin },
    inbound: { bind: '127.0.0.1', meshPort: await closedPort() },
  });
  const child = spawn(process.execPath, [CLI, 'proxy', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  child.stdout.on('data', (c: Buffer) => (logs += c.toString()));
  child.stderr.on('data', (c: Buffer) => (logs += c.toString()));
  try {
    let body: any;
    await eventually('the proxy ready', async () => {
      try {
        const res = await request(`http://127.0.0.1:${admin}/readyz`);
        body = await res.body.json();
        return res.statusCode === 200;
      } catch {
        return false;
      }
    }, 30_000);
    assert.equal(body.checks.secrets, true);
    assert.equal(body.secrets.items, 1);
    assert.equal(readFileSync(join(dir, 'db.json'), 'utf8'), 'SECRET-VALUE-1');
    assert.match(logs, /secrets projected: ready/);
    assert.ok(!logs.includes('SECRET-VALUE'), 'no value in the logs');
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
});
