/**
 * The initiator's P1 timestamps: nanoseconds since the epoch, strictly increasing for this
 * static key across every concurrent connection (PROTOCOL.md 4.3), even if the wall clock
 * stands still or steps back, so two genuine handshakes never share one.
 */
export class TimestampClock {
  private last = 0n;

  constructor(private readonly nowNs: () => bigint = wallClockNs) {}

  next(): bigint {
    const now = this.nowNs();
    this.last = now > this.last ? now : this.last + 1n;
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
