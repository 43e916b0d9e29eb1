/**
 * The responder side of NMP/1 (PROTOCOL.md section 4): reads the preamble and message 1,
 * decides the status from the registry, the replay window and policy, connects to the target
 * for status 0, and answers message 2. The target is the pod's own address the mesh
 * connection arrived on, at P1's target port, unless `targetHost` names another; with
 * built-in services (the secrets gateway) there is no TCP target: the service gives the
 * session its application stream, or refuses the port (status 4).
 *
 * Before message 1 has decrypted, a failure gets silence: the connection closes without a
 * byte, so a prober learns nothing. So does a message 1 from a low-order key, static or
 * ephemeral, which anyone could have written (PROTOCOL.md section 2). After it, the initiator
 * is authenticated and gets a status code; the detail goes to our log only.
 *
 * Until its message 1 has arrived a connection is a stranger's, admitted under the pending
 * caps (pending-handshakes.ts); from the moment it is authenticated it weighs on the
 * session cap, as it is about to hold a session's two descriptors.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { HandshakeState, LowOrderKeyError, encodeKey } from '../../noise/index.js';
import { decodeP1, describeP1Error, encodeFrame, encodeP2, handshakeLimits, LIMITS, PROTOCOL, Status, statusName, type P1 } from '../protocol/index.js';
import { readHandshakeFrame, HandshakeReadError } from '../session/handshake-reader.js';
import { PendingHandshakes, sourceOf, type PendingCaps } from './pending-handshakes.js';
import { ReplayWindow } from '../session/replay-window.js';
import { SecureSession } from '../session/secure-session.js';
import { registerSession } from '../session/register-session.js';
import { connectTcp } from '../session/connect.js';
import type { MeshPeer } from '../peers.js';
import type { MeshContext } from '../mesh-context.js';
import { arrivalTarget } from './arrival-address.js';
import type { BuiltInServices } from './built-in-services.js';

/** A policy hook: may refuse an authenticated initiator (status 6) or a port (status 4). */
export type InboundPolicy = (peer: MeshPeer, p1: P1) => typeof Status.accepted | typeof Status.targetPortNotAllowed | typeof Status.deniedByPolicy;

export interface ResponderOptions extends MeshContext {
  /**
   * Where targets listen. Absent: the local address each mesh connection arrived on (the
   * pod IP), so a server bound only to 127.0.0.1 is never reached (PROTOCOL.md 4.2).
   */
  readonly targetHost?: string;
  /** Instead of TCP targets: the services this responder runs itself (the secrets gateway). */
  readonly services?: BuiltInServices;
  /** The proxy's own listening ports: never a target (status 4), so nothing loops. */
  readonly ownPorts: ReadonlySet<number>;
  readonly policy?: InboundPolicy;
  readonly replay?: ReplayWindow;
  /** Sessions of both directions, with handshakes becoming sessions; beyond it, status 7. */
  readonly maxSessions?: number;
  /** Connections that have not yet delivered their message 1. */
  readonly pending?: PendingCaps;
}

export class MeshResponder {
  readonly replay: ReplayWindow;
  readonly pending: PendingHandshakes;
  private readonly handshakeTimeoutMs: number;
  private readonly maxSessions: number;
  private readonly maxMessage1: number;

  constructor(private readonly o: ResponderOptions) {
    this.replay = o.replay ?? new ReplayWindow(PROTOCOL.replayWindowNs, LIMITS.maxReplayEntries, LIMITS.maxReplayEntriesPerKey);
    this.handshakeTimeoutMs = o.handshakeTimeoutMs ?? PROTOCOL.handshakeTimeoutMs;
    this.maxSessions = o.maxSessions ?? LIMITS.maxSessions;
    this.pending = new PendingHandshakes(o.pending ?? { total: LIMITS.maxPendingHandshakes, perSource: LIMITS.maxPendingHandshakesPerSource });
    this.maxMessage1 = handshakeLimits(o.protocol).message1;
  }

  /** Takes an accepted connection on the mesh port. Never throws; every failure is local to it. */
  async accept(socket: Socket): Promise<void> {
    const started = process.hrtime.bigint();
    socket.setNoDelay(true);
    const { metrics, log } = this.o;
    const ticket = this.pending.admit(sourceOf(socket.remoteAddress), (reason) => {
      metrics.handshakesShed.inc({ reason });
      socket.destroy();
    });
    metrics.handshakesPending.set(this.pending.size);
    const silent = (result: string, detail?: string): void => {
      metrics.handshakes.inc({ role: 'responder', result });
      log.debug({ event: 'handshake', role: 'responder', result, detail, remote: socket.remoteAddress }, 'handshake refused without answer');
      socket.destroy();
    };

    let read;
    try {
      read = await readHandshakeFrame(socket, { timeoutMs: this.handshakeTimeoutMs, expectPreamble: true, maxLength: this.maxMessage1 });
    } catch (err) {
      return silent(ticket.shed !== null ? 'shed' : err instanceof HandshakeReadError ? err.failure : 'internal');
    } finally {
      // Message 1 is judged now, without waiting: a stranger is closed before anything else
      // runs, and a peer it authenticates is counted as a session from here on.
      ticket.release();
      metrics.handshakesPending.set(this.pending.size);
    }
    const handshake = new HandshakeState({
      protocol: this.o.protocol,
      initiator: false,
      staticKeyPair: this.o.identity.keyPair,
      prologue: this.o.prologue,
      backend: this.o.backend,
      ...(this.o.psk && { psks: [this.o.psk] }),
    });
    let p1Bytes: Uint8Array;
    try {
      p1Bytes = handshake.readMessage(read.message).payload;
    } catch (err) {
      handshake.wipe();
      // A low-order key (PROTOCOL.md section 2) gets the same silence as a bad tag.
      if (err instanceof LowOrderKeyError) return silent('low-order', err.message);
      return silent('decrypt');
    }
    const p1 = decodeP1(p1Bytes);
    if (p1 === null) {
      handshake.wipe();
      return silent('malformed', describeP1Error(p1Bytes) ?? undefined);
    }

    // Authenticated: from here until it is a session (or refused) this handshake may hold a
    // session's two descriptors, so it weighs on the session cap.
    const opened = this.o.sessions.open();
    const initiatorKey = encodeKey(handshake.remoteStaticKey!);
    const peer = this.o.directory.peerByKey(initiatorKey);
    let status = this.decide(peer, initiatorKey, p1);
    let target: Duplex | null = null;
    let targetDetail: string | undefined;
    if (status === Status.accepted && this.o.services !== undefined) {
      target = this.o.services.openMeshStream(p1.targetPort, peer!);
      if (target === null) status = Status.targetPortNotAllowed;
    } else if (status === Status.accepted) {
      const where = this.o.targetHost !== undefined ? { ok: true as const, host: this.o.targetHost } : arrivalTarget(socket.localAddress, socket.remoteAddress);
      if (!where.ok) {
        status = Status.targetUnavailable;
        targetDetail = where.reason;
      } else {
        try {
          target = await connectTcp(where.host, p1.targetPort, LIMITS.targetConnectTimeoutMs);
        } catch (err) {
          status = Status.targetUnavailable;
          targetDetail = (err as NodeJS.ErrnoException).code ?? 'connect failed';
        }
      }
    }

    if (status === Status.accepted) {
      // The target connect can take seconds; a revocation meanwhile found no session of this
      // key to abort (it is not in the table yet), so the key is checked again (PROTOCOL.md 6).
      const now = this.o.directory.peerByKey(initiatorKey);
      if (now === undefined || now.agentId !== peer!.agentId || now.generation !== p1.generation) {
        status = now === undefined || now.agentId !== peer!.agentId ? Status.unknownInitiator : Status.staleGeneration;
        target?.destroy();
        target = null;
      }
    }

    const ownGeneration = this.o.directory.peerByKey(this.o.identity.publicKeyB64)?.generation ?? 0n;
    let transport;
    try {
      const written = handshake.writeMessage(encodeP2({ status, generation: ownGeneration, extensions: [] }));
      transport = written.transport!;
      socket.write(encodeFrame(written.message));
    } catch (err) {
      target?.destroy();
      opened();
      return silent('internal', (err as Error).message);
    }
    const result = statusName(status);
    metrics.handshakes.inc({ role: 'responder', result });
    metrics.handshakeSeconds.observe({ role: 'responder' }, Number(process.hrtime.bigint() - started) / 1e9);
    if (status !== Status.accepted || socket.destroyed) {
      transport.wipe();
      target?.destroy();
      socket.end();
      opened();
      log.info({ event: 'session-end', direction: 'inbound', peer: peer?.agentId ?? null, status: result, detail: targetDetail, targetPort: p1.targetPort, bytesIn: 0, bytesOut: 0, durationMs: 0 }, 'handshake refused');
      return;
    }

    // Only now: a stranger's connection ends at the handshake timeout and costs no system calls.
    this.o.liveness.apply(socket);
    const session = registerSession(
      this.o,
      new SecureSession(target!, socket, transport, read.decoder, 'inbound', { agentId: peer!.agentId, publicKeyB64: initiatorKey }, p1.targetPort),
    );
    opened();
    // The key may have been revoked while we connected to the target: the table did not hold
    // this session yet, so the abort would have missed it.
    if (this.o.directory.peerByKey(initiatorKey)?.generation !== peer!.generation) {
      session.abort('revoked');
      return;
    }
    session.start();
  }

  private decide(peer: MeshPeer | undefined, initiatorKey: string, p1: P1): Status {
    if (peer === undefined) return Status.unknownInitiator;
    if (peer.generation !== p1.generation) return Status.staleGeneration;
    const freshness = this.replay.check(initiatorKey, p1.timestampNs);
    if (freshness === 'replay') return Status.replay;
    if (freshness === 'overloaded') return Status.overloaded;
    if (this.o.ownPorts.has(p1.targetPort)) return Status.targetPortNotAllowed;
    // This handshake is counted in the load already (accept).
    if (this.o.sessions.load > this.maxSessions) return Status.overloaded;
    return this.o.policy?.(peer, p1) ?? Status.accepted;
  }
}
