/**
 * The cost of one secrets decision (computeTrustVector + evaluate), as the gateway pays it
 * per request, at 1, 10, 100 and 1,000 rules with the deciding rule last (every rule before
 * it is a candidate the evaluation must pass over). Three policy shapes, because the rule
 * index (src/trust-vector/rule-index.ts) helps each differently:
 *
 * - `prefixes`: each rule its own literal first segment (`team-7/*`): what the index is for;
 * - `one path`: every rule on the same path, told apart by `agents`: every rule a candidate;
 * - `wildcard first`: every glob starting with `*` (`*` + `/svc-7`): nothing to index.
 *
 * Baselines in the same run: computeTrustVector alone, and a one-rule policy. The loop over
 * every rule (evaluateLinear) runs beside the index at 1,000 rules, to show what it buys.
 * bench/README.md, section trust, records the results.
 */
import { generateKeyPairSync } from 'node:crypto';
import { buildSnapshot, parseRegistryYaml, type RegistryEntry } from '../src/registry-sync/index.js';
import { compilePolicy, computeTrustVector, evaluate, type Decision, type Policy } from '../src/trust-vector/index.js';
import { evaluateLinear } from '../src/trust-vector/evaluate.js';
import type { BenchModule } from './lib/module.js';
import { pairedRatio } from './lib/stats.js';
import { formatPercent, formatRate, formatRatio, formatTable } from './lib/table.js';
import { measureGroup, type Case, type TimingOptions } from './lib/timing.js';

const TIMING: TimingOptions = { warmupMs: 300, roundMs: 150, rounds: 7 };
const SIZES = [10, 100, 1000] as const;
const AGENT = 'payments/api';
const PATH = 'payments/db';
const NOW = Date.parse('2026-11-23T09:30:00Z');
const SESSION = { networkExposure: 'encrypted' } as const;
const REQUIRE = { clearance: 'internal', authnStrength: 'high', maxFreshnessSeconds: 3600, maxDelegationDepth: 1, minDevicePosture: 0.5 };

/** A real registry entry, through the registry's own parser, as the gateway holds it. */
function registryEntry(): RegistryEntry {
  const der = generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' });
  const yaml = `apiVersion: noisemesh.io/v1alpha1
kind: ClearanceRegistry
metadata: {name: payments, namespace: payments}
spec:
  peers:
    - agentId: ${AGENT}
      installationId: 0f8e2c1a-93bb-4b54-94fb-bfa65662dce3
      publicKey: ${der.subarray(der.length - 32).toString('base64')}
      generation: 1
      clearance: internal
      delegationDepth: 1
      attestation: {authnStrength: high, attestedAt: "2026-11-23T09:00:00Z", devicePosture: 0.8}
`;
  const parsed = parseRegistryYaml(yaml);
  const entry = buildSnapshot(parsed.objects, { origin: 'bench' }).entries[0];
  if (entry === undefined) throw new Error('the bench registry entry did not load');
  return entry;
}

type Shape = 'prefixes' | 'one path' | 'wildcard first';
const SHAPES: readonly Shape[] = ['prefixes', 'one path', 'wildcard first'];

/** `n` rules, none of which selects the request but the last. */
function policyOf(shape: Shape, n: number): Policy {
  const rules: Record<string, unknown>[] = [];
  for (let i = 0; i < n - 1; i++) {
    if (shape === 'prefixes') rules.push({ id: `r${i}`, paths: [`team-${i}/*`], agents: [`team-${i}/*`], require: REQUIRE });
    else if (shape === 'one path') rules.push({ id: `r${i}`, paths: ['payments/*'], agents: [`team-${i}/*`], require: REQUIRE });
    else rules.push({ id: `r${i}`, paths: [`*/svc-${i}`], agents: [`*/svc-${i}`], require: REQUIRE });
  }
  const lastPath = shape === 'wildcard first' ? '*/db' : 'payments/*';
  rules.push({ id: 'deciding', paths: [lastPath], agents: ['payments/*'], require: REQUIRE });
  return compilePolicy({ rules });
}

function check(d: Decision): void {
  if (!d.allow || d.ruleId !== 'deciding') throw new Error(`wrong decision: ${JSON.stringify(d)}`);
}

function decisionCase(name: string, policy: Policy, entry: RegistryEntry, linear = false): Case {
  const evaluator = linear ? evaluateLinear : evaluate;
  check(evaluator(policy, computeTrustVector(entry, SESSION, NOW)!, AGENT, PATH));
  return {
    name,
    unitsPerOp: 1,
    run(ops) {
      let allowed = 0;
      for (let i = 0; i < ops; i++) {
        const vector = computeTrustVector(entry, SESSION, NOW);
        if (vector !== undefined && evaluator(policy, vector, AGENT, PATH).allow) allowed++;
      }
      if (allowed !== ops) throw new Error('a decision changed');
    },
  };
}

function vectorCase(entry: RegistryEntry): Case {
  return {
    name: 'computeTrustVector alone',
    unitsPerOp: 1,
    run(ops) {
      let fresh = 0;
      for (let i = 0; i < ops; i++) if (computeTrustVector(entry, SESSION, NOW)!.authzFreshness === 1800) fresh++;
      if (fresh !== ops) throw new Error('wrong vector');
    },
  };
}

export const trustBench: BenchModule = {
  name: 'trust',
  description: 'one secrets decision (computeTrustVector + evaluate) at 1 to 1,000 rules, the deciding rule last',
  run() {
    const entry = registryEntry();
    const vector = vectorCase(entry);
    const single = decisionCase('decision, 1 rule', policyOf('prefixes', 1), entry);
    const rows: string[][] = [];
    let worstAt1000 = 0;
    for (const shape of SHAPES) {
      const cases: Case[] = [vector, single];
      for (const n of SIZES) cases.push(decisionCase(`${shape}, ${n.toLocaleString('en-US')} rules`, policyOf(shape, n), entry));
      cases.push(decisionCase(`${shape}, 1,000 rules, no index`, policyOf(shape, 1000), entry, true));
      const results = measureGroup(cases, TIMING);
      const base = results[0]!;
      const one = results[1]!;
      for (const r of results) {
        if (rows.some((row) => row[0] === r.name)) continue;
        const us = 1e6 / r.rate.median;
        if (r.name === `${shape}, 1,000 rules`) worstAt1000 = Math.max(worstAt1000, us);
        rows.push([r.name, formatRate(us), formatPercent(r.rate.spread), formatRatio(1 / pairedRatio(r.rate, base.rate).median), formatRatio(1 / pairedRatio(r.rate, one.rate).median)]);
      }
    }
    console.log('## One decision: computeTrustVector + evaluate, allowed by the last rule\n');
    console.log(formatTable(['case', 'µs each', 'spread', 'x vector alone', 'x 1 rule'], rows));
    console.log(`\nGoal: <= 10 µs a decision at 1,000 rules (indexed). Worst shape here: ${formatRate(worstAt1000)} µs: ${worstAt1000 <= 10 ? 'met' : 'NOT met'}.\n`);
  },
};
