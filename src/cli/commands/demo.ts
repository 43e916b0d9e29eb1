/**
 * `noisemesh demo`: a local mesh on loopback, with no root and no Kubernetes. Two real
 * `noisemesh proxy` processes, a registry file, and an HTTP server; requests go through,
 * the registry revokes the client, and the next request is refused. `--serve` keeps the
 * mesh up for curl and a browser.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { stringify } from 'yaml';
import { encodeKey, nativeBackend, type KeyPair } from '../../noise/index.js';
import type { Command } from '../command.js';

const CLI = fileURLToPath(new URL('../main.js', import.meta.url));

interface DemoPod {
  readonly agentId: string;
  readonly keyPair: KeyPair;
  readonly meshPort: number;
  readonly adminPort: number;
  readonly installationId: string;
}

export const demo: Command = {
  async run(args) {
    const { values } = parseArgs({ args, options: { serve: { type: 'boolean', default: false }, requests: { type: 'string', default: '5' } } });
    const requests = Math.max(1, Math.min(1000, Number(values.requests) || 5));
    const dir = mkdtempSync(join(tmpdir(), 'noisemesh-demo-'));
    const children: ChildProcess[] = [];
    let http: HttpServer | undefined;
    const say = (line: string): void => void process.stdout.write(`${line}\n`);
    try {
      const [webMesh, webAdmin, apiMesh, apiAdmin, entry, httpPort] = await freePorts(6);
      const web: DemoPod = { agentId: 'demo/web', keyPair: keyPair(), meshPort: webMesh!, adminPort: webAdmin!, installationId: '6f1c2a9e-0b7d-4c4e-9a51-3b2f0e6d7a10' };
      const api: DemoPod = { agentId: 'demo/api', keyPair: keyPair(), meshPort: apiMesh!, adminPort: apiAdmin!, installationId: '0f8e2c1a-5d3b-4a6c-8e9f-1a2b3c4d5e6f' };

      http = createHttpServer((req, res) => {
        res.setHeader('content-type', 'text/plain');
        res.end(`hello from demo/api: ${req.method} ${req.url} arrived from ${req.socket.remoteAddress}:${req.socket.remotePort}\n`);
      });
      await new Promise<void>((resolve) => http!.listen(httpPort, '127.0.0.1', resolve));

      const registryFile = join(dir, 'registry.yaml');
      writeFileSync(registryFile, registryYaml([web, api], false));
      for (const pod of [web, api]) {
        const name = pod.agentId.split('/')[1]!;
        writeFileSync(join(dir, `${name}.key`), `${encodeKey(pod.keyPair.privateKey)}\n`, { mode: 0o600 });
        const config = {
          identity: { agentId: pod.agentId, privateKeyFile: join(dir, `${name}.key`) },
          registry: { file: registryFile },
          inbound: { bind: '127.0.0.1', meshPort: pod.meshPort },
          admin: { bind: '127.0.0.1', port: pod.adminPort },
          shutdown: { drainSeconds: 2 },
          ...(pod === web && { outbound: { explicit: [{ listen: `127.0.0.1:${entry}`, peer: api.agentId, port: httpPort }] } }),
        };
        writeFileSync(join(dir, `${name}.yaml`), stringify(config));
        const child = spawn(process.execPath, [CLI, 'proxy', '--config', join(dir, `${name}.yaml`)], {
          stdio: ['ignore', 'ignore', 'inherit'],
          env: { ...process.env, NOISEMESH_LOG_LEVEL: process.env.NOISEMESH_LOG_LEVEL ?? 'warn' },
        });
        children.push(child);
      }
      say(`noisemesh demo: a two-pod mesh on loopback (files in ${dir})`);
      say(`  demo/web  proxy: mesh :${web.meshPort}  admin :${web.adminPort}  explicit listener 127.0.0.1:${entry} -> demo/api port ${httpPort}`);
      say(`  demo/api  proxy: mesh :${api.meshPort}  admin :${api.adminPort}  target 127.0.0.1:${httpPort} (an HTTP server)`);
      await Promise.all([waitReady(web.adminPort), waitReady(api.adminPort)]);
      say('  both proxies ready (registry loaded, listeners bound)\n');

      for (let i = 1; i <= requests; i++) {
        const res = await request(`http://127.0.0.1:${entry}/orders/${i}`, { reset: true });
        say(`  request ${i}: ${res.statusCode} ${(await res.body.text()).trim()}`);
      }
      say('');
      say(await summary(web, api));

      if (values.serve) {
        say(`\nserving: try  curl http://127.0.0.1:${entry}/hello   and  curl http://127.0.0.1:${web.adminPort}/debug/sessions`);
        say('press Ctrl-C to stop');
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        return 0;
      }

      say('\nrevoking demo/web in the registry file (revoked: true) ...');
      writeFileSync(registryFile, registryYaml([web, api], true));
      const refusedAfter = await untilRefused(entry!);
      say(`  the next request was refused after ${refusedAfter} ms: ${refusedAfter >= 0 ? 'the connection was reset, as for a server that is not there' : 'NOT refused'}`);
      say('\n' + (await summary(web, api)));
      return refusedAfter >= 0 ? 0 : 1;
    } finally {
      for (const child of children) child.kill('SIGTERM');
      await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null)));
      http?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

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

async function waitReady(adminPort: number): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    try {
      const res = await request(`http://127.0.0.1:${adminPort}/readyz`);
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  throw new Error(`the proxy with admin port ${adminPort} did not become ready within 10 s`);
}

/** Milliseconds until a request through the mesh fails, or -1 if it never does within 5 s. */
async function untilRefused(entry: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < 5000) {
    try {
      const res = await request(`http://127.0.0.1:${entry}/after-revocation`, { reset: true });
      await res.body.dump();
    } catch {
      return Date.now() - started;
    }
    await sleep(20);
  }
  return -1;
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
