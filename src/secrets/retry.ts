/**
 * Retries of a backend's requests: capped exponential backoff with jitter, bounded attempts.
 * The wait before attempt n+1 is `min(maxMs, baseMs * 2^(n-1))`, drawn from 50-100% of that
 * ("equal jitter"), so that a fleet of gateways that lost the backend at the same moment does
 * not come back in step, and no wait is ever shorter than half its step.
 */
import type { Clock } from '../kubernetes/index.js';

export interface RetryPolicy {
  /** Tries in all, the first included; 1: no retry. */
  readonly attempts: number;
  /** The first wait, in milliseconds. */
  readonly baseMs: number;
  /** The longest wait, in milliseconds. */
  readonly maxMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 3, baseMs: 200, maxMs: 2_000 };

/** The wait after failed attempt `attempt` (1-based), in milliseconds. */
export function backoffMs(policy: RetryPolicy, attempt: number, random: () => number): number {
  const step = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(step * (0.5 + 0.5 * Math.min(1, Math.max(0, random()))));
}

/** Waits `ms` on `clock`; rejects with the signal's reason if it aborts first. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const onAbort = (): void => {
      clock.clearTimeout(handle);
      reject(signal!.reason as Error);
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}


/**
 * `promise`, or a rejection with `error()` as soon as `signal` aborts; the work behind
 * `promise` goes on (it is shared with other callers).
 */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal, error: () => Error): Promise<T> {
  if (signal.aborted) return Promise.reject(error());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(error());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e as Error);
      },
    );
  });
}
