// Loading a secrets policy (src/trust-vector/policy.ts): every problem at once, each with its
// line, path and fix; nothing partial is ever returned.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PolicyError, compilePolicy, parsePolicy, type Policy } from '../src/trust-vector/index.js';

function problems(text: string): string[] {
  try {
    parsePolicy(text, 'policy.yaml');
  } catch (err) {
    assert.ok(err instanceof PolicyError, String(err));
    assert.equal(err.code, 'POLICY_INVALID');
    return err.message.split('\n').slice(1).map((l) => l.trim());
  }
  assert.fail('the policy was accepted');
}

test('a valid policy: defaults filled in, rules in order, lines kept', () => {
  const policy: Policy = parsePolicy(
    [
      'rules:',
      '  - id: payments-db',
      '    description: the database password',
      '    paths: ["payments/db"]',
      '    agents: ["payments/*"]',
      '    require:',
      '      clearance: secrets-only',
      '      authnStrength: high',
      '      maxFreshnessSeconds: 3600',
      '      maxDelegationDepth: 1',
      '      minDevicePosture: 0.5',
      '      networkExposure: loopback',
      '      agentTypes: [service, agent, service]',
      '  - id: open',
      '    paths: ["public/**"]',
      '    mode: dry-run',
      '',
    ].join('\n'),
    'policy.yaml',
  );
  assert.equal(policy.source, 'policy.yaml');
  assert.deepEqual(
    policy.rules.map((r) => ({ ...r })),
    [
      {
        id: 'payments-db',
        index: 0,
        description: 'the database password',
        paths: ['payments/db'],
        agents: ['payments/*'],
        require: {
          clearance: 'secrets-only',
          authnStrength: 'high',
          maxFreshnessSeconds: 3600,
          maxDelegationDepth: 1,
          minDevicePosture: 0.5,
          networkExposure: 'loopback',
          agentTypes: ['service', 'agent'],
        },
        mode: 'enforce',
        line: 2,
      },
      {
        id: 'open',
        index: 1,
        description: undefined,
        paths: ['public/**'],
        agents: null,
        require: {
          clearance: undefined,
          authnStrength: undefined,
          maxFreshnessSeconds: undefined,
          maxDelegationDepth: undefined,
          minDevicePosture: undefined,
          networkExposure: 'encrypted',
          agentTypes: undefined,
        },
        mode: 'dry-run',
        line: 14,
      },
    ],
  );
  assert.ok(Object.isFrozen(policy.rules[0]) && Object.isFrozen(policy.rules[0]!.require));
  assert.equal(parsePolicy('rules: []\n').rules.length, 0);
});

test('every problem at once, with line, path, the accepted values and a did-you-mean', () => {
  const text = [
    'rules:', //                                                   1
    '  - id: payments-db', //                                      2
    '    path: ["payments/*"]', //                                 3
    '    require:', //                                             4
    '      clearence: secrets-only', //                            5
    '      authnStrength: strong', //                              6
    '  - id: payments-db', //                                      7
    '    paths: ["payments/**/x", "a/**b", "/abs"]', //            8
    '    agents: []', //                                           9
    '    mode: dryrun', //                                         10
    '    require:', //                                             11
    '      clearance: secret', //                                  12
    '      maxFreshnessSeconds: 1h', //                            13
    '      maxDelegationDepth: -1', //                             14
    '      minDevicePosture: 1.5', //                              15
    '      networkExposure: public', //                            16
    '      agentTypes: [service, robot]', //                       17
    '  - paths: ["x"]', //                                         18
    '  - id: "bad id!"', //                                        19
    '    paths: x', //                                             20
    '  - "a string"', //                                           21
    'ruless: []', //                                               22
    '',
  ].join('\n');
  assert.deepEqual(problems(text), [
    "policy.yaml:22: ruless: unknown key: did you mean 'rules'? (known: rules)",
    "policy.yaml:3: rules[0].path: unknown key: did you mean 'paths'? (known: id, description, paths, agents, require, mode)",
    'policy.yaml:2: rules[0].paths: is required: a list of secret-path globs, e.g. ["payments/*"]',
    "policy.yaml:5: rules[0].require.clearence: unknown key: did you mean 'clearance'? (known: clearance, authnStrength, maxFreshnessSeconds, maxDelegationDepth, minDevicePosture, networkExposure, agentTypes)",
    'policy.yaml:6: rules[0].require.authnStrength: must be one of none, low, medium, high, hardware; got "strong"',
    "policy.yaml:7: rules[1].id: 'payments-db' is also the id of rules[0]: ids must be unique (decisions, audit lines and metrics name a rule by its id)",
    "policy.yaml:8: rules[1].paths[1]: has '**' inside a segment: '**' must be a whole segment (any number of segments); use '*' within a segment; got \"a/**b\"",
    'policy.yaml:8: rules[1].paths[2]: has an empty segment (a leading, trailing or doubled slash): paths and agentIds have none, so it can never match; got "/abs"',
    'policy.yaml:9: rules[1].agents: is empty, which would match no caller: list agentId globs, or remove `agents` to accept any caller',
    'policy.yaml:10: rules[1].mode: must be one of enforce, dry-run; got "dryrun": did you mean dry-run?',
    'policy.yaml:12: rules[1].require.clearance: must be one of open, internal, profile-scoped, secrets-only; got "secret"',
    'policy.yaml:13: rules[1].require.maxFreshnessSeconds: must be a whole number of seconds >= 0, e.g. 3600 for an hour; got "1h"',
    'policy.yaml:14: rules[1].require.maxDelegationDepth: must be a whole number >= 0 (0: no delegation); got -1',
    'policy.yaml:15: rules[1].require.minDevicePosture: must be a number from 0 to 1, e.g. 0.5; got 1.5',
    'policy.yaml:16: rules[1].require.networkExposure: must be one of loopback, encrypted, plaintext; got "public"',
    'policy.yaml:17: rules[1].require.agentTypes[1]: must be one of service, human, agent; got "robot"',
    'policy.yaml:18: rules[2].id: is required: a name for the rule, e.g. payments-db (decisions, audit lines and metrics name the rule by it)',
    "policy.yaml:19: rules[3].id: must be 1 to 63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit; got \"bad id!\"",
    'policy.yaml:20: rules[3].paths: must be a list of secret-path globs, e.g. ["payments/*"]; got "x"',
    'policy.yaml:21: rules[4]: must be a mapping with id, paths and require; got "a string"',
  ]);
});

test('documents that are not a policy are refused as a whole, without quoting the YAML', () => {
  assert.deepEqual(problems(''), ['policy.yaml: holds no policy: write `rules:` with a list of rules (`rules: []` denies every request)']);
  assert.deepEqual(problems('- id: x\n'), ['policy.yaml:1: must be a mapping with `rules:`; got a list']);
  // `rules:` with no value is a key written empty (refused as such), not a missing key.
  assert.deepEqual(problems('rules:\n'), ['policy.yaml:1: rules: is empty (null): remove the key to use its default, or give it a value']);
  assert.deepEqual(problems('{}\n'), ['policy.yaml:1: rules: is required: a list of rules (`rules: []` denies every request)']);
  assert.deepEqual(problems('rules: {id: x}\n'), ['policy.yaml:1: rules: must be a list of rules; got a mapping']);
  assert.deepEqual(problems('rules: []\nrules: []\n'), ['policy.yaml:2: a key appears twice in one mapping: keep one']);
  assert.deepEqual(problems('rules: []\n---\nrules: []\n'), ['policy.yaml:2: holds more than one YAML document: a policy is one document with `rules:`']);
  const syntax = problems('rules:\n  - id: "secret-looking-value\n');
  assert.equal(syntax.length >= 1, true);
  for (const line of syntax) {
    assert.match(line, /^policy\.yaml:\d+: YAML syntax error \([A-Z_]+\): a double-quoted string is not closed: end it with `"`$/);
  }
  const bomb = 'x: &x [a, b]\ny: &y [*x, *x, *x, *x, *x, *x, *x, *x, *x, *x]\nz: &z [*y, *y, *y, *y, *y, *y, *y, *y, *y, *y]\nrules: [*z, *z, *z, *z, *z, *z, *z, *z, *z, *z]\n';
  assert.deepEqual(problems(bomb), ['policy.yaml: YAML could not be resolved (too many or circular aliases): write the values out']);
});

test('bounds: rules, globs per rule, text size, id and description length', () => {
  const many = { rules: Array.from({ length: 10_001 }, (_, i) => ({ id: `r${i}`, paths: ['x'] })) };
  assert.throws(() => compilePolicy(many), /rules: holds 10001 rules, more than 10000/);
  assert.throws(() => compilePolicy({ rules: [{ id: 'r', paths: Array.from({ length: 257 }, () => 'x') }] }), /rules\[0\]\.paths: holds 257 globs, more than 256/);
  assert.throws(() => parsePolicy(`rules: []\n#${'x'.repeat(4 * 1024 * 1024)}`), /is larger than 4194304 bytes/);
  assert.throws(() => compilePolicy({ rules: [{ id: 'a'.repeat(64), paths: ['x'] }] }), /rules\[0\]\.id: must be 1 to 63/);
  assert.throws(() => compilePolicy({ rules: [{ id: 'a', paths: ['x'], description: 'd'.repeat(1025) }] }), /rules\[0\]\.description: must be text of at most 1024/);
  const long = 'x'.repeat(200);
  assert.throws(() => compilePolicy({ rules: [{ id: 'a', paths: ['x'], mode: long }] }), (err: Error) => {
    assert.ok(err.message.length < 300, 'a long value is quoted in part only');
    return /got "x{30,}\.\.\."/.test(err.message);
  });
});

test('compilePolicy takes plain data, as from JSON; errors have no line', () => {
  const policy = compilePolicy({ rules: [{ id: 'a', paths: ['payments/*'], require: { clearance: 'internal' } }] }, 'configmap');
  assert.equal(policy.rules[0]!.require.clearance, 'internal');
  assert.throws(
    () => compilePolicy({ rules: [{ id: 'a', paths: ['payments/*'], require: { clearance: 'secret' } }] }, 'configmap'),
    (err: PolicyError) => err.problems[0]!.line === undefined && err.message === 'configmap: 1 problem\n  configmap: rules[0].require.clearance: must be one of open, internal, profile-scoped, secrets-only; got "secret"',
  );
});

test('a key file named as the policy by mistake: the key is not quoted back', () => {
  const key = 'GCBeLioSOyY7GvkGj8ZEKGDQQhoE952XVNBZFjicvJk=';
  assert.deepEqual(problems(`${key}\n`), ['policy.yaml:1: must be a mapping with `rules:`; got a string that looks like a key (not shown)']);
  const hex = Buffer.from(key, 'base64').toString('hex');
  const lines = problems(`rules:\n  - id: ${hex}\n    paths: ["/a/*"]\n    require: {}\n`).join('\n');
  assert.ok(!lines.includes(hex.slice(0, 12)), lines);
  // A short plain value is still quoted.
  assert.match(problems('rules:\n  - id: "-x-"\n    paths: ["/a/*"]\n    require: {}\n').join('\n'), /got "-x-"/);
});
