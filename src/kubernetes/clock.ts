/**
 * Time as the reflector sees it: wall-clock milliseconds and one-shot timers. Injected so that
 * tests can run a minute-long API outage, backoff and watchdogs in fake time, while the HTTP
 * underneath stays real.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
