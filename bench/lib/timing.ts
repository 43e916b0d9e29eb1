/**
 * Timing: calibrate a batch size, warm up, then time interleaved rounds of a group of
 * cases. Interleaving matters more than round count here: cases compared with each other
 * (a transport against its raw-AEAD ceiling) see the same machine at the same moment, so
 * the ratio between them stays steady while the absolute figures wander.
 */
import { collectGarbage } from './gc.js';
import { summarize, type Summary } from './stats.js';

export interface Case {
  readonly name: string;
  /** Units of work one operation does (bytes for throughput, 1 for a handshake). */
  readonly unitsPerOp: number;
  /** Runs `ops` operations back to back. Must throw if a result is wrong. */
  run(ops: number): void;
}

export interface TimingOptions {
  /** Minimum time each case runs before anything is recorded (JIT, caches, pools). */
  readonly warmupMs: number;
  /** Target duration of one timed round. */
  readonly roundMs: number;
  readonly rounds: number;
}

export interface Measured {
  readonly name: string;
  /** Units per second, per round. */
  readonly rate: Summary;
  /** Operations in one timed round. */
  readonly opsPerRound: number;
}

function elapsedMs(ops: number, run: (ops: number) => void): number {
  const start = process.hrtime.bigint();
  run(ops);
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Doubles the batch until it takes a quarter round, then scales it to one round. */
function calibrate(c: Case, options: TimingOptions): number {
  const deadline = performance.now() + options.warmupMs;
  let ops = 1;
  let ms = elapsedMs(ops, c.run);
  // Bounded: 2^30 operations is far beyond any case's quarter round.
  for (let i = 0; i < 30 && ms < options.roundMs / 4; i++) {
    ops *= 2;
    ms = elapsedMs(ops, c.run);
  }
  let perOpMs = ms / ops;
  // Keep warming up with round-sized batches; the last one sets the estimate.
  for (let i = 0; i < 1000 && performance.now() < deadline; i++) {
    const batch = Math.max(1, Math.round(options.roundMs / 2 / perOpMs));
    perOpMs = elapsedMs(batch, c.run) / batch;
  }
  return Math.max(1, Math.round(options.roundMs / perOpMs));
}

export function measureGroup(cases: readonly Case[], options: TimingOptions): Measured[] {
  const ops = cases.map((c) => calibrate(c, options));
  const samples: number[][] = cases.map(() => []);
  for (let round = 0; round < options.rounds; round++) {
    cases.forEach((c, i) => {
      collectGarbage();
      const ms = elapsedMs(ops[i]!, c.run);
      samples[i]!.push((ops[i]! * c.unitsPerOp) / (ms / 1000));
    });
  }
  return cases.map((c, i) => ({ name: c.name, rate: summarize(samples[i]!), opsPerRound: ops[i]! }));
}
