/**
 * The initiator's P1 timestamps (PROTOCOL.md 4.3): nanoseconds since the epoch, one per
 * handshake of this static key, distinct across its concurrent connections, and close enough
 * to the wall clock that a responder whose clock agrees with ours accepts them.
 *
 * While the wall clock runs forward, or stalls, or steps back by less than `maxLeadNs`, every
 * timestamp is strictly above the one before (`last + 1` when the clock has not moved on).
 * When the clock steps back further than that, as when NTP or an RTC corrects a clock that
 * was ahead, the timestamps follow the wall clock back down at once. Staying above the last
 * one would run ahead of the wall clock by the size of the step: past the responder's
 * +/- 30 s window, every new connection would get status 3 until the wall clock caught up
 * (a 45 s glitch locked the pod out for 15 s, a 120 s one for 90 s).
 *
 * After such a step the timestamps rise strictly again from the new reading, so handshakes
 * started after it never share one. One of them could only coincide with a value handed out
 * while the clock was ahead by drawing the same nanosecond count (the digits below the
 * millisecond come from the monotonic clock); the responder would then refuse that one
 * connection with status 3, as it refuses any timestamp it has seen. It never accepts a
 * replay, which is what the window is for.
 */
export class TimestampClock {
  private last = 0n;

  /**
   * @param nowNs the wall clock in nanoseconds (injected by tests).
   * @param maxLeadNs how far ahead of the wall clock the timestamps may run to stay strictly
   *   increasing before they follow it back instead. 1 s by default: far inside the 30 s
   *   replay window, far above any slew NTP applies without stepping.
   */
  constructor(
    private readonly nowNs: () => bigint = wallClockNs,
    private readonly maxLeadNs: bigint = 1_000_000_000n,
  ) {}

  next(): bigint {
    const now = this.nowNs();
    this.last = now > this.last || this.last - now > this.maxLeadNs ? now : this.last + 1n;
    return this.last;
  }
}

/**
 * The wall clock with nanosecond digits: Date.now() gives the milliseconds (so the value
 * follows NTP adjustments, as the responder's window check does) and the monotonic clock
 * fills in the digits below them. Uniqueness comes from TimestampClock, not from here.
 */
export function wallClockNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
}
