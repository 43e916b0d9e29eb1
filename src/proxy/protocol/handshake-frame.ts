/**
 * The first frame of a connection, before anyone is authenticated (PROTOCOL.md 3 and 4): the
 * optional preamble, then one handshake message, no longer than the suite's handshake
 * message can be.
 *
 * A length that no such message can have is refused as soon as its two bytes arrive, and
 * the message is held as the reads that carried it, so a stranger who announces 8,288 bytes
 * and sends ten costs ten bytes, not a buffer of the announced size (the frame decoder of a
 * session, which may allocate a whole frame at once, only ever sees authenticated peers).
 * Pure: no sockets, no timers.
 */
import { handshakeMessageOverhead, type Protocol } from '../../noise/index.js';
import { PROTOCOL } from './constants.js';

/** The longest handshake messages a suite of NMP/1 can produce, in bytes. */
export interface HandshakeLimits {
  /** IK message 1: e, the encrypted static key, and P1 (at most 8,192 bytes), encrypted. */
  readonly message1: number;
  /** IK message 2: e and P2, encrypted. */
  readonly message2: number;
}

/**
 * From the suite's pattern and DH length: 32 + 48 + 8,192 + 16 = 8,288 bytes for message 1
 * of every IK or IKpsk2 suite over 25519 (the psk changes no length). PROTOCOL.md 4.2 gives
 * P2 no maximum but its u16 extension length, so message 2 is bounded by the frame only.
 */
export function handshakeLimits(protocol: Protocol): HandshakeLimits {
  const longest = (index: number, payload: number): number =>
    Math.min(PROTOCOL.maxFrameLength, handshakeMessageOverhead(protocol, index) + payload);
  return {
    message1: longest(0, PROTOCOL.maxP1Length),
    message2: longest(1, PROTOCOL.p2FixedLength + 0xffff),
  };
}

export type HandshakeFrameFailure = 'bad-preamble' | 'bad-frame' | 'oversize';

export type HandshakeFrameStep =
  | { readonly kind: 'more' }
  | { readonly kind: 'failed'; readonly failure: HandshakeFrameFailure }
  /** `rest`: what the read carried past the frame, for the session's decoder. */
  | { readonly kind: 'frame'; readonly message: Buffer; readonly rest: Buffer };

const MORE: HandshakeFrameStep = { kind: 'more' };
const EMPTY = Buffer.alloc(0);
/**
 * Reads held apart before they are merged into one buffer: a peer that sends its message a
 * byte per segment would otherwise cost a Buffer object (~100 bytes) for every byte.
 */
const MAX_PARTS = 16;

export class HandshakeFrameAssembler {
  private preambleSeen: number;
  private header = -1;
  private length = -1;
  private parts: Buffer[] = [];
  private held = 0;
  private finished = false;

  /**
   * @param maxLength the longest message accepted (`handshakeLimits`); 1..65535.
   * @param expectPreamble the responder checks the preamble byte by byte before the frame.
   */
  constructor(
    private readonly maxLength: number,
    expectPreamble: boolean,
  ) {
    if (!Number.isInteger(maxLength) || maxLength < 1 || maxLength > PROTOCOL.maxFrameLength) {
      throw new RangeError(`maxLength must be 1..${PROTOCOL.maxFrameLength}`);
    }
    this.preambleSeen = expectPreamble ? 0 : PROTOCOL.preamble.length;
  }

  /** Message bytes held now: exactly those that have arrived, never the announced length. */
  get heldBytes(): number {
    return this.held;
  }

  /**
   * Memory the held bytes keep alive: the buffers under the views held (a socket read is a
   * buffer of its own length). For tests and `/debug`; not a hot path.
   */
  get retainedBytes(): number {
    let bytes = 0;
    for (const buffer of new Set(this.parts.map((p) => p.buffer))) bytes += buffer.byteLength;
    return bytes;
  }

  /**
   * Feeds one read. After a `frame` or `failed` step the assembler is spent and holds
   * nothing; pushing again throws.
   */
  push(chunk: Buffer): HandshakeFrameStep {
    if (this.finished) throw new Error('handshake frame already assembled');
    let data = chunk;
    const preamble = PROTOCOL.preamble;
    while (this.preambleSeen < preamble.length && data.length > 0) {
      // Byte by byte: a stranger is dropped at its first wrong byte.
      if (data[0] !== preamble[this.preambleSeen]) return this.fail('bad-preamble');
      this.preambleSeen++;
      data = data.subarray(1);
    }
    while (this.length < 0 && data.length > 0) {
      if (this.header < 0) {
        this.header = data[0]!;
      } else {
        this.length = (this.header << 8) | data[0]!;
        if (this.length === 0) return this.fail('bad-frame');
        if (this.length > this.maxLength) return this.fail('oversize');
      }
      data = data.subarray(1);
    }
    if (this.length < 0 || data.length === 0) return MORE;

    const missing = this.length - this.held;
    if (data.length < missing) {
      this.parts.push(data);
      this.held += data.length;
      if (this.parts.length > MAX_PARTS) this.parts = [merged(this.parts, this.held)];
      return MORE;
    }
    const tail = data.subarray(0, missing);
    const rest = data.length > missing ? data.subarray(missing) : EMPTY;
    const message = this.parts.length === 0 ? tail : merged([...this.parts, tail], this.length);
    this.release();
    return { kind: 'frame', message, rest };
  }

  private fail(failure: HandshakeFrameFailure): HandshakeFrameStep {
    this.release();
    return { kind: 'failed', failure };
  }

  private release(): void {
    this.finished = true;
    this.parts = [];
    this.held = 0;
  }
}

/** One buffer of its own (never node's shared pool) holding `parts` back to back. */
function merged(parts: readonly Buffer[], length: number): Buffer {
  const out = Buffer.allocUnsafeSlow(length);
  let offset = 0;
  for (const part of parts) offset += part.copy(out, offset);
  return out;
}
