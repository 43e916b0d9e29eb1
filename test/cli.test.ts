// The noisemesh command as users run it: keygen, vectors, and the demo behind `npm start`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { decodeKey, encodeKey, loadBackend } from '../src/noise/index.js';
import { repoRoot, sharedPath } from './helpers/paths.js';

const nobleBackend = await loadBackend('noble');

const CLI = join(repoRoot, 'dist/src/cli/main.js');
const run = (args: string[], timeout = 60_000) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout });

/** keygen's two labelled lines, in the same form with and without --out. */
function keygenLines(stdout: string): { privateLine: string; publicKey: string } {
  const lines = stdout.trimEnd().split('\n');
  assert.equal(lines.length, 2, stdout);
  assert.match(lines[0]!, /^private key: /);
  assert.match(lines[1]!, /^public key: [A-Za-z0-9+/]{43}=$/);
  return { privateLine: lines[0]!.slice('private key: '.length), publicKey: lines[1]!.slice('public key: '.length) };
}

test('keygen labels the private and the public key, printing the private key or writing it owner-only', () => {
  const r = run(['keygen']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  const printed = keygenLines(r.stdout);
  // Checked against the other backend: the printed public key belongs to the private key.
  assert.equal(encodeKey(nobleBackend.dh('25519').keyPairFromPrivate(decodeKey(printed.privateLine, 32)).publicKey), printed.publicKey);

  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-keygen-'));
  try {
    const file = join(dir, 'key');
    const w = run(['keygen', '--out', file]);
    assert.equal(w.status, 0, w.stderr);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const written = keygenLines(w.stdout);
    assert.equal(written.privateLine, `written to ${file} (mode 0600)`);
    const fromFile = nobleBackend.dh('25519').keyPairFromPrivate(decodeKey(readFileSync(file, 'utf8'), 32));
    assert.equal(written.publicKey, encodeKey(fromFile.publicKey));
    assert.equal(w.stdout.includes(readFileSync(file, 'utf8').trim()), false, 'the private key is not printed');

    const again = run(['keygen', '--out', file]);
    assert.equal(again.status, 2);
    assert.equal(again.stderr, `noisemesh keygen: --out ${file} already exists: refusing to overwrite a key; add --force to replace it\n`);
    assert.equal(encodeKey(nobleBackend.dh('25519').keyPairFromPrivate(decodeKey(readFileSync(file, 'utf8'), 32)).publicKey), written.publicKey, 'the key is untouched');

    const forced = run(['keygen', '--out', file, '--force']);
    assert.equal(forced.status, 0, forced.stderr);
    const replaced = keygenLines(forced.stdout);
    assert.notEqual(replaced.publicKey, written.publicKey);
    assert.equal(encodeKey(nobleBackend.dh('25519').keyPairFromPrivate(decodeKey(readFileSync(file, 'utf8'), 32)).publicKey), replaced.publicKey);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dir), ['key'], 'no temporary file left behind');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('vectors: all 944 pass on each backend, and a broken vector is reported by name', () => {
  for (const backend of ['native', 'noble']) {
    const r = run(['vectors', '--backend', backend, sharedPath('vectors/cacophony.json')], 120_000);
    assert.equal(r.status, 0, r.stdout);
    assert.equal(r.stdout.trim().split('\n').at(-1), '944 passed, 0 failed, 0 skipped');
  }
  const { vectors } = JSON.parse(readFileSync(sharedPath('vectors/cacophony.json'), 'utf8')) as { vectors: Record<string, unknown>[] };
  const broken = structuredClone(vectors.slice(0, 2));
  const messages = broken[0]!.messages as { ciphertext: string }[];
  messages[1]!.ciphertext = messages[1]!.ciphertext.replace(/^./, (c) => (c === '0' ? '1' : '0'));
  broken.push({ ...broken[1]!, protocol_name: 'Noise_XXfallback_25519_AESGCM_SHA256' });
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-vectors-'));
  try {
    writeFileSync(join(dir, 'v.json'), JSON.stringify({ vectors: broken }));
    const r = run(['vectors', join(dir, 'v.json')]);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /FAIL .*#0 Noise_NN_25519_AESGCM_BLAKE2b: message 1 ciphertext: expected/);
    assert.match(r.stdout, /SKIP .*Noise_XXfallback_25519_AESGCM_SHA256: bad protocol name \(modifier\)/);
    assert.equal(r.stdout.trim().split('\n').at(-1), '1 passed, 1 failed, 1 skipped');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('npm start: the demo mesh carries requests, holds a session, then reports what the revocation did, as measured', () => {
  const r = run(['demo', '--requests', '3'], 90_000);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal((r.stdout.match(/request \d: 200 hello from demo\/api/g) ?? []).length, 3);
  // Before the revocation: the three requests and the held session, one handshake each.
  const [before, after] = r.stdout.split('revoking demo/web');
  assert.match(before!, /noisemesh_handshakes_total\{role="responder",result="accepted"\} 3/);
  assert.match(before!, /holding one long-lived session open: .* \/debug\/sessions lists 1 session\(s\) on demo\/web and 1 on demo\/api/);

  // The count it reports agrees with the responder's metrics: its accepted handshakes are the
  // 3 requests, the held session, every request that passed after the write, and at most one
  // more, the request the revocation caught in flight (they are sent one at a time).
  const passed = Number(/(\d+) request\(s\) still went through after the write/.exec(after!)?.[1]);
  assert.ok(Number.isInteger(passed), after);
  const accepted = Number(/metrics of demo\/api:[^]*noisemesh_handshakes_total\{role="responder",result="accepted"\} (\d+)/.exec(after!)?.[1]);
  assert.ok(accepted === 4 + passed || accepted === 5 + passed, `responder accepted ${accepted}, demo says ${passed} passed\n${after}`);
  assert.match(after!, /metrics of demo\/api:[^]*noisemesh_session_aborts_total\{reason="revoked"\} [1-9]/);
  assert.match(after!, /the first refused request failed \d+ ms after the write: the connection was reset/);
  assert.match(after!, /recorded by demo\/(web|api) since the write: \d+ (handshake\(s\) refused|session\(s\) aborted)/);
  assert.match(after!, /the held session was reset \d+ ms after the write/);
});

test('npm start: a child that refuses to start fails the demo at once with its reason, not after the 60 s readiness wait', () => {
  const r = spawnSync(process.execPath, [CLI, 'demo', '--requests', '1'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, NOISEMESH_NATIVE_PUMP: 'yes' } });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /NOISEMESH_NATIVE_PUMP must be 0 \(the JavaScript pump\) or 1/);
  assert.match(r.stderr, /noisemesh demo: the demo's demo\/(web|api|gateway) process exited with code 2 before it was ready \(its error is above\)\n$/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

test('demo --serve prints every admin port and holds a session that /debug/sessions shows', async () => {
  const child = spawn(process.execPath, [CLI, 'demo', '--serve', '--requests', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    for (let i = 0; i < 600 && !out.includes('serving until Ctrl-C') && child.exitCode === null; i++) await sleep(50);
    await sleep(200); // the rest of the lines
    assert.match(out, /serving until Ctrl-C/, out);
    const admin = [...out.matchAll(/curl http:\/\/127\.0\.0\.1:(\d+)\/debug\/sessions +(demo\/\w+)'s admin port/g)].map((m) => [m[2], Number(m[1])] as const);
    assert.deepEqual(admin.map(([agent]) => agent), ['demo/web', 'demo/api', 'demo/gateway'], out);
    const declared = /demo\/web +proxy: mesh :\d+ +admin :(\d+).*\n.*demo\/api +proxy: mesh :\d+ +admin :(\d+).*\n.*demo\/gateway +secrets gateway: mesh :\d+ +admin :(\d+)/.exec(out);
    assert.deepEqual(admin.map(([, port]) => port), [Number(declared![1]), Number(declared![2]), Number(declared![3])]);
    const gateway = admin.pop()!;
    assert.equal((await request(`http://127.0.0.1:${gateway[1]}/readyz`)).statusCode, 200);
    const heldPort = Number(/this demo's connection 127\.0\.0\.1:(\d+) -> demo\/web 127\.0\.0\.1:\d+ -> demo\/api port (\d+)/.exec(out)?.[1]);
    const targetPort = Number(/-> demo\/api port (\d+)/.exec(out)?.[1]);
    assert.ok(heldPort > 0, out);
    for (const [agent, port] of admin) {
      const res = await request(`http://127.0.0.1:${port}/debug/sessions`);
      const { sessions } = (await res.body.json()) as { sessions: { peer: string; direction: string; targetPort: number }[] };
      assert.equal(sessions.length, 1, `${agent}: ${JSON.stringify(sessions)}`);
      assert.equal(sessions[0]!.peer, agent === 'demo/web' ? 'demo/api' : 'demo/web');
      assert.equal(sessions[0]!.direction, agent === 'demo/web' ? 'outbound' : 'inbound');
      assert.equal(sessions[0]!.targetPort, targetPort);
      assert.equal((await request(`http://127.0.0.1:${port}/readyz`)).statusCode, 200);
    }
    const secret = Number(/curl http:\/\/127\.0\.0\.1:(\d+)\/v1\/secrets\/demo\/db/.exec(out)?.[1]);
    const fetched = await request(`http://127.0.0.1:${secret}/v1/secrets/demo/db`, { reset: true });
    assert.equal(fetched.statusCode, 200);
    await fetched.body.dump();
  } finally {
    child.kill('SIGINT');
  }
  assert.equal(await exited, 0, out);
});
