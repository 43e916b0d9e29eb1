/**
 * Picks a Service endpoint for a new connection: power of two choices (Mitzenmacher; what
 * linkerd2-proxy and Envoy's least-request balancer do) over each endpoint's load, its open
 * sessions (the session table, by the peer's key) plus the handshakes this balancer has
 * started to it and not yet seen end. Counting those keeps a burst of connections, all in
 * their handshakes at once, from landing on the one endpoint that looked idle.
 *
 * Two endpoints drawn at random, the less loaded wins (a tie: the first drawn). With two
 * endpoints that is always the less loaded one; with many it avoids the herd that "always the
 * least loaded" makes when every proxy's view lags.
 */
import type { SessionTable } from '../session/session-table.js';
import type { MeshPeer } from '../peers.js';

export interface MeshEndpoint {
  readonly peer: MeshPeer;
  readonly address: string;
  readonly port: number;
}

export class ServiceBalancer {
  readonly #pending = new Map<string, number>();

  constructor(
    private readonly sessions: Pick<SessionTable, 'countOf'>,
    /** In [0, 1); tests may fix it. */
    private readonly random: () => number = Math.random,
  ) {}

  /** Open sessions plus handshakes in flight to this peer. */
  load(peer: MeshPeer): number {
    return this.sessions.countOf(peer.publicKeyB64) + (this.#pending.get(peer.publicKeyB64) ?? 0);
  }

  /** One of `endpoints` not in `tried`, or undefined when every one has been tried. */
  pick(endpoints: readonly MeshEndpoint[], tried: ReadonlySet<MeshEndpoint> = new Set()): MeshEndpoint | undefined {
    const open = tried.size === 0 ? endpoints : endpoints.filter((e) => !tried.has(e));
    if (open.length <= 1) return open[0];
    const i = Math.floor(this.random() * open.length);
    let j = Math.floor(this.random() * (open.length - 1));
    if (j >= i) j++;
    const a = open[i]!;
    const b = open[j]!;
    return this.load(b.peer) < this.load(a.peer) ? b : a;
  }

  /** Counts a handshake to `peer` until the returned function is called (once it ends). */
  begin(peer: MeshPeer): () => void {
    const key = peer.publicKeyB64;
    this.#pending.set(key, (this.#pending.get(key) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (this.#pending.get(key) ?? 1) - 1;
      if (n <= 0) this.#pending.delete(key);
      else this.#pending.set(key, n);
    };
  }
}
