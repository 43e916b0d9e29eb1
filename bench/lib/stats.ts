/**
 * Summary statistics for benchmark rounds. A round is one timed batch of operations; its
 * rate is operations (or bytes) per second. We report the median because a busy 2-core
 * machine produces one-sided outliers (a GC pause, a neighbour's burst) that drag a mean.
 */

export interface Summary {
  /** Rate of each round, in the order measured. */
  readonly samples: readonly number[];
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** (max - min) / median: the whole spread of the rounds, relative to the median. */
  readonly spread: number;
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new RangeError('summarize needs at least one sample');
  const sorted = [...samples].sort((a, b) => a - b);
  const median = quantile(sorted, 0.5);
  const min = sorted[0]!;
  const max = sorted[sorted.length - 1]!;
  return { samples, median, min, max, spread: median > 0 ? (max - min) / median : 0 };
}

/**
 * Linear-interpolated quantile of an ascending array, q in [0, 1]: k6's definition (its Trend's
 * TrendSink.P): at rank q x (n - 1), interpolated between the values at the two closest ranks.
 */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

/**
 * The median of the per-round ratios a[i] / b[i]. Rounds of a and b were interleaved, so
 * each pair shared the machine's state at that moment; the ratio of medians would not.
 */
export function pairedRatio(a: Summary, b: Summary): Summary {
  const n = Math.min(a.samples.length, b.samples.length);
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) ratios.push(a.samples[i]! / b.samples[i]!);
  return summarize(ratios);
}
