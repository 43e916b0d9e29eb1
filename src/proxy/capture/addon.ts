import { addonPath, loadAddon, REBUILD_HINT } from '../../native/index.js';
import { AddonUnavailableError } from './errors.js';
import type { SocketAddress } from './socket-address.js';

/** What native/original_dst.c exports. */
export interface OriginalDestinationAddon {
  /**
   * getsockopt(SO_ORIGINAL_DST) (IPv4, also for v4-mapped sockets) or
   * getsockopt(IP6T_SO_ORIGINAL_DST) (IPv6) on `fd`. Throws an Error whose `code` is the errno
   * name: ENOENT when conntrack holds no entry for the connection.
   */
  originalDestination(fd: number): SocketAddress;
}

export const ORIGINAL_DST_ADDON_PATH = addonPath('original_dst');

const loaded = new Map<string, OriginalDestinationAddon>();

/**
 * Loads the addon (once per path). Throws AddonUnavailableError naming the cause and the fix:
 * the proxy refuses to start with capture configured and no way to read original destinations.
 */
export function loadOriginalDestinationAddon(path: string = ORIGINAL_DST_ADDON_PATH): OriginalDestinationAddon {
  const cached = loaded.get(path);
  if (cached !== undefined) return cached;
  const result = loadAddon<OriginalDestinationAddon>(path, ['originalDestination']);
  if (!result.ok) {
    const what = result.missing
      ? `the original-destination addon ${result.reason}: it is built from native/original_dst.c at install`
      : `the original-destination addon ${result.reason}`;
    throw new AddonUnavailableError(`${what}; ${REBUILD_HINT}. Transparent capture needs it; explicit listeners do not.`, { cause: result.cause });
  }
  loaded.set(path, result.addon);
  return result.addon;
}
