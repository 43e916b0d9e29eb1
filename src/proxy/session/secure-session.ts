/**
 * One NMP/1 session after its handshake: the application's plaintext socket on one side,
 * the peer's encrypted socket on the other, and the Noise transport between them
 * (PROTOCOL.md section 5).
 *
 * Memory per session is bounded, whatever the peers do: each direction holds at most one
 * read (64 KiB) in flight, plus one partial frame in the decoder (64 KiB), and stops reading
 * (pause) while the socket it writes to reports backpressure, so a slow reader pauses a fast
 * writer instead of growing a buffer. Bound: about 2 x (64 + 64 + 16) KiB = 288 KiB.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { NoiseError, TAG_LEN, type CipherState, type Transport } from '../../noise/index.js';
import { FrameBuffers, FrameDecoder, FrameError, PROTOCOL, RECYCLED_FRAME_MIN } from '../protocol/index.js';
import { NativePump } from './native-pump.js';
import { resetSocket } from './socket-reset.js';
import { reportOutsideWriteQueue } from '../transport/index.js';

export type Direction = 'inbound' | 'outbound';

/** Why a session was aborted; a closed set, used as a metric label. */
export type AbortReason =
  | 'truncated'
  | 'decrypt'
  | 'frame'
  | 'data-after-eos'
  | 'nonce-exhausted'
  | 'app-reset'
  | 'peer-reset'
  /** The kernel gave up on the mesh connection (keepalive or user timeout: ETIMEDOUT). */
  | 'peer-timeout'
  | 'revoked'
  | 'shutdown'
  | 'internal';

export interface SessionPeer {
  readonly agentId: string;
  readonly publicKeyB64: string;
}

export interface SessionSummary {
  readonly id: number;
  readonly direction: Direction;
  readonly peer: string;
  readonly targetPort: number;
  readonly bytesFromApp: number;
  readonly bytesToApp: number;
  /** Bytes this session holds in user space now: both write queues and the frame decoder. */
  readonly bufferedBytes: number;
  readonly ageSeconds: number;
  /** Which pump relays it: the native session pump, or node's streams (docs/architecture.md, Established sessions). */
  readonly pump: 'native' | 'javascript';
}

export interface SessionEnd {
  readonly result: 'closed' | 'aborted';
  readonly reason: AbortReason | null;
  readonly bytesFromApp: number;
  readonly bytesToApp: number;
  readonly durationMs: number;
  /**
   * Ended together with others by one call (every session of a revoked key, SessionTable
   * `abortKeyTogether`): that caller reports them all in one metric update and one log line,
   * so the session's own end listeners must not report it again.
   */
  readonly together: boolean;
}

let nextId = 1;
const EMPTY = Buffer.alloc(0);
const HEADER = PROTOCOL.frameHeaderLength;
/** Every session's large frames, both ways; 16 kept: 1 MiB at most waits for reuse. */
const largeFrames = new FrameBuffers(HEADER + PROTOCOL.maxFrameLength, 16);

export class SecureSession {
  readonly id = nextId++;
  readonly startedAt = Date.now();
  bytesFromApp = 0;
  bytesToApp = 0;
  private readonly sending: CipherState;
  private readonly receiving: CipherState;
  private sentEos = false;
  private receivedEos = false;
  private appClosed = false;
  private meshClosed = false;
  private ended = false;
  /** Set when native/session_pump.c runs this session (the default; tryStart says when it cannot). */
  private pump: NativePump | null = null;
  private abortTogether = false;
  private readonly endListeners: ((end: SessionEnd) => void)[] = [];

  constructor(
    /** The application's connection: a TCP socket, or the stream of a built-in service (the secrets gateway). */
    private readonly app: Duplex,
    private readonly mesh: Socket,
    transport: Transport,
    private readonly decoder: FrameDecoder,
    readonly direction: Direction,
    readonly peer: SessionPeer,
    readonly targetPort: number,
  ) {
    if (transport.sending === null || transport.receiving === null) throw new Error('NMP/1 sessions are two-way');
    // Only the two CipherStates are kept: the handshake hash and the peer's key (with the
    // OpenSSL key object made from it) go with the Transport, ~0.5 KiB of an idle session.
    this.sending = transport.sending;
    this.receiving = transport.receiving;
    decoder.recycleInto(largeFrames);
  }

  /** Starts both pumps; frames already read past the handshake are delivered first. */
  start(): void {
    const { app, mesh } = this;
    if (this.startNative()) return;
    app.on('data', (chunk: Buffer) => this.fromApp(chunk));
    app.on('end', () => this.appEnded());
    app.on('error', () => this.abort('app-reset'));
    app.on('close', () => this.socketClosed('app'));
    mesh.on('data', (chunk: Buffer) => this.fromMesh(chunk));
    mesh.on('end', () => this.meshEnded());
    mesh.on('error', (err: NodeJS.ErrnoException) => this.abort(err.code === 'ETIMEDOUT' ? 'peer-timeout' : 'peer-reset'));
    mesh.on('close', () => this.socketClosed('mesh'));
    this.fromMesh(EMPTY);
    app.resume();
    mesh.resume();
  }

  /**
   * Hands the session, with what node has already read of it, to the native pump when it is
   * on and can take it; node's sockets then stay paused and open until the pump ends, and are
   * destroyed then (after an abort the pump has set SO_LINGER 0, so that close is the RST).
   */
  private startNative(): boolean {
    const { app, mesh } = this;
    const pump = NativePump.tryStart(app, mesh, this.decoder, this.sending, this.receiving, (result, reason, fromApp, toApp) => {
      this.bytesFromApp = fromApp;
      this.bytesToApp = toApp;
      app.destroy();
      mesh.destroy();
      this.finish(result, result === 'closed' ? null : (reason as AbortReason), this.abortTogether);
    });
    if (pump === null) return false;
    this.pump = pump;
    // node's sockets are neither read nor written now, but they may still be destroyed by
    // their other owners (the liveness check gives up on a peer that stopped answering window
    // probes; a reset surfacing late): that ends the session, as it would on the JS pump, and
    // the pump's reset of both connections follows. After the pump's own end these are no-ops.
    app.on('error', () => this.abort('app-reset'));
    app.on('close', () => this.abort('app-reset'));
    mesh.on('error', (err: NodeJS.ErrnoException) => this.abort(err.code === 'ETIMEDOUT' ? 'peer-timeout' : 'peer-reset'));
    mesh.on('close', () => this.abort('peer-reset'));
    reportOutsideWriteQueue(mesh, () => (this.ended ? 0 : pump.queuedToMesh()));
    this.sending.wipe();
    this.receiving.wipe();
    return true;
  }

  onEnd(listener: (end: SessionEnd) => void): void {
    this.endListeners.push(listener);
  }

  get isEnded(): boolean {
    return this.ended;
  }

  summary(): SessionSummary {
    let bufferedBytes = this.app.writableLength + this.mesh.writableLength + this.decoder.bufferedBytes;
    if (this.pump !== null && !this.ended) {
      const now = this.pump.stats();
      this.bytesFromApp = now.bytesFromApp;
      this.bytesToApp = now.bytesToApp;
      bufferedBytes = now.bufferedBytes;
    }
    return {
      id: this.id,
      direction: this.direction,
      peer: this.peer.agentId,
      targetPort: this.targetPort,
      bytesFromApp: this.bytesFromApp,
      bytesToApp: this.bytesToApp,
      bufferedBytes,
      ageSeconds: (Date.now() - this.startedAt) / 1000,
      pump: this.pump === null ? 'javascript' : 'native',
    };
  }


  /**
   * Resets both connections and wipes the keys. Idempotent. `together`: one of many ended by
   * one call, which reports them (SessionEnd.together).
   */
  abort(reason: AbortReason, together = false): void {
    if (this.ended) return;
    if (this.pump !== null) {
      this.abortTogether = together;
      this.pump.abort(reason);
      return;
    }
    resetSocket(this.app);
    resetSocket(this.mesh);
    this.finish('aborted', reason, together);
  }

  private fromApp(chunk: Buffer): void {
    if (this.ended) return;
    this.bytesFromApp += chunk.length;
    const max = PROTOCOL.maxTransportPlaintext;
    // A read larger than one message becomes several frames: corked, they leave in one writev.
    const split = chunk.length > max;
    let flushed = true;
    if (split) this.mesh.cork();
    try {
      for (let offset = 0; offset < chunk.length; offset += max) {
        flushed = this.sendMessage(chunk.subarray(offset, Math.min(offset + max, chunk.length)));
      }
    } catch (err) {
      this.abort(err instanceof NoiseError && err.code === 'NOISE_NONCE_EXHAUSTED' ? 'nonce-exhausted' : 'internal');
      return;
    } finally {
      if (split) this.mesh.uncork();
    }
    if (!flushed) this.pauseUntilDrained(this.app, this.mesh);
  }

  /**
   * Encrypts one message straight into its frame, behind the length header, writes it,
   * and rekeys on the PROTOCOL.md 5 schedule. One buffer per frame: one write, where a
   * separate header would cost a writev and an allocation of its own.
   */
  private sendMessage(plaintext: Buffer): boolean {
    const size = HEADER + plaintext.length + TAG_LEN;
    const recycled = size >= RECYCLED_FRAME_MIN ? largeFrames.take() : null;
    const frame = recycled === null ? Buffer.allocUnsafe(size) : recycled.subarray(0, size);
    const length = this.sending.encryptWithAdInto(EMPTY, plaintext, frame, HEADER);
    frame.writeUInt16BE(length, 0);
    if (this.sending.nonceLow16 === 0) this.sending.rekey();
    // The socket owns a recycled buffer until it has written it (or failed to).
    return recycled === null ? this.mesh.write(frame) : this.mesh.write(frame, () => largeFrames.give(recycled));
  }

  private appEnded(): void {
    if (this.ended || this.sentEos) return;
    this.sentEos = true;
    try {
      this.sendMessage(EMPTY);
    } catch {
      this.abort('nonce-exhausted');
      return;
    }
    this.mesh.end();
  }

  private fromMesh(chunk: Buffer): void {
    if (this.ended) return;
    let flushed = true;
    try {
      this.decoder.push(chunk, (message) => {
        if (this.receivedEos) {
          this.abort('data-after-eos');
          return false;
        }
        const plaintext = this.receiving.decryptWithAd(EMPTY, message);
        if (this.receiving.nonceLow16 === 0) this.receiving.rekey();
        if (plaintext.length === 0) {
          this.receivedEos = true;
          this.app.end();
          return true;
        }
        this.bytesToApp += plaintext.length;
        flushed = this.app.write(plaintext) && flushed;
        return true;
      });
    } catch (err) {
      this.abort(abortReasonFor(err));
      return;
    }
    if (!flushed && !this.ended) this.pauseUntilDrained(this.mesh, this.app);
  }

  private meshEnded(): void {
    if (this.ended) return;
    // TCP EOF before END-OF-STREAM, or in the middle of a frame, is a truncation attack
    // or a crash; either way the application must not see a clean end.
    if (!this.receivedEos || this.decoder.hasPartialFrame()) this.abort('truncated');
  }

  private pauseUntilDrained(reader: Duplex, writer: Duplex): void {
    reader.pause();
    writer.once('drain', () => {
      if (!this.ended) reader.resume();
    });
  }

  private socketClosed(which: 'app' | 'mesh'): void {
    if (which === 'app') this.appClosed = true;
    else this.meshClosed = true;
    if (this.ended) return;
    if (this.sentEos && this.receivedEos) {
      if (this.appClosed && this.meshClosed) this.finish('closed', null);
      return;
    }
    // One side went away without the END-OF-STREAM exchange finishing: nothing more can
    // be delivered faithfully, so the other side must see a reset, not a FIN.
    this.abort(which === 'app' ? 'app-reset' : 'peer-reset');
  }

  private finish(result: SessionEnd['result'], reason: AbortReason | null, together = false): void {
    this.ended = true;
    this.sending.wipe();
    this.receiving.wipe();
    const end: SessionEnd = {
      result,
      reason,
      bytesFromApp: this.bytesFromApp,
      bytesToApp: this.bytesToApp,
      durationMs: Date.now() - this.startedAt,
      together,
    };
    for (const listener of this.endListeners) listener(end);
  }
}

function abortReasonFor(err: unknown): AbortReason {
  if (err instanceof FrameError) return 'frame';
  if (err instanceof NoiseError) {
    if (err.code === 'NOISE_NONCE_EXHAUSTED') return 'nonce-exhausted';
    return 'decrypt';
  }
  return 'internal';
}
