// The `secrets` section of the proxy's configuration: defaults, and every mistake named with
// its path and its fix, all at once; and the shell quoting of secrets.env by itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadProxyConfig, parseProxyConfig, type ProxyConfig } from '../src/cli/config/proxy-config.js';
import { parseSecretsSection } from '../src/cli/config/secrets-config.js';
import { ConfigError, ConfigReader } from '../src/cli/config/config-reader.js';
import { RESERVED_ENV_NAMES, renderEnvFile, shellQuote, unwritableValue } from '../src/secrets/index.js';

const BASE = { identity: { agentId: 'payments/api' }, registry: { file: '/etc/noisemesh/registry.yaml' } };

/** A document read as loadProxyConfig reads a file that has the section: with its reader. */
const parse = (document: unknown): ProxyConfig => parseProxyConfig(document, 'config', new ConfigReader(), parseSecretsSection);

function problems(secrets: unknown): string[] {
  try {
    parse({ ...BASE, secrets });
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
  return [];
}

test('the example of the issue reads, with the defaults filled in; no section is null', () => {
  const config = parse({
    ...BASE,
    secrets: {
      gateway: { peer: 'noisemesh-system/gateway', port: 8200 },
      project: {
        dir: '/var/run/noisemesh/secrets',
        refreshSeconds: 300,
        items: [{ path: 'payments/db', file: 'db.json', env: 'DB_PASSWORD', key: 'password' }],
        notify: { signal: 'SIGHUP', pidFile: '/var/run/app.pid' },
      },
    },
  });
  assert.deepEqual(config.secrets, {
    gateway: { peer: 'noisemesh-system/gateway', port: 8200 },
    dir: '/var/run/noisemesh/secrets',
    refreshSeconds: 300,
    items: [{ path: 'payments/db', file: 'db.json', env: 'DB_PASSWORD', key: 'password' }],
    notify: { signal: 'SIGHUP', pidFile: '/var/run/app.pid' },
    fileMode: 0o400,
    dirMode: 0o700,
  });
  const minimal = parse({ ...BASE, secrets: { gateway: { peer: 'noisemesh-system/gateway' }, project: { dir: '/s', items: [{ path: 'a/b', file: 'b' }], fileMode: '0440', dirMode: '0750' } } });
  assert.equal(minimal.secrets!.gateway.port, 8200);
  assert.equal(minimal.secrets!.refreshSeconds, 300);
  assert.equal(minimal.secrets!.fileMode, 0o440);
  assert.equal(minimal.secrets!.notify, null);
  assert.equal(parse(BASE).secrets, null);
  assert.equal(parseProxyConfig(BASE).secrets, null);
});

test('a file with a secrets section is read with its reader, imported for it; a document with one and no reader is a bug, not an empty section', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-secrets-config-'));
  try {
    const section = { gateway: { peer: 'noisemesh-system/gateway' }, project: { dir: '/s', items: [{ path: 'a/b', file: 'b' }] } };
    writeFileSync(join(dir, 'with.yaml'), stringify({ ...BASE, secrets: section }));
    const read = (await loadProxyConfig(join(dir, 'with.yaml'))).secrets;
    assert.equal(read?.gateway.peer, 'noisemesh-system/gateway');
    assert.deepEqual(read, parse({ ...BASE, secrets: section }).secrets);
    writeFileSync(join(dir, 'wrong.yaml'), stringify({ ...BASE, secrets: { gateway: { peer: 'Gateway' } } }));
    await assert.rejects(loadProxyConfig(join(dir, 'wrong.yaml')), (err: Error) => err instanceof ConfigError && /secrets\.gateway\.peer: must be an agentId/.test(err.message) && /secrets\.project: required/.test(err.message));
    // `secrets:` with no value is refused like any key written empty, not read as no section.
    writeFileSync(join(dir, 'empty.yaml'), `${stringify(BASE)}secrets:\n`);
    await assert.rejects(loadProxyConfig(join(dir, 'empty.yaml')), (err: Error) => err instanceof ConfigError && /: secrets: is empty \(null\): remove the key/.test(err.message));
    writeFileSync(join(dir, 'without.yaml'), stringify(BASE));
    assert.equal((await loadProxyConfig(join(dir, 'without.yaml'))).secrets, null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.throws(() => parseProxyConfig({ ...BASE, secrets: { gateway: {} } }), (err: Error) => !(err instanceof ConfigError) && /no reader for it was passed/.test(err.message));
  assert.throws(() => parseProxyConfig({ ...BASE, secrets: null }), (err: Error) => err instanceof ConfigError && /secrets: is empty \(null\)/.test(err.message));
});

test('every mistake is named with its path and fix, all at once', () => {
  const got = problems({
    gateway: { peer: 'Gateway', port: 0 },
    project: {
      dir: 'relative/dir',
      refreshSeconds: 0,
      fileMode: 440,
      dirMode: '0777',
      items: [
        { path: 'payments/../db', file: '../escape', env: '1BAD' },
        { path: 'a/b', file: 'secrets.env' },
        { path: 'a/b' },
        { path: 'a/c', file: 'x', env: 'X', key: 'k' },
        { path: 'a/d', file: 'x', env: 'X', key: 'k', extra: 1 },
      ],
      notify: { signal: 'SIGKILL' },
    },
  });
  const expect = [
    /^secrets\.gateway\.peer: must be an agentId/,
    /^secrets\.gateway\.port: must be a TCP port/,
    /^secrets\.project\.dir: must be an absolute path/,
    /^secrets\.project\.refreshSeconds: must be an integer from 1 to 86400/,
    /^secrets\.project\.fileMode: must be an octal mode in quotes, e\.g\. "0400" .*unquoted, YAML reads it as a decimal number/,
    /^secrets\.project\.dirMode: 0777: the owner needs rwx, the group at most r-x, others nothing/,
    /^secrets\.project\.items\[0\]\.path: has a \. or \.\. segment/,
    /^secrets\.project\.items\[0\]\.file: must be a plain file name/,
    /^secrets\.project\.items\[0\]\.env: must be a shell variable name/,
    /^secrets\.project\.items\[0\]\.key: required with env/,
    /^secrets\.project\.items\[1\]\.file: secrets\.env is the file of the env items/,
    /^secrets\.project\.items\[2\]: writes nothing: set file/,
    /^secrets\.project\.items\[4\]\.extra: unknown key/,
    /^secrets\.project\.items\[4\]\.file: x is also secrets\.project\.items\[3\]\.file/,
    /^secrets\.project\.items\[4\]\.env: X is also secrets\.project\.items\[3\]\.env/,
    /^secrets\.project\.notify\.signal: must be one of SIGHUP/,
    /^secrets\.project\.notify\.pidFile: required/,
  ];
  for (const re of expect) assert.ok(got.some((p) => re.test(p)), `${re} not among:\n${got.join('\n')}`);
  assert.equal(got.length, expect.length, got.join('\n'));
});

test('the required parts: gateway.peer, project.dir, items', () => {
  assert.deepEqual(problems({}), [
    "secrets.gateway: required: {peer: <the gateway's agentId>, port: 8200}",
    'secrets.project: required: {dir, items} (what to write where)',
  ]);
  assert.deepEqual(problems({ gateway: { peer: 'noisemesh-system/gateway' }, project: { items: [] } }), [
    'secrets.project.dir: required: an absolute path, e.g. /var/run/noisemesh/secrets (a memory-backed emptyDir)',
    'secrets.project.items: lists nothing: add {path, file} or {path, env, key} items, or remove secrets',
  ]);
  assert.match(problems({ gateway: { peer: 'noisemesh-system/gateway' }, project: { dir: '/s', items: [{ path: 'a/b', file: 'f' }], fileMode: '0440' } })[0]!, /^secrets\.project\.dirMode: fileMode "0440" lets the group read the files, but dirMode "0700" does not let it reach them: use "0750"$/);
});

test('shellQuote: single quotes, embedded quotes closed and escaped; NUL and lone surrogates refused, never altered', () => {
  assert.equal(shellQuote(''), "''");
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
  assert.equal(renderEnvFile([['A', 'x y'], ['B', "'"]]), `# written by noisemesh (secrets.project); sh: . ./secrets.env\nA='x y'\nB=''\\'''\n`);
  assert.match(unwritableValue('a\0b', 'env')!, /NUL byte, which no environment variable can hold/);
  // A file holds any bytes: a NUL is refused for env only, and the reason never speaks of a variable for a file.
  assert.equal(unwritableValue('a\0b', 'file'), undefined);
  assert.match(unwritableValue('a\ud800b', 'env')!, /lone surrogate/);
  assert.match(unwritableValue('a\ud800b', 'file')!, /^is not well-formed Unicode \(a lone surrogate\), which UTF-8 cannot encode$/);
  assert.equal(unwritableValue('𝄞 ok\n', 'env'), undefined);
  // Every byte value but NUL, through sh, comes back exactly.
  const all = Array.from({ length: 255 }, (_, i) => String.fromCharCode(i + 1)).join('') + '日本 𝄞';
  const r = spawnSync('sh', ['-c', `${renderEnvFile([['V', all]])}\nprintf %s "$V"`], { encoding: 'utf8' });
  assert.equal(r.error, undefined, 'sh is required (Debian package dash)');
  assert.equal(r.stdout, all);
});

test('env may not name a variable that changes how the shell or the dynamic loader behaves (PATH, IFS, LD_*, ...)', () => {
  const item = (env: string) => ({ gateway: { peer: 'noisemesh-system/gateway' }, project: { dir: '/s', items: [{ path: 'a/b', env, key: 'k' }] } });
  for (const env of ['PATH', 'IFS', 'ENV', 'BASH_ENV', 'CDPATH', 'PS4', 'PROMPT_COMMAND', 'LD_PRELOAD', 'LD_LIBRARY_PATH', 'LD_AUDIT', 'GCONV_PATH', 'GLIBC_TUNABLES', 'BASH_XTRACEFD', 'path', ...RESERVED_ENV_NAMES]) {
    const found = problems(item(env));
    assert.equal(found.length, 1, `${env}: ${found.join('; ')}`);
    assert.match(found[0]!, new RegExp(`^secrets\\.project\\.items\\[0\\]\\.env: ${env} .*: choose a name of the application's own, e.g\\. DB_PASSWORD \\(docs/configuration\\.md lists the refused names\\)$`));
  }
  // Names that merely resemble them are the application's own.
  for (const env of ['DB_PASSWORD', 'PATH_PREFIX', 'MY_LD_PRELOAD', 'Path', 'HOSTNAME_SUFFIX']) assert.deepEqual(problems(item(env)), [], env);
});
