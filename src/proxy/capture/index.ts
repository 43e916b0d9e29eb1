/**
 * Transparent capture: where a redirected connection was going (SO_ORIGINAL_DST through the
 * native addon), as a replaceable lookup step around accept.
 */
export { formatSocketAddress, type SocketAddress } from './socket-address.js';
export { CaptureError, AddonUnavailableError, NoDescriptorError, NotRedirectedError, LookupFailedError, type CaptureErrorCode } from './errors.js';
export { loadOriginalDestinationAddon, ORIGINAL_DST_ADDON_PATH, type OriginalDestinationAddon } from './addon.js';
export {
  originalDestination,
  addonOriginalDestinationLookup,
  withOriginalDestination,
  socketDescriptor,
  type OriginalDestinationLookup,
} from './original-destination.js';
