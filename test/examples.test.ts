// examples/ as a user runs it: the commands of examples/README.md, read from it and run for
// real (an app, two proxy processes, one request through the mesh, on loopback), with the
// committed files unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { parse } from 'yaml';
import { decodeKey, encodeKey, loadBackend } from '../src/noise/index.js';
import { repoRoot } from './helpers/paths.js';

const nobleBackend = await loadBackend('noble');

const EXAMPLES = join(repoRoot, 'examples');
const readme = readFileSync(join(EXAMPLES, 'README.md'), 'utf8');

/** The lines of the README's "Run it" shell block. */
function runCommands(): string[] {
  const section = readme.slice(readme.indexOf('## Run it'));
  const block = /```sh\n([^]*?)```/.exec(section);
  assert.ok(block, 'examples/README.md has a ```sh block under "## Run it"');
  return block[1]!.split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer().once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

test('the example keys are marked example-only, and the registry publishes their public keys', () => {
  const registry = parse(readFileSync(join(EXAMPLES, 'registry.yaml'), 'utf8')) as { spec: { peers: { agentId: string; publicKey: string }[] } };
  const keys = readdirSync(EXAMPLES).filter((f) => f.endsWith('.key'));
  assert.deepEqual(keys.sort(), ['example-only-api.key', 'example-only-web.key']);
  assert.match(readme, /\*\*EXAMPLE ONLY\*\* private keys/);
  for (const name of ['api', 'web']) {
    const config = parse(readFileSync(join(EXAMPLES, `${name}.yaml`), 'utf8')) as { identity: { agentId: string; privateKeyFile: string } };
    assert.equal(config.identity.privateKeyFile, `examples/example-only-${name}.key`);
    const privateKey = decodeKey(readFileSync(join(repoRoot, config.identity.privateKeyFile), 'utf8'), 32);
    const entry = registry.spec.peers.find((p) => p.agentId === config.identity.agentId);
    assert.equal(entry?.publicKey, encodeKey(nobleBackend.dh('25519').keyPairFromPrivate(privateKey).publicKey), `${name}: the registry has its public key`);
  }
});

test('the README\'s commands run: the registry validates, two proxies start, a request goes through', async (t) => {
  const commands = runCommands();
  const children: ChildProcess[] = [];
  const logs = new Map<ChildProcess, string>();
  t.after(async () => {
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => c.once('exit', r)))));
  });

  const configs = commands.flatMap((c) => /proxy --config (\S+) &$/.exec(c)?.[1] ?? []);
  assert.deepEqual(configs, ['examples/api.yaml', 'examples/web.yaml']);
  const adminPorts = configs.map((f) => (parse(readFileSync(join(repoRoot, f), 'utf8')) as { admin: { port: number } }).admin.port);
  for (const port of [...adminPorts, 17000, 17443, 17444, 18080]) {
    assert.ok(await portFree(port), `port ${port}, which the example uses, is taken on 127.0.0.1: stop what holds it (another run of this test?)`);
  }

  let sawRequest = false;
  for (const line of commands) {
    if (line.startsWith('node dist/src/cli/main.js registry validate ')) {
      const r = spawnSync(process.execPath, line.split(' ').slice(1), { cwd: repoRoot, encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.equal(r.stdout, '1 file, 1 document, 2 peers loaded; 0 errors, 0 warnings\n');
    } else if (line.startsWith('node -e ')) {
      const script = /^node -e "(.*)" &$/.exec(line)?.[1];
      assert.ok(script, line);
      // The shell would turn the README's \n inside double quotes into the same two characters.
      children.push(spawn(process.execPath, ['-e', script], { cwd: repoRoot, stdio: 'ignore' }));
    } else if (line.startsWith('node dist/src/cli/main.js proxy ')) {
      const child = spawn(process.execPath, line.replace(/ &$/, '').split(' ').slice(1), { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
      logs.set(child, '');
      child.stdout!.on('data', (c: Buffer) => logs.set(child, logs.get(child) + c.toString()));
      child.stderr!.on('data', (c: Buffer) => logs.set(child, logs.get(child) + c.toString()));
      children.push(child);
    } else if (line.startsWith('curl ')) {
      const url = line.split(' ')[1]!;
      // The proxies are ready (registry loaded, listeners bound) before anything is sent.
      for (const port of adminPorts) {
        let ready = false;
        for (let i = 0; i < 300 && !ready; i++) {
          ready = await request(`http://127.0.0.1:${port}/readyz`).then((r) => { void r.body.dump(); return r.statusCode === 200; }, () => false);
          if (!ready) await sleep(50);
        }
        assert.ok(ready, `the proxy with admin port ${port} became ready\n${[...logs.values()].join('\n')}`);
      }
      const res = await request(url);
      const body = await res.body.text();
      assert.equal(res.statusCode, 200, url);
      if (url === 'http://127.0.0.1:17000/') {
        assert.equal(body, 'hello from example/api\n');
        sawRequest = true;
      } else if (url.endsWith('/readyz')) {
        assert.deepEqual(JSON.parse(body), { ready: true, checks: { registry: true, listeners: true } });
      } else if (url.endsWith('/metrics')) {
        assert.match(body, /^noisemesh_handshakes_total\{role="responder",result="accepted"\} 1$/m);
      }
    } else {
      assert.fail(`a line of the README's block this test does not know how to run: ${line}`);
    }
  }
  assert.ok(sawRequest, 'the request through the mesh was made');
  for (const [child, log] of logs) {
    assert.doesNotMatch(log, /"level":(40|50|60)/, `a warning or error from a proxy (pid ${child.pid}):\n${log}`);
  }
});
