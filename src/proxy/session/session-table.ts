/**
 * Every live session, by the peer's static key, so that a registry change can abort all
 * sessions of a revoked key at once (PROTOCOL.md section 6).
 */
import type { AbortReason, Direction, SecureSession, SessionSummary } from './secure-session.js';

/** Sessions of one direction ended together by `abortKeyTogether`, for one metric update. */
export interface EndedTogether {
  readonly sessions: number;
  readonly bytesFromApp: number;
  readonly bytesToApp: number;
}

export class SessionTable {
  private readonly byKey = new Map<string, Set<SecureSession>>();
  private count = 0;
  private opening = 0;
  private readonly idleWaiters: (() => void)[] = [];

  get size(): number {
    return this.count;
  }

  /**
   * Sessions, plus handshakes that hold or are opening a session's two descriptors
   * (`open()`): what the session cap weighs.
   */
  get load(): number {
    return this.count + this.opening;
  }

  /** Counts a handshake under way toward `load` until the returned function is called (once). */
  open(): () => void {
    this.opening++;
    let open = true;
    return () => {
      if (open) this.opening--;
      open = false;
    };
  }

  add(session: SecureSession): void {
    const key = session.peer.publicKeyB64;
    let set = this.byKey.get(key);
    if (set === undefined) this.byKey.set(key, (set = new Set()));
    set.add(session);
    this.count++;
    session.onEnd(() => this.remove(session));
  }

  /** Open sessions with `publicKeyB64` (the balancer's load figure). */
  countOf(publicKeyB64: string): number {
    return this.byKey.get(publicKeyB64)?.size ?? 0;
  }

  /** Aborts every session with `publicKeyB64`; returns how many there were. */
  abortKey(publicKeyB64: string, reason: AbortReason): number {
    const set = this.byKey.get(publicKeyB64);
    if (set === undefined) return 0;
    const sessions = [...set];
    for (const session of sessions) session.abort(reason);
    return sessions.length;
  }

  /**
   * Aborts every session with `publicKeyB64` as one event (a revocation): the sessions' own
   * end reports are skipped (SessionEnd.together) and their counts and bytes returned by
   * direction, for the caller to report once. O(the key's sessions).
   */
  abortKeyTogether(publicKeyB64: string, reason: AbortReason): Record<Direction, EndedTogether> {
    const ended = { inbound: { sessions: 0, bytesFromApp: 0, bytesToApp: 0 }, outbound: { sessions: 0, bytesFromApp: 0, bytesToApp: 0 } };
    const set = this.byKey.get(publicKeyB64);
    if (set === undefined) return ended;
    for (const session of [...set]) {
      if (session.isEnded) continue;
      session.abort(reason, true);
      const d = ended[session.direction];
      d.sessions++;
      d.bytesFromApp += session.bytesFromApp;
      d.bytesToApp += session.bytesToApp;
    }
    return ended;
  }

  abortAll(reason: AbortReason): number {
    let n = 0;
    for (const key of [...this.byKey.keys()]) n += this.abortKey(key, reason);
    return n;
  }

  summaries(): SessionSummary[] {
    const out: SessionSummary[] = [];
    for (const set of this.byKey.values()) for (const s of set) out.push(s.summary());
    return out;
  }

  /** Resolves once no session is left (for draining at shutdown). */
  whenEmpty(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private remove(session: SecureSession): void {
    const key = session.peer.publicKeyB64;
    const set = this.byKey.get(key);
    if (set === undefined || !set.delete(session)) return;
    if (set.size === 0) this.byKey.delete(key);
    this.count--;
    if (this.count === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }
}
