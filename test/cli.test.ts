// The noisemesh command as users run it: keygen, vectors, and the demo behind `npm start`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeKey, encodeKey, nobleBackend } from '../src/noise/index.js';
import { repoRoot, sharedPath } from './helpers/paths.js';

const CLI = join(repoRoot, 'dist/src/cli/main.js');
const run = (args: string[], timeout = 60_000) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout });

test('keygen prints a base64 private key and its public key, or writes an owner-only file', () => {
  const r = run(['keygen']);
  assert.equal(r.status, 0);
  const privateKey = decodeKey(r.stdout, 32);
  const publicKey = /public key: (\S+)/.exec(r.stderr)![1]!;
  // Checked against the other backend: the printed public key belongs to the private key.
  assert.equal(encodeKey(nobleBackend.dh('25519').keyPairFromPrivate(privateKey).publicKey), publicKey);

  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-keygen-'));
  try {
    const file = join(dir, 'key');
    const w = run(['keygen', '--out', file]);
    assert.equal(w.status, 0);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const fromFile = nobleBackend.dh('25519').keyPairFromPrivate(decodeKey(readFileSync(file, 'utf8'), 32));
    assert.equal(w.stdout.trim(), encodeKey(fromFile.publicKey));
    assert.equal(w.stdout.includes(readFileSync(file, 'utf8').trim()), false, 'the private key is not printed');
    assert.notEqual(run(['keygen', '--out', file]).status, 0, 'an existing key file is never overwritten');
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

test('npm start: the demo mesh carries requests, then refuses the revoked client', () => {
  const r = run(['demo', '--requests', '3'], 90_000);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal((r.stdout.match(/request \d: 200 hello from demo\/api/g) ?? []).length, 3);
  assert.match(r.stdout, /noisemesh_handshakes_total\{role="responder",result="accepted"\} 3/);
  assert.match(r.stdout, /the next request was refused after \d+ ms/);
});

test('an unknown command lists the commands', () => {
  const r = run(['frobnicate']);
  assert.equal(r.status, 2);
  for (const name of ['proxy', 'init-iptables', 'keygen', 'vectors', 'registry', 'demo']) assert.match(r.stderr, new RegExp(`^  ${name} `, 'm'));
});
