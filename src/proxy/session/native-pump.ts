/**
 * The opt-in native transport pump (native/session_pump.c; PROTOTYPE, see NOTES.md): with
 * NOISEMESH_NATIVE_PUMP=1, an established session whose sockets hold nothing in user space
 * is handed to C code that relays on node's own loop, ~100 µs of CPU per proxied request
 * less than node's streams. The handshake and every decision stay in JavaScript.
 */
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { addonPath, loadAddon } from '../../native/index.js';
import type { CipherState } from '../../noise/index.js';

export type PumpHandle = object & { readonly __pump: unique symbol };

export type PumpEnd = (result: 'closed' | 'aborted', reason: string | null, bytesFromApp: number, bytesToApp: number) => void;

/** What native/session_pump.c exports; its header comment is the contract. */
interface SessionPumpAddon {
  start(
    appFd: number, meshFd: number, cipher: number,
    sendKey: Uint8Array, sendHi: number, sendLo: number,
    recvKey: Uint8Array, recvHi: number, recvLo: number,
    onEnd: PumpEnd,
  ): PumpHandle;
  abort(handle: PumpHandle, reason: string): void;
  stats(handle: PumpHandle): [number, number, number];
}

const enabled = process.env.NOISEMESH_NATIVE_PUMP === '1';
const load = enabled ? loadAddon<SessionPumpAddon>(addonPath('session_pump'), ['start', 'abort', 'stats']) : null;
let starts = 0;

/** Sessions handed to the native pump in this process so far (tests check it was used). */
export function nativePumpStarts(): number {
  return starts;
}

const CIPHER_IDS: Readonly<Record<string, number>> = { ChaChaPoly: 0, AESGCM: 1 };

interface TcpHandle {
  fd?: number;
  reading?: boolean;
  readStop?: () => number;
}

function tcpHandle(stream: Duplex): TcpHandle | null {
  if (!(stream instanceof Socket)) return null;
  const handle = (stream as unknown as { _handle?: TcpHandle | null })._handle;
  return handle !== null && handle !== undefined && typeof handle.fd === 'number' && handle.fd >= 0 && typeof handle.readStop === 'function'
    ? handle
    : null;
}

/** Nothing of the stream's is held in user space, and it is open both ways. */
function idle(stream: Duplex): boolean {
  return !stream.destroyed && stream.readableLength === 0 && stream.writableLength === 0 && !stream.writableEnded && !stream.readableEnded;
}

export class NativePump {
  private constructor(private readonly addon: SessionPumpAddon, private readonly handle: PumpHandle) {}

  /**
   * Hands the pair to the pump, or returns null (and changes nothing the JS pump needs) when
   * the pump is off or unavailable, a stream is no TCP socket, or bytes are held in user space.
   * On success node's sockets stay open and unread until `onEnd`, whose caller destroys them.
   */
  static tryStart(app: Duplex, mesh: Socket, pendingBytes: number, sending: CipherState, receiving: CipherState, onEnd: PumpEnd): NativePump | null {
    if (load === null || !load.ok || pendingBytes !== 0) return null;
    const cipher = CIPHER_IDS[sending.cipher.name];
    const appHandle = tcpHandle(app);
    const meshHandle = tcpHandle(mesh);
    if (cipher === undefined || appHandle === null || meshHandle === null || !idle(app) || !idle(mesh)) return null;
    // node may still have a read outstanding on a paused socket (it stops only at its
    // high-water mark): stop it, so that every byte from now on is the pump's. A read
    // that already arrived is in readableLength, checked again after.
    for (const h of [appHandle, meshHandle]) {
      h.reading = false;
      h.readStop!();
    }
    if (app.readableLength !== 0 || mesh.readableLength !== 0) return null; // start() resumes, which reads again
    const s = sending.snapshot();
    const r = receiving.snapshot();
    try {
      if (s.k === null || r.k === null) return null;
      let handle: PumpHandle;
      try {
        handle = load.addon.start(appHandle.fd!, meshHandle.fd!, cipher, s.k, s.nHi, s.nLo, r.k, r.nHi, r.nLo, onEnd);
      } catch {
        // dup() at the descriptor limit (EMFILE: a peer can drive us there), or OpenSSL/libuv
        // set-up failed; nothing was taken, so the session stays in JavaScript, whose start()
        // resumes both streams (reading again after the readStop above).
        return null;
      }
      starts++;
      return new NativePump(load.addon, handle);
    } finally {
      s.k?.fill(0);
      r.k?.fill(0);
    }
  }

  /** Aborts now; the end callback runs before this returns. */
  abort(reason: string): void {
    this.addon.abort(this.handle, reason);
  }

  stats(): { bytesFromApp: number; bytesToApp: number; bufferedBytes: number } {
    const [bytesFromApp, bytesToApp, bufferedBytes] = this.addon.stats(this.handle);
    return { bytesFromApp, bytesToApp, bufferedBytes };
  }
}
