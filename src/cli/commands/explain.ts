import { parseArgs } from 'node:util';
import { FileReadError, readRegularFileSync } from '../../files/index.js';
import { buildSnapshot, formatProblem, parseRegistryYaml, type ParsedRegistryFile, type RegistryEntry, type RegistryProblem } from '../../registry-sync/index.js';
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

const USAGE = `explain --policy FILE --registry FILE [--network-exposure ${NETWORK_EXPOSURES.join('|')}] [--gateway AGENT] [--now TIME] [--json] AGENT PATH`;
const HELP = `usage: noisemesh ${USAGE}

The decision the secrets gateway would make for AGENT (<namespace>/<workload>) asking for
PATH, with every requirement of the deciding rule and the caller's value for it.

  --policy FILE              the gateway's policy (YAML)
  --registry FILE            ClearanceRegistry documents, read as the proxy reads them
  --network-exposure E       how the request reaches the gateway:
                               encrypted (default): through the mesh, as AGENT
                               loopback: on gateway.loopback.port, which only the gateway's
                                 own pod reaches: needs --gateway, and AGENT, if given, must
                                 be that same agentId
                               plaintext: unmeshed, the caller is anonymous; AGENT is not
                                 used and may be left out (PATH alone)
  --gateway AGENT            the gateway's own agentId (its identity.agentId): the caller
                             of a loopback request
  --now TIME                 evaluate at this RFC 3339 time instead of now (freshness)
  --json                     one JSON document on stdout

When the registry holds several valid entries for AGENT (one per pod), each is evaluated;
an entry the registry refuses (a conflict, a bad field) is named with why, as the gateway
would not know the caller.
Exit status: 0 allowed (every entry), 1 denied (any entry, or no valid entry),
2 usage error, a file that cannot be read or is invalid, or a request that cannot happen
(a loopback request from an agent other than the gateway).
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
  /** The errors that refused the peers claiming `agentId`, formatted: why it has no entry. */
  refusedClaims(agentId: string): string[];
}

function loadRegistry(file: string): LoadedRegistry {
  const parsed = parseRegistryYaml(readBounded(file, '--registry', MAX_REGISTRY_BYTES), file);
  if (!parsed.ok) {
    const first = parsed.problems[0];
    throw new UsageError(`invalid registry: ${first === undefined ? file : formatProblem(first)}`);
  }
  const snapshot = buildSnapshot(parsed.objects, { origin: `file ${file}` }, parsed.problems);
  const errors = snapshot.problems.filter((p) => p.severity === 'error');
  return { entries: snapshot.entries, problems: errors.length, refusedClaims: (agentId) => refusedClaims(parsed, snapshot.entries, errors, agentId) };
}

/**
 * The errors reported at the peers that claim `agentId`, whether refused by a check of their
 * own (a field) or across entries (a key, installation or address conflict): a peer that is
 * written in the file but refused is not "no entry", and the user needs to know why.
 */
function refusedClaims(parsed: ParsedRegistryFile, entries: readonly RegistryEntry[], errors: readonly RegistryProblem[], agentId: string): string[] {
  const places: { document: string; path: string }[] = [];
  // Entries in force are no refused claim, whatever problem is reported at them.
  const inForce = new Set(entries.filter((e) => e.agentId === agentId).map((e) => `${e.source.namespace}/${e.source.name} ${e.source.path}`));
  for (const o of parsed.objects) {
    for (const e of o.entries) if (e.agentId === agentId && !inForce.has(`${o.label} ${e.source.path}`)) places.push({ document: o.label, path: e.source.path });
    for (const b of o.broken) if (b.agentId === agentId) places.push({ document: o.label, path: b.path });
  }
  return errors
    .filter((p) => places.some((at) => at.document === p.document && (p.path === at.path || p.path.startsWith(`${at.path}.`) || p.path.startsWith(`${at.path}[`))))
    .map(formatProblem);
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
    const caller = exposure === 'plaintext' ? 'anonymous plaintext caller' : exposure === 'loopback' ? `${agent} (the gateway's own pod, over loopback)` : agent;
    out.push(`${caller} -> ${path}: ${verdict}${by}`);
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
        gateway: { type: 'string' },
        now: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    const { values, positionals } = parsed;
    if (values.policy === undefined) throw new UsageError(`--policy FILE is required; usage: noisemesh ${USAGE}`);
    if (values.registry === undefined) throw new UsageError(`--registry FILE is required; usage: noisemesh ${USAGE}`);
    const exposure = values['network-exposure'] as string;
    if (!(NETWORK_EXPOSURES as readonly string[]).includes(exposure)) {
      throw new UsageError(`--network-exposure must be one of ${NETWORK_EXPOSURES.join(', ')}; got ${JSON.stringify(exposure.slice(0, 40))}`);
    }
    const gateway = values.gateway;
    if (gateway !== undefined && !isAgentId(gateway)) throw new UsageError(`--gateway must be the gateway's agentId, <namespace>/<workload> in lower case; got ${JSON.stringify(gateway.slice(0, 80))}`);
    if (gateway !== undefined && exposure !== 'loopback') throw new UsageError('--gateway names the caller of a loopback request: use it with --network-exposure loopback, or leave it out');
    // The caller as the gateway would see it. Plaintext: anonymous, whatever AGENT says (it
    // may be left out). Loopback: only the gateway's own pod reaches that listener, so the
    // caller is the gateway's own entry (its key), never another agent.
    let agent: string;
    let path: string;
    if (exposure === 'plaintext' && positionals.length === 1) {
      agent = 'anonymous';
      path = positionals[0]!;
    } else if (positionals.length === 1 && exposure === 'loopback' && gateway !== undefined) {
      agent = gateway;
      path = positionals[0]!;
    } else if (positionals.length === 2) {
      [agent, path] = positionals as [string, string];
      if (exposure !== 'plaintext' && !isAgentId(agent)) throw new UsageError(`AGENT must be <namespace>/<workload> in lower case, e.g. payments/api; got ${JSON.stringify(agent.slice(0, 80))}`);
    } else {
      throw new UsageError(`name an AGENT and a PATH (PATH alone with --network-exposure plaintext); usage: noisemesh ${USAGE}`);
    }
    if (exposure === 'loopback') {
      if (gateway === undefined) {
        throw new UsageError(
          "--network-exposure loopback: only the gateway's own pod reaches its loopback listener (gateway.loopback.port, 127.0.0.1), so the caller is always the gateway: name its agentId with --gateway AGENT",
        );
      }
      if (agent !== gateway) {
        throw new UsageError(
          `--network-exposure loopback: a loopback request comes only from the gateway's own pod (${gateway}), never from ${agent}: the gateway would never see this request; ask for ${agent} with --network-exposure encrypted (through the mesh)`,
        );
      }
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
      notes.push(
        positionals.length === 1
          ? 'note: a plaintext request proves no identity: the caller was evaluated as anonymous'
          : `note: a plaintext request proves no identity, so ${agent} was evaluated as an anonymous caller; its registry entries do not count`,
      );
    } else if (valid.length > 0) {
      callers = valid;
      if (valid.length > 1) notes.push(`note: ${agent} has ${valid.length} valid registry entries (one per pod); each was evaluated`);
      if (all.length > valid.length) notes.push(`note: ${all.length - valid.length} revoked or superseded entr${all.length - valid.length === 1 ? 'y' : 'ies'} of ${agent} would be refused outright`);
    } else if (all.length > 0) {
      callers = all;
    } else {
      callers = [undefined];
      const refused = registry.refusedClaims(agent);
      if (refused.length > 0) {
        notes.push(`note: the registry's entr${refused.length === 1 ? 'y' : 'ies'} for ${agent} ${refused.length === 1 ? 'was' : 'were'} refused, so a mesh request from it would come from an unknown key:`);
        notes.push(...refused.map((line) => `  ${line}`));
      } else {
        notes.push(`note: the registry has no entry for ${agent}: a mesh request from it would come from an unknown key`);
      }
    }
    if (exposure !== 'plaintext' && valid.length > 0) {
      const refused = registry.refusedClaims(agent);
      if (refused.length > 0) notes.push(`note: other entries for ${agent} were refused:`, ...refused.map((line) => `  ${line}`));
    }
    if (exposure === 'loopback') notes.push(`note: a loopback request comes only from the gateway's own pod; ${agent} was evaluated as the gateway`);
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
