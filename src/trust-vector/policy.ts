/**
 * The secrets policy (DESIGN.md, TrustVector): YAML text -> a validated, compiled Policy.
 *
 * ```yaml
 * rules:
 *   - id: payments-db                       # required, unique
 *     paths: ["payments/*"]                 # secret-path globs (glob.ts)
 *     agents: ["payments/*"]                # agentId globs; absent: any caller
 *     mode: enforce                         # or dry-run; default enforce
 *     require:                              # each key optional
 *       clearance: secrets-only
 *       authnStrength: high
 *       maxFreshnessSeconds: 3600
 *       maxDelegationDepth: 1
 *       minDevicePosture: 0.5
 *       networkExposure: encrypted          # the worst accepted; default encrypted
 *       agentTypes: [service]
 * ```
 *
 * Validation reports every problem at once, each with its path (`rules[2].require.clearance`),
 * its line when read from YAML, and the fix; an unknown key is refused with the nearest known
 * one. A policy with any problem is refused whole: a gateway keeps the last good one.
 */
import { LineCounter, parseDocument } from 'yaml';
import { looksLikeKeyText } from '../noise/index.js';
import {
  AGENT_TYPES,
  AUTHN_STRENGTHS,
  CLEARANCES,
  authnStrengthRank,
  clearanceRank,
  type AgentType,
  type AuthnStrength,
  type Clearance,
  NULL_VALUE_MESSAGE,
  closest,
  describeYamlValue,
  isYamlMapping as isMapping,
  yamlFaultMessage,
  yamlFaults,
} from '../registry-sync/index.js';
import { Glob } from './glob.js';
import { RuleIndex } from './rule-index.js';
import { NETWORK_EXPOSURES, networkExposureRank, type NetworkExposure } from './vector.js';

export const RULE_MODES = ['enforce', 'dry-run'] as const;
export type RuleMode = (typeof RULE_MODES)[number];

/** The requirement keys, in the order denials list them. */
export const REQUIREMENTS = [
  'clearance',
  'authnStrength',
  'maxFreshnessSeconds',
  'maxDelegationDepth',
  'minDevicePosture',
  'networkExposure',
  'agentTypes',
] as const;
export type RequirementName = (typeof REQUIREMENTS)[number];

/** What a rule requires of the TrustVector; an absent key requires nothing. */
export interface Requirements {
  /** The lowest clearance accepted. */
  readonly clearance: Clearance | undefined;
  /** The weakest authentication accepted. */
  readonly authnStrength: AuthnStrength | undefined;
  /** The oldest attestation accepted, in seconds. */
  readonly maxFreshnessSeconds: number | undefined;
  readonly maxDelegationDepth: number | undefined;
  /** 0..1 */
  readonly minDevicePosture: number | undefined;
  /**
   * The worst exposure accepted (loopback < encrypted < plaintext). Never absent: a rule
   * that does not say accepts `encrypted` and `loopback`, so a plaintext caller is refused
   * unless a rule writes `networkExposure: plaintext`.
   */
  readonly networkExposure: NetworkExposure;
  /** The agent kinds accepted. */
  readonly agentTypes: readonly AgentType[] | undefined;
}

export const DEFAULT_NETWORK_EXPOSURE: NetworkExposure = 'encrypted';

export interface PolicyRule {
  readonly id: string;
  /** Position in `rules`, 0-based: first match wins. */
  readonly index: number;
  readonly description: string | undefined;
  readonly paths: readonly string[];
  /** agentId globs; `null` when absent: any caller, anonymous plaintext callers included. */
  readonly agents: readonly string[] | null;
  readonly require: Requirements;
  readonly mode: RuleMode;
  /** 1-based line of the rule in its file, when read from YAML. */
  readonly line: number | undefined;
}

/** A rule with its globs compiled and its requirements as ranks, for evaluate. */
export interface CompiledRule {
  readonly rule: PolicyRule;
  readonly paths: readonly Glob[];
  readonly agents: readonly Glob[] | null;
  readonly dryRun: boolean;
  /** -2 when not required (so that `null`'s -1 passes). */
  readonly clearanceRank: number;
  readonly authnRank: number;
  readonly maxFreshness: number;
  readonly maxDepth: number;
  readonly minPosture: number;
  readonly exposureRank: number;
  readonly agentTypes: readonly AgentType[] | null;
}

export interface Policy {
  readonly rules: readonly PolicyRule[];
  /** Where it was read from (a file name), for messages. */
  readonly source: string | undefined;
  /** Internal to trust-vector: the compiled rules and their index. */
  readonly compiled: { readonly rules: readonly CompiledRule[]; readonly index: RuleIndex };
}

export interface PolicyProblem {
  /** `rules[2].require.clearance`; empty for the whole document. */
  readonly path: string;
  /** 1-based line, when the policy came from YAML text. */
  readonly line: number | undefined;
  readonly message: string;
}

/** `file:line: path: message`, parts that are unknown left out. */
export function formatPolicyProblem(p: PolicyProblem, file?: string): string {
  const where = file === undefined ? (p.line === undefined ? '' : `line ${p.line}: `) : p.line === undefined ? `${file}: ` : `${file}:${p.line}: `;
  return `${where}${p.path === '' ? '' : `${p.path}: `}${p.message}`;
}

/** A policy was refused: `problems` holds every problem found, already safe to print. */
export class PolicyError extends Error {
  readonly code = 'POLICY_INVALID';
  constructor(
    readonly problems: readonly PolicyProblem[],
    readonly file: string | undefined,
  ) {
    super(
      `${file ?? 'policy'}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n` +
        problems.map((p) => `  ${formatPolicyProblem(p, file)}`).join('\n'),
    );
  }
  override get name(): string {
    return 'PolicyError';
  }
}

/** Bounds on hostile or runaway files; far above any hand-written policy. */
export const POLICY_LIMITS = Object.freeze({
  maxTextBytes: 4 * 1024 * 1024,
  maxRules: 10_000,
  maxGlobsPerRule: 256,
  maxIdLength: 63,
  maxDescriptionLength: 1024,
});

const ROOT_KEYS = ['rules'] as const;
const RULE_KEYS = ['id', 'description', 'paths', 'agents', 'require', 'mode'] as const;
const RULE_ID = /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;

type Segment = string | number;
type Mapping = Readonly<Record<string, unknown>>;


function formatPath(path: readonly Segment[]): string {
  let out = '';
  for (const s of path) out += typeof s === 'number' ? `[${s}]` : out === '' ? s : `.${s}`;
  return out;
}

/**
 * What was found, faithfully (`.inf`, `.nan`, `-0`), a string quoted and cut. A policy holds
 * no secret, but a key file named as the policy by mistake does: key-like text is not shown.
 */
function got(v: unknown): string {
  return describeYamlValue(v, looksLikeKeyText);
}

class Reporter {
  readonly problems: PolicyProblem[] = [];
  constructor(private readonly locate: (path: readonly Segment[]) => number | undefined) {}

  report(path: readonly Segment[], message: string): void {
    this.problems.push({ path: formatPath(path), line: this.locate(path), message });
  }

  /**
   * Refuses keys outside `known`, naming the nearest known key, and known keys written with
   * no value (NULL_VALUE_MESSAGE): the readers then take such a key as already reported.
   */
  keys(value: Mapping, path: readonly Segment[], known: readonly string[]): void {
    for (const key of Object.keys(value)) {
      if (known.includes(key)) {
        if (value[key] === null) this.report([...path, key], NULL_VALUE_MESSAGE);
        continue;
      }
      const guess = closest(key, known);
      this.report([...path, key], `unknown key${guess === undefined ? '' : `: did you mean '${guess}'?`} (known: ${known.join(', ')})`);
    }
  }

  oneOf<T extends string>(value: unknown, path: readonly Segment[], allowed: readonly T[]): T | undefined {
    if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
    const guess = typeof value === 'string' ? closest(value, allowed) : undefined;
    this.report(path, `must be one of ${allowed.join(', ')}; got ${got(value)}${guess === undefined ? '' : `: did you mean ${guess}?`}`);
    return undefined;
  }

  integer(value: unknown, path: readonly Segment[], fix: string): number | undefined {
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
    this.report(path, `must be ${fix}; got ${got(value)}`);
    return undefined;
  }
}

/**
 * Parses and compiles a policy from YAML text. Throws PolicyError listing every problem,
 * each with its line; never returns a partial policy.
 */
export function parsePolicy(text: string, file?: string): Policy {
  if (text.length > POLICY_LIMITS.maxTextBytes) {
    throw new PolicyError([{ path: '', line: undefined, message: `is larger than ${POLICY_LIMITS.maxTextBytes} bytes: split or shorten it` }], file);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const lineOf = (offset: number | undefined): number | undefined => (offset === undefined ? undefined : lineCounter.linePos(offset).line);
  const faults = yamlFaults(doc);
  if (faults.length > 0) {
    // The library's messages quote source lines; its code and position are enough.
    throw new PolicyError(
      faults.map((e) => ({
        path: '',
        line: e.linePos?.[0].line ?? lineOf(e.pos[0]),
        message:
          e.code === 'DUPLICATE_KEY'
            ? 'a key appears twice in one mapping: keep one'
            : e.code === 'MULTIPLE_DOCS'
              ? 'holds more than one YAML document: a policy is one document with `rules:`'
              : yamlFaultMessage(e, text),
      })),
      file,
    );
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch {
    throw new PolicyError([{ path: '', line: undefined, message: 'YAML could not be resolved (too many or circular aliases): write the values out' }], file);
  }
  const locate = (path: readonly Segment[]): number | undefined => {
    // The node itself, or the nearest enclosing node when it is missing.
    for (let len = path.length; len >= 0; len--) {
      const node = len === 0 ? doc.contents : doc.getIn(path.slice(0, len), true);
      const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
      if (range !== undefined) return lineOf(range[0]);
    }
    return undefined;
  };
  return compile(value, file, locate);
}

/**
 * Compiles a policy from plain data (parsed JSON, or a test's object literal). Throws
 * PolicyError as parsePolicy does, without line numbers.
 */
export function compilePolicy(value: unknown, source?: string): Policy {
  return compile(value, source, () => undefined);
}

function compile(value: unknown, source: string | undefined, locate: (path: readonly Segment[]) => number | undefined): Policy {
  const r = new Reporter(locate);
  const rules: PolicyRule[] = [];
  const compiled: CompiledRule[] = [];
  if (value === null || value === undefined) {
    r.report([], 'holds no policy: write `rules:` with a list of rules (`rules: []` denies every request)');
  } else if (!isMapping(value)) {
    r.report([], `must be a mapping with \`rules:\`; got ${got(value)}`);
  } else {
    r.keys(value, [], ROOT_KEYS);
    const list = value.rules;
    if (list === null) {
      // Reported by keys().
    } else if (list === undefined) r.report(['rules'], 'is required: a list of rules (`rules: []` denies every request)');
    else if (!Array.isArray(list)) r.report(['rules'], `must be a list of rules; got ${got(list)}`);
    else if (list.length > POLICY_LIMITS.maxRules) r.report(['rules'], `holds ${list.length} rules, more than ${POLICY_LIMITS.maxRules}: use broader globs`);
    else {
      const ids = new Map<string, number>();
      const globs: GlobCache = new Map();
      list.forEach((item, i) => {
        // Checked on the raw item, so that a duplicate is reported even beside other problems.
        const id = isMapping(item) ? item.id : undefined;
        if (typeof id === 'string' && id.length <= POLICY_LIMITS.maxIdLength && RULE_ID.test(id)) {
          const earlier = ids.get(id);
          if (earlier !== undefined) {
            r.report(['rules', i, 'id'], `'${id}' is also the id of rules[${earlier}]: ids must be unique (decisions, audit lines and metrics name a rule by its id)`);
          } else ids.set(id, i);
        }
        const result = compileRule(item, i, r, locate, globs);
        if (result === undefined) return;
        rules.push(result.rule);
        compiled.push(result);
      });
    }
  }
  if (r.problems.length > 0) throw new PolicyError(r.problems, source);
  return Object.freeze({
    rules: Object.freeze(rules),
    source,
    compiled: Object.freeze({ rules: Object.freeze(compiled), index: new RuleIndex(compiled) }),
  });
}

/** One Glob per distinct source in a policy, so that its last-answer memo serves every rule that repeats it. */
type GlobCache = Map<string, Glob>;

function compileGlobs(value: unknown, path: readonly Segment[], r: Reporter, agent: boolean, cache: GlobCache): Glob[] | undefined {
  const what = agent ? 'agentId globs, e.g. ["payments/*"]' : 'secret-path globs, e.g. ["payments/*"]';
  if (!Array.isArray(value)) {
    r.report(path, `must be a list of ${what}; got ${got(value)}`);
    return undefined;
  }
  if (value.length === 0) {
    r.report(path, agent ? 'is empty, which would match no caller: list agentId globs, or remove `agents` to accept any caller' : `is empty, which would match nothing: list ${what}`);
    return undefined;
  }
  if (value.length > POLICY_LIMITS.maxGlobsPerRule) {
    r.report(path, `holds ${value.length} globs, more than ${POLICY_LIMITS.maxGlobsPerRule}: use broader globs or split the rule`);
    return undefined;
  }
  const globs: Glob[] = [];
  let ok = true;
  value.forEach((item, i) => {
    const key = typeof item === 'string' ? `${agent ? 'a' : 'p'}:${item}` : undefined;
    const glob = (key === undefined ? undefined : cache.get(key)) ?? Glob.compile(item, { agent });
    if (typeof glob !== 'string' && key !== undefined) cache.set(key, glob);
    if (typeof glob === 'string') {
      r.report([...path, i], `${glob}; got ${got(item)}`);
      ok = false;
    } else {
      globs.push(glob);
    }
  });
  return ok ? globs : undefined;
}

function compileRule(item: unknown, i: number, r: Reporter, locate: (path: readonly Segment[]) => number | undefined, cache: GlobCache): CompiledRule | undefined {
  const at: Segment[] = ['rules', i];
  if (!isMapping(item)) {
    r.report(at, `must be a mapping with id, paths and require; got ${got(item)}`);
    return undefined;
  }
  const before = r.problems.length;
  r.keys(item, at, RULE_KEYS);

  // A key with no value was reported by keys(); each reader below skips it.
  let id: string | undefined;
  if (item.id === null) {
    // reported
  } else if (item.id === undefined) r.report([...at, 'id'], 'is required: a name for the rule, e.g. payments-db (decisions, audit lines and metrics name the rule by it)');
  else if (typeof item.id !== 'string' || item.id.length > POLICY_LIMITS.maxIdLength || !RULE_ID.test(item.id)) {
    r.report([...at, 'id'], `must be 1 to ${POLICY_LIMITS.maxIdLength} letters, digits, '.', '_' or '-', starting and ending with a letter or digit; got ${got(item.id)}`);
  } else id = item.id;

  let description: string | undefined;
  if (item.description !== undefined && item.description !== null) {
    if (typeof item.description !== 'string' || item.description.length > POLICY_LIMITS.maxDescriptionLength) {
      r.report([...at, 'description'], `must be text of at most ${POLICY_LIMITS.maxDescriptionLength} characters; got ${got(item.description)}`);
    } else description = item.description;
  }

  let paths: Glob[] | undefined;
  if (item.paths === null) {
    // reported
  } else if (item.paths === undefined) r.report([...at, 'paths'], 'is required: a list of secret-path globs, e.g. ["payments/*"]');
  else paths = compileGlobs(item.paths, [...at, 'paths'], r, false, cache);

  // `agents: ~` is refused (by keys()), never read as absent: that would select every caller.
  let agents: Glob[] | null = null;
  if (item.agents !== undefined && item.agents !== null) agents = compileGlobs(item.agents, [...at, 'agents'], r, true, cache) ?? null;

  let mode: RuleMode = 'enforce';
  if (item.mode !== undefined && item.mode !== null) mode = r.oneOf(item.mode, [...at, 'mode'], RULE_MODES) ?? 'enforce';

  const require = compileRequirements(item.require, [...at, 'require'], r);

  if (r.problems.length !== before || id === undefined || paths === undefined || require === undefined) return undefined;
  const rule: PolicyRule = Object.freeze({
    id,
    index: i,
    description,
    paths: Object.freeze(paths.map((g) => g.source)),
    agents: agents === null ? null : Object.freeze(agents.map((g) => g.source)),
    require,
    mode,
    line: locate(at),
  });
  return Object.freeze({
    rule,
    paths: Object.freeze(paths),
    agents: agents === null ? null : Object.freeze(agents),
    dryRun: mode === 'dry-run',
    clearanceRank: require.clearance === undefined ? -2 : clearanceRank(require.clearance),
    authnRank: require.authnStrength === undefined ? -1 : authnStrengthRank(require.authnStrength),
    maxFreshness: require.maxFreshnessSeconds ?? -1,
    maxDepth: require.maxDelegationDepth ?? -1,
    minPosture: require.minDevicePosture ?? -1,
    exposureRank: networkExposureRank(require.networkExposure),
    agentTypes: require.agentTypes ?? null,
  });
}

function compileRequirements(value: unknown, at: readonly Segment[], r: Reporter): Requirements | undefined {
  const none: Requirements = Object.freeze({
    clearance: undefined,
    authnStrength: undefined,
    maxFreshnessSeconds: undefined,
    maxDelegationDepth: undefined,
    minDevicePosture: undefined,
    networkExposure: DEFAULT_NETWORK_EXPOSURE,
    agentTypes: undefined,
  });
  if (value === undefined) return none;
  // `require: ~` was reported by the rule's keys(): it requires nothing only when absent.
  if (value === null) return undefined;
  if (!isMapping(value)) {
    r.report(at, `must be a mapping of requirements (${REQUIREMENTS.join(', ')}); got ${got(value)}`);
    return undefined;
  }
  const before = r.problems.length;
  r.keys(value, at, REQUIREMENTS);
  const present = (key: RequirementName): boolean => value[key] !== undefined && value[key] !== null;

  const clearance = present('clearance') ? r.oneOf(value.clearance, [...at, 'clearance'], CLEARANCES) : undefined;
  const authnStrength = present('authnStrength') ? r.oneOf(value.authnStrength, [...at, 'authnStrength'], AUTHN_STRENGTHS) : undefined;
  const maxFreshnessSeconds = present('maxFreshnessSeconds')
    ? r.integer(value.maxFreshnessSeconds, [...at, 'maxFreshnessSeconds'], 'a whole number of seconds >= 0, e.g. 3600 for an hour')
    : undefined;
  const maxDelegationDepth = present('maxDelegationDepth')
    ? r.integer(value.maxDelegationDepth, [...at, 'maxDelegationDepth'], 'a whole number >= 0 (0: no delegation)')
    : undefined;
  let minDevicePosture: number | undefined;
  if (present('minDevicePosture')) {
    const p = value.minDevicePosture;
    if (typeof p === 'number' && p >= 0 && p <= 1) minDevicePosture = p;
    else r.report([...at, 'minDevicePosture'], `must be a number from 0 to 1, e.g. 0.5; got ${got(p)}`);
  }
  const networkExposure = present('networkExposure')
    ? r.oneOf(value.networkExposure, [...at, 'networkExposure'], NETWORK_EXPOSURES)
    : DEFAULT_NETWORK_EXPOSURE;
  let agentTypes: AgentType[] | undefined;
  if (present('agentTypes')) {
    const list = value.agentTypes;
    if (!Array.isArray(list) || list.length === 0) {
      r.report([...at, 'agentTypes'], `must be a non-empty list of agent types (${AGENT_TYPES.join(', ')}); leave it out to accept any; got ${got(list)}`);
    } else {
      agentTypes = [];
      list.forEach((t, j) => {
        const kind = r.oneOf(t, [...at, 'agentTypes', j], AGENT_TYPES);
        if (kind !== undefined && !agentTypes!.includes(kind)) agentTypes!.push(kind);
      });
    }
  }
  if (r.problems.length !== before) return undefined;
  return Object.freeze({
    clearance,
    authnStrength,
    maxFreshnessSeconds,
    maxDelegationDepth,
    minDevicePosture,
    networkExposure: networkExposure!,
    agentTypes: agentTypes === undefined ? undefined : Object.freeze(agentTypes),
  });
}
