// TrustVector and policy evaluation (src/trust-vector): vectors from real registry entries,
// each requirement's exact reason, rule selection, dry run, and the properties that make a
// policy safe to reason about: better vectors and weaker requirements never lose a decision.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildSnapshot, parseRegistryYaml, AGENT_TYPES, AUTHN_STRENGTHS, CLEARANCES, type RegistryEntry } from '../src/registry-sync/index.js';
import {
  NETWORK_EXPOSURES,
  PLAINTEXT_VECTOR,
  compilePolicy,
  computeTrustVector,
  decide,
  evaluate,
  requirementChecks,
  type Decision,
  type TrustVector,
} from '../src/trust-vector/index.js';
import { evaluateLinear } from '../src/trust-vector/evaluate.js';
import { PAIRS_PER_RULE } from '../src/trust-vector/rule-index.js';
import { peer, registryDoc, registryFile } from './fixtures/registry/make.js';
import { property, type Rng } from './helpers/random.js';

const ATTESTED_AT = Date.parse('2026-11-23T09:00:00Z');

function entries(yaml: string): RegistryEntry[] {
  const parsed = parseRegistryYaml(yaml, 'registry.yaml');
  assert.ok(parsed.ok);
  const snapshot = buildSnapshot(parsed.objects, { origin: 'test' }, parsed.problems);
  assert.deepEqual(snapshot.problems.filter((p) => p.severity === 'error'), []);
  return [...snapshot.entries];
}

const attested = {
  clearance: 'secrets-only',
  agentType: 'agent',
  delegationDepth: 2,
  attestation: { authnStrength: 'hardware', attestedAt: '2026-11-23T09:00:00Z', devicePosture: 0.8 },
};

function vector(overrides: Partial<TrustVector> = {}): TrustVector {
  return {
    authnStrength: 'high',
    authzFreshness: 100,
    delegationDepth: 1,
    devicePosture: 0.8,
    networkExposure: 'encrypted',
    agentType: { kind: 'service', unit: 'payments/api' },
    clearance: 'secrets-only',
    ...overrides,
  };
}

test('computeTrustVector: a Noise session is encrypted; every component from the entry', () => {
  const [entry] = entries(registryDoc('payments', [peer('payments', 'api', attested)]));
  const v = computeTrustVector(entry, { networkExposure: 'encrypted' }, ATTESTED_AT + 3_599_999);
  assert.deepEqual(v, {
    authnStrength: 'hardware',
    authzFreshness: 3599, // whole seconds, rounded down
    delegationDepth: 2,
    devicePosture: 0.8,
    networkExposure: 'encrypted',
    agentType: { kind: 'agent', unit: 'payments/api' },
    clearance: 'secrets-only',
  });
  assert.ok(Object.isFrozen(v) && Object.isFrozen(v!.agentType));
  assert.equal(computeTrustVector(entry, { networkExposure: 'loopback' }, ATTESTED_AT)!.networkExposure, 'loopback');
  // A little clock skew counts as fresh; a time far ahead proves nothing.
  assert.equal(computeTrustVector(entry, { networkExposure: 'encrypted' }, ATTESTED_AT - 60_000)!.authzFreshness, 0);
  assert.equal(computeTrustVector(entry, { networkExposure: 'encrypted' }, ATTESTED_AT - 60_001)!.authzFreshness, null);
  assert.throws(() => computeTrustVector(entry, { networkExposure: 'wifi' as never }, 0), /unknown networkExposure/);
});

test('computeTrustVector: registry defaults, no attestation, revoked and superseded entries', () => {
  const installationId = '3f6f0c1e-1111-4222-8333-944455556666';
  const list = entries(
    registryFile(
      registryDoc('payments', [
        peer('payments', 'plain'),
        peer('payments', 'gone', { revoked: true }),
        peer('payments', 'old', { installationId, generation: 1 }),
        peer('payments', 'old', { installationId, generation: 2, attestation: { authnStrength: 'low', attestedAt: '2026-11-23T08:00:00Z' } }),
      ]),
    ),
  );
  const byName = (workload: string, generation = 1n) => list.find((e) => e.workload === workload && e.generation === generation)!;
  assert.deepEqual(computeTrustVector(byName('plain'), { networkExposure: 'encrypted' }, ATTESTED_AT), {
    authnStrength: 'none',
    authzFreshness: null,
    delegationDepth: 0,
    devicePosture: 0,
    networkExposure: 'encrypted',
    agentType: { kind: 'service', unit: 'payments/plain' },
    clearance: 'open',
  });
  // Attested without a posture: posture 0.
  assert.equal(computeTrustVector(byName('old', 2n), { networkExposure: 'encrypted' }, ATTESTED_AT)!.devicePosture, 0);
  assert.equal(computeTrustVector(byName('old', 2n), { networkExposure: 'encrypted' }, ATTESTED_AT)!.authzFreshness, 3600);
  assert.equal(computeTrustVector(byName('gone'), { networkExposure: 'encrypted' }, ATTESTED_AT), undefined);
  assert.equal(computeTrustVector(byName('old', 1n), { networkExposure: 'encrypted' }, ATTESTED_AT), undefined);
  assert.equal(computeTrustVector(undefined, { networkExposure: 'loopback' }, ATTESTED_AT), undefined);
  // Plaintext proves nothing, whatever entry the caller might have been mapped to.
  assert.equal(computeTrustVector(byName('plain'), { networkExposure: 'plaintext' }, ATTESTED_AT), PLAINTEXT_VECTOR);
  assert.equal(computeTrustVector(undefined, { networkExposure: 'plaintext' }, ATTESTED_AT), PLAINTEXT_VECTOR);
  assert.deepEqual(PLAINTEXT_VECTOR, {
    authnStrength: 'none',
    authzFreshness: null,
    delegationDepth: null,
    devicePosture: 0,
    networkExposure: 'plaintext',
    agentType: null,
    clearance: null,
  });
});

const STRICT = compilePolicy({
  rules: [
    {
      id: 'strict',
      paths: ['payments/*'],
      require: {
        clearance: 'secrets-only',
        authnStrength: 'high',
        maxFreshnessSeconds: 3600,
        maxDelegationDepth: 1,
        minDevicePosture: 0.5,
        networkExposure: 'encrypted',
        agentTypes: ['service'],
      },
    },
  ],
});

function reasonsOf(d: Decision): [string, unknown, unknown, string][] {
  return d.reasons.map((r) => [r.requirement, r.required, r.actual, r.message]);
}

test('each requirement, one at a time: the exact reason, and only that one', () => {
  assert.deepEqual(evaluate(STRICT, vector(), 'payments/api', 'payments/db'), {
    allow: true,
    ruleId: 'strict',
    reasons: [],
    dryRunDenied: false,
    dryRun: [],
    trustVector: vector(),
  });
  const cases: [Partial<TrustVector>, [string, unknown, unknown, string]][] = [
    [{ clearance: 'profile-scoped' }, ['clearance', 'secrets-only', 'profile-scoped', 'clearance profile-scoped is below the required secrets-only']],
    [{ clearance: null }, ['clearance', 'secrets-only', null, 'no clearance (an unmeshed caller) is below the required secrets-only']],
    [{ authnStrength: 'medium' }, ['authnStrength', 'high', 'medium', 'authnStrength medium is below the required high']],
    [{ authzFreshness: 3601 }, ['maxFreshnessSeconds', 3600, 3601, 'attested 3601 s ago, more than the 3600 s allowed']],
    [
      { authzFreshness: null },
      ['maxFreshnessSeconds', 3600, null, 'no attestation time to measure (none, one in the future, or an unmeshed caller); at most 3600 s old is required'],
    ],
    [{ delegationDepth: 2 }, ['maxDelegationDepth', 1, 2, 'delegation depth 2 is above the maximum 1']],
    [{ delegationDepth: null }, ['maxDelegationDepth', 1, null, 'delegation depth unknown (an unmeshed caller); at most 1 is allowed']],
    [{ devicePosture: 0.49 }, ['minDevicePosture', 0.5, 0.49, 'device posture 0.49 is below the required 0.5']],
    [{ networkExposure: 'plaintext' }, ['networkExposure', 'encrypted', 'plaintext', 'reached the gateway plaintext, worse than the worst accepted (encrypted)']],
    [{ agentType: { kind: 'human', unit: 'payments/api' } }, ['agentTypes', ['service'], 'human', 'agent type human is not one of service']],
    [{ agentType: null }, ['agentTypes', ['service'], null, 'agent type unknown (an unmeshed caller) is not one of service']],
  ];
  for (const [change, reason] of cases) {
    const d = evaluate(STRICT, vector(change), 'payments/api', 'payments/db');
    assert.equal(d.allow, false, JSON.stringify(change));
    assert.equal(d.ruleId, 'strict');
    assert.deepEqual(reasonsOf(d), [reason]);
  }
  // Boundaries are inclusive: exactly the limit passes.
  assert.equal(evaluate(STRICT, vector({ authzFreshness: 3600, delegationDepth: 1, devicePosture: 0.5, authnStrength: 'high' }), 'payments/api', 'payments/db').allow, true);
  assert.equal(evaluate(STRICT, vector({ networkExposure: 'loopback', authnStrength: 'hardware' }), 'payments/api', 'payments/db').allow, true);
});

test('a denial lists every failed requirement, in a fixed order; the plaintext vector fails them all', () => {
  const d = evaluate(STRICT, PLAINTEXT_VECTOR, null, 'payments/db');
  assert.equal(d.allow, false);
  assert.deepEqual(
    d.reasons.map((r) => r.requirement),
    ['clearance', 'authnStrength', 'maxFreshnessSeconds', 'maxDelegationDepth', 'minDevicePosture', 'networkExposure', 'agentTypes'],
  );
  assert.equal(d.trustVector, PLAINTEXT_VECTOR);
  // Even `clearance: open` refuses no clearance.
  const open = compilePolicy({ rules: [{ id: 'open', paths: ['**'], require: { clearance: 'open', networkExposure: 'plaintext' } }] });
  assert.deepEqual(reasonsOf(evaluate(open, PLAINTEXT_VECTOR, null, 'x')), [['clearance', 'open', null, 'no clearance (an unmeshed caller) is below the required open']]);
  // A rule with no requirements still refuses plaintext: networkExposure defaults to encrypted.
  const bare = compilePolicy({ rules: [{ id: 'bare', paths: ['**'] }] });
  assert.deepEqual(reasonsOf(evaluate(bare, PLAINTEXT_VECTOR, null, 'x')), [
    ['networkExposure', 'encrypted', 'plaintext', 'reached the gateway plaintext, worse than the worst accepted (encrypted)'],
  ]);
  const publicRule = compilePolicy({ rules: [{ id: 'public', paths: ['public/**'], require: { networkExposure: 'plaintext' } }] });
  assert.equal(evaluate(publicRule, PLAINTEXT_VECTOR, null, 'public/ca.pem').allow, true);
});

test('selection: paths and agents both select; the first enforcing rule that selects decides', () => {
  const policy = compilePolicy({
    rules: [
      { id: 'api', paths: ['payments/db'], agents: ['payments/api'], require: { clearance: 'secrets-only' } },
      { id: 'batch', paths: ['payments/db'], agents: ['payments/batch'], require: { clearance: 'internal' } },
      { id: 'payments-any', paths: ['payments/**'], agents: ['payments/*'], require: { clearance: 'profile-scoped' } },
      { id: 'public', paths: ['public/**'] },
    ],
  });
  const as = (agent: string, clearance: TrustVector['clearance'], path = 'payments/db') =>
    evaluate(policy, vector({ clearance, agentType: { kind: 'service', unit: agent } }), agent, path);
  // The api rule decides for payments/api, and its denial is final: no later rule is tried.
  assert.deepEqual([as('payments/api', 'internal').allow, as('payments/api', 'internal').ruleId], [false, 'api']);
  // payments/batch is not selected by `api`: it falls through to `batch`, as an Istio `from` would.
  assert.deepEqual([as('payments/batch', 'internal').allow, as('payments/batch', 'internal').ruleId], [true, 'batch']);
  assert.deepEqual([as('payments/web', 'profile-scoped').allow, as('payments/web', 'profile-scoped').ruleId], [true, 'payments-any']);
  const outsider = as('frontend/web', 'secrets-only');
  assert.deepEqual([outsider.allow, outsider.ruleId], [false, null]);
  assert.deepEqual(reasonsOf(outsider), [
    ['rule', null, null, 'no rule selects path payments/db for agent frontend/web; rules api, batch, payments-any match the path, but their agents leave the caller out'],
  ]);
  assert.deepEqual(reasonsOf(as('payments/api', 'secrets-only', 'other/x')), [['rule', null, null, 'no rule selects path other/x for agent payments/api']]);
  // An anonymous caller matches no `agents` list; a rule without one selects it.
  assert.deepEqual(reasonsOf(evaluate(policy, PLAINTEXT_VECTOR, null, 'payments/db')), [
    ['rule', null, null, 'no rule selects path payments/db for an anonymous (plaintext) caller; rules api, batch, payments-any match the path, but their agents leave the caller out'],
  ]);
  assert.equal(evaluate(policy, PLAINTEXT_VECTOR, null, 'public/x').ruleId, 'public');
  // A string that is no agentId is anonymous, and matches no `agents` glob.
  assert.equal(evaluate(policy, vector(), 'payments/API', 'payments/db').ruleId, null);
  assert.equal(evaluate(policy, vector(), 'payments/api/x', 'payments/db').ruleId, null);
});

test('a request path that is no secret path is denied before any rule: traversal never matches payments/**', () => {
  const policy = compilePolicy({ rules: [{ id: 'all', paths: ['**'], require: { networkExposure: 'plaintext' } }] });
  for (const path of ['payments/../admin', '/payments/db', 'payments//db', '', 'payments/%2e%2e', 'a\u0000b']) {
    const d = evaluate(policy, vector(), 'payments/api', path);
    assert.equal(d.allow, false, JSON.stringify(path));
    assert.equal(d.ruleId, null);
    assert.equal(d.reasons.length, 1);
    assert.equal(d.reasons[0]!.requirement, 'path');
    assert.match(d.reasons[0]!.message, /^the requested path .*: no rule can match it$/);
  }
});

test('dry run: reported, never enforced; the enforcing rules decide as if it were absent', () => {
  const policy = compilePolicy({
    rules: [
      { id: 'tighter', mode: 'dry-run', paths: ['payments/*'], require: { clearance: 'secrets-only', authnStrength: 'hardware' } },
      { id: 'also-dry', mode: 'dry-run', paths: ['payments/**'], require: { clearance: 'open' } },
      { id: 'current', paths: ['payments/*'], require: { clearance: 'internal' } },
      { id: 'dry-only', mode: 'dry-run', paths: ['staging/*'] },
    ],
  });
  const d = evaluate(policy, vector({ clearance: 'internal' }), 'payments/api', 'payments/db');
  assert.equal(d.allow, true);
  assert.equal(d.ruleId, 'current');
  assert.equal(d.dryRunDenied, true);
  assert.deepEqual(
    d.dryRun.map((r) => [r.ruleId, r.allow, r.reasons.map((x) => x.message)]),
    [
      ['tighter', false, ['clearance internal is below the required secrets-only', 'authnStrength high is below the required hardware']],
      ['also-dry', true, []],
    ],
  );
  // The enforcing rule's own denial stands; the dry-run results ride along.
  const denied = evaluate(policy, vector({ clearance: 'open' }), 'payments/api', 'payments/db');
  assert.deepEqual([denied.allow, denied.ruleId, denied.dryRunDenied], [false, 'current', true]);
  // A dry-run rule alone grants nothing.
  const alone = evaluate(policy, vector(), 'payments/api', 'staging/x');
  assert.deepEqual([alone.allow, alone.ruleId, alone.dryRunDenied, alone.dryRun.map((r) => r.allow)], [false, null, false, [true]]);
  assert.equal(alone.reasons[0]!.requirement, 'rule');
});

test('decide: vector then evaluate; unknown, revoked and superseded callers get one identity reason', () => {
  const installationId = '3f6f0c1e-1111-4222-8333-944455556666';
  const list = entries(
    registryDoc('payments', [
      peer('payments', 'api', attested),
      peer('payments', 'gone', { ...attested, revoked: true }),
      peer('payments', 'old', { ...attested, installationId, generation: 1 }),
      peer('payments', 'old', { ...attested, installationId, generation: 2 }),
    ]),
  );
  const policy = compilePolicy({ rules: [{ id: 'p', paths: ['payments/*'], agents: ['payments/*'], require: { clearance: 'secrets-only', maxFreshnessSeconds: 60 } }] });
  const [api, gone, old1] = list;
  const ok = decide(policy, { entry: api, session: { networkExposure: 'encrypted' }, now: ATTESTED_AT + 60_000, path: 'payments/db' });
  assert.deepEqual([ok.allow, ok.ruleId, ok.trustVector?.agentType?.unit], [true, 'p', 'payments/api']);
  const stale = decide(policy, { entry: api, session: { networkExposure: 'encrypted' }, now: ATTESTED_AT + 61_000, path: 'payments/db' });
  assert.deepEqual(reasonsOf(stale), [['maxFreshnessSeconds', 60, 61, 'attested 61 s ago, more than the 60 s allowed']]);
  const identity = (entry: RegistryEntry | undefined) => decide(policy, { entry, session: { networkExposure: 'encrypted' }, now: ATTESTED_AT, path: 'payments/db' });
  assert.deepEqual(identity(gone), {
    allow: false,
    ruleId: null,
    reasons: [{ requirement: 'identity', required: 'a valid registry entry', actual: 'revoked', message: "the caller's key (payments/gone, generation 1) is revoked: it is refused" }],
    dryRunDenied: false,
    dryRun: [],
    trustVector: null,
  });
  assert.equal(old1!.superseded, true);
  assert.deepEqual(reasonsOf(identity(old1)), [
    ['identity', 'a valid registry entry', 'superseded', "the caller's key (payments/old, generation 1) is superseded by a later generation: it is refused"],
  ]);
  assert.deepEqual(reasonsOf(identity(undefined)), [['identity', 'a valid registry entry', 'unknown', 'the caller has no registry entry: its key is unknown to the gateway']]);
  // Plaintext: anonymous, whatever the entry.
  const plain = decide(policy, { entry: api, session: { networkExposure: 'plaintext' }, now: ATTESTED_AT, path: 'payments/db' });
  assert.equal(plain.trustVector, PLAINTEXT_VECTOR);
  assert.match(plain.reasons[0]!.message, /for an anonymous \(plaintext\) caller/);
});

test('requirementChecks: every requirement of a rule with its values, passed ones too', () => {
  const checks = requirementChecks(STRICT, 'strict', vector({ devicePosture: 0.2 }));
  assert.deepEqual(
    checks.map((c) => [c.requirement, c.ok, c.required, c.actual]),
    [
      ['clearance', true, 'secrets-only', 'secrets-only'],
      ['authnStrength', true, 'high', 'high'],
      ['maxFreshnessSeconds', true, 3600, 100],
      ['maxDelegationDepth', true, 1, 1],
      ['minDevicePosture', false, 0.5, 0.2],
      ['networkExposure', true, 'encrypted', 'encrypted'],
      ['agentTypes', true, ['service'], 'service'],
    ],
  );
  assert.equal(checks[0]!.message, 'clearance secrets-only meets the required secrets-only');
  assert.deepEqual(
    requirementChecks(compilePolicy({ rules: [{ id: 'bare', paths: ['x'] }] }), 'bare', vector()).map((c) => c.requirement),
    ['networkExposure'],
  );
  assert.throws(() => requirementChecks(STRICT, 'nope', vector()), RangeError);
});

// ---- properties -------------------------------------------------------------------------

const FRESHNESS = [null, 100_000, 7200, 3600, 600, 60, 0];
const DEPTHS = [null, 5, 3, 2, 1, 0];
const POSTURES = [0, 0.2, 0.5, 0.8, 1];
const AGENTS = ['payments/api', 'payments/batch', 'frontend/web', 'frontend/api', null] as const;
const PATH_SEGMENTS = ['payments', 'frontend', 'db', 'api', 'x'];

function randomVector(rng: Rng): TrustVector {
  const agent = rng.pick(AGENTS);
  const plaintextLike = agent === null && rng.chance(0.5);
  if (plaintextLike) return PLAINTEXT_VECTOR;
  return {
    authnStrength: rng.pick(AUTHN_STRENGTHS),
    authzFreshness: rng.pick(FRESHNESS),
    delegationDepth: rng.pick(DEPTHS),
    devicePosture: rng.pick(POSTURES),
    networkExposure: rng.pick(NETWORK_EXPOSURES),
    agentType: agent === null ? null : { kind: rng.pick(AGENT_TYPES), unit: agent },
    clearance: rng.chance(0.1) ? null : rng.pick(CLEARANCES),
  };
}

function randomGlob(rng: Rng, agent: boolean): string {
  if (agent) return rng.pick(['payments/*', 'frontend/*', '*/api', '**', 'payments/api', 'frontend/web', '*/b*']);
  const n = 1 + rng.int(3);
  return Array.from({ length: n }, () => rng.pick([...PATH_SEGMENTS, '*', '**', 'd*', '*i'])).join('/');
}

function randomRequire(rng: Rng): Record<string, unknown> {
  const r: Record<string, unknown> = {};
  if (rng.chance(0.5)) r.clearance = rng.pick(CLEARANCES);
  if (rng.chance(0.5)) r.authnStrength = rng.pick(AUTHN_STRENGTHS);
  if (rng.chance(0.4)) r.maxFreshnessSeconds = rng.pick([0, 60, 3600, 7200]);
  if (rng.chance(0.4)) r.maxDelegationDepth = rng.pick([0, 1, 2, 5]);
  if (rng.chance(0.4)) r.minDevicePosture = rng.pick(POSTURES);
  if (rng.chance(0.6)) r.networkExposure = rng.pick(NETWORK_EXPOSURES);
  if (rng.chance(0.3)) r.agentTypes = AGENT_TYPES.filter(() => rng.chance(0.6)).concat(rng.pick(AGENT_TYPES));
  return r;
}

function randomPolicyData(rng: Rng, maxRules = 8): { rules: Record<string, unknown>[] } {
  const rules = Array.from({ length: rng.int(maxRules + 1) }, (_, i) => {
    const rule: Record<string, unknown> = {
      id: `r${i}`,
      paths: Array.from({ length: 1 + rng.int(2) }, () => randomGlob(rng, false)),
      require: randomRequire(rng),
    };
    if (rng.chance(0.5)) rule.agents = Array.from({ length: 1 + rng.int(2) }, () => randomGlob(rng, true));
    if (rng.chance(0.2)) rule.mode = 'dry-run';
    return rule;
  });
  return { rules };
}

function randomPath(rng: Rng): string {
  return Array.from({ length: 1 + rng.int(3) }, () => rng.pick(PATH_SEGMENTS)).join('/');
}

/** One component of `v` made strictly better, or undefined when it is already the best. */
function improve(rng: Rng, v: TrustVector): TrustVector | undefined {
  const up = <T>(order: readonly T[], value: T): T | undefined => {
    const i = order.indexOf(value);
    return i < order.length - 1 ? order[i + 1 + rng.int(order.length - 1 - i)] : undefined;
  };
  const options: (() => TrustVector | undefined)[] = [
    () => (v.authnStrength === 'hardware' ? undefined : { ...v, authnStrength: up(AUTHN_STRENGTHS, v.authnStrength)! }),
    () => (v.authzFreshness === 0 ? undefined : { ...v, authzFreshness: up(FRESHNESS, v.authzFreshness) ?? 0 }),
    () => (v.delegationDepth === 0 ? undefined : { ...v, delegationDepth: up(DEPTHS, v.delegationDepth) ?? 0 }),
    () => (v.devicePosture === 1 ? undefined : { ...v, devicePosture: up(POSTURES, v.devicePosture) ?? 1 }),
    () => (v.networkExposure === 'loopback' ? undefined : { ...v, networkExposure: up(['plaintext', 'encrypted', 'loopback'] as const, v.networkExposure)! }),
    () => (v.clearance === 'secrets-only' ? undefined : { ...v, clearance: up([null, ...CLEARANCES], v.clearance)! }),
  ];
  return rng.pick(options)();
}

test('property: improving any component of a vector never turns an allow into a deny', () => {
  let allowsChecked = 0;
  property(3000, (rng) => {
    const policy = compilePolicy(randomPolicyData(rng));
    let v = randomVector(rng);
    const agent = v.agentType?.unit ?? null;
    const path = randomPath(rng);
    let before = evaluate(policy, v, agent, path);
    for (let step = 0; step < 6; step++) {
      const better = improve(rng, v);
      if (better === undefined) continue;
      const after = evaluate(policy, better, agent, path);
      if (before.allow) {
        allowsChecked++;
        assert.equal(after.allow, true, `${JSON.stringify(v)} -> ${JSON.stringify(better)} on ${path}: ${JSON.stringify(after.reasons)}`);
      }
      // The deciding rule depends on path and agent only, never on the vector.
      assert.equal(after.ruleId, before.ruleId);
      assert.ok(after.reasons.length <= before.reasons.length || !before.allow);
      v = better;
      before = after;
    }
  });
  assert.ok(allowsChecked > 500, `only ${allowsChecked} allows were improved: the generator is too strict`);
});

/** One requirement of one rule made strictly stricter, or undefined when none can be. */
function tighten(rng: Rng, data: { rules: Record<string, unknown>[] }): { rules: Record<string, unknown>[] } | undefined {
  if (data.rules.length === 0) return undefined;
  const copy = structuredClone(data);
  const rule = rng.pick(copy.rules);
  const r = rule.require as Record<string, unknown>;
  const above = <T>(order: readonly T[], value: T | undefined): T | undefined => {
    const i = value === undefined ? -1 : order.indexOf(value);
    return i < order.length - 1 ? order[i + 1 + rng.int(order.length - 1 - i)] : undefined;
  };
  switch (rng.int(7)) {
    case 0: r.clearance = above(CLEARANCES, r.clearance as never) ?? r.clearance; break;
    case 1: r.authnStrength = above(AUTHN_STRENGTHS, r.authnStrength as never) ?? r.authnStrength; break;
    case 2: r.maxFreshnessSeconds = above([7200, 3600, 60, 0], r.maxFreshnessSeconds as never) ?? r.maxFreshnessSeconds; break;
    case 3: r.maxDelegationDepth = above([5, 2, 1, 0], r.maxDelegationDepth as never) ?? r.maxDelegationDepth; break;
    case 4: r.minDevicePosture = above(POSTURES, r.minDevicePosture as never) ?? r.minDevicePosture; break;
    case 5: r.networkExposure = above(['plaintext', 'encrypted', 'loopback'] as const, (r.networkExposure ?? 'encrypted') as never) ?? r.networkExposure; break;
    default: {
      const kinds = (r.agentTypes as string[] | undefined) ?? [...AGENT_TYPES];
      const unique = [...new Set(kinds)];
      if (unique.length > 1) {
        const dropped = rng.pick(unique);
        r.agentTypes = unique.filter((k) => k !== dropped);
      }
      else if (r.agentTypes === undefined) r.agentTypes = [rng.pick(AGENT_TYPES)];
    }
  }
  return copy;
}

test('property: raising any requirement never turns a deny into an allow', () => {
  let deniesChecked = 0;
  property(3000, (rng) => {
    let data = randomPolicyData(rng);
    const v = randomVector(rng);
    const agent = v.agentType?.unit ?? null;
    const path = randomPath(rng);
    let before = evaluate(compilePolicy(data), v, agent, path);
    for (let step = 0; step < 6; step++) {
      const stricter = tighten(rng, data);
      if (stricter === undefined) break;
      const after = evaluate(compilePolicy(stricter), v, agent, path);
      if (!before.allow) {
        deniesChecked++;
        assert.equal(after.allow, false, `${JSON.stringify(data)} -> ${JSON.stringify(stricter)} for ${JSON.stringify(v)} on ${path}`);
      }
      data = stricter;
      before = after;
    }
  });
  assert.ok(deniesChecked > 1000, `only ${deniesChecked} denials were tightened`);
});

test('property: evaluation is deterministic, and the allow path agrees with the full check', () => {
  property(2000, (rng) => {
    const data = randomPolicyData(rng);
    const policy = compilePolicy(data);
    const again = compilePolicy(structuredClone(data));
    const v = randomVector(rng);
    const agent = rng.chance(0.9) ? (v.agentType?.unit ?? null) : rng.pick(AGENTS);
    const path = randomPath(rng);
    const first = evaluate(policy, v, agent, path);
    assert.deepEqual(evaluate(policy, v, agent, path), first);
    assert.deepEqual(evaluate(again, structuredClone(v), agent, path), first);
    assert.deepEqual(JSON.parse(JSON.stringify(first)), first, 'a decision is plain JSON');
    // `passes` (the allocation-free allow path) and the per-requirement checks agree.
    if (first.ruleId !== null) {
      const checks = requirementChecks(policy, first.ruleId, v);
      assert.equal(first.allow, checks.every((c) => c.ok));
      assert.deepEqual(
        first.reasons.map((r) => r.requirement),
        checks.filter((c) => !c.ok).map((c) => c.requirement),
      );
    }
  });
});

test('property: the rule index decides exactly as a loop over every rule', () => {
  const literalHeavy = (rng: Rng): string => {
    // Policies shaped like real ones (literal prefixes) and like adversarial ones (wildcards first).
    const first = rng.pick(['payments', 'frontend', 'db', '*', '**', 'pay*']);
    const rest = Array.from({ length: rng.int(3) }, () => rng.pick([...PATH_SEGMENTS, '*', '**', 'd*']));
    return [first, ...rest].join('/');
  };
  let decided = 0;
  property(1500, (rng) => {
    const data = randomPolicyData(rng, 40);
    for (const rule of data.rules) if (rng.chance(0.7)) rule.paths = Array.from({ length: 1 + rng.int(3) }, () => literalHeavy(rng));
    const policy = compilePolicy(data);
    for (let k = 0; k < 20; k++) {
      const v = randomVector(rng);
      const agent = v.agentType?.unit ?? null;
      const path = randomPath(rng);
      const indexed = evaluate(policy, v, agent, path);
      assert.deepEqual(indexed, evaluateLinear(policy, v, agent, path), `${path} for ${agent} under ${JSON.stringify(data)}`);
      if (indexed.ruleId !== null) decided++;
    }
  });
  assert.ok(decided > 5000, `only ${decided} requests were decided by a rule: the generator matches too little`);
});

test('property: the two-selector index decides exactly as a loop, on policies of every glob shape', () => {
  // Both selectors drawn from the whole glob language: literal segments, `*`, `**` (leading,
  // inner, trailing, repeated), and in-segment patterns with a literal prefix, a suffix, both,
  // or neither; requests drawn so that many rules match on one side only.
  const pathSegments = ['payments', 'pay', 'db', 'db-1', 'api', 'x', 'a.b', 'ab', 'aab', 'team-7'];
  const pathTokens = [...pathSegments, '*', '**', 'd*', '*i', 'db-*', '*-1', 'a*b', '*a*', 'p*y*s', 'pay*', 'team-*', '*b*'];
  const namespaces = ['payments', 'pay', 'frontend', 'a', 'ab', 'team-7'];
  const workloads = ['api', 'db-api', 'batch', 'a.b', 'api-1', 'web'];
  const agentGlob = (rng: Rng): string => {
    if (rng.chance(0.15)) return rng.pick(['**', 'payments/**', '**/api', 'team-*/**', '**/a*i']);
    const ns = rng.pick([...namespaces, '*', 'pay*', '*s', 'a*b', 'team-*', '*a*']);
    const wl = rng.pick([...workloads, '*', '*-api', 'a*', '*i', 'a*i', '*a*', 'api-*']);
    return `${ns}/${wl}`;
  };
  const pathGlob = (rng: Rng): string => Array.from({ length: 1 + rng.int(4) }, () => rng.pick(pathTokens)).join('/');
  let decided = 0;
  let rejectedByAgents = 0;
  let dryRuns = 0;
  let decidedByWide = 0;
  property(400, (rng) => {
    const n = rng.pick([1, 5, 30, 120]);
    // A few shared path and agent globs, so that many rules are candidates on one side.
    const sharedPaths = Array.from({ length: 3 }, () => pathGlob(rng));
    const sharedAgents = Array.from({ length: 3 }, () => agentGlob(rng));
    const wide = new Set<string>();
    const rules = Array.from({ length: n }, (_, i) => {
      // Some rules with many globs a side: more pairs than the index pairs (PAIRS_PER_RULE), intersected instead.
      const globs = rng.chance(0.1) ? 12 : 1 + rng.int(3);
      const rule: Record<string, unknown> = {
        id: `r${i}`,
        paths: Array.from({ length: globs }, () => (rng.chance(0.4) ? rng.pick(sharedPaths) : pathGlob(rng))),
        require: rng.chance(0.5) ? {} : randomRequire(rng),
      };
      if (rng.chance(0.7)) rule.agents = Array.from({ length: globs }, () => (rng.chance(0.4) ? rng.pick(sharedAgents) : agentGlob(rng)));
      if (new Set(rule.paths as string[]).size * new Set((rule.agents as string[] | undefined) ?? []).size > PAIRS_PER_RULE) wide.add(`r${i}`);
      if (rng.chance(0.15)) rule.mode = 'dry-run';
      return rule;
    });
    const policy = compilePolicy({ rules });
    for (let k = 0; k < 25; k++) {
      const v = randomVector(rng);
      const agent = rng.chance(0.1) ? rng.pick([null, 'Payments/api', 'payments', 'payments/api/x']) : `${rng.pick(namespaces)}/${rng.pick(workloads)}`;
      const path = Array.from({ length: 1 + rng.int(5) }, () => rng.pick(pathSegments)).join('/');
      const indexed = evaluate(policy, v, agent, path);
      assert.deepEqual(indexed, evaluateLinear(policy, v, agent, path), `${path} for ${agent} under ${JSON.stringify(rules)}`);
      if (indexed.ruleId !== null) decided++;
      else if (indexed.reasons[0]?.message.includes('leave the caller out')) rejectedByAgents++;
      if (indexed.ruleId !== null && wide.has(indexed.ruleId)) decidedByWide++;
      if (indexed.dryRun.length > 0) dryRuns++;
    }
  });
  // The generator must reach every branch: decisions, denials naming rules, dry runs.
  assert.ok(decided > 2000, `only ${decided} requests were decided by a rule`);
  assert.ok(rejectedByAgents > 300, `only ${rejectedByAgents} denials named rules left out by agents`);
  assert.ok(dryRuns > 150, `only ${dryRuns} decisions carried dry-run results`);
  assert.ok(decidedByWide > 100, `only ${decidedByWide} decisions were made by a rule with more than ${PAIRS_PER_RULE} glob pairs`);
});

test('the index at 1,000 rules: one path told apart by agents, globs starting with a wildcard', () => {
  // The shapes bench/trust.ts measures, checked for their answers: each request decided by
  // the one rule written for it, wherever it sits in the policy.
  // Ten of them dry-run rules for frontend/*: selected, reported, and not counted as leaving it out.
  const onePath = compilePolicy({
    rules: Array.from({ length: 1000 }, (_, i) =>
      i % 100 === 50 ? { id: `r${i}`, paths: ['payments/*'], agents: ['frontend/*'], mode: 'dry-run' } : { id: `r${i}`, paths: ['payments/*'], agents: [`team-${i}/*`] },
    ),
  });
  const wildcardFirst = compilePolicy({
    rules: Array.from({ length: 1000 }, (_, i) => ({ id: `r${i}`, paths: [`*/svc-${i}`], agents: [`*/svc-${i}`] })),
  });
  for (const i of [0, 1, 499, 998, 999]) {
    assert.equal(evaluate(onePath, vector(), `team-${i}/api`, 'payments/db').ruleId, `r${i}`);
    assert.equal(evaluate(wildcardFirst, vector(), `ns-${i}/svc-${i}`, `a/svc-${i}`).ruleId, `r${i}`);
    assert.equal(evaluate(wildcardFirst, vector(), `ns-${i}/svc-${i + 1}`, `a/svc-${i}`).ruleId, null);
  }
  const outsider = evaluate(onePath, vector(), 'frontend/web', 'payments/db');
  assert.equal(outsider.reasons[0]!.message, 'no rule selects path payments/db for agent frontend/web; rules r0, r1, r2, r3, r4 and 985 more match the path, but their agents leave the caller out');
  assert.equal(outsider.dryRun.length, 10);
  assert.deepEqual(outsider, evaluateLinear(onePath, vector(), 'frontend/web', 'payments/db'));
});
