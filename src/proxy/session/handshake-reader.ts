/**
 * Reads what a handshake step waits for, the optional preamble and then one frame, within a
 * deadline and a length bound. Bytes that arrive after the frame go to the session's decoder.
 *
 * What a connection costs while it waits is what it has sent: the assembler holds the reads
 * themselves (at most `maxLength` bytes of message) and refuses a longer announced length at
 * once, before a byte of it is buffered (README, "Strangers").
 */
import type { Socket } from 'node:net';
import { FrameDecoder, HandshakeFrameAssembler, type HandshakeFrameFailure } from '../protocol/index.js';

export type HandshakeReadFailure = 'timeout' | HandshakeFrameFailure | 'closed';

export class HandshakeReadError extends Error {
  constructor(readonly failure: HandshakeReadFailure) {
    super(`handshake read failed: ${failure}`);
  }
}

export interface HandshakeRead {
  readonly message: Buffer;
  readonly decoder: FrameDecoder;
}

export interface HandshakeReadOptions {
  readonly timeoutMs: number;
  /** The responder checks the preamble byte by byte, so a stranger is dropped at its first wrong byte. */
  readonly expectPreamble: boolean;
  /** The longest message this step can be (`handshakeLimits`); a longer length fails `oversize`. */
  readonly maxLength: number;
}

/**
 * Resolves with the first frame. The socket is paused when this settles; the caller owns it
 * again. Nothing of the read is kept by the socket after it settles: the listeners and the
 * timer go, so a refused connection leaves no closure holding its bytes.
 */
export function readHandshakeFrame(socket: Socket, o: HandshakeReadOptions): Promise<HandshakeRead> {
  return new Promise((resolve, reject) => {
    const assembler = new HandshakeFrameAssembler(o.maxLength, o.expectPreamble);
    let done = false;
    const settle = (result: HandshakeRead | HandshakeReadError): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.pause();
      socket.off('data', onData);
      socket.off('end', onClosed);
      socket.off('close', onClosed);
      socket.off('error', onClosed);
      if (result instanceof HandshakeReadError) reject(result);
      else resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      const step = assembler.push(chunk);
      if (step.kind === 'more') return;
      if (step.kind === 'failed') return settle(new HandshakeReadError(step.failure));
      const decoder = new FrameDecoder();
      decoder.queue(step.rest);
      settle({ message: step.message, decoder });
    };
    const onClosed = (): void => settle(new HandshakeReadError('closed'));
    const timer = setTimeout(() => settle(new HandshakeReadError('timeout')), o.timeoutMs);
    socket.on('data', onData);
    socket.once('end', onClosed);
    socket.once('close', onClosed);
    socket.once('error', onClosed);
    socket.resume();
  });
}
