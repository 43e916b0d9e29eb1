export { PROTOCOL, LIMITS, Status, Extension, statusName } from './constants.js';
export { FrameDecoder, FrameError, frameHeader, encodeFrame, type FrameHandler } from './frame-decoder.js';
export { FrameBuffers, RECYCLED_FRAME_MIN } from './frame-buffers.js';
export {
  HandshakeFrameAssembler, handshakeLimits,
  type HandshakeLimits, type HandshakeFrameFailure, type HandshakeFrameStep,
} from './handshake-frame.js';
export {
  encodeP1, decodeP1, describeP1Error, encodeP2, decodeP2, prologue,
  type P1, type P2, type P1Problem, type ExtensionField,
} from './payloads.js';
