// The proxy's configuration as its reader sees it: every problem of a file in one run, each
// said once, at the key it is about, in words that name what was found.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, type ConfigProblem } from '../src/cli/config/config-reader.js';
import { loadProxyConfig, parseProxyConfig } from '../src/cli/config/proxy-config.js';
import { repoRoot } from './helpers/paths.js';

const BASE = { identity: { agentId: 'shop/web' }, registry: { file: '/etc/noisemesh/registry.yaml' } };

function problemsOf(document: unknown): ConfigProblem[] {
  try {
    parseProxyConfig(document);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

async function problemsOfText(text: string): Promise<ConfigProblem[]> {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-config-'));
  try {
    writeFileSync(join(dir, 'proxy.yaml'), text);
    await loadProxyConfig(join(dir, 'proxy.yaml'));
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const paths = (problems: readonly ConfigProblem[]): string[] => problems.map((p) => p.path);

test('one message per problem: a wrong value is not reported again as missing', () => {
  const problems = problemsOf({
    ...BASE,
    outbound: {
      explicit: [
        { listen: '127.0.0.1:7000', peer: 'shop/api', port: 0 },
        { listen: '127.0.0.1:7001', peer: '', port: 80 },
        { listen: '', peer: 'shop/api', port: 80 },
      ],
    },
  });
  assert.deepEqual(paths(problems), ['outbound.explicit[0].port', 'outbound.explicit[1].peer', 'outbound.explicit[2].listen']);
  assert.equal(problems[0]!.message, 'must be a TCP port, an integer 1..65535; got 0');
  assert.doesNotMatch(problems.map((p) => p.message).join('\n'), /required/);

  // A section that is no mapping is one problem, not one per key it should have held.
  const sections = problemsOf({ identity: 5, registry: ['a'], outbound: { explicit: 'x' } });
  assert.deepEqual(paths(sections), ['identity', 'registry', 'outbound.explicit']);
  assert.match(sections[0]!.message, /^must be a mapping with keys agentId, privateKeyFile; got 5$/);
  assert.match(sections[1]!.message, /; got a list$/);

  // Absent required keys are still reported, once each; the registry names both its sources.
  assert.deepEqual(paths(problemsOf({})), ['identity', 'registry']);
  assert.deepEqual(paths(problemsOf({ identity: {}, registry: {} })), ['identity.agentId', 'registry']);
  assert.deepEqual(paths(problemsOf({ ...BASE, outbound: { explicit: [{}] } })), ['outbound.explicit[0].listen', 'outbound.explicit[0].peer', 'outbound.explicit[0].port']);
});

test('a problem with the whole document is named as such, alone', () => {
  for (const document of [['a'], 'text', 42]) {
    const problems = problemsOf(document);
    assert.equal(problems.length, 1, JSON.stringify(problems));
    assert.equal(problems[0]!.path, '(top level)');
    assert.match(problems[0]!.message, /^must be a mapping with keys trustDomain, suite, .*; got (a list|"text"|42)$/);
  }
  const error = (() => {
    try {
      parseProxyConfig(['a'], 'proxy.yaml');
    } catch (err) {
      return err as Error;
    }
    return undefined;
  })();
  assert.match(error!.message, /^proxy\.yaml: \(top level\): must be a mapping/);
  assert.doesNotMatch(error!.message, /: :/);
});

test('.nan, .inf, quoted numbers and booleans are named as what they are', async () => {
  const problems = await problemsOfText(`
identity: {agentId: shop/web}
registry: {file: /r.yaml}
inbound: {meshPort: .nan, capture: {port: "15006", excludePorts: [-.inf]}}
admin: {port: true}
shutdown: {drainSeconds: .inf}
log: {level: 3}
`);
  assert.deepEqual(
    problems.map((p) => `${p.path}: ${p.message}`),
    [
      'inbound.meshPort: must be a TCP port, an integer 1..65535; got .nan (not a number)',
      'inbound.capture.port: must be a TCP port, an integer 1..65535; got the string "15006" (write numbers without quotes)',
      'inbound.capture.excludePorts[0]: must be a TCP port, an integer 1..65535; got -.inf (minus infinity, or a number too large to hold)',
      'admin.port: must be a TCP port, an integer 1..65535; got true (a boolean)',
      'shutdown.drainSeconds: must be a number from 0 to 3600; got .inf (infinity, or a number too large to hold)',
      'log.level: must be one of fatal, error, warn, info, debug, trace, silent; got 3',
    ],
  );
  assert.doesNotMatch(problems.map((p) => p.message).join('\n'), /got null/);
});

test('two listeners on one address are caught when the file is read, naming both keys', () => {
  const problems = problemsOf({
    ...BASE,
    outbound: {
      capture: { bind: '::', port: 15001 },
      explicit: [
        { listen: '127.0.0.1:7000', peer: 'shop/api', port: 80 },
        { listen: '127.0.0.1:7000', peer: 'shop/db', port: 5432 },
        { listen: '127.0.0.1:15001', peer: 'shop/api', port: 81 }, // inside the dual-stack capture
        { listen: '127.0.0.1:15020', peer: 'shop/api', port: 82 }, // inside the admin's 0.0.0.0
        { listen: '[::1]:7000', peer: 'shop/api', port: 83 }, // another family than 127.0.0.1: fine
        { listen: '127.0.0.2:7000', peer: 'shop/api', port: 84 }, // another address: fine
      ],
    },
    inbound: { bind: '127.0.0.1', meshPort: 15443, capture: { port: 15443 } },
  });
  assert.deepEqual(
    problems.map((p) => `${p.path}: ${p.message}`),
    [
      'inbound.capture.port: 127.0.0.1:15443 is also inbound.meshPort (127.0.0.1:15443): two listeners cannot share an address and port; give one of them another port',
      'outbound.explicit[1].listen: 127.0.0.1:7000 is also outbound.explicit[0].listen (127.0.0.1:7000): two listeners cannot share an address and port; give one of them another port',
      'outbound.explicit[2].listen: 127.0.0.1:15001 is also outbound.capture.port ([::]:15001): two listeners cannot share an address and port; give one of them another port',
      'outbound.explicit[3].listen: 127.0.0.1:15020 is also admin.port (0.0.0.0:15020): two listeners cannot share an address and port; give one of them another port',
    ],
  );
  // A refused port is not replaced by its default for this check: 15443 is not reported twice.
  assert.deepEqual(paths(problemsOf({ ...BASE, inbound: { meshPort: 'x' }, admin: { port: 15443 } })), ['inbound.meshPort']);
  // The same port on two addresses of one family is two listeners, not a collision.
  assert.deepEqual(problemsOf({ ...BASE, inbound: { bind: '127.0.0.1', meshPort: 15443 }, admin: { bind: '127.0.0.2', port: 15443 } }), []);
});

test('outbound.explicit[].peer must be an agentId', () => {
  for (const peer of ['Shop/API', 'shop', 'shop/api/x', '/api', 'shop/']) {
    const problems = problemsOf({ ...BASE, outbound: { explicit: [{ listen: '127.0.0.1:7000', peer, port: 80 }] } });
    assert.deepEqual(paths(problems), ['outbound.explicit[0].peer'], peer);
    assert.equal(problems[0]!.message, `must be an agentId, <namespace>/<workload> in lower case, e.g. payments/db; got ${JSON.stringify(peer)}`);
  }
  assert.deepEqual(problemsOf({ ...BASE, outbound: { explicit: [{ listen: '127.0.0.1:7000', peer: 'shop/api-v2.x', port: 80 }] } }), []);
});

test('a YAML syntax error in the configuration: one line per fault, with a hint that fits it', async () => {
  const unclosed = await problemsOfText('identity: {agentId: shop/web\nregistry: {file: /r.yaml}\n');
  assert.equal(unclosed.length, 1, JSON.stringify(unclosed));
  assert.equal(unclosed[0]!.path, '(file)');
  assert.match(unclosed[0]!.message, /^line \d+: not valid YAML: a flow mapping `\{` opened on this line or above is not closed: end it with `\}`$/);
  const list = await problemsOfText('identity: {agentId: shop/web}\ninbound: {capture: {excludePorts: [15020, 15021}}\n');
  assert.match(list[0]!.message, /not valid YAML: a flow sequence `\[` .* not closed: end it with `\]`/);
  assert.doesNotMatch(list.map((p) => p.message).join('\n'), /indentation/);
  assert.match((await problemsOfText('a: 1\na: 2\n'))[0]!.message, /^line 2: not valid YAML: a key appears twice in one mapping: keep one$/);
  assert.match((await problemsOfText('a: "x\n'))[0]!.message, /a double-quoted string is not closed/);
});

test('log.level: absent is null (NOISEMESH_LOG_LEVEL or info apply); a bad NOISEMESH_LOG_LEVEL is refused in one line', (t) => {
  assert.equal(parseProxyConfig(BASE).logLevel, null);
  assert.equal(parseProxyConfig({ ...BASE, log: { level: 'debug' } }).logLevel, 'debug');
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'proxy.yaml'), JSON.stringify({ ...BASE, registry: { file: join(dir, 'registry.yaml') }, admin: false }));
  const r = spawnSync(process.execPath, [join(repoRoot, 'dist/src/cli/main.js'), 'proxy', '--config', join(dir, 'proxy.yaml')], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, NOISEMESH_LOG_LEVEL: 'verbose' },
  });
  assert.equal(r.status, 2);
  assert.equal(r.stderr, 'noisemesh proxy: NOISEMESH_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent; got "verbose"\n');
});

test('NOISEMESH_NATIVE_PUMP takes 0 or 1; anything else is refused at start in one line', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'proxy.yaml'), JSON.stringify({ ...BASE, registry: { file: join(dir, 'registry.yaml') }, admin: false }));
  const r = spawnSync(process.execPath, [join(repoRoot, 'dist/src/cli/main.js'), 'proxy', '--config', join(dir, 'proxy.yaml')], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, NOISEMESH_NATIVE_PUMP: 'off' },
  });
  assert.equal(r.status, 2);
  assert.equal(r.stderr, 'noisemesh proxy: NOISEMESH_NATIVE_PUMP must be 0 (the JavaScript pump) or 1 (the native pump, the default); got "off"\n');
});

test('a key written where a path, a name or a level was expected never comes back in a message', () => {
  // As `noisemesh keygen` prints them: base64 of 32 bytes; and the same key in hex.
  const key = 'GCBeLioSOyY7GvkGj8ZEKGDQQhoE952XVNBZFjicvJk=';
  const hex = Buffer.from(key, 'base64').toString('hex');
  for (const secret of [key, hex]) {
    const problems = problemsOf({
      trustDomain: 'cluster.local',
      suite: secret,
      identity: { agentId: secret, privateKeyFile: secret },
      psk: secret,
      registry: { file: secret },
      outbound: { mode: secret, capture: { bind: secret }, explicit: [{ listen: secret, peer: secret, port: secret }] },
      inbound: { targetHost: secret },
      log: { level: secret },
    });
    const text = problems.map((p) => `${p.path}: ${p.message}`).join('\n');
    assert.ok(!text.includes(secret) && !text.includes(secret.slice(0, 12)), text);
    assert.deepEqual(paths(problems), [
      'suite',
      'identity.agentId',
      'identity.privateKeyFile',
      'psk',
      'registry.file',
      'outbound.mode',
      'outbound.capture.bind',
      'outbound.explicit[0].listen',
      'outbound.explicit[0].peer',
      'outbound.explicit[0].port',
      'inbound.targetHost',
      'log.level',
    ]);
    // A path key holding a key is said to be one, with the fix, and is not also "required".
    assert.match(problems.find((p) => p.path === 'identity.privateKeyFile')!.message, /^holds what looks like a key itself \(not shown\), not a path: write the path of the file that holds it/);
    assert.match(problems.find((p) => p.path === 'log.level')!.message, /; got a string that looks like a key \(not shown\)$/);
  }
  // Ordinary values are still quoted, so that the user sees what was read.
  assert.match(problemsOf({ ...BASE, log: { level: 'verbose' } })[0]!.message, /; got "verbose"$/);
  assert.match(problemsOf({ ...BASE, identity: { agentId: 'Shop/Web' } })[0]!.message, /; got "Shop\/Web"$/);
  assert.deepEqual(problemsOf({ ...BASE, identity: { agentId: 'shop/web', privateKeyFile: '/var/run/noisemesh/key' } }), []);
});

test('a registry.file of the wrong kind is one problem, not also "registry: required"', () => {
  const problems = problemsOf({ identity: { agentId: 'shop/web' }, registry: { file: 5 } });
  assert.deepEqual(paths(problems), ['registry.file']);
});
