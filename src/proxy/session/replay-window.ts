/**
 * The responder's replay defence, PROTOCOL.md 4.3: per initiator static key, the P1
 * timestamps accepted within +/- the window. A timestamp outside the window, or seen before,
 * is a replay; memory is bounded in total and per key, and a full table says `overloaded`
 * rather than forgetting, which would let a replay through.
 *
 * The window is read on the wall clock, which can step back (an NTP or RTC correction), and
 * a step back brings timestamps that already aged out into the window again. So each key
 * keeps a floor, the highest of its timestamps that aged out, and a timestamp at or below it
 * is a replay whatever the clock says now. A genuine initiator never falls under its floor:
 * its timestamps increase (4.3), and a timestamp only ages out once the responder's clock is
 * 30 s past it, by which time the initiator has issued later ones.
 */
export type ReplayVerdict = 'fresh' | 'replay' | 'overloaded';

interface KeyHistory {
  readonly seen: Set<bigint>;
  /** Insertion order, for expiry. Genuine initiators send increasing timestamps, so this is nearly sorted. */
  readonly order: bigint[];
  head: number;
}

export class ReplayWindow {
  private readonly byKey = new Map<string, KeyHistory>();
  /**
   * Per key, the highest timestamp that aged out. Only keys that passed the registry reach
   * check(), so this holds about one bigint per registered key; it is still capped at
   * `maxEntries`, dropping the floor updated longest ago first.
   */
  private readonly floors = new Map<string, bigint>();
  private total = 0;

  constructor(
    private readonly windowNs: bigint,
    private readonly maxEntries: number,
    private readonly maxEntriesPerKey: number,
    private readonly nowNs: () => bigint = () => BigInt(Date.now()) * 1_000_000n,
  ) {}

  /** Entries held, for metrics and tests. */
  get size(): number {
    return this.total;
  }

  /** Checks a timestamp and, if fresh, records it. */
  check(key: string, timestampNs: bigint): ReplayVerdict {
    const now = this.nowNs();
    const oldest = now - this.windowNs;
    if (timestampNs < oldest || timestampNs > now + this.windowNs) return 'replay';
    const floor = this.floors.get(key);
    if (floor !== undefined && timestampNs <= floor) return 'replay';
    let history = this.byKey.get(key);
    if (history !== undefined) {
      this.expire(key, history, oldest);
      if (history.seen.has(timestampNs)) return 'replay';
    }
    if (this.total >= this.maxEntries) this.expireAll(oldest);
    if (this.total >= this.maxEntries || (history?.seen.size ?? 0) >= this.maxEntriesPerKey) return 'overloaded';
    if (history === undefined || !this.byKey.has(key)) {
      history = { seen: new Set(), order: [], head: 0 };
      this.byKey.set(key, history);
    }
    history.seen.add(timestampNs);
    history.order.push(timestampNs);
    this.total++;
    return 'fresh';
  }

  private expire(key: string, history: KeyHistory, oldest: bigint): void {
    const { order, seen } = history;
    let floor = this.floors.get(key);
    const before = floor;
    while (history.head < order.length && order[history.head]! < oldest) {
      const aged = order[history.head]!;
      if (floor === undefined || aged > floor) floor = aged;
      seen.delete(aged);
      history.head++;
      this.total--;
    }
    if (floor !== before) this.raiseFloor(key, floor!);
    if (history.head === order.length) {
      this.byKey.delete(key);
    } else if (history.head > 1024 && history.head * 2 > order.length) {
      // Compact now and then, so the array does not grow with every handshake ever seen.
      order.splice(0, history.head);
      history.head = 0;
    }
  }

  private raiseFloor(key: string, floor: bigint): void {
    // Delete first, so the map's order is the order floors were last raised in.
    this.floors.delete(key);
    this.floors.set(key, floor);
    if (this.floors.size > this.maxEntries) this.floors.delete(this.floors.keys().next().value as string);
  }

  private expireAll(oldest: bigint): void {
    for (const [key, history] of this.byKey) this.expire(key, history, oldest);
  }
}
