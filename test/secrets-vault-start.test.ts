// What the gateway checks of gateway.backend.vault when it starts (src/secrets/backends/
// vault-start.ts, through createBackend as the gateway calls it): the CA bundle must be PEM
// certificates (a token file named there by mistake used to start, and fail every read with
// a TLS error naming no setting), never printing the file; a plain http address to another
// host is one warning line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretsBackendError, createBackend, isLoopbackUrl, type SecretsLog, type VaultBackendConfig } from '../src/secrets/index.js';
import { makePki } from './helpers/pki.js';

function recorder(): SecretsLog & { lines: { level: string; fields: object; message: string }[] } {
  const lines: { level: string; fields: object; message: string }[] = [];
  return {
    lines,
    info: (fields, message) => lines.push({ level: 'info', fields, message }),
    warn: (fields, message) => lines.push({ level: 'warn', fields, message }),
    error: (fields, message) => lines.push({ level: 'error', fields, message }),
  };
}

const TOKEN = 'hvs.CAESIJ8yQ2VmZmVjdC1zZWNyZXQtdG9rZW4tZm9yLXRlc3Rz';

function vault(dir: string, over: Partial<VaultBackendConfig>): VaultBackendConfig {
  writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
  return { address: 'https://127.0.0.1:1', mount: 'secret', auth: { method: 'token', file: join(dir, 'token') }, namespace: undefined, caFile: undefined, timeoutSeconds: 5, ...over };
}

test('caFile: a token file, a key, a broken certificate or an empty file is refused at start, naming the setting, never the content', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-vault-start-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pki = makePki(join(dir, 'pki'), 'test-ca', 'vault.test');
  const cases: [string, string, RegExp][] = [
    ['token', `${TOKEN}\n`, /it holds none \(is it the token file, or a DER file\?/],
    ['empty', '', /it holds none/],
    ['key', pki.key, /block 1 is a PRIVATE KEY, not a CERTIFICATE: remove it$/],
    ['broken', '-----BEGIN CERTIFICATE-----\nMIIBnotacertificate\n-----END CERTIFICATE-----\n', /block 1 is no readable X\.509 certificate: replace it$/],
    ['cert then key', `${pki.cert}${pki.key}`, /block 2 is a PRIVATE KEY/],
  ];
  for (const [name, content, why] of cases) {
    const caFile = join(dir, `${name}.pem`);
    writeFileSync(caFile, content);
    const log = recorder();
    await assert.rejects(createBackend({ kind: 'vault', vault: vault(dir, { caFile }) }, { log }), (err: Error) => {
      assert.ok(err instanceof SecretsBackendError, `${name}: ${String(err)}`);
      assert.ok(err.message.startsWith(`gateway.backend.vault.caFile: ${caFile} must be a PEM bundle of the CA certificates`), err.message);
      assert.match(err.message, why, name);
      assert.ok(!err.message.includes(TOKEN) && !err.message.includes('MII'), `${name}: no content in the message`);
      return true;
    });
  }
  await assert.rejects(createBackend({ kind: 'vault', vault: vault(dir, { caFile: dir }) }, { log: recorder() }), /^Error: gateway\.backend\.vault\.caFile: \S+ is a directory, not a regular file/);
  // A real CA bundle starts.
  const backend = await createBackend({ kind: 'vault', vault: vault(dir, { caFile: pki.caFile }) }, { log: recorder() });
  await backend.close();
});

test('a plain http Vault address to another host is one warning at start; loopback and https are not', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-vault-start-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const warnings = async (address: string): Promise<string[]> => {
    const log = recorder();
    const backend = await createBackend({ kind: 'vault', vault: vault(dir, { address }) }, { log });
    await backend.close();
    return log.lines.filter((l) => l.level === 'warn').map((l) => `${(l.fields as { event: string }).event}: ${l.message}`);
  };
  // 192.0.2.1 (TEST-NET-1): nothing is contacted at start.
  const plain = await warnings('http://192.0.2.1:8200');
  assert.equal(plain.length, 1);
  assert.match(plain[0]!, /^vault-plaintext: vault: gateway\.backend\.vault\.address is plain http to another host: the Vault token and every secret cross the network unencrypted/);
  assert.ok(!plain[0]!.includes(TOKEN));
  for (const quiet of ['http://127.0.0.1:8200', 'http://localhost:8200', 'http://[::1]:8200', 'https://192.0.2.1:8200']) assert.deepEqual(await warnings(quiet), [], quiet);
  assert.equal(isLoopbackUrl('http://127.8.0.1:1'), true);
  assert.equal(isLoopbackUrl('http://[::ffff:127.0.0.1]:1'), true);
  assert.equal(isLoopbackUrl('http://127.0.0.1.example.com:1'), false);
  assert.equal(isLoopbackUrl('http://10.0.0.1:1'), false);
});
