/**
 * The native transport pump (native/session_pump.c): an established session whose sockets
 * are TCP is handed, with what node had already read of them, to C code that relays on node's
 * own loop (PROTOCOL.md section 5: frames, END-OF-STREAM, REKEY), ~40% less CPU per proxied
 * request than node's streams (bench/README.md, load). The handshake, admission, revocation
 * and every decision stay in JavaScript; so does any session the pump cannot take (the
 * gateway's in-process streams, a socket node has already seen end), which runs on the
 * JavaScript pump in secure-session.ts, as every session does with NOISEMESH_NATIVE_PUMP=0 or
 * without the addon.
 */
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { addonPath, loadAddon } from '../../native/index.js';
import type { CipherState } from '../../noise/index.js';
import type { FrameDecoder } from '../protocol/index.js';

const EMPTY = Buffer.alloc(0);

/** Everything node holds of the stream's reads (a paused stream's read() gives it all at once; a flowing one's, a chunk). */
function readAll(stream: Duplex): Buffer {
  const chunks: Buffer[] = [];
  for (let held = stream.readableLength; held > 0; held = stream.readableLength) {
    const chunk: unknown = stream.read();
    if (!Buffer.isBuffer(chunk) || stream.readableLength >= held) break;
    chunks.push(chunk);
  }
  return chunks.length === 0 ? EMPTY : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

function concat(a: Buffer, b: Buffer): Buffer {
  return a.length === 0 ? b : b.length === 0 ? a : Buffer.concat([a, b]);
}

export type PumpHandle = object & { readonly __pump: unique symbol };

export type PumpEnd = (result: 'closed' | 'aborted', reason: string | null, bytesFromApp: number, bytesToApp: number) => void;

/** What native/session_pump.c exports; its header comment is the contract. */
interface SessionPumpAddon {
  start(
    appFd: number, meshFd: number, cipher: number,
    sendKey: Uint8Array, sendHi: number, sendLo: number,
    recvKey: Uint8Array, recvHi: number, recvLo: number,
    onEnd: PumpEnd,
    appPending?: Uint8Array | null, meshPending?: Uint8Array | null,
  ): PumpHandle;
  abort(handle: PumpHandle, reason: string): void;
  stats(handle: PumpHandle, out: Float64Array): void;
}

/** The environment variable that turns the native pump off ('0'); unset or '1' leaves it on. */
const NATIVE_PUMP_VARIABLE = 'NOISEMESH_NATIVE_PUMP';

function setting(): string | undefined {
  return process.env.NOISEMESH_NATIVE_PUMP;
}

/** Null when the variable's value is valid, else the one line that says what it takes. */
export function nativePumpSettingError(): string | null {
  const value = setting();
  return value === undefined || value === '' || value === '0' || value === '1'
    ? null
    : `${NATIVE_PUMP_VARIABLE} must be 0 (the JavaScript pump) or 1 (the native pump, the default); got ${JSON.stringify(value)}`;
}

/** sessionPump()'s reason when the variable turned the native pump off. */
export const PUMP_TURNED_OFF = `${NATIVE_PUMP_VARIABLE}=0`;

const enabled = setting() !== '0';
const load = enabled ? loadAddon<SessionPumpAddon>(addonPath('session_pump'), ['start', 'abort', 'stats']) : null;

/**
 * Which pump established sessions get: `native`, or `javascript` with the reason (turned off,
 * or the addon could not load: `reason` says why, never a key).
 */
export function sessionPump(): { engine: 'native' } | { engine: 'javascript'; reason: string } {
  if (load === null) return { engine: 'javascript', reason: PUMP_TURNED_OFF };
  return load.ok ? { engine: 'native' } : { engine: 'javascript', reason: `the session pump addon ${load.reason}` };
}

/**
 * Descriptors one established session holds in this process: its two connections, and with
 * the native pump the duplicate of each that native/session_pump.c polls (the budget of
 * descriptorBudget() counts these, so that the pump never eats the reserve accept(2) needs).
 */
export function sessionDescriptors(): 2 | 4 {
  return sessionPump().engine === 'native' ? 4 : 2;
}

let starts = 0;
/** stats() writes here: one array for every pump of the process (calls never overlap). */
const statsOut = new Float64Array(4);

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

/**
 * Open both ways, nothing queued to write, and no EOF read by node yet (the kernel would give
 * the pump that EOF again, but node would also emit its own 'end': such a rare session stays
 * in JavaScript).
 */
function open(stream: Duplex): boolean {
  const state = (stream as unknown as { _readableState?: { ended?: boolean } })._readableState;
  return !stream.destroyed && stream.writableLength === 0 && !stream.writableEnded && !stream.readableEnded && state?.ended !== true;
}

export class NativePump {
  private constructor(private readonly addon: SessionPumpAddon, private readonly handle: PumpHandle) {}

  /**
   * Hands the pair to the pump, or returns null (and changes nothing the JS pump needs) when
   * the pump is off or unavailable, a stream is no TCP socket, or a stream is half-closed or
   * has a write queued. What node has already read (the application's first bytes, frames
   * that came with the handshake: `decoder`'s queue, then the mesh socket's buffer) is handed
   * over with the descriptors and processed first. On success node's sockets stay open and
   * unread until `onEnd`, whose caller destroys them; `onEnd` may run before this returns
   * (a fault in those first bytes).
   */
  static tryStart(app: Duplex, mesh: Socket, decoder: FrameDecoder | null, sending: CipherState, receiving: CipherState, onEnd: PumpEnd): NativePump | null {
    if (load === null || !load.ok) return null;
    const cipher = CIPHER_IDS[sending.cipher.name];
    const appHandle = tcpHandle(app);
    const meshHandle = tcpHandle(mesh);
    if (cipher === undefined || appHandle === null || meshHandle === null || !open(app) || !open(mesh)) return null;
    const queued = decoder === null ? EMPTY : decoder.takeQueued();
    if (queued === null) return null; // a frame under assembly: only the JS decoder holds its start
    // read() may restart node's reading (it refills below the high-water mark); the readStop
    // below ends that, and nothing arrives in between, as no loop turn passes.
    const appPending = readAll(app);
    const meshPending = concat(queued, readAll(mesh));
    // node may have a read outstanding even on a paused socket (it stops only at its
    // high-water mark): stop it, so that every byte from now on is the pump's.
    for (const h of [appHandle, meshHandle]) {
      h.reading = false;
      h.readStop!();
    }
    const s = sending.snapshot();
    const r = receiving.snapshot();
    try {
      if (s.k === null || r.k === null) return restore();
      let handle: PumpHandle;
      try {
        handle = load.addon.start(appHandle.fd!, meshHandle.fd!, cipher, s.k, s.nHi, s.nLo, r.k, r.nHi, r.nLo, onEnd, appPending, meshPending);
      } catch {
        // dup() at the descriptor limit (EMFILE: a peer can drive us there), or OpenSSL/libuv
        // set-up failed; nothing was taken, so the session stays in JavaScript, whose start()
        // resumes both streams (reading again after the readStop above).
        return restore();
      }
      starts++;
      return new NativePump(load.addon, handle);
    } finally {
      s.k?.fill(0);
      r.k?.fill(0);
    }

    /** Gives back what was taken: the JS pump reads it as if nothing happened. */
    function restore(): null {
      if (appPending.length > 0) app.unshift(appPending);
      if (meshPending.length === 0) return null;
      if (decoder !== null) decoder.queue(meshPending);
      else mesh.unshift(meshPending);
      return null;
    }
  }

  /** Aborts now; the end callback runs before this returns. */
  abort(reason: string): void {
    this.addon.abort(this.handle, reason);
  }

  /** Counters now: bytes each way, bytes held in all, and of those the ones waiting for the mesh socket. */
  stats(): { bytesFromApp: number; bytesToApp: number; bufferedBytes: number; queuedToMesh: number } {
    this.addon.stats(this.handle, statsOut);
    return { bytesFromApp: statsOut[0]!, bytesToApp: statsOut[1]!, bufferedBytes: statsOut[2]!, queuedToMesh: statsOut[3]! };
  }

  /** Bytes waiting for the mesh socket (its kernel buffer full); read once a second per session, so it allocates nothing. */
  queuedToMesh(): number {
    this.addon.stats(this.handle, statsOut);
    return statsOut[3]!;
  }
}
