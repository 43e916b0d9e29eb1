/**
 * What the secrets gateway of a gateway scenario serves (docs/gateway.md, docs/policy.md): a
 * policy that allows the client's agentId for the family of the scenario's allowedPaths and
 * denies it the family of its deniedPaths, and a file backend holding every path of both, so
 * a denied request is a policy decision (403) and never a missing secret (404).
 *
 * A family is a path's first segment with `/**`. The allowed family's rule requires the
 * client's own clearance; the denied family's requires `secrets-only`, above it. Both rules
 * name the client in `agents`, so the 403 comes from a failed requirement that the audit line
 * names, as a real deny would, and not from no rule matching.
 */
import type { GatewayScenario } from '../k6/contract.js';

/** The first segment of each path, as a `segment/**` glob, in order, without repeats. */
function families(paths: readonly string[]): string[] {
  return [...new Set(paths.map((p) => `${p.split('/')[0]!}/**`))];
}

/**
 * The policy and the secrets file (both YAML) for `s`, with the client `clientAgent` at
 * clearance `clientClearance` (its registry entry's). Throws when a family holds both
 * allowed and denied paths: such a scenario would ask the policy for two answers at once.
 */
export function gatewayFiles(s: GatewayScenario, clientAgent: string, clientClearance: 'open' | 'internal' | 'profile-scoped'): { policy: string; secrets: string } {
  const allowed = families(s.allowedPaths);
  const denied = families(s.deniedPaths);
  const both = allowed.filter((f) => denied.includes(f));
  if (both.length > 0) throw new Error(`${s.name}: ${both.join(', ')} holds allowed and denied paths: give deniedPaths a first segment of their own`);
  const rule = (id: string, paths: string[], clearance: string): string =>
    `  - id: ${id}\n    paths: ${JSON.stringify(paths)}\n    agents: [${JSON.stringify(clientAgent)}]\n    require: {clearance: ${clearance}}\n`;
  const policy = `rules:\n${rule('bench-allowed', allowed, clientClearance)}${rule('bench-denied', denied, 'secrets-only')}`;
  const secrets = [...s.allowedPaths, ...s.deniedPaths].map((p, i) => `${p}: {username: bench, password: "bench-value-${i}"}\n`).join('');
  return { policy, secrets };
}
