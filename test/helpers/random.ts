/**
 * A small seeded generator for property tests. We use our own rather than fast-check: the
 * inputs (vectors, rules, paths) are small and closed, shrinking would add little, and a
 * failure is reproduced by its printed seed alone, with no dependency to pin. Set
 * NOISEMESH_PROPERTY_SEED to replay one run; NOISEMESH_PROPERTY_RUNS to run more cases.
 */

/** mulberry32: 32-bit state, good enough to spread test cases, never for keys. */
export class Rng {
  #state: number;
  constructor(readonly seed: number) {
    this.#state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** The seed of this run: from the environment, or fresh (and printed by `property`). */
export function runSeed(): number {
  const fixed = process.env.NOISEMESH_PROPERTY_SEED;
  return fixed === undefined ? (Math.random() * 2 ** 32) >>> 0 : Number(fixed) >>> 0;
}

export function propertyRuns(defaultRuns: number): number {
  const n = Number(process.env.NOISEMESH_PROPERTY_RUNS);
  return Number.isInteger(n) && n > 0 ? n : defaultRuns;
}

/**
 * Runs `body` for `runs` cases, each with its own generator derived from the run's seed; a
 * failing case's error names the seed and case to replay it.
 */
export function property(runs: number, body: (rng: Rng, run: number) => void): void {
  const seed = runSeed();
  const total = propertyRuns(runs);
  for (let run = 0; run < total; run++) {
    const rng = new Rng((seed + Math.imul(run, 0x9e3779b1)) >>> 0);
    try {
      body(rng, run);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new Error(`property failed at case ${run} of seed ${seed} (replay: NOISEMESH_PROPERTY_SEED=${seed}): ${message}`, { cause: err });
    }
  }
}
