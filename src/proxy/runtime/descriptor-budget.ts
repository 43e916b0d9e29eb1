/**
 * How a proxy shares out the descriptors its limit allows (README, "Strangers"). Some are
 * held back for what must keep working under attack: node itself, every listener, the
 * registry and key files and logs, the admin server's connections, and what built-in services
 * (the secrets gateway) hold under their own caps. The rest is split in
 * thirds: one for mesh-port connections that have not yet sent a message 1 that decrypts
 * (one descriptor each), two for sessions (two each: the application's or target's
 * connection and the mesh connection, or four when the native session pump runs them, as it
 * polls its own duplicate of each; a handshake counts as a session from the moment it is
 * authenticated, or for the initiator from the moment it starts, since it is then opening
 * its second descriptor). The caps are therefore always below the limit, so accept(2) never
 * meets EMFILE and the registry can always be read.
 */
// The constants alone, not protocol/index: runtime/ must stay cheap to import, as the heap
// tuning beside it takes effect only from the moment it runs (test/proxy-runtime.test.ts).
import { LIMITS } from '../protocol/constants.js';

export const DESCRIPTOR_RESERVE = {
  /**
   * node and libuv (~20 at start: stdio, epoll, eventfds, signal pipes, an inotify watch),
   * the registry file and key files while they are read, log files; listeners come on top.
   */
  process: 64,
  /** Admin connections at once (probes, scrapes); the admin server closes any beyond. */
  admin: 32,
} as const;

export interface ConnectionCaps {
  /** Mesh-port connections that have not finished their handshake. */
  readonly pendingHandshakes: number;
  /** Of those, from one source address. */
  readonly pendingHandshakesPerSource: number;
  /** Sessions of both directions, with the handshakes that are becoming sessions. */
  readonly sessions: number;
  /** Admin connections at once. */
  readonly adminConnections: number;
}

export interface DescriptorBudget extends ConnectionCaps {
  /** The descriptor limit shared out. */
  readonly limit: number;
  /** Descriptors held back from mesh connections and sessions. */
  readonly reserved: number;
}

/**
 * The caps for a process allowed `limit` descriptors (Infinity for none) with `listeners`
 * listening sockets, whose sessions hold `descriptorsPerSession` each (2, or 4 with the
 * native pump: `sessionDescriptors()`), and built-in services that may hold `services` more
 * (their listeners and capped connections, outside the session caps). Each cap is at least 1
 * and at most its LIMITS ceiling.
 */
export function descriptorBudget(limit: number, listeners: number, descriptorsPerSession = 2, services = 0): DescriptorBudget {
  const reserved = DESCRIPTOR_RESERVE.process + listeners + DESCRIPTOR_RESERVE.admin + services;
  const usable = Math.max(0, limit - reserved);
  const pendingHandshakes = clamp(Math.floor(usable / 3), LIMITS.maxPendingHandshakes);
  return {
    limit,
    reserved,
    pendingHandshakes,
    pendingHandshakesPerSource: clamp(Math.ceil(pendingHandshakes / 8), LIMITS.maxPendingHandshakesPerSource),
    sessions: clamp(Math.floor((2 * usable) / (3 * descriptorsPerSession)), LIMITS.maxSessions),
    adminConnections: DESCRIPTOR_RESERVE.admin,
  };
}

function clamp(value: number, ceiling: number): number {
  return Math.max(1, Math.min(ceiling, Number.isFinite(value) ? value : ceiling));
}
