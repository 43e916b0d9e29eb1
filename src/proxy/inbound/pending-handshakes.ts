/**
 * Admission for connections on the mesh port that have not finished their handshake: at
 * most `total` at once, and at most `perSource` from one source address, both below the
 * descriptor limit (runtime/descriptor-budget.ts), so strangers can never take the
 * descriptors that the admin server, the registry and authenticated sessions need.
 *
 * At a cap the newest is admitted and an older one is shed, rather than the newest refused.
 * A refused newcomer would let anyone who merely holds idle connections keep every genuine
 * handshake out for as long as they hold them; shedding the oldest turns that into a race an
 * idle attacker loses, because a genuine initiator sends message 1 within milliseconds of
 * connecting and is through before it is the oldest (README, "Strangers").
 *
 * - At the per-source cap: the oldest connection of that source goes, so one address can
 *   only ever displace itself.
 * - At the total cap: the oldest connection of the source holding the most goes (of all
 *   sources, when each holds one), so an attacker spread over a few addresses displaces
 *   itself before it can touch a quiet source's single handshake.
 *
 * Every operation is O(1).
 */

export type ShedReason = 'source-cap' | 'total-cap';

export interface PendingCaps {
  /** Connections pending at once, in all; at least 1. */
  readonly total: number;
  /** Connections pending at once from one source address; at least 1. */
  readonly perSource: number;
}

/** One admitted connection. `release()` when its handshake ends, however it ends; idempotent. */
export interface PendingTicket {
  readonly source: string;
  /** Why this connection was shed, or null if it never was. */
  readonly shed: ShedReason | null;
  release(): void;
}

class Ticket implements PendingTicket {
  shed: ShedReason | null = null;
  admitted = true;
  constructor(
    readonly source: string,
    readonly onShed: (reason: ShedReason) => void,
    private readonly owner: PendingHandshakes,
  ) {}
  release(): void {
    this.owner.remove(this);
  }
}

export class PendingHandshakes {
  private readonly bySource = new Map<string, Set<Ticket>>();
  /** Sources by how many connections each holds, each set in the order they reached that count. */
  private readonly byCount = new Map<number, Set<string>>();
  private maxCount = 0;
  private count = 0;

  constructor(readonly caps: PendingCaps) {
    for (const [name, value] of Object.entries(caps)) {
      if (!Number.isInteger(value) || value < 1) throw new RangeError(`pending handshake cap ${name} must be an integer >= 1; got ${value}`);
    }
  }

  /** Connections admitted and not yet released or shed. */
  get size(): number {
    return this.count;
  }

  /** How many connections `source` holds now. */
  heldBy(source: string): number {
    return this.bySource.get(source)?.size ?? 0;
  }

  /**
   * Admits a new connection from `source`, first shedding one older connection if a cap is
   * reached: `onShed` of that connection runs, synchronously, and must close it.
   */
  admit(source: string, onShed: (reason: ShedReason) => void): PendingTicket {
    const own = this.bySource.get(source);
    if (own !== undefined && own.size >= this.caps.perSource) {
      this.shed(first(own), 'source-cap');
    } else if (this.count >= this.caps.total) {
      const largest = first(this.byCount.get(this.maxCount)!);
      this.shed(first(this.bySource.get(largest)!), 'total-cap');
    }
    const ticket = new Ticket(source, onShed, this);
    let tickets = this.bySource.get(source);
    if (tickets === undefined) this.bySource.set(source, (tickets = new Set()));
    tickets.add(ticket);
    this.count++;
    this.recount(source, tickets.size - 1, tickets.size);
    return ticket;
  }

  /** @internal Ticket.release. */
  remove(ticket: Ticket): void {
    if (!ticket.admitted) return;
    ticket.admitted = false;
    const tickets = this.bySource.get(ticket.source)!;
    tickets.delete(ticket);
    if (tickets.size === 0) this.bySource.delete(ticket.source);
    this.count--;
    this.recount(ticket.source, tickets.size + 1, tickets.size);
  }

  private shed(ticket: Ticket, reason: ShedReason): void {
    this.remove(ticket);
    ticket.shed = reason;
    ticket.onShed(reason);
  }

  /** Moves `source` from the set of sources holding `from` to those holding `to` (from +/- 1). */
  private recount(source: string, from: number, to: number): void {
    if (from > 0) {
      const set = this.byCount.get(from)!;
      set.delete(source);
      if (set.size === 0) this.byCount.delete(from);
    }
    if (to > 0) {
      let set = this.byCount.get(to);
      if (set === undefined) this.byCount.set(to, (set = new Set()));
      set.add(source);
    }
    if (to > this.maxCount) this.maxCount = to;
    else if (from === this.maxCount && !this.byCount.has(from)) this.maxCount = to;
  }
}

function first<T>(set: Set<T>): T {
  return set.values().next().value as T;
}

/** The address a connection comes from, IPv4-mapped IPv6 written as IPv4, so one host is one source. */
export function sourceOf(remoteAddress: string | undefined): string {
  if (remoteAddress === undefined) return 'unknown';
  return remoteAddress.startsWith('::ffff:') && remoteAddress.includes('.') ? remoteAddress.slice(7) : remoteAddress;
}
