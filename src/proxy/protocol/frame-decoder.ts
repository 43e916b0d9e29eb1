/**
 * Reassembles NMP/1 frames (`length: u16 BE` + Noise message) from TCP reads of any size.
 * A frame that lies within one read is handed out as a view of it, without a copy; only a
 * frame split across reads is copied, once, into a buffer of its exact size. At most one
 * frame (65,537 bytes) is ever held: that is the decoder's share of a session's memory.
 */
import { PROTOCOL } from './constants.js';
import { RECYCLED_FRAME_MIN, type FrameBuffers } from './frame-buffers.js';

export class FrameError extends Error {
  readonly code = 'NMP_FRAME';
}

const EMPTY = Buffer.alloc(0);

/** Return false from a frame callback to stop: the bytes after that frame stay queued. */
export type FrameHandler = (message: Buffer) => boolean | void;

export class FrameDecoder {
  private pending: Buffer = EMPTY;
  // A frame under assembly across reads: its buffer and how much of it is filled.
  private partial: Buffer | null = null;
  private partialFilled = 0;
  // The recycled buffer under `partial`, when it has one.
  private partialBacking: Buffer | null = null;
  private recycled: FrameBuffers | null = null;

  /**
   * From now on, large frames split across reads are assembled in `buffers` and handed back
   * as soon as the frame handler returns. Only for a handler that is done with each frame
   * when it returns (the session pump decrypts it there); never for the handshake reader,
   * which passes its frame on.
   */
  recycleInto(buffers: FrameBuffers): void {
    this.recycled = buffers;
  }

  /** Bytes read that the handler has not been given yet, the header of a frame under assembly included. */
  get bufferedBytes(): number {
    return this.pending.length + (this.partial !== null ? PROTOCOL.frameHeaderLength + this.partialFilled : 0);
  }

  /**
   * True while any byte of a frame is held: an EOF now would cut a frame in two. A frame's
   * header alone, its body not yet begun, counts (a FIN there is a truncation, PROTOCOL.md 5).
   */
  hasPartialFrame(): boolean {
    return this.pending.length > 0 || this.partial !== null;
  }

  /**
   * Feeds one read; calls `onFrame` for each complete frame in order until it returns
   * false. Throws FrameError for a zero length, the only malformed header there is.
   */
  push(chunk: Buffer, onFrame: FrameHandler): void {
    let data = chunk;
    if (this.partial !== null) {
      const take = Math.min(this.partial.length - this.partialFilled, data.length);
      data.copy(this.partial, this.partialFilled, 0, take);
      this.partialFilled += take;
      data = data.subarray(take);
      if (this.partialFilled < this.partial.length) return;
      const frame = this.partial;
      const backing = this.partialBacking;
      this.partial = null;
      this.partialBacking = null;
      this.partialFilled = 0;
      const more = onFrame(frame);
      if (backing !== null) this.recycled?.give(backing);
      if (more === false) {
        this.pending = data;
        return;
      }
    }
    if (this.pending.length > 0) {
      data = data.length === 0 ? this.pending : Buffer.concat([this.pending, data]);
      this.pending = EMPTY;
    }
    this.consume(data, onFrame);
  }

  /**
   * Queues bytes read past the handshake, before this decoder existed; the next `push` or
   * `resume` delivers their frames.
   */
  queue(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.pending = this.pending.length === 0 ? bytes : Buffer.concat([this.pending, bytes]);
  }

  /**
   * Hands out the queued bytes no frame has been cut from yet, and forgets them (the native
   * pump takes a session over with them); null while a frame is under assembly, whose start
   * only this decoder holds.
   */
  takeQueued(): Buffer | null {
    if (this.partial !== null) return null;
    const bytes = this.pending;
    this.pending = EMPTY;
    return bytes;
  }

  /** Delivers frames already queued (after a handler stopped), without new input. */
  resume(onFrame: FrameHandler): void {
    const data = this.pending;
    this.pending = EMPTY;
    this.consume(data, onFrame);
  }

  private consume(data: Buffer, onFrame: FrameHandler): void {
    let offset = 0;
    while (data.length - offset >= PROTOCOL.frameHeaderLength) {
      const length = data.readUInt16BE(offset);
      if (length === 0) throw new FrameError('zero-length frame');
      const start = offset + PROTOCOL.frameHeaderLength;
      const end = start + length;
      if (end > data.length) {
        if (this.recycled !== null && length >= RECYCLED_FRAME_MIN) {
          this.partialBacking = this.recycled.take();
          this.partial = this.partialBacking.subarray(0, length);
        } else {
          this.partial = Buffer.allocUnsafe(length);
        }
        this.partialFilled = data.copy(this.partial, 0, start);
        return;
      }
      offset = end;
      if (onFrame(data.subarray(start, end)) === false) break;
    }
    // A view, not a copy: at most a header byte, or the tail of a read a handler stopped in.
    if (offset < data.length) this.pending = data.subarray(offset);
  }
}

/** The 2-byte header for a Noise message of `length` bytes. */
export function frameHeader(length: number): Buffer {
  if (length < 1 || length > PROTOCOL.maxFrameLength) throw new FrameError(`frame length ${length} out of range 1..65535`);
  const header = Buffer.allocUnsafe(PROTOCOL.frameHeaderLength);
  header.writeUInt16BE(length, 0);
  return header;
}

/** A whole frame in one buffer, for handshake messages (cold path). */
export function encodeFrame(message: Uint8Array): Buffer {
  return Buffer.concat([frameHeader(message.length), message]);
}
