import { parseArgs } from 'node:util';
import { FileReadError, readRegularFileSync } from '../../files/index.js';
import { buildSnapshot, formatProblem, parseRegistryYaml, type RegistryEntry } from '../../registry-sync/index.js';
import {
  NETWORK_EXPOSURES,
  POLICY_LIMITS,
  PolicyError,
  decide,
  isAgentId,
  parsePolicy,
  requirementChecks,
  type Decision,
  type NetworkExposure,
  type Policy,
  type Reason,
  type RequirementCheck,
  type TrustVector,
} from '../../trust-vector/index.js';
import type { Command } from '../command.js';
import { UsageError } from '../usage-error.js';

const USAGE = `explain --policy FILE --registry FILE [--network-exposure ${NETWORK_EXPOSURES.join('|')}] [--now TIME] [--json] AGENT PATH`;
const HELP = `usage: noisemesh ${USAGE}

The decision the secrets gateway would make for AGENT (<namespace>/<workload>) asking for
PATH, with every requirement of the deciding rule and the caller's value for it.

  --policy FILE              the gateway's policy (YAML)
  --registry FILE            ClearanceRegistry documents, read as the proxy reads them
  --network-exposure E       how the request reaches the gateway: loopback, encrypted
                             (default: through the mesh) or plaintext (unmeshed: the
                             caller is anonymous and AGENT is not used)
  --now TIME                 evaluate at this RFC 3339 time instead of now (freshness)
  --json                     one JSON document on stdout

When the registry holds several valid entries for AGENT (one per pod), each is evaluated.
Exit status: 0 allowed (every entry), 1 denied (any entry, or no valid entry),
2 usage error or a file that cannot be read or is invalid.
`;

/** The registry file source's bound; a policy has its own (POLICY_LIMITS). */
const MAX_REGISTRY_BYTES = 16 * 1024 * 1024;

/**
 * Reads a whole file of at most `max` bytes as UTF-8, through src/files (regular files only,
 * opened without blocking), or throws a one-line UsageError naming the option and the fix.
 */
function readBounded(file: string, option: string, max: number): string {
  let bytes: Buffer;
  try {
    bytes = readRegularFileSync(file, { maxBytes: max });
  } catch (err) {
    if (err instanceof FileReadError) throw new UsageError(err.explain(option));
    throw err;
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`${option}: ${file} is not UTF-8 text: save it as UTF-8`);
  }
}

function loadPolicy(file: string): Policy {
  const text = readBounded(file, '--policy', POLICY_LIMITS.maxTextBytes);
  try {
    return parsePolicy(text, file);
  } catch (err) {
    if (err instanceof PolicyError) throw new UsageError(`invalid policy ${err.message}`);
    throw err;
  }
}

interface LoadedRegistry {
  readonly entries: readonly RegistryEntry[];
  readonly problems: number;
}

function loadRegistry(file: string): LoadedRegistry {
  const parsed = parseRegistryYaml(readBounded(file, '--registry', MAX_REGISTRY_BYTES), file);
  if (!parsed.ok) {
    const first = parsed.problems[0];
    throw new UsageError(`invalid registry: ${first === undefined ? file : formatProblem(first)}`);
  }
  const snapshot = buildSnapshot(parsed.objects, { origin: `file ${file}` }, parsed.problems);
  return { entries: snapshot.entries, problems: snapshot.problems.filter((p) => p.severity === 'error').length };
}

/** One evaluated caller: which registry entry (if any) and what the gateway decided. */
interface Explained {
  readonly entry: RegistryEntry | undefined;
  readonly decision: Decision;
  readonly checks: readonly RequirementCheck[];
}

function entryLabel(e: RegistryEntry): string {
  const where = e.source.file === undefined ? '' : `${e.source.file}${e.source.line === undefined ? '' : `:${e.source.line}`} `;
  const state = e.superseded ? ', superseded' : e.revoked ? ', revoked' : '';
  return `installation ${e.installationId}, generation ${e.generation}${state} (${where}${e.source.namespace}/${e.source.name} ${e.source.path})`;
}

function entryJson(e: RegistryEntry): Record<string, unknown> {
  return {
    agentId: e.agentId,
    installationId: e.installationId,
    generation: e.generation.toString(),
    revoked: e.revoked,
    superseded: e.superseded,
    file: e.source.file ?? null,
    line: e.source.line ?? null,
    path: `${e.source.namespace}/${e.source.name} ${e.source.path}`,
  };
}

function show(v: unknown): string {
  if (v === null) return 'none';
  if (Array.isArray(v)) return v.join(', ');
  return String(v);
}

function vectorLines(v: TrustVector): string[] {
  const rows: [string, string][] = [
    ['authnStrength', v.authnStrength],
    ['authzFreshness', v.authzFreshness === null ? 'none' : `${v.authzFreshness} s`],
    ['delegationDepth', show(v.delegationDepth)],
    ['devicePosture', String(v.devicePosture)],
    ['networkExposure', v.networkExposure],
    ['agentType', v.agentType === null ? 'none' : `${v.agentType.kind} (${v.agentType.unit})`],
    ['clearance', v.clearance ?? 'none'],
  ];
  return rows.map(([k, value]) => `    ${k.padEnd(17)}${value}`);
}

function table(rows: readonly (readonly string[])[], indent: string): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => indent + r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]! + 2))).join('').trimEnd());
}

function reasonLines(reasons: readonly Reason[], indent: string): string[] {
  return reasons.map((r) => `${indent}- ${r.message}`);
}

function renderText(policy: Policy, agent: string, path: string, exposure: NetworkExposure, now: number, results: readonly Explained[], notes: readonly string[]): string {
  const out: string[] = [];
  for (const { entry, decision, checks } of results) {
    const rule = decision.ruleId === null ? undefined : policy.rules.find((r) => r.id === decision.ruleId);
    const verdict = decision.allow ? 'ALLOW' : 'DENY';
    const by = rule === undefined ? ' (no rule decided)' : ` by rule ${rule.id}${rule.line === undefined ? '' : ` (${policy.source ?? 'policy'}:${rule.line})`}`;
    out.push(`${exposure === 'plaintext' ? 'anonymous plaintext caller' : agent} -> ${path}: ${verdict}${by}`);
    if (entry !== undefined) out.push(`  registry entry: ${entryLabel(entry)}`);
    if (decision.trustVector !== null) {
      out.push(`  trust vector (${new Date(now).toISOString()}):`);
      out.push(...vectorLines(decision.trustVector));
    }
    if (checks.length > 0) {
      out.push(`  requirements of rule ${decision.ruleId}:`);
      out.push(...table([['requirement', 'required', 'actual', 'result'], ...checks.map((c) => [c.requirement, show(c.required), show(c.actual), c.ok ? 'ok' : 'FAILED'])], '    '));
    }
    if (!decision.allow) {
      out.push('  why:');
      out.push(...reasonLines(decision.reasons, '    '));
    }
    for (const d of decision.dryRun) {
      out.push(`  dry-run rule ${d.ruleId} (not enforced) would ${d.allow ? 'allow' : 'deny'}${d.allow ? '' : ':'}`);
      out.push(...reasonLines(d.reasons, '    '));
    }
    out.push('');
  }
  out.push(...notes);
  return `${out.join('\n').trimEnd()}\n`;
}

export const explain: Command = {
  usage: HELP,
  async run(args) {
    const parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        policy: { type: 'string' },
        registry: { type: 'string' },
        'network-exposure': { type: 'string', default: 'encrypted' },
        now: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    const { values, positionals } = parsed;
    if (values.policy === undefined) throw new UsageError(`--policy FILE is required; usage: noisemesh ${USAGE}`);
    if (values.registry === undefined) throw new UsageError(`--registry FILE is required; usage: noisemesh ${USAGE}`);
    if (positionals.length !== 2) throw new UsageError(`name an AGENT and a PATH; usage: noisemesh ${USAGE}`);
    const [agent, path] = positionals as [string, string];
    if (!isAgentId(agent)) throw new UsageError(`AGENT must be <namespace>/<workload> in lower case, e.g. payments/api; got ${JSON.stringify(agent.slice(0, 80))}`);
    const exposure = values['network-exposure'] as string;
    if (!(NETWORK_EXPOSURES as readonly string[]).includes(exposure)) {
      throw new UsageError(`--network-exposure must be one of ${NETWORK_EXPOSURES.join(', ')}; got ${JSON.stringify(exposure.slice(0, 40))}`);
    }
    let now = Date.now();
    if (values.now !== undefined) {
      now = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.test(values.now) ? Date.parse(values.now) : Number.NaN;
      if (Number.isNaN(now)) throw new UsageError(`--now must be an RFC 3339 time with a zone, e.g. 2026-11-23T09:00:00Z; got ${JSON.stringify(values.now.slice(0, 40))}`);
    }

    const policy = loadPolicy(values.policy);
    const registry = loadRegistry(values.registry);
    const session = { networkExposure: exposure as NetworkExposure };
    const notes: string[] = [];

    let callers: (RegistryEntry | undefined)[];
    const all = registry.entries.filter((e) => e.agentId === agent);
    const valid = all.filter((e) => !e.revoked);
    if (exposure === 'plaintext') {
      // An unmeshed request carries no identity: the gateway sees an anonymous caller.
      callers = [undefined];
      notes.push(`note: a plaintext request proves no identity, so ${agent} was evaluated as an anonymous caller; its registry entries do not count`);
    } else if (valid.length > 0) {
      callers = valid;
      if (valid.length > 1) notes.push(`note: ${agent} has ${valid.length} valid registry entries (one per pod); each was evaluated`);
      if (all.length > valid.length) notes.push(`note: ${all.length - valid.length} revoked or superseded entr${all.length - valid.length === 1 ? 'y' : 'ies'} of ${agent} would be refused outright`);
    } else if (all.length > 0) {
      callers = all;
    } else {
      callers = [undefined];
      notes.push(`note: the registry has no entry for ${agent}: a mesh request from it would come from an unknown key`);
    }
    if (registry.problems > 0) notes.push(`warning: the registry has ${registry.problems} problem(s); \`noisemesh registry validate ${values.registry}\` lists them`);

    const results: Explained[] = callers.map((entry) => {
      const decision = decide(policy, { entry, session, now, path });
      const checks = decision.ruleId !== null && decision.trustVector !== null ? requirementChecks(policy, decision.ruleId, decision.trustVector) : [];
      return { entry, decision, checks };
    });
    const allow = results.every((r) => r.decision.allow);

    if (values.json) {
      const document = {
        agent,
        path,
        networkExposure: exposure,
        now: new Date(now).toISOString(),
        allow,
        decisions: results.map((r) => ({ entry: r.entry === undefined ? null : entryJson(r.entry), decision: r.decision, checks: r.checks })),
        notes,
      };
      process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
    } else {
      process.stdout.write(renderText(policy, agent, path, exposure as NetworkExposure, now, results, notes));
    }
    return allow ? 0 : 1;
  },
};
