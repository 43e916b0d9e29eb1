/**
 * Policy evaluation: which rule decides a request, and why it was refused.
 *
 * Selection. Rules are tried in order. A rule *selects* a request when one of its `paths`
 * globs matches the secret path and, if it has `agents`, one of them matches the caller's
 * agentId (an anonymous plaintext caller matches no `agents` list). `paths` and `agents` are
 * both selectors, as `to` and `from` are in an Istio AuthorizationPolicy rule or the
 * conditions of an OPA `allow` rule: a rule written for other agents does not refuse this
 * one, the next rule gets its turn. The first enforcing rule that selects the request
 * decides it by its `require`: allow if the vector meets every requirement, otherwise deny
 * with every requirement that failed. When no enforcing rule selects the request it is
 * denied, with a reason naming the rules that matched the path but not the agent.
 *
 * Dry run. A `mode: dry-run` rule that selects the request is evaluated and reported in
 * `dryRun`, then passed over, as Istio evaluates a dry-run policy: the decision is the one
 * the enforcing rules make without it. So a dry-run rule that would deny never refuses (the
 * decision says `dryRunDenied: true` with its reasons), and a dry-run rule that would allow
 * never grants: trying a rule out cannot open a path the policy keeps closed.
 *
 * Pure and deterministic: the same policy, vector, agentId and path give an equal decision.
 * No regular expression is built; globs were compiled when the policy loaded.
 */
import type { RegistryEntry } from '../registry-sync/index.js';
import { Subject, checkSecretPath, isAgentId, type Glob } from './glob.js';
import { REQUIREMENTS, type CompiledRule, type Policy, type RequirementName } from './policy.js';
import {
  authnStrengthRank,
  computeTrustVector,
  networkExposureRank,
  vectorClearanceRank,
  type SessionSignals,
  type TrustVector,
} from './vector.js';

/** A reason is about a requirement of the deciding rule, or about why no rule could decide. */
export type ReasonKind =
  | RequirementName
  /** No enforcing rule selects the path and agent. */
  | 'rule'
  /** The path is no secret path (glob.ts); it matches no rule. */
  | 'path'
  /** The caller has no valid registry entry (unknown, revoked or superseded): no vector. */
  | 'identity';

export type ReasonValue = string | number | readonly string[] | null;

/** One failed requirement: what the rule asks, what the caller has, and a sentence saying so. */
export interface Reason {
  readonly requirement: ReasonKind;
  readonly required: ReasonValue;
  readonly actual: ReasonValue;
  readonly message: string;
}

/** A requirement of a rule checked against a vector, passed or not (for `explain`). */
export interface RequirementCheck extends Reason {
  readonly requirement: RequirementName;
  readonly ok: boolean;
}

/** What a dry-run rule that selected the request would have decided. */
export interface DryRunResult {
  readonly ruleId: string;
  readonly allow: boolean;
  /** Every requirement it would have failed; empty when it would allow. */
  readonly reasons: readonly Reason[];
}

export interface Decision {
  readonly allow: boolean;
  /** The enforcing rule that decided; `null` when none selected the request (always a denial). */
  readonly ruleId: string | null;
  /** Empty on allow; on deny, every failed requirement of `ruleId` in REQUIREMENTS order, or one `rule`, `path` or `identity` reason. */
  readonly reasons: readonly Reason[];
  /** True when a dry-run rule ahead of the decision would have denied the request. */
  readonly dryRunDenied: boolean;
  /** Each dry-run rule that selected the request before the decision was made, in order. */
  readonly dryRun: readonly DryRunResult[];
  /** The vector the decision was made on; `null` when the caller had none (`identity`). */
  readonly trustVector: TrustVector | null;
}

const NONE: readonly never[] = Object.freeze([]);
/** Ids named in a no-rule reason before "and N more". */
const MAX_NAMED_RULES = 5;

/**
 * Checks one requirement; `undefined` when the rule does not set it. Messages name both
 * values and never anything from the request but the vector.
 */
function check(c: CompiledRule, name: RequirementName, v: TrustVector): RequirementCheck | undefined {
  const r = c.rule.require;
  switch (name) {
    case 'clearance': {
      if (r.clearance === undefined) return undefined;
      const ok = vectorClearanceRank(v.clearance) >= c.clearanceRank;
      const actual = v.clearance === null ? 'no clearance (an unmeshed caller)' : `clearance ${v.clearance}`;
      return { requirement: name, required: r.clearance, actual: v.clearance, ok, message: `${actual} ${ok ? 'meets' : 'is below'} the required ${r.clearance}` };
    }
    case 'authnStrength': {
      if (r.authnStrength === undefined) return undefined;
      const ok = authnStrengthRank(v.authnStrength) >= c.authnRank;
      return { requirement: name, required: r.authnStrength, actual: v.authnStrength, ok, message: `authnStrength ${v.authnStrength} ${ok ? 'meets' : 'is below'} the required ${r.authnStrength}` };
    }
    case 'maxFreshnessSeconds': {
      if (r.maxFreshnessSeconds === undefined) return undefined;
      const age = v.authzFreshness;
      const ok = age !== null && age <= c.maxFreshness;
      const message =
        age === null
          ? `no attestation time to measure (none, one in the future, or an unmeshed caller); at most ${r.maxFreshnessSeconds} s old is required`
          : `attested ${age} s ago, ${ok ? 'within' : 'more than'} the ${r.maxFreshnessSeconds} s allowed`;
      return { requirement: name, required: r.maxFreshnessSeconds, actual: age, ok, message };
    }
    case 'maxDelegationDepth': {
      if (r.maxDelegationDepth === undefined) return undefined;
      const depth = v.delegationDepth;
      const ok = depth !== null && depth <= c.maxDepth;
      const message =
        depth === null
          ? `delegation depth unknown (an unmeshed caller); at most ${r.maxDelegationDepth} is allowed`
          : `delegation depth ${depth} ${ok ? 'is within' : 'is above'} the maximum ${r.maxDelegationDepth}`;
      return { requirement: name, required: r.maxDelegationDepth, actual: depth, ok, message };
    }
    case 'minDevicePosture': {
      if (r.minDevicePosture === undefined) return undefined;
      const ok = v.devicePosture >= c.minPosture;
      return {
        requirement: name,
        required: r.minDevicePosture,
        actual: v.devicePosture,
        ok,
        message: `device posture ${v.devicePosture} ${ok ? 'meets' : 'is below'} the required ${r.minDevicePosture}`,
      };
    }
    case 'networkExposure': {
      const ok = networkExposureRank(v.networkExposure) <= c.exposureRank;
      return {
        requirement: name,
        required: r.networkExposure,
        actual: v.networkExposure,
        ok,
        message: ok
          ? `reached the gateway ${v.networkExposure}, within the worst accepted (${r.networkExposure})`
          : `reached the gateway ${v.networkExposure}, worse than the worst accepted (${r.networkExposure})`,
      };
    }
    case 'agentTypes': {
      if (c.agentTypes === null) return undefined;
      const kind = v.agentType?.kind ?? null;
      const ok = kind !== null && c.agentTypes.includes(kind);
      return {
        requirement: name,
        required: c.agentTypes,
        actual: kind,
        ok,
        message: `${kind === null ? 'agent type unknown (an unmeshed caller)' : `agent type ${kind}`} ${ok ? 'is' : 'is not'} one of ${c.agentTypes.join(', ')}`,
      };
    }
  }
}

/** The allow path: comparisons only, no allocation. Must agree with `check` (a test says so). */
function passes(c: CompiledRule, v: TrustVector): boolean {
  if (vectorClearanceRank(v.clearance) < c.clearanceRank) return false;
  if (c.authnRank >= 0 && authnStrengthRank(v.authnStrength) < c.authnRank) return false;
  if (c.maxFreshness >= 0 && (v.authzFreshness === null || v.authzFreshness > c.maxFreshness)) return false;
  if (c.maxDepth >= 0 && (v.delegationDepth === null || v.delegationDepth > c.maxDepth)) return false;
  if (c.minPosture >= 0 && v.devicePosture < c.minPosture) return false;
  if (networkExposureRank(v.networkExposure) > c.exposureRank) return false;
  if (c.agentTypes !== null && (v.agentType === null || !c.agentTypes.includes(v.agentType.kind))) return false;
  return true;
}

function failures(c: CompiledRule, v: TrustVector): readonly Reason[] {
  if (passes(c, v)) return NONE;
  const reasons: Reason[] = [];
  for (const name of REQUIREMENTS) {
    const result = check(c, name, v);
    if (result !== undefined && !result.ok) {
      reasons.push(Object.freeze({ requirement: result.requirement, required: result.required, actual: result.actual, message: result.message }));
    }
  }
  return Object.freeze(reasons);
}

function matchesAny(globs: readonly Glob[], subject: Subject): boolean {
  for (let i = 0; i < globs.length; i++) if (globs[i]!.matches(subject)) return true;
  return false;
}

function decision(allow: boolean, ruleId: string | null, reasons: readonly Reason[], dryRun: DryRunResult[] | undefined, trustVector: TrustVector | null): Decision {
  let dryRunDenied = false;
  if (dryRun !== undefined) for (const d of dryRun) if (!d.allow) dryRunDenied = true;
  // Not frozen, unlike its parts: one per request, and the type is readonly throughout.
  return { allow, ruleId, reasons, dryRunDenied, dryRun: dryRun === undefined ? NONE : dryRun, trustVector };
}

function noRuleReason(path: string, agentId: string | null, pathOnly: string[] | undefined, pathOnlyCount: number): Reason {
  const who = agentId === null ? 'an anonymous (plaintext) caller' : `agent ${agentId}`;
  let message = `no rule selects path ${path} for ${who}`;
  if (pathOnly !== undefined) {
    const more = pathOnlyCount > pathOnly.length ? ` and ${pathOnlyCount - pathOnly.length} more` : '';
    message += `; rule${pathOnlyCount === 1 ? '' : 's'} ${pathOnly.join(', ')}${more} match${pathOnlyCount === 1 ? 'es' : ''} the path, but ${pathOnlyCount === 1 ? 'its' : 'their'} agents leave the caller out`;
  }
  return Object.freeze({ requirement: 'rule', required: null, actual: null, message });
}

/**
 * The decision for a caller with this vector and agentId asking for `path`: the first
 * enforcing rule that selects it decides (see the header). `agentId` is the caller's
 * (`vector.agentType.unit` for a meshed caller), or `null` for an anonymous one; a string
 * that is no agentId is taken as anonymous. A `path` that is no secret path (glob.ts) is
 * denied with a `path` reason and matches no rule.
 *
 * Through the policy's rule index (rule-index.ts): the cost depends on the request's
 * segments and on the rules that select it, not on how many rules the policy holds:
 * O(s x a) to walk both selectors' tries (s segments, a nodes active at once, a few for
 * real policies), O(p x q) lookups for the pairs of nodes the walks end on, and O(k) for
 * the k selecting rules up to the deciding one (the dry-run rules before it). Rules with
 * more glob pairs than the index pairs add the rules matching one side (the smaller); a
 * request that no enforcing rule decides may walk the rules matching its path, to count
 * them in the reason.
 */
export function evaluate(policy: Policy, vector: TrustVector, agentId: string | null, path: string): Decision {
  const invalid = checkSecretPath(path);
  if (invalid !== undefined) return invalidPath(invalid, vector);
  const rules = policy.compiled.rules;
  const index = policy.compiled.index;
  let dryRun: DryRunResult[] | undefined;
  index.select(path, agentId);
  for (let i = index.next(); i >= 0; i = index.next()) {
    const c = rules[i]!;
    const reasons = failures(c, vector);
    if (c.dryRun) {
      (dryRun ??= []).push(Object.freeze({ ruleId: c.rule.id, allow: reasons.length === 0, reasons }));
      continue;
    }
    return decision(reasons.length === 0, c.rule.id, reasons, dryRun, vector);
  }
  const first: number[] = [];
  const count = index.rejectedByAgents(first, MAX_NAMED_RULES);
  const pathOnly = count === 0 ? undefined : first.map((i) => rules[i]!.rule.id);
  return decision(false, null, [noRuleReason(path, agentId !== null && isAgentId(agentId) ? agentId : null, pathOnly, count)], dryRun, vector);
}

function invalidPath(invalid: string, vector: TrustVector): Decision {
  return decision(false, null, [Object.freeze({ requirement: 'path', required: null, actual: null, message: `the requested path ${invalid}: no rule can match it` })], undefined, vector);
}

/**
 * `evaluate` without the rule index: every rule tried in order, O(rules). The reference the
 * index is tested against, and the benchmark's measure of what the index buys.
 */
export function evaluateLinear(policy: Policy, vector: TrustVector, agentId: string | null, path: string): Decision {
  const invalid = checkSecretPath(path);
  if (invalid !== undefined) return invalidPath(invalid, vector);
  const subject = new Subject(path);
  // Checked on first use: many requests reach no rule with `agents`.
  let agent: Subject | null | undefined = agentId === null ? null : undefined;
  const rules = policy.compiled.rules;
  let dryRun: DryRunResult[] | undefined;
  let pathOnly: string[] | undefined;
  let pathOnlyCount = 0;
  for (let i = 0; i < rules.length; i++) {
    const c = rules[i]!;
    if (!matchesAny(c.paths, subject)) continue;
    if (c.agents !== null) {
      if (agent === undefined) agent = isAgentId(agentId!) ? new Subject(agentId!) : null;
      if (agent === null || !matchesAny(c.agents, agent)) {
        if (pathOnlyCount++ < MAX_NAMED_RULES) (pathOnly ??= []).push(c.rule.id);
        continue;
      }
    }
    const reasons = failures(c, vector);
    if (c.dryRun) {
      (dryRun ??= []).push(Object.freeze({ ruleId: c.rule.id, allow: reasons.length === 0, reasons }));
      continue;
    }
    return decision(reasons.length === 0, c.rule.id, reasons, dryRun, vector);
  }
  return decision(false, null, [noRuleReason(path, agentId !== null && isAgentId(agentId) ? agentId : null, pathOnly, pathOnlyCount)], dryRun, vector);
}

/**
 * Every requirement of rule `ruleId` checked against `vector`, passed ones included, in
 * REQUIREMENTS order (`networkExposure` always, as it has a default). For operators reading
 * why a decision went one way: `noisemesh explain` prints these. Throws RangeError for an
 * unknown rule id.
 */
export function requirementChecks(policy: Policy, ruleId: string, vector: TrustVector): RequirementCheck[] {
  const c = policy.compiled.rules.find((r) => r.rule.id === ruleId);
  if (c === undefined) throw new RangeError(`no rule with id '${ruleId}' in the policy`);
  const checks: RequirementCheck[] = [];
  for (const name of REQUIREMENTS) {
    const result = check(c, name, vector);
    if (result !== undefined) checks.push(Object.freeze(result));
  }
  return checks;
}

export interface DecideInput {
  /** The caller's registry entry (by its verified static key), if any; ignored for plaintext. */
  readonly entry: RegistryEntry | undefined;
  readonly session: SessionSignals;
  /** Milliseconds since the Unix epoch. */
  readonly now: number;
  readonly path: string;
}

/**
 * computeTrustVector then evaluate, as the gateway runs them for one request: a meshed
 * caller is evaluated as its entry's agentId; a plaintext caller as anonymous; a meshed
 * caller without a valid entry (none, revoked, superseded) is denied with one `identity`
 * reason and no vector, and no rule is consulted.
 */
export function decide(policy: Policy, input: DecideInput): Decision {
  const vector = computeTrustVector(input.entry, input.session, input.now);
  if (vector === undefined) {
    const e = input.entry;
    const actual = e === undefined ? 'unknown' : e.superseded ? 'superseded' : 'revoked';
    const message =
      e === undefined
        ? 'the caller has no registry entry: its key is unknown to the gateway'
        : e.superseded
          ? `the caller's key (${e.agentId}, generation ${e.generation}) is superseded by a later generation: it is refused`
          : `the caller's key (${e.agentId}, generation ${e.generation}) is revoked: it is refused`;
    return decision(false, null, [Object.freeze({ requirement: 'identity', required: 'a valid registry entry', actual, message })], undefined, null);
  }
  return evaluate(policy, vector, vector.agentType?.unit ?? null, input.path);
}

export { REQUIREMENTS };
