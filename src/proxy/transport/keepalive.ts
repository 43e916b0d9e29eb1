/**
 * Dead-peer detection on mesh connections, both roles: the initiator's connection to a
 * peer's mesh port and every connection the responder accepts. A peer whose node dies sends
 * no FIN and no RST; without this its sessions, and the applications' connections behind
 * them, would stay established forever (the application's own keepalive probes are answered
 * by its own proxy, so they cannot help).
 *
 * Two kernel mechanisms, because each covers what the other cannot:
 * - TCP keepalive: after `idleSeconds` without traffic, `probes` probes `intervalSeconds`
 *   apart; no answer, and the kernel ends the connection with ETIMEDOUT. Probes are sent
 *   only while nothing is in flight.
 * - TCP_USER_TIMEOUT: data left unacknowledged this long ends the connection with ETIMEDOUT.
 *   Set to the same bound, idle + interval x probes, so a dead peer is detected within that
 *   bound whether the connection was idle or busy (Linux also lets it cap the keepalive
 *   probing, so the two never disagree).
 * The session then aborts (reason `peer-timeout`) and resets the application's connection.
 *
 * One case needs care. Linux (since 5.11) applies TCP_USER_TIMEOUT to a zero window too: a
 * live peer whose application stops reading, while we have data for it, would be given up
 * after the bound like a dead one, where the same connection without a mesh stays open. So
 * once a second the sockets with data queued in user space (their kernel buffer is full) are
 * looked at through TCP_INFO: nothing in flight with data waiting means the peer's window is
 * shut while it still acknowledges, and the user timeout is lifted until data flows again.
 * Meanwhile the peer must keep answering the kernel's window probes: `probes` unanswered in
 * a row end the connection (ETIMEDOUT) as keepalive would. Window probes back off up to
 * 2 minutes apart, so a peer that dies during such a pause is found within `probes` x 2 min.
 *
 * Node's socket.setKeepAlive sets only the idle time; libuv 1.46 (Node 20) fixes the
 * interval at 1 s and the count at 10, and nothing in Node sets TCP_USER_TIMEOUT. The rest
 * comes from native/tcp_liveness.c; without it, setKeepAlive is the fallback.
 */
import type { Socket } from 'node:net';
import type { AddonLoad } from '../../native/index.js';
import { socketDescriptor } from '../capture/index.js';
import { loadTcpLivenessAddon, type TcpLivenessAddon } from './liveness-addon.js';

/**
 * How often sockets with data queued in user space are checked for a zero window: well below
 * any bound (>= 2 s). A socket whose kernel buffer holds all its data is not looked at, so a
 * zero window that never backs data up into user space still meets the user timeout.
 */
const ZERO_WINDOW_CHECK_MS = 1000;

/**
 * Bytes held for a socket in user space outside node's write queue: the native session pump
 * (src/proxy/session/native-pump.ts) writes through its own descriptor and keeps its own queue,
 * so node's `writableLength` of a pumped socket is always 0.
 */
const outsideQueues = new WeakMap<Socket, () => number>();

/** Tells the zero-window check how many bytes wait for `socket` outside node's write queue. */
export function reportOutsideWriteQueue(socket: Socket, queuedBytes: () => number): void {
  outsideQueues.set(socket, queuedBytes);
}

function queuedInUserSpace(socket: Socket): number {
  return socket.writableLength + (outsideQueues.get(socket)?.() ?? 0);
}

export interface KeepaliveSettings {
  /** Seconds without traffic before the first probe (TCP_KEEPIDLE), 1..32767. */
  readonly idleSeconds: number;
  /** Seconds between unanswered probes (TCP_KEEPINTVL), 1..32767. */
  readonly intervalSeconds: number;
  /** Unanswered probes before the connection is given up (TCP_KEEPCNT), 1..127. */
  readonly probes: number;
}

/**
 * 10 s idle as linkerd2-proxy's keepalive; then 3 probes 5 s apart. A dead peer is detected
 * within 25 s; a live one costs one 0-byte probe and its ACK per 10 s of silence. The
 * kernel's own defaults (7200 s, 9 x 75 s) take over two hours.
 */
export const DEFAULT_KEEPALIVE: KeepaliveSettings = { idleSeconds: 10, intervalSeconds: 5, probes: 3 };

/** The kernel's limits (include/net/tcp.h), and TCP_USER_TIMEOUT's: a signed 32-bit count of ms. */
export const KEEPALIVE_LIMITS = {
  maxIdleSeconds: 32767,
  maxIntervalSeconds: 32767,
  maxProbes: 127,
  maxBoundSeconds: 2_147_483,
} as const;

/** What socket.setKeepAlive leaves on a socket under Node 20's libuv (1.46), measured by the tests. */
export const NODE_KEEPALIVE_FALLBACK = { intervalSeconds: 1, probes: 10 } as const;

/** The time within which a silent peer is declared dead: idle + interval x probes, in seconds. */
export function deadPeerBoundSeconds(settings: KeepaliveSettings): number {
  return settings.idleSeconds + settings.intervalSeconds * settings.probes;
}

export class MeshSocketLiveness {
  /** The dead-peer bound with the addon; also TCP_USER_TIMEOUT, in seconds. */
  readonly boundSeconds: number;
  /** Why the addon is not in use, for the proxy's start-up warning; undefined when it is. */
  readonly fallbackReason: string | undefined;
  private readonly addon: TcpLivenessAddon | null;
  private readonly userTimeoutMs: number;
  /** Every armed socket until it closes; those whose user timeout is lifted for a zero window. */
  private readonly armed = new Set<Socket>();
  private readonly lifted = new Set<Socket>();
  private ticker: NodeJS.Timeout | null = null;

  constructor(
    readonly settings: KeepaliveSettings = DEFAULT_KEEPALIVE,
    addon: AddonLoad<TcpLivenessAddon> = loadTcpLivenessAddon(),
  ) {
    this.boundSeconds = deadPeerBoundSeconds(settings);
    if (this.boundSeconds > KEEPALIVE_LIMITS.maxBoundSeconds) {
      throw new RangeError(`keepalive: idle + interval x probes is ${this.boundSeconds} s, above ${KEEPALIVE_LIMITS.maxBoundSeconds} s`);
    }
    this.userTimeoutMs = this.boundSeconds * 1000;
    this.addon = addon.ok ? addon.addon : null;
    this.fallbackReason = addon.ok ? undefined : addon.reason;
  }

  /**
   * What is lost without the addon, in a sentence for the start-up log; undefined with it.
   */
  describeFallback(): string | undefined {
    if (this.fallbackReason === undefined) return undefined;
    const { idleSeconds } = this.settings;
    const idleBound = idleSeconds + NODE_KEEPALIVE_FALLBACK.intervalSeconds * NODE_KEEPALIVE_FALLBACK.probes;
    return (
      `the TCP liveness addon is unavailable (${this.fallbackReason}): mesh connections get Node's keepalive only ` +
      `(idle ${idleSeconds} s, then libuv's ${NODE_KEEPALIVE_FALLBACK.probes} probes ${NODE_KEEPALIVE_FALLBACK.intervalSeconds} s apart: ` +
      `an idle dead peer is detected after ${idleBound} s) and no TCP_USER_TIMEOUT, so a peer that vanishes while data is ` +
      `unacknowledged is detected only at the kernel's retransmission limit (net.ipv4.tcp_retries2, ~15 min by default) ` +
      `instead of ${this.boundSeconds} s`
    );
  }

  /**
   * Arms dead-peer detection on a connected or accepted mesh socket. Never throws: a socket
   * that closed meanwhile needs nothing, and a socket the addon cannot configure gets Node's
   * keepalive.
   */
  apply(socket: Socket): void {
    if (socket.destroyed) return;
    const { idleSeconds, intervalSeconds, probes } = this.settings;
    if (this.addon !== null) {
      try {
        this.addon.setLiveness(socketDescriptor(socket), idleSeconds, intervalSeconds, probes, this.userTimeoutMs);
        this.watch(socket);
        return;
      } catch {
        // No descriptor or EBADF: the socket is going away. Anything else: the fallback below.
        if (socket.destroyed) return;
      }
    }
    socket.setKeepAlive(true, idleSeconds * 1000);
  }

  /** Sockets whose user timeout is lifted now, because their peer holds a zero window. */
  get liftedCount(): number {
    return this.lifted.size;
  }

  private watch(socket: Socket): void {
    this.armed.add(socket);
    socket.once('close', () => {
      this.armed.delete(socket);
      this.lifted.delete(socket);
      if (this.armed.size === 0 && this.ticker !== null) {
        clearInterval(this.ticker);
        this.ticker = null;
      }
    });
    if (this.ticker === null) {
      this.ticker = setInterval(() => this.checkZeroWindows(), ZERO_WINDOW_CHECK_MS);
      this.ticker.unref();
    }
  }

  /**
   * One pass over the armed sockets; only those with data waiting in user space cost a
   * system call. Never throws: a socket that fails a call is closing.
   */
  private checkZeroWindows(): void {
    const addon = this.addon!;
    for (const socket of this.armed) {
      const lifted = this.lifted.has(socket);
      if (!lifted && queuedInUserSpace(socket) === 0) continue;
      try {
        const fd = socketDescriptor(socket);
        const info = addon.tcpInfo(fd);
        if (info.unacked === 0 && info.queuedBytes > 0) {
          // Data waits and nothing is in flight: the window is shut, the peer alive so far.
          if (!lifted) {
            addon.setUserTimeout(fd, 0);
            this.lifted.add(socket);
          } else if (info.probes >= this.settings.probes) {
            socket.destroy(Object.assign(new Error(`${info.probes} window probes unanswered`), { code: 'ETIMEDOUT' }));
          }
        } else if (lifted) {
          addon.setUserTimeout(fd, this.userTimeoutMs);
          this.lifted.delete(socket);
        }
      } catch {
        // closing: its 'close' removes it
      }
    }
  }
}
