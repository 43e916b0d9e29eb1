/**
 * The initiator side of NMP/1 (PROTOCOL.md section 4): given an application connection and
 * the peer it is for, dials the peer's mesh port, runs the IK handshake with P1 naming the
 * target port, and either starts the session or resets the application's connection, so the
 * application sees a failure as a refused or reset connection, as it would without a mesh.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { HandshakeState, LowOrderKeyError } from '../../noise/index.js';
import { decodeP2, encodeFrame, encodeP1, handshakeLimits, LIMITS, PROTOCOL, Status, statusName } from '../protocol/index.js';
import { readHandshakeFrame, HandshakeReadError } from '../session/handshake-reader.js';
import { SecureSession } from '../session/secure-session.js';
import { registerSession } from '../session/register-session.js';
import { resetSocket } from '../session/socket-reset.js';
import { connectTcp } from '../session/connect.js';
import { TimestampClock } from '../session/timestamp-clock.js';
import type { MeshPeer } from '../peers.js';
import type { MeshContext } from '../mesh-context.js';

export interface InitiatorOptions extends MeshContext {
  readonly clock?: TimestampClock;
  /** Sessions of both directions, with handshakes becoming sessions; beyond it, the app is reset. */
  readonly maxSessions?: number;
}

/** Where to reach a peer: one of its addresses and its mesh port. */
export interface MeshRoute {
  readonly peer: MeshPeer;
  readonly host: string;
  readonly meshPort: number;
  readonly targetPort: number;
}

export type AttemptOutcome =
  | { readonly ok: true }
  | {
      readonly ok: false;
      /** The `result` label it was counted under (`connect-failed`, `timeout`, a status name...). */
      readonly result: string;
      /** Another endpoint may well succeed: nothing was sent, or the responder turned us away. */
      readonly retryable: boolean;
      /** The application closed its connection meanwhile: nothing more to try. */
      readonly appGone: boolean;
    };

const ACCEPTED: AttemptOutcome = Object.freeze({ ok: true });

/**
 * Failures another endpoint of the same Service may not have: no connection (`connect-failed`),
 * no answer (`timeout`, `closed`), and the refusals of one responder rather than of us
 * everywhere, P2 status 1 (it does not know our key yet), 2 (it holds another generation of
 * ours), 5 (its target is down) and 7 (it is overloaded). A bad answer (`decrypt`,
 * `malformed`, `stale-responder`) is not retried: it says something is wrong, not busy.
 */
const RETRYABLE: ReadonlySet<string> = new Set([
  'connect-failed',
  'timeout',
  'closed',
  statusName(Status.unknownInitiator),
  statusName(Status.staleGeneration),
  statusName(Status.targetUnavailable),
  statusName(Status.overloaded),
]);

export class MeshInitiator {
  /** One clock per static key, shared by every connection (PROTOCOL.md 4.3). */
  private readonly clock: TimestampClock;
  private readonly handshakeTimeoutMs: number;
  private readonly maxSessions: number;
  private readonly maxMessage2: number;

  constructor(private readonly o: InitiatorOptions) {
    this.clock = o.clock ?? new TimestampClock();
    this.handshakeTimeoutMs = o.handshakeTimeoutMs ?? PROTOCOL.handshakeTimeoutMs;
    this.maxSessions = o.maxSessions ?? LIMITS.maxSessions;
    this.maxMessage2 = handshakeLimits(o.protocol).message2;
  }

  /**
   * Carries `app` (a TCP socket, or an in-process stream when the proxy is the client) to
   * `route`. Never throws: a failure resets `app`. Resolves to `accepted` once the session
   * runs, else the failure as its handshake metric counts it (`connect-failed`, a P2 status
   * name such as `notAllowed`, ...): the proxy's own clients report it.
   */
  async open(app: Duplex, route: MeshRoute): Promise<string> {
    const outcome = await this.attempt(app, route);
    if (outcome.ok) return 'accepted';
    resetSocket(app);
    return outcome.result;
  }

  /**
   * One try at carrying `app` to `route`. On success the session owns `app`. On failure the
   * mesh connection is reset and `app` is left as it was, paused with none of its bytes read
   * (they are read only once a session starts), so the caller may try another endpoint or
   * reset it. Never throws.
   */
  async attempt(app: Duplex, route: MeshRoute): Promise<AttemptOutcome> {
    const started = process.hrtime.bigint();
    const { metrics, log } = this.o;
    app.pause();
    let mesh: Socket | null = null;
    let appGone = false;
    const onAppGone = (): void => {
      appGone = true;
      if (mesh !== null) resetSocket(mesh);
    };
    app.once('close', onAppGone);
    // The application's connection and the mesh connection: a session's two descriptors,
    // counted against the session cap from now on.
    const opened = this.o.sessions.open();
    const fail = (result: string, detail?: string): AttemptOutcome => {
      opened();
      app.off('close', onAppGone);
      metrics.handshakes.inc({ role: 'initiator', result });
      log.info({ event: 'session-end', direction: 'outbound', peer: route.peer.agentId, targetPort: route.targetPort, status: result, detail, bytesIn: 0, bytesOut: 0, durationMs: Number(process.hrtime.bigint() - started) / 1e6 }, 'outbound handshake failed');
      if (mesh !== null) resetSocket(mesh);
      return { ok: false, result, retryable: !appGone && RETRYABLE.has(result), appGone };
    };

    if (this.o.sessions.load > this.maxSessions) return fail('overloaded');
    const ownGeneration = this.o.directory.peerByKey(this.o.identity.publicKeyB64)?.generation;
    if (ownGeneration === undefined) return fail('self-not-registered');
    try {
      mesh = await connectTcp(route.host, route.meshPort, LIMITS.peerConnectTimeoutMs);
    } catch {
      return fail('connect-failed');
    }
    this.o.liveness.apply(mesh);
    if (appGone) return fail('app-closed');

    const handshake = new HandshakeState({
      protocol: this.o.protocol,
      initiator: true,
      staticKeyPair: this.o.identity.keyPair,
      remoteStaticKey: route.peer.publicKey,
      prologue: this.o.prologue,
      backend: this.o.backend,
      ...(this.o.psk && { psks: [this.o.psk] }),
    });
    const p1 = encodeP1({ timestampNs: this.clock.next(), generation: ownGeneration, targetPort: route.targetPort, extensions: [] });
    let message1: Uint8Array;
    try {
      message1 = handshake.writeMessage(p1).message;
    } catch (err) {
      // A low-order key in the registry: whoever answers could be anyone (PROTOCOL.md section 2).
      handshake.wipe();
      return fail(err instanceof LowOrderKeyError ? 'low-order' : 'internal', (err as Error).message);
    }
    mesh.write(Buffer.concat([PROTOCOL.preamble, encodeFrame(message1)]));

    let read;
    try {
      read = await readHandshakeFrame(mesh, { timeoutMs: this.handshakeTimeoutMs, expectPreamble: false, maxLength: this.maxMessage2 });
    } catch (err) {
      handshake.wipe();
      return fail(err instanceof HandshakeReadError ? err.failure : 'internal');
    }
    let transport;
    let p2;
    try {
      const result = handshake.readMessage(read.message);
      transport = result.transport!;
      p2 = decodeP2(result.payload);
    } catch (err) {
      handshake.wipe();
      return fail(err instanceof LowOrderKeyError ? 'low-order' : 'decrypt');
    }
    if (p2 === null) {
      transport.wipe();
      return fail('malformed');
    }
    // The responder must speak for the key generation the registry holds now; an older
    // generation means a revoked key is still answering (PROTOCOL.md 4.2).
    const current = this.o.directory.peerByKey(route.peer.publicKeyB64);
    if (current === undefined || current.generation !== p2.generation) {
      transport.wipe();
      return fail('stale-responder');
    }
    if (p2.status !== Status.accepted) {
      transport.wipe();
      return fail(statusName(p2.status));
    }
    if (appGone) {
      transport.wipe();
      return fail('app-closed');
    }
    app.off('close', onAppGone);
    metrics.handshakes.inc({ role: 'initiator', result: 'accepted' });
    metrics.handshakeSeconds.observe({ role: 'initiator' }, Number(process.hrtime.bigint() - started) / 1e9);
    registerSession(
      this.o,
      new SecureSession(app, mesh, transport, read.decoder, 'outbound', { agentId: route.peer.agentId, publicKeyB64: route.peer.publicKeyB64 }, route.targetPort),
    ).start();
    opened();
    return ACCEPTED;
  }
}
