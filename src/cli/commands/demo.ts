/**
 * `noisemesh demo`: a local mesh on loopback, with no root and no Kubernetes. Two real
 * `noisemesh proxy` processes, a `noisemesh gateway` with the file backend (an allowed and a
 * denied secret, and a refusal after the revocation), a registry file, and an HTTP server; requests go through, one
 * long-lived session is held open, then the registry revokes the client. What follows is
 * measured, not assumed: how many requests still pass while the proxies have not yet re-read
 * the file, when the first is refused, and when the held session is reset. `--serve` keeps
 * the mesh up, with the held session, for curl and a browser.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { stringify } from 'yaml';
import { encodeKey, nativeBackend, type KeyPair } from '../../noise/index.js';
import type { Command } from '../command.js';
import { CommandFailure } from '../command-failure.js';
import { UsageError } from '../usage-error.js';

const CLI = fileURLToPath(new URL('../main.js', import.meta.url));

interface DemoPod {
  readonly agentId: string;
  readonly keyPair: KeyPair;
  readonly meshPort: number;
  readonly adminPort: number;
  readonly installationId: string;
}

const USAGE = `usage: noisemesh demo [--serve] [--requests N]

A two-pod mesh and a secrets gateway on loopback, with no root and no Kubernetes: writes
keys, a registry, a secrets policy and file, and the configurations to a temporary
directory, starts two \`noisemesh proxy\` processes (demo/web with explicit listeners,
demo/api in front of a small HTTP server) and a \`noisemesh gateway\` (demo/gateway, file
backend), sends requests through them, fetches an allowed and a denied secret, holds one
session open, then marks demo/web revoked in the registry and reports what happened,
measured: how many requests still passed, when the first was refused, when the held session
was reset, and that the gateway's secrets are refused too. Exit 0 when the revocation took.

  --requests N   requests sent through the mesh before the revocation, 1..1000 (default 5)
  --serve        no revocation: keep the mesh and the held session up until Ctrl-C, and
                 print every address to try
`;

export const demo: Command = {
  usage: USAGE,
  async run(args) {
    const { values } = parseArgs({ args, options: { serve: { type: 'boolean', default: false }, requests: { type: 'string', default: '5' } } });
    const requests = Number(values.requests);
    if (!/^\d+$/.test(values.requests!) || requests < 1 || requests > 1000) throw new UsageError(`--requests must be a whole number from 1 to 1000; got ${JSON.stringify(values.requests)}`);
    const dir = mkdtempSync(join(tmpdir(), 'noisemesh-demo-'));
    const children: ChildProcess[] = [];
    let http: HttpServer | undefined;
    let held: HeldSession | undefined;
    const say = (line: string): void => void process.stdout.write(`${line}\n`);
    try {
      const [webMesh, webAdmin, apiMesh, apiAdmin, entry, httpPort, gwMesh, gwAdmin, gwEntry] = await freePorts(9);
      const web: DemoPod = { agentId: 'demo/web', keyPair: keyPair(), meshPort: webMesh!, adminPort: webAdmin!, installationId: '6f1c2a9e-0b7d-4c4e-9a51-3b2f0e6d7a10' };
      const api: DemoPod = { agentId: 'demo/api', keyPair: keyPair(), meshPort: apiMesh!, adminPort: apiAdmin!, installationId: '0f8e2c1a-5d3b-4a6c-8e9f-1a2b3c4d5e6f' };
      const gw: DemoPod = { agentId: 'demo/gateway', keyPair: keyPair(), meshPort: gwMesh!, adminPort: gwAdmin!, installationId: '3c9d7e21-4b6a-4f8e-a1d2-5e6f7a8b9c0d' };

      http = createHttpServer((req, res) => {
        res.setHeader('content-type', 'text/plain');
        res.end(`hello from demo/api: ${req.method} ${req.url} arrived from ${req.socket.remoteAddress}:${req.socket.remotePort}\n`);
      });
      // The held session is an idle keep-alive connection: the server must not close it.
      http.keepAliveTimeout = 0;
      await new Promise<void>((resolve) => http!.listen(httpPort, '127.0.0.1', resolve));

      const registryFile = join(dir, 'registry.yaml');
      writeFileSync(registryFile, registryYaml([web, api, gw], false));
      writeFileSync(join(dir, 'policy.yaml'), DEMO_POLICY);
      writeFileSync(join(dir, 'secrets.yaml'), DEMO_SECRETS);
      for (const pod of [web, api, gw]) {
        const name = pod.agentId.split('/')[1]!;
        writeFileSync(join(dir, `${name}.key`), `${encodeKey(pod.keyPair.privateKey)}\n`, { mode: 0o600 });
        const config = {
          identity: { agentId: pod.agentId, privateKeyFile: join(dir, `${name}.key`) },
          registry: { file: registryFile },
          inbound: { bind: '127.0.0.1', meshPort: pod.meshPort },
          admin: { bind: '127.0.0.1', port: pod.adminPort },
          shutdown: { drainSeconds: 2 },
          ...(pod === web && {
            outbound: {
              explicit: [
                { listen: `127.0.0.1:${entry}`, peer: api.agentId, port: httpPort },
                { listen: `127.0.0.1:${gwEntry}`, peer: gw.agentId, port: GATEWAY_PORT },
              ],
            },
          }),
          ...(pod === gw && {
            gateway: { port: GATEWAY_PORT, policy: join(dir, 'policy.yaml'), backend: { file: join(dir, 'secrets.yaml') }, audit: { file: join(dir, 'audit.log') } },
          }),
        };
        writeFileSync(join(dir, `${name}.yaml`), stringify(config));
        const child = spawn(process.execPath, [CLI, pod === gw ? 'gateway' : 'proxy', '--config', join(dir, `${name}.yaml`)], {
          stdio: ['ignore', 'ignore', 'inherit'],
          env: { ...process.env, NOISEMESH_LOG_LEVEL: process.env.NOISEMESH_LOG_LEVEL ?? 'warn' },
        });
        children.push(child);
      }
      say(`noisemesh demo: a two-pod mesh and a secrets gateway on loopback (files in ${dir})`);
      say(`  demo/web  proxy: mesh :${web.meshPort}  admin :${web.adminPort}  explicit listener 127.0.0.1:${entry} -> demo/api port ${httpPort}`);
      say(`  demo/api  proxy: mesh :${api.meshPort}  admin :${api.adminPort}  target 127.0.0.1:${httpPort} (an HTTP server)`);
      say(`  demo/gateway  secrets gateway: mesh :${gw.meshPort}  admin :${gw.adminPort}  port ${GATEWAY_PORT} served in-process; demo/web reaches it at 127.0.0.1:${gwEntry}`);
      await Promise.all([web, api, gw].map((pod, i) => waitReady(pod, children[i]!)));
      say('  all three ready (registry loaded, listeners bound)\n');

      for (let i = 1; i <= requests; i++) {
        const res = await request(`http://127.0.0.1:${entry}/orders/${i}`, { reset: true });
        say(`  request ${i}: ${res.statusCode} ${(await res.body.text()).trim()}`);
      }
      say('');
      say('secrets through the mesh, decided by demo/gateway on demo/web\'s verified key:');
      say(`  ${await describeFetch(gwEntry!, 'demo/db')}`);
      say(`  ${await describeFetch(gwEntry!, 'demo/admin')}`);
      say(`  (policy: ${join(dir, 'policy.yaml')}; one audit line per decision, no values: ${join(dir, 'audit.log')})`);
      say('');
      say(await summary(web, api));

      held = await holdSession(entry!);
      const [webSessions, apiSessions] = await Promise.all([sessionCount(web.adminPort), sessionCount(api.adminPort)]);
      say(
        `\nholding one long-lived session open: this demo's connection 127.0.0.1:${held.localPort} -> demo/web 127.0.0.1:${entry} ` +
          `-> demo/api port ${httpPort}, an idle HTTP keep-alive after GET /held; ` +
          `/debug/sessions lists ${webSessions} session(s) on demo/web and ${apiSessions} on demo/api`,
      );

      if (values.serve) {
        say('\nserving until Ctrl-C; try:');
        const tries = [
          [`curl http://127.0.0.1:${entry}/hello`, 'a request through the mesh (demo/web -> demo/api)'],
          [`curl http://127.0.0.1:${gwEntry}/v1/secrets/demo/db`, 'a secret from demo/gateway, as demo/web (also /v1/secrets/demo/admin, /v1/whoami)'],
          ...[web, api, gw].map((pod) => [`curl http://127.0.0.1:${pod.adminPort}/debug/sessions`, `${pod.agentId}'s admin port: also /metrics /readyz /healthz`]),
        ] as const;
        const width = Math.max(...tries.map(([command]) => command.length));
        for (const [command, what] of tries) say(`  ${command.padEnd(width)}   ${what}`);
        say(`  the held session above stays open; the files are in ${dir}`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        return 0;
      }

      say('\nrevoking demo/web in the registry file (revoked: true), and sending a request every 10 ms ...');
      const refusedBefore = await Promise.all([refusals(web), refusals(api)]);
      const writtenAt = performance.now();
      writeFileSync(registryFile, registryYaml([web, api, gw], true));
      const outcome = await requestsUntilRefused(entry!, writtenAt);
      const heldEnd = await held.ended(Math.max(0, 5000 - (performance.now() - writtenAt)));
      const ms = (t: number): string => `${Math.round(t - writtenAt)} ms`;
      say(`  ${outcome.passed} request(s) still went through after the write: a proxy applies a registry change once it has re-read the file`);
      say(
        outcome.refusedAt === undefined
          ? '  no request was refused within 5 s of the write: the revocation did NOT take'
          : `  the first refused request failed ${ms(outcome.refusedAt)} after the write: ${outcome.how}`,
      );
      const refusedAfter = await Promise.all([refusals(web), refusals(api)]);
      for (const [i, pod] of [web, api].entries()) {
        const grown = [...refusedAfter[i]!].map(([result, n]) => [result, n - (refusedBefore[i]!.get(result) ?? 0)] as const).filter(([, n]) => n > 0);
        if (grown.length > 0) say(`  recorded by ${pod.agentId} since the write: ${grown.map(([what, n]) => `${n} ${what}`).join(', ')}`);
      }
      say(
        heldEnd === undefined
          ? '  the held session was still open 5 s after the write: it was NOT aborted'
          : `  the held session was ${heldEnd.how} ${ms(heldEnd.at)} after the write`,
      );
      const afterRevocation = await describeFetch(gwEntry!, 'demo/db');
      say(`  demo/web asks demo/gateway for demo/db again: ${afterRevocation}`);
      say('\n' + (await summary(web, api)));
      return outcome.refusedAt !== undefined && heldEnd !== undefined && !afterRevocation.startsWith('200') ? 0 : 1;
    } finally {
      held?.socket.destroy();
      for (const child of children) child.kill('SIGTERM');
      await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null)));
      http?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

const GATEWAY_PORT = 8200;

/** demo/* may read demo/db at clearance internal; demo/admin needs secrets-only and high authentication. */
const DEMO_POLICY = `rules:
  - id: demo-admin
    paths: ["demo/admin"]
    agents: ["demo/*"]
    require: {clearance: secrets-only, authnStrength: high}
  - id: demo-app
    paths: ["demo/**"]
    agents: ["demo/*"]
    require: {clearance: internal, authnStrength: medium, maxFreshnessSeconds: 3600}
`;
const DEMO_SECRETS = `demo/db: {username: app, password: demo-password}
demo/admin: {token: demo-admin-token}
`;

/** One line: the status and what the gateway said (the data on 200, the reasons on 403). */
async function describeFetch(port: number, path: string): Promise<string> {
  try {
    const res = await request(`http://127.0.0.1:${port}/v1/secrets/${path}`, { reset: true });
    const body = (await res.body.json()) as { data?: Record<string, string>; ruleId?: string; reasons?: { message: string }[] };
    if (res.statusCode === 200) return `200 ${path}: ${JSON.stringify(body.data)}`;
    if (res.statusCode === 403) return `403 ${path}: denied by rule ${body.ruleId}: ${body.reasons!.map((r) => r.message).join('; ')}`;
    return `${res.statusCode} ${path}: ${JSON.stringify(body)}`;
  } catch (err) {
    const code = (err as { code?: string }).code;
    return `refused: ${code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' ? 'the connection was reset: demo/web is revoked, so no session of its key is carried (its own proxy no longer initiates one, and the gateway would refuse its key)' : (code ?? (err as Error).message)}`;
  }
}

function keyPair(): KeyPair {
  return nativeBackend.dh('25519').generateKeyPair();
}

function registryYaml(pods: readonly DemoPod[], revokeWeb: boolean): string {
  return stringify({
    apiVersion: 'noisemesh.io/v1alpha1',
    kind: 'ClearanceRegistry',
    metadata: { name: 'demo', namespace: 'demo' },
    spec: {
      peers: pods.map((pod) => ({
        agentId: pod.agentId,
        installationId: pod.installationId,
        publicKey: encodeKey(pod.keyPair.publicKey),
        generation: 1,
        clearance: 'internal',
        addresses: ['127.0.0.1'],
        meshPort: pod.meshPort,
        serviceAccount: pod.agentId.split('/')[1],
        agentType: 'service',
        delegationDepth: 0,
        revoked: revokeWeb && pod.agentId === 'demo/web',
        attestation: { authnStrength: 'medium', attestedAt: new Date().toISOString(), devicePosture: 0.9 },
      })),
    },
  });
}

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/**
 * A proxy is ready in well under a second on an idle machine; on a busy one (CI, a laptop
 * compiling) start-up has taken over 10 s, so the bound is generous and measured in time.
 */
const READY_TIMEOUT_MS = 60_000;

/**
 * Polls the pod's /readyz until it answers 200. A child that exits first (a refused
 * configuration or environment: its one line is already on stderr) fails the demo at once.
 */
async function waitReady(pod: DemoPod, child: ChildProcess): Promise<void> {
  const { adminPort } = pod;
  const deadline = performance.now() + READY_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const how = child.exitCode !== null ? `with code ${child.exitCode}` : `on ${child.signalCode}`;
      throw new CommandFailure(`the demo's ${pod.agentId} process exited ${how} before it was ready (its error is above)`);
    }
    try {
      const res = await request(`http://127.0.0.1:${adminPort}/readyz`);
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  throw new CommandFailure(
    `the demo proxy with admin port ${adminPort} did not become ready within ${READY_TIMEOUT_MS / 1000} s (its log lines above say why; a machine this busy may need the demo run again)`,
  );
}

interface RefusalOutcome {
  /** Requests that completed after the registry write. */
  readonly passed: number;
  /** performance.now() when the first request failed; undefined if none did within 5 s. */
  readonly refusedAt?: number;
  readonly how?: string;
}

/** Sends requests through the mesh, one every 10 ms, until one fails or 5 s have passed. */
async function requestsUntilRefused(entry: number, since: number): Promise<RefusalOutcome> {
  let passed = 0;
  while (performance.now() - since < 5000) {
    try {
      const res = await request(`http://127.0.0.1:${entry}/after-revocation/${passed + 1}`, { reset: true });
      await res.body.dump();
      passed++;
    } catch (err) {
      const code = (err as { code?: string }).code;
      const how = code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' ? 'the connection was reset, as for a server that is not there' : `it failed (${code ?? (err as Error).message})`;
      return { passed, refusedAt: performance.now(), how };
    }
    await sleep(10);
  }
  return { passed };
}

interface HeldSession {
  readonly socket: Socket;
  readonly localPort: number;
  /** Resolves when the connection ends or is reset (performance.now()), or undefined after `timeoutMs`. */
  ended(timeoutMs: number): Promise<{ at: number; how: string } | undefined>;
}

/**
 * Opens a connection through the mesh, makes one request on it and keeps it open, idle: one
 * session in each proxy's /debug/sessions, and the session a revocation must abort.
 */
async function holdSession(entry: number): Promise<HeldSession> {
  const socket = connect({ host: '127.0.0.1', port: entry });
  let end: { at: number; how: string } | undefined;
  const endWaiters: (() => void)[] = [];
  const finish = (how: string): void => {
    end ??= { at: performance.now(), how };
    for (const wake of endWaiters.splice(0)) wake();
  };
  socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNRESET' ? 'reset' : `ended with ${err.code ?? err.message}`));
  socket.on('close', () => finish('closed'));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let reply = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      reply += chunk.toString();
      if (reply.includes('hello from demo/api')) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error('the held session closed before its first reply')));
    socket.write('GET /held HTTP/1.1\r\nhost: demo\r\nconnection: keep-alive\r\n\r\n');
  });
  socket.resume();
  return {
    socket,
    localPort: socket.localPort!,
    async ended(timeoutMs) {
      if (end !== undefined) return end;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((resolve) => endWaiters.push(resolve)), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
      return end;
    },
  };
}

/**
 * What a proxy's /metrics count of refusals: handshakes that did not end in `accepted` (by
 * role and result), and sessions aborted (by reason).
 */
async function refusals(pod: DemoPod): Promise<Map<string, number>> {
  const res = await request(`http://127.0.0.1:${pod.adminPort}/metrics`);
  const text = await res.body.text();
  const counts = new Map<string, number>();
  for (const m of text.matchAll(/^noisemesh_handshakes_total\{role="(\w+)",result="([\w-]+)"\} (\d+)$/gm)) {
    if (m[2] !== 'accepted') counts.set(`handshake(s) refused as ${m[1]}: ${m[2]}`, Number(m[3]));
  }
  for (const m of text.matchAll(/^noisemesh_session_aborts_total\{reason="([\w-]+)"\} (\d+)$/gm)) {
    counts.set(`session(s) aborted: ${m[1]}`, Number(m[2]));
  }
  return counts;
}

async function sessionCount(adminPort: number): Promise<number> {
  const res = await request(`http://127.0.0.1:${adminPort}/debug/sessions`);
  return ((await res.body.json()) as { sessions: unknown[] }).sessions.length;
}

async function summary(web: DemoPod, api: DemoPod): Promise<string> {
  const lines: string[] = [];
  for (const pod of [web, api]) {
    const res = await request(`http://127.0.0.1:${pod.adminPort}/metrics`);
    const text = await res.body.text();
    const wanted = text
      .split('\n')
      .filter((l) => /^noisemesh_(handshakes_total|sessions_total|session_bytes_total|session_aborts_total|registry_peers|registry_reloads_total)/.test(l))
      .filter((l) => !l.endsWith(' 0'));
    lines.push(`metrics of ${pod.agentId}:`, ...wanted.map((l) => `  ${l}`));
  }
  return lines.join('\n');
}
