/**
 * The arrival schedule of an open-model run: when each request is due, ms after the start,
 * from the scenario alone. A request is sent at its time whether or not earlier ones are
 * answered, so a slow target cannot slow the arrivals (the coordinated omission a closed
 * loop suffers). Pure: tested on its own (test/bench-load.test.ts).
 */
import { rampProfile, type RateStage, type Scenario } from '../k6/contract.js';

/** Arrivals at a constant rate: request i is due at i / rate s. */
export function constantArrivals(rate: number, seconds: number): Float64Array {
  const n = Math.round(rate * seconds);
  const out = new Float64Array(n);
  const gap = 1000 / rate;
  for (let i = 0; i < n; i++) out[i] = i * gap;
  return out;
}

/**
 * Arrivals under a rate that moves linearly within each stage (k6's ramping-arrival-rate):
 * the count due by t is the integral of the rate, N(t); request i is due where N(t) = i.
 * Inside a stage of length T from rate a to rate b, N grows by a*t + (b - a)*t^2 / (2T), so
 * each arrival is the root of that quadratic.
 */
export function rampArrivals(startRate: number, stages: readonly RateStage[]): Float64Array {
  const times: number[] = [];
  let begin = 0;
  let counted = 0;
  let rate = startRate;
  for (const stage of stages) {
    const T = stage.seconds;
    const a = rate;
    const b = stage.target;
    const grown = ((a + b) / 2) * T;
    // Bounded by the stage's own count: at most LIMITS.rate * LIMITS.seconds arrivals in all.
    for (let i = Math.ceil(counted); i < counted + grown; i++) {
      const k = i - counted;
      const slope = (b - a) / T;
      const t = Math.abs(slope) < 1e-12 ? k / a : (-a + Math.sqrt(a * a + 2 * slope * k)) / slope;
      times.push((begin + t) * 1000);
    }
    counted += grown;
    begin += T;
    rate = b;
  }
  return Float64Array.from(times);
}

/** The schedule of a scenario. */
export function arrivalsFor(s: Scenario): Float64Array {
  if (s.kind === 'ramp') return rampArrivals(s.steps[0]!, rampProfile(s).stages);
  return constantArrivals(s.rate, s.durationSeconds);
}
