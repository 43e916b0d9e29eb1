import { CHAIN_PREFIX, type CaptureRuleSet } from './rules.js';

/** The nat table as `iptables-save -t nat` prints it: what install and cleanup reconcile against. */
export interface NatTable {
  /** Every chain, built-in and user-defined. */
  readonly chains: readonly string[];
  /** Every `-A CHAIN ...` line, in order, with its chain. */
  readonly rules: readonly { readonly chain: string; readonly line: string }[];
}

export const EMPTY_NAT_TABLE: NatTable = Object.freeze({ chains: Object.freeze([]), rules: Object.freeze([]) });

const BUILT_IN_CHAINS = new Set(['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING']);
const JUMP_TO_OURS = new RegExp(`\\s-[jg] ${CHAIN_PREFIX}\\S+(\\s|$)`);

/** Reads the `*nat` section of iptables-save output; other tables and comments are ignored. */
export function parseNatTable(saveOutput: string): NatTable {
  const chains: string[] = [];
  const rules: { chain: string; line: string }[] = [];
  let table: string | undefined;
  for (const raw of saveOutput.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) table = line.slice(1);
    else if (table !== 'nat') continue;
    else if (line.startsWith(':')) chains.push(line.slice(1).split(/\s+/)[0]!);
    else if (line.startsWith('-A ')) rules.push({ chain: line.split(/\s+/)[1]!, line });
  }
  return { chains, rules };
}

/** The table as it will be once `ruleSet` is installed into an empty nat table. */
export function natTableOf(ruleSet: CaptureRuleSet): NatTable {
  const rules = [...ruleSet.jumps, ...ruleSet.rules].map((line) => ({ chain: line.split(' ')[1]!, line }));
  return { chains: [...BUILT_IN_CHAINS, ...ruleSet.chains], rules };
}

/**
 * The `iptables-restore --noflush` input that turns `current` into a table holding exactly
 * `ruleSet` of ours, whatever was there before, in one atomic commit:
 *
 * - each of our chains is declared, which with --noflush creates it or flushes it, then filled;
 * - each wanted jump from a built-in chain is appended only if `current` lacks it, and every
 *   other jump into our chains (duplicates, jumps of an older rule set) is deleted;
 * - our chains the rule set no longer has (inbound capture switched off) are flushed, then deleted.
 *
 * So running install twice leaves one copy of each rule, and cleanup is installing the empty
 * rule set. Reading the table and restoring are two steps: a writer in between (another
 * init-iptables in the same pod) is not guarded against; an init container runs alone.
 */
export function restoreInput(ruleSet: CaptureRuleSet, current: NatTable): string {
  const lines = ['*nat'];
  for (const chain of ruleSet.chains) lines.push(`:${chain} - [0:0]`);
  lines.push(...ruleSet.rules);

  const kept = new Set<string>();
  for (const { chain, line } of current.rules) {
    if (!BUILT_IN_CHAINS.has(chain) || !JUMP_TO_OURS.test(line)) continue;
    if (ruleSet.jumps.includes(line) && !kept.has(line)) kept.add(line);
    else lines.push(`-D${line.slice(2)}`);
  }
  for (const jump of ruleSet.jumps) if (!kept.has(jump)) lines.push(jump);

  const stale = current.chains.filter((c) => c.startsWith(CHAIN_PREFIX) && !ruleSet.chains.includes(c));
  // All flushed before any is deleted: a stale chain may still jump to another.
  for (const chain of stale) lines.push(`-F ${chain}`);
  for (const chain of stale) lines.push(`-X ${chain}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}
