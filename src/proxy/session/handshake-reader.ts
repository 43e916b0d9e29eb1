/**
 * Reads what a handshake step waits for, the optional preamble and then one frame, within a
 * deadline. Bytes that arrive after the frame stay in the decoder for the session.
 */
import type { Socket } from 'node:net';
import { FrameDecoder, PROTOCOL } from '../protocol/index.js';

export type HandshakeReadFailure = 'timeout' | 'bad-preamble' | 'bad-frame' | 'closed';

export class HandshakeReadError extends Error {
  constructor(readonly failure: HandshakeReadFailure) {
    super(`handshake read failed: ${failure}`);
  }
}

export interface HandshakeRead {
  readonly message: Buffer;
  readonly decoder: FrameDecoder;
}

/**
 * Resolves with the first frame. With `expectPreamble`, each byte of the preamble is
 * checked as it arrives, so a stranger is dropped at its first wrong byte.
 * The socket is paused when this settles; the caller owns it again.
 */
export function readHandshakeFrame(socket: Socket, timeoutMs: number, expectPreamble: boolean): Promise<HandshakeRead> {
  return new Promise((resolve, reject) => {
    const decoder = new FrameDecoder();
    let preambleSeen = expectPreamble ? 0 : PROTOCOL.preamble.length;
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
      let data = chunk;
      while (preambleSeen < PROTOCOL.preamble.length && data.length > 0) {
        if (data[0] !== PROTOCOL.preamble[preambleSeen]) return settle(new HandshakeReadError('bad-preamble'));
        preambleSeen++;
        data = data.subarray(1);
      }
      try {
        decoder.push(data, (message) => {
          settle({ message, decoder });
          return false;
        });
      } catch {
        settle(new HandshakeReadError('bad-frame'));
      }
    };
    const onClosed = (): void => settle(new HandshakeReadError('closed'));
    const timer = setTimeout(() => settle(new HandshakeReadError('timeout')), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onClosed);
    socket.once('close', onClosed);
    socket.once('error', onClosed);
    socket.resume();
  });
}
