/**
 * An index of a policy's rules on both of their selectors, `paths` and `agents`, so that a
 * request costs what its own segments and the rules that select it cost, not what the
 * policy's length costs.
 *
 * One segment trie per selector (`SegmentTrie`), built from every glob of that selector:
 * its edges are the glob's tokens, so a glob is a path from the root and lists its rule at
 * the node where it ends. A request's path (or agentId) is run through the trie as through
 * an automaton, segment by segment, keeping the set of nodes it can be at; the rules listed
 * on the nodes it ends on are exactly the rules with a glob matching it.
 *
 * The rules that select a request are then read off without looking at the rules that
 * match one selector only (`RuleIndex`): a rule without `agents` is listed apart on its path
 * nodes (it selects whoever its path matches); a rule with `agents` is listed under each
 * pair (path node, agent node) of its globs, so that the pairs of nodes the two walks ended
 * on give exactly the rules both match. Those lists are merged in rule order up to the
 * first enforcing rule, which decides as it would in a loop over every rule
 * (`evaluateLinear`; a property test compares the two on random policies and requests).
 * A rule with more than PAIRS_PER_RULE pairs (many globs on both sides), or past MAX_PAIRS
 * in the policy, is not paired but intersected: the side of the request that found fewer
 * such rules is scanned in rule order, each kept when the other walk ended on one of its
 * nodes.
 *
 * Costs, for a request of s segments: each walk is O(s x a x e), a the nodes active at
 * once (1 to a few for real policies: one per distinct way of matching so far) and e the
 * edges tried from each (a Map lookup, the `*` edge, the `**` loop, and the in-segment
 * patterns whose literal prefix or suffix the segment carries); then O(p x q) Map lookups
 * for the p path and q agent end nodes that hold paired rules, and O(k x l) to merge the
 * k selecting rules up to the deciding one from l lists (dry-run rules are the others).
 * Unpaired rules add the smaller of the counts that match one side. The policy's length
 * does not enter. Building is O(globs x tokens + paired rules x PAIRS_PER_RULE).
 */
import { ANY_SEGMENTS, isAgentId, matchSegment, type Glob } from './glob.js';
import type { CompiledRule } from './policy.js';

/** An in-segment pattern (`db-*`, `*-db`, `a*b*c`) and the node its edge leads to. */
interface PatternEdge {
  readonly pieces: readonly string[];
  readonly node: TrieNode;
}

/**
 * The in-segment patterns leaving a node, grouped by their longer literal end (prefix or
 * suffix), so that a segment is tried only against the patterns that share its ends: one
 * Map lookup per distinct end length. Patterns with no literal end (`*db*`) are tried all.
 */
class Patterns {
  readonly bySource = new Map<string, TrieNode>();
  readonly byPrefix = new Map<string, PatternEdge[]>();
  /** The distinct lengths of the keys of byPrefix, ascending. */
  readonly prefixLengths: number[] = [];
  readonly bySuffix = new Map<string, PatternEdge[]>();
  readonly suffixLengths: number[] = [];
  readonly rest: PatternEdge[] = [];

  add(pieces: readonly string[], node: TrieNode): void {
    const first = pieces[0]!;
    const last = pieces[pieces.length - 1]!;
    const edge: PatternEdge = { pieces, node };
    if (first === '' && last === '') this.rest.push(edge);
    else if (first.length >= last.length) group(this.byPrefix, this.prefixLengths, first, edge);
    else group(this.bySuffix, this.suffixLengths, last, edge);
  }
}

function group(map: Map<string, PatternEdge[]>, lengths: number[], key: string, edge: PatternEdge): void {
  const edges = map.get(key);
  if (edges !== undefined) {
    edges.push(edge);
    return;
  }
  map.set(key, [edge]);
  if (!lengths.includes(key.length)) {
    lengths.push(key.length);
    lengths.sort((a, b) => a - b);
  }
}

/**
 * A list kept from one request to the next: `clear()` keeps its backing store, and entries
 * past `length` are stale (they hold only nodes and lists of the index itself). An array
 * emptied with `length = 0` would not do: V8 drops the elements of an array whose length is
 * set to 0, so every push after it allocates a new backing store, garbage a gateway made on
 * every request.
 */
export class ScratchList<T> {
  readonly items: T[] = [];
  length = 0;

  clear(): void {
    this.length = 0;
  }

  push(item: T): void {
    this.items[this.length++] = item;
  }
}

/** A node of a SegmentTrie, for the index that owns it. */
export class TrieNode {
  literal: Map<string, TrieNode> | null = null;
  /** The edge of a segment that is exactly `*`: any one segment. */
  star: TrieNode | null = null;
  patterns: Patterns | null = null;
  /** The edge of `**`: entered without consuming a segment (none matched). */
  any: TrieNode | null = null;
  /** Rules (ordinals) with a glob ending here, ascending, each once. */
  readonly rules: number[] = [];
  /** The same for the rules added as `open` (in the path trie: the rules without `agents`). */
  readonly open: number[] = [];
  /** RuleIndex: the rules of `rules` that are intersected, not paired. */
  readonly wide: number[] = [];
  /** RuleIndex: whether a paired rule has a glob ending here. */
  paired = false;
  constructor(
    readonly id: number,
    /** Reached by `**`: consumes any segment and stays (one more segment matched). */
    readonly loops: boolean,
  ) {}
}

/**
 * The globs of one selector as a trie over their tokens, and the walk that finds every glob
 * matching a text (a valid secret path, or a valid agentId). Nodes are stamped with the
 * current step's epoch instead of being collected in a Set, and the steps' node lists are
 * ScratchLists, so that a walk allocates nothing but the segments' strings, and `holds`
 * answers in O(1) per node after it.
 */
export class SegmentTrie {
  readonly #nodes: TrieNode[] = [];
  readonly #root: TrieNode;
  #stamp = new Uint32Array(0);
  #epoch = 0;
  #current = new ScratchList<TrieNode>();
  #next = new ScratchList<TrieNode>();

  constructor() {
    this.#root = this.#node(false);
  }

  get size(): number {
    return this.#nodes.length;
  }

  /** The node with this id (as `add` returned it). */
  node(id: number): TrieNode {
    return this.#nodes[id]!;
  }

  #node(loops: boolean): TrieNode {
    const node = new TrieNode(this.#nodes.length, loops);
    this.#nodes.push(node);
    return node;
  }

  /**
   * Lists rule `ordinal` at the node where `glob` ends, among the `open` rules or the
   * others; rules must be added in order. Returns that node's id.
   */
  add(glob: Glob, ordinal: number, open = false): number {
    let node = this.#root;
    for (const token of glob.tokens) {
      if (token === ANY_SEGMENTS) {
        node = node.any ??= this.#node(true);
      } else if (token.length === 1) {
        const literal = (node.literal ??= new Map());
        let child = literal.get(token[0]!);
        if (child === undefined) literal.set(token[0]!, (child = this.#node(false)));
        node = child;
      } else if (token.length === 2 && token[0] === '' && token[1] === '') {
        node = node.star ??= this.#node(false);
      } else {
        const patterns = (node.patterns ??= new Patterns());
        const source = token.join('*');
        let child = patterns.bySource.get(source);
        if (child === undefined) {
          patterns.bySource.set(source, (child = this.#node(false)));
          patterns.add(token, child);
        }
        node = child;
      }
    }
    // Rules are added in order, so a duplicate can only be the last one.
    const rules = open ? node.open : node.rules;
    if (rules[rules.length - 1] !== ordinal) rules.push(ordinal);
    if (this.#stamp.length < this.#nodes.length) this.#stamp = new Uint32Array(this.#nodes.length * 2);
    return node.id;
  }

  #bump(): number {
    if (this.#epoch === 0xffffffff) {
      this.#stamp.fill(0);
      this.#epoch = 0;
    }
    return ++this.#epoch;
  }

  /** Adds `node` to this step's set, with the nodes its `**` edges reach without a segment. */
  #enter(into: ScratchList<TrieNode>, node: TrieNode | null, epoch: number): void {
    const stamp = this.#stamp;
    while (node !== null && stamp[node.id] !== epoch) {
      stamp[node.id] = epoch;
      into.push(node);
      node = node.any;
    }
  }

  /**
   * Runs `text` through the trie and returns the nodes it ends on (the first `length` of
   * `items`): their `rules` (and `open`) are the rules with a glob that matches it. The list
   * is the trie's own, valid until the next walk; until then too, `holds` says whether a node
   * is one of them. O(segments x active nodes x edges).
   */
  walk(text: string): { readonly items: readonly TrieNode[]; readonly length: number } {
    let current = this.#current;
    let next = this.#next;
    current.clear();
    let epoch = this.#bump();
    this.#enter(current, this.#root, epoch);
    const n = text.length;
    for (let at = 0; at <= n && current.length > 0; ) {
      let end = text.indexOf('/', at);
      if (end < 0) end = n;
      const segment = text.slice(at, end);
      at = end + 1;
      epoch = this.#bump();
      next.clear();
      for (let k = 0; k < current.length; k++) {
        const node = current.items[k]!;
        if (node.loops) this.#enter(next, node, epoch);
        if (node.literal !== null) {
          const child = node.literal.get(segment);
          if (child !== undefined) this.#enter(next, child, epoch);
        }
        if (node.star !== null) this.#enter(next, node.star, epoch);
        if (node.patterns !== null) this.#patterns(node.patterns, segment, next, epoch);
      }
      const swap = current;
      current = next;
      next = swap;
    }
    this.#current = current;
    this.#next = next;
    return current;
  }

  #patterns(patterns: Patterns, segment: string, into: ScratchList<TrieNode>, epoch: number): void {
    const n = segment.length;
    for (const length of patterns.prefixLengths) {
      if (length > n) break;
      const edges = patterns.byPrefix.get(segment.slice(0, length));
      if (edges !== undefined) this.#tryEdges(edges, segment, into, epoch);
    }
    for (const length of patterns.suffixLengths) {
      if (length > n) break;
      const edges = patterns.bySuffix.get(segment.slice(n - length));
      if (edges !== undefined) this.#tryEdges(edges, segment, into, epoch);
    }
    if (patterns.rest.length > 0) this.#tryEdges(patterns.rest, segment, into, epoch);
  }

  #tryEdges(edges: readonly PatternEdge[], segment: string, into: ScratchList<TrieNode>, epoch: number): void {
    for (let k = 0; k < edges.length; k++) if (matchSegment(edges[k]!.pieces, segment)) this.#enter(into, edges[k]!.node, epoch);
  }

  /** Whether one of these nodes is among those the last walk ended on. O(ids). */
  holds(ids: readonly number[]): boolean {
    const stamp = this.#stamp;
    const epoch = this.#epoch;
    for (let k = 0; k < ids.length; k++) if (stamp[ids[k]!] === epoch) return true;
    return false;
  }
}

/**
 * Rules with more (path node, agent node) pairs than this are intersected at request time
 * instead of paired at load (a rule may hold 256 globs a side).
 */
export const PAIRS_PER_RULE = 64;
/**
 * The most pairs one policy's table holds (a few MiB); rules past it are intersected. A
 * hand-written policy of 1,000 rules holds a few thousand.
 */
export const MAX_PAIRS = 65_536;

const OPEN = 0;
const PAIRED = 1;
const WIDE = 2;

/**
 * The rules of a policy indexed by path and by agent (see the header). Use:
 * `select(path, agentId)`, then `next()` until it returns -1, each result a rule that
 * selects the request, ascending; on a request that no enforcing rule decided,
 * `rejectedByAgents` names the rules that matched the path only. The state lives in the
 * index between the calls: evaluation is synchronous and calls out to nothing, so no two
 * evaluations of one policy interleave.
 */
export class RuleIndex {
  readonly #paths = new SegmentTrie();
  readonly #agents = new SegmentTrie();
  /** Per rule: OPEN (no `agents`), PAIRED or WIDE. */
  readonly #kind: Uint8Array;
  /** Per rule, the path-trie nodes its `paths` end on. */
  readonly #pathNodes: (readonly number[])[] = [];
  /** Per rule, the agent-trie nodes its `agents` end on; empty for an open rule. */
  readonly #agentNodes: (readonly number[])[] = [];
  /** Paired rules by `pathNode * agentTrieSize + agentNode`, each list ascending. */
  readonly #pairs = new Map<number, number[]>();
  readonly #cursor: Int32Array;

  // Per request (see the class comment).
  /** The path end nodes' lists of rules with `agents` (for rejectedByAgents). */
  readonly #pathLists = new ScratchList<readonly number[]>();
  /** The path end nodes that hold paired rules. */
  readonly #pairedPathNodes = new ScratchList<number>();
  readonly #widePath = new ScratchList<readonly number[]>();
  readonly #wideAgent = new ScratchList<readonly number[]>();
  /** The lists merged: open rules on the path, the pairs' rules, the smaller wide side. */
  readonly #scan = new ScratchList<readonly number[]>();
  #scanningPaths = false;
  #agentWalked = false;
  #last = -1;
  /** How many rules with `agents` next() has returned. */
  #selectedWithAgents = 0;

  constructor(rules: readonly CompiledRule[]) {
    this.#kind = new Uint8Array(rules.length);
    let pairs = 0;
    rules.forEach((c, i) => {
      const open = c.agents === null;
      const pathNodes = unique(c.paths.map((g) => this.#paths.add(g, i, open)));
      const agentNodes = open ? [] : unique(c.agents!.map((g) => this.#agents.add(g, i)));
      this.#pathNodes.push(pathNodes);
      this.#agentNodes.push(agentNodes);
      if (open) this.#kind[i] = OPEN;
      else if (pathNodes.length * agentNodes.length > PAIRS_PER_RULE || pairs + pathNodes.length * agentNodes.length > MAX_PAIRS) {
        this.#kind[i] = WIDE;
        for (const id of pathNodes) this.#paths.node(id).wide.push(i);
        for (const id of agentNodes) this.#agents.node(id).wide.push(i);
      } else {
        this.#kind[i] = PAIRED;
        pairs += pathNodes.length * agentNodes.length;
        for (const id of pathNodes) this.#paths.node(id).paired = true;
        for (const id of agentNodes) this.#agents.node(id).paired = true;
      }
    });
    // Keys need the agent trie's final size: a second pass.
    const width = this.#agents.size;
    rules.forEach((_, i) => {
      if (this.#kind[i] !== PAIRED) return;
      for (const p of this.#pathNodes[i]!) {
        for (const a of this.#agentNodes[i]!) {
          const key = p * width + a;
          const list = this.#pairs.get(key);
          if (list === undefined) this.#pairs.set(key, [i]);
          else if (list[list.length - 1] !== i) list.push(i);
        }
      }
    });
    // At most: one open list per path node, one list per pair, one wide list per node of the scanned side.
    this.#cursor = new Int32Array(2 * this.#paths.size + this.#pairs.size + this.#agents.size);
  }

  /**
   * Starts the rules that select a request: those with a `paths` glob matching `path` (a
   * valid secret path) and, if they have `agents`, one matching `agentId` (null, or a string
   * that is no agentId, is an anonymous caller that no `agents` list matches). Walks both
   * tries and gathers the lists to merge (see the header for the cost).
   */
  select(path: string, agentId: string | null): void {
    const pathLists = this.#pathLists;
    const pairedPathNodes = this.#pairedPathNodes;
    const widePath = this.#widePath;
    const wideAgent = this.#wideAgent;
    const scan = this.#scan;
    pathLists.clear();
    pairedPathNodes.clear();
    widePath.clear();
    wideAgent.clear();
    scan.clear();
    this.#last = -1;
    this.#selectedWithAgents = 0;
    this.#agentWalked = false;
    let onWidePath = 0;
    const onPath = this.#paths.walk(path);
    for (let n = 0; n < onPath.length; n++) {
      const node = onPath.items[n]!;
      if (node.open.length > 0) scan.push(node.open);
      if (node.rules.length > 0) pathLists.push(node.rules);
      if (node.paired) pairedPathNodes.push(node.id);
      if (node.wide.length > 0) {
        widePath.push(node.wide);
        onWidePath += node.wide.length;
      }
    }
    if (pathLists.length > 0 && agentId !== null && isAgentId(agentId)) {
      this.#agentWalked = true;
      const width = this.#agents.size;
      let onWideAgent = 0;
      const onAgent = this.#agents.walk(agentId);
      for (let n = 0; n < onAgent.length; n++) {
        const node = onAgent.items[n]!;
        if (node.paired) {
          for (let k = 0; k < pairedPathNodes.length; k++) {
            const list = this.#pairs.get(pairedPathNodes.items[k]! * width + node.id);
            if (list !== undefined) scan.push(list);
          }
        }
        if (node.wide.length > 0) {
          wideAgent.push(node.wide);
          onWideAgent += node.wide.length;
        }
      }
      if (onWidePath > 0 && onWideAgent > 0) {
        this.#scanningPaths = onWidePath <= onWideAgent;
        const side = this.#scanningPaths ? widePath : wideAgent;
        for (let k = 0; k < side.length; k++) scan.push(side.items[k]!);
      }
    }
    this.#cursor.fill(0, 0, scan.length);
  }

  /** The next rule (ordinal) that selects the request, ascending, or -1 when there is none. */
  next(): number {
    for (;;) {
      const i = nextCandidate(this.#scan.items, this.#scan.length, this.#cursor, this.#last);
      if (i < 0) return -1;
      this.#last = i;
      // Open and paired rules come from exact lists; a wide one matched the scanned side only.
      const kind = this.#kind[i];
      if (kind === OPEN) return i;
      if (kind === PAIRED || (this.#scanningPaths ? this.#agents.holds(this.#agentNodes[i]!) : this.#paths.holds(this.#pathNodes[i]!))) {
        this.#selectedWithAgents++;
        return i;
      }
    }
  }

  /**
   * For a request that `select` started and `next` exhausted: how many rules match its path
   * but have `agents` that leave the caller out, with the first `max` of them (ordinals,
   * ascending) appended to `first`. For the denial's reason. When the path ends on one node
   * (the usual case) the count is that node's list less the rules `next` selected, and the
   * names cost O(max + selected); otherwise O(rules with agents matching the path x lists).
   */
  rejectedByAgents(first: number[], max: number): number {
    const lists = this.#pathLists;
    this.#cursor.fill(0, 0, lists.length);
    let count = 0;
    for (let i = nextCandidate(lists.items, lists.length, this.#cursor, -1); i >= 0; i = nextCandidate(lists.items, lists.length, this.#cursor, i)) {
      if (this.#agentWalked && this.#agents.holds(this.#agentNodes[i]!)) continue;
      if (count++ < max) first.push(i);
      else if (lists.length === 1) return lists.items[0]!.length - this.#selectedWithAgents;
    }
    return count;
  }
}

function unique(ids: number[]): readonly number[] {
  return ids.filter((id, k) => ids.indexOf(id) === k);
}

/**
 * The smallest rule index above `after` in any of the first `count` of `lists` (positions
 * advanced in `cursor`), or -1 when they are exhausted. A rule listed on several nodes comes
 * out once. O(lists) per call, plus the entries skipped.
 */
export function nextCandidate(lists: readonly (readonly number[])[], count: number, cursor: Int32Array, after: number): number {
  let best = -1;
  for (let l = 0; l < count; l++) {
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
