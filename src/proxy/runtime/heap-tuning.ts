/**
 * V8 heap settings for a long-lived proxy process, applied once at start.
 *
 * A proxy's live heap is small (~9 MB), and its traffic turns over buffers fast. After a burst
 * of bulk traffic V8 grows the young generation towards 16 MB per semi-space and keeps it; once
 * the young generation is larger than the old generation's remaining headroom, V8 starts
 * incremental marking after every few scavenges (a soft limit in
 * Heap::IncrementalMarkingLimitReached), so a full mark-compact runs every ~0.5 s for as long
 * as traffic flows. Each one stalls the event loop for 5-12 ms on a 2-vCPU machine, and at
 * 1000 requests/s a stall that long lands on ten requests in a row: it was the whole p99 of
 * the proxy benchmark's 4 KiB round trips after its throughput test (8 ms against 2 ms).
 * Holding the young generation at its initial size keeps scavenges short and full collections
 * rare; bulk throughput did not move (bench/README.md, proxy).
 */
import { setFlagsFromString } from 'node:v8';

/**
 * `semi_space_growth_factor` is read each time V8 considers growing the young generation, so
 * it takes effect after start-up, unlike `--max-semi-space-size`, which sizes the heap when
 * the isolate is made and would have to be on node's command line.
 */
export const PROXY_V8_FLAGS = ['--semi-space-growth-factor=1'] as const;

let applied = false;

/** Idempotent; a process that is not a proxy (tests, the demo's parent) never calls it. */
export function tuneHeapForProxy(): void {
  if (applied) return;
  for (const flag of PROXY_V8_FLAGS) setFlagsFromString(flag);
  applied = true;
}
