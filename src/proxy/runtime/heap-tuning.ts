/**
 * V8 heap settings for a long-lived proxy process, applied once at start. All three trade a
 * little memory for an event loop that full collections do not keep stalling: a 5-14 ms
 * stall at 1000 requests/s lands on ten requests in a row, and before these settings the
 * proxy benchmark's p99 round trip was made of little else (bench/README.md, proxy).
 *
 * - The young generation stays at its initial size. After a burst of bulk traffic V8 grows it
 *   towards 16 MB per semi-space and keeps it; once it is larger than the old generation's
 *   remaining headroom (a proxy's live heap is ~9 MB), V8 starts incremental marking after
 *   every few scavenges (a soft limit in Heap::IncrementalMarkingLimitReached): a full
 *   mark-compact every ~0.5 s for as long as traffic flows. Scavenges of a small young
 *   generation are short. Bulk throughput did not move.
 * - A heap growing factor of 5 (V8 picks 1.1-4 from its GC and mutator speeds). Under bulk
 *   traffic (2 Gbit/s) V8 started a full collection for its "allocation limit" about 20 times
 *   a second in each proxy, though old-generation objects stayed at 9 of 38 MB: the budget it
 *   checks also counts external memory held since the last full collection (the ArrayBuffers
 *   of node's reads and OpenSSL's outputs still in flight), and the budget is a multiple of a
 *   live heap that is small in a proxy. Those collections cost a quarter of bulk throughput;
 *   at 5x none ran in the same test (--trace-gc). The old generation itself barely grows in
 *   a proxy, so the larger factor costs little memory (bench/README.md, RSS per idle session).
 * - No memory reducer. When traffic falls after a burst, V8's memory reducer runs up to three
 *   full collections to hand memory back to the OS; each stalled the 4 KiB latency test after
 *   the throughput test for 10-14 ms. A proxy's heap is small and ordinary collections still
 *   bound it; what the reducer would return is a few MB, once.
 */
import { setFlagsFromString } from 'node:v8';

/**
 * These flags are read when V8 acts on them, not only when the isolate is made, so they take
 * effect after start-up (`--max-semi-space-size`, by contrast, sizes the heap at isolate
 * creation and would have to be on node's command line). test/proxy-runtime.test.ts checks
 * the first in a real V8.
 */
export const PROXY_V8_FLAGS = ['--semi-space-growth-factor=1', '--no-memory-reducer', '--heap-growing-percent=400'] as const;

/**
 * The gateway's: the same but the heap growing factor. Its answers are the secrets, built as
 * strings and encoded for the socket, up to megabytes each, so its garbage is large where a
 * proxy's is not; with a factor of 5 over its live heap (which holds the answers in flight, up
 * to gateway.http's 64 MiB) a caller fetching a 2 MB secret over 128 connections took it to
 * 332 MB of RSS, with V8's own factor to 232 MB (docs/gateway.md).
 */
export const GATEWAY_V8_FLAGS = PROXY_V8_FLAGS.filter((f) => !f.startsWith('--heap-growing-percent'));

let applied = false;

/**
 * Idempotent; a process that is not a proxy (tests, the demo's parent) never calls it. Call it
 * before the proxy's modules are loaded: loading them grows the young generation (to 8 MiB a
 * semi-space with the whole CLI graph), and the growth factor of 1 keeps whatever size it finds
 * (src/cli/commands/index.ts does so for `proxy` and `gateway`).
 */
export function tuneHeapForProxy(options: { readonly gateway?: boolean } = {}): void {
  if (applied) return;
  for (const flag of options.gateway === true ? GATEWAY_V8_FLAGS : PROXY_V8_FLAGS) setFlagsFromString(flag);
  applied = true;
}
