/**
 * Recycled buffers for large frames.
 *
 * Under bulk traffic a new 64 KiB buffer for every frame is external memory that V8 weighs
 * when it decides on a full collection; with a proxy's small heap it ran ~20 a second in each
 * proxy at 2 Gbit/s (bench/README.md, proxy). Large frames therefore come from a
 * free list, and go back to it when the socket has written them or the session has decrypted
 * them. Small frames do not: node's own pool serves those under 4 KiB, and a 64 KiB buffer
 * held by a 100-byte frame would multiply what an idle session with a queued write pins.
 */

/** Frames of at least this many bytes use recycled buffers. */
export const RECYCLED_FRAME_MIN = 16 * 1024;

export class FrameBuffers {
  private readonly free: Buffer[] = [];

  /**
   * @param size bytes of every buffer: the largest frame.
   * @param keep buffers kept for reuse at most; beyond that they are left to the collector,
   *   so a burst of many concurrent sessions does not pin its peak for ever.
   */
  constructor(
    readonly size: number,
    private readonly keep: number,
  ) {}

  /** A buffer of `size` bytes, contents undefined. */
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  /** Hands a buffer back; its owner must not touch it again. */
  give(buffer: Buffer): void {
    if (buffer.length === this.size && this.free.length < this.keep) this.free.push(buffer);
  }

  /** Buffers waiting for reuse (for tests and metrics). */
  get idle(): number {
    return this.free.length;
  }
}
