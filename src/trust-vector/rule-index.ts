/**
 * An index of a policy's rules by the literal leading segments of their path globs, so that
 * a request looks only at the rules that can match its path, in policy order.
 *
 * A trie over segments: a glob whose literal prefix is `payments/db` (`payments/db`,
 * `payments/db/*`, `payments/db/**`) lists its rule at the node payments -> db; a glob that
 * starts with a wildcard lists it at the root. A path can only match globs listed on the
 * nodes along its own segments, so the candidates are the union of those nodes' lists,
 * walked in ascending rule order: first-match semantics are exactly those of a loop over
 * every rule (a test compares the two on random policies).
 */
import type { CompiledRule } from './policy.js';

interface Node {
  readonly children: Map<string, Node>;
  /** Indexes into the policy's rules, ascending, no duplicates. */
  readonly rules: number[];
}

function newNode(): Node {
  return { children: new Map(), rules: [] };
}

export class RuleIndex {
  readonly #root: Node = newNode();

  constructor(rules: readonly CompiledRule[]) {
    rules.forEach((compiled, i) => {
      for (const glob of compiled.paths) {
        let node = this.#root;
        for (const segment of glob.literalPrefix) {
          let child = node.children.get(segment);
          if (child === undefined) node.children.set(segment, (child = newNode()));
          node = child;
        }
        // Rules are added in order, so a duplicate can only be the last one.
        if (node.rules[node.rules.length - 1] !== i) node.rules.push(i);
      }
    });
  }

  /**
   * The lists of candidate rules for a valid secret path: one list per trie node along its
   * segments (at most one more than it has segments), each ascending. Merge them with
   * `nextCandidate`, or walk the only one.
   */
  lists(path: string): (readonly number[])[] {
    const lists: (readonly number[])[] = [];
    let node: Node | undefined = this.#root;
    let at = 0;
    while (node !== undefined) {
      if (node.rules.length > 0) lists.push(node.rules);
      if (at > path.length || node.children.size === 0) break;
      const slash = path.indexOf('/', at);
      const end = slash < 0 ? path.length : slash;
      node = node.children.get(path.slice(at, end));
      at = end + 1;
    }
    return lists;
  }
}

/**
 * The smallest rule index above `after` in any of `lists` (positions advanced in `cursor`),
 * or -1 when they are exhausted. A rule listed on several nodes comes out once.
 */
export function nextCandidate(lists: readonly (readonly number[])[], cursor: Int32Array, after: number): number {
  let best = -1;
  for (let l = 0; l < lists.length; l++) {
    const list = lists[l]!;
    let p = cursor[l]!;
    while (p < list.length && list[p]! <= after) p++;
    cursor[l] = p;
    if (p < list.length && (best < 0 || list[p]! < best)) {
      best = list[p]!;
    }
  }
  return best;
}
