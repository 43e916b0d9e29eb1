/**
 * The closed set of failures of original-destination lookup, each with a stable `code`.
 */
export type CaptureErrorCode =
  | 'CAPTURE_ADDON_UNAVAILABLE'
  | 'CAPTURE_NO_DESCRIPTOR'
  | 'CAPTURE_NOT_REDIRECTED'
  | 'CAPTURE_LOOKUP_FAILED';

export abstract class CaptureError extends Error {
  abstract readonly code: CaptureErrorCode;
  override get name(): string {
    return this.constructor.name;
  }
}

/** The native addon could not be loaded; the message names the cause and the fix. */
export class AddonUnavailableError extends CaptureError {
  readonly code = 'CAPTURE_ADDON_UNAVAILABLE' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The socket has no file descriptor: it is closed, or not a TCP socket Node opened itself. */
export class NoDescriptorError extends CaptureError {
  readonly code = 'CAPTURE_NO_DESCRIPTOR' as const;
}

/**
 * The connection reached the capture port without being redirected: conntrack has no NAT
 * entry for it (ENOENT) or the original destination is the capture listener itself. The
 * proxy must refuse it; forwarding it would connect the proxy to itself.
 */
export class NotRedirectedError extends CaptureError {
  readonly code = 'CAPTURE_NOT_REDIRECTED' as const;
}

/** getsockopt failed otherwise; `errno` is the name (`ENOPROTOOPT`, ...). */
export class LookupFailedError extends CaptureError {
  readonly code = 'CAPTURE_LOOKUP_FAILED' as const;
  constructor(readonly errno: string, message: string) {
    super(message);
  }
}
