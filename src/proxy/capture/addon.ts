import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
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

/** This file runs as dist/src/proxy/capture/addon.js; node-gyp builds into build/Release at the root. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
export const ORIGINAL_DST_ADDON_PATH = resolve(REPO_ROOT, 'build', 'Release', 'original_dst.node');

const loaded = new Map<string, OriginalDestinationAddon>();

/**
 * Loads the addon (once per path). Throws AddonUnavailableError naming the cause and the fix:
 * the proxy refuses to start with capture configured and no way to read original destinations.
 */
export function loadOriginalDestinationAddon(path: string = ORIGINAL_DST_ADDON_PATH): OriginalDestinationAddon {
  const cached = loaded.get(path);
  if (cached !== undefined) return cached;
  const rebuild = `run \`npm ci\` (its install step runs node-gyp rebuild; needs python3, make and a C compiler) or \`npx node-gyp rebuild\` in ${REPO_ROOT}`;
  let addon: unknown;
  try {
    addon = createRequire(import.meta.url)(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message =
      code === 'MODULE_NOT_FOUND'
        ? `the original-destination addon ${path} is missing: it is built from native/original_dst.c at install; ${rebuild}`
        : `the original-destination addon ${path} could not be loaded (${(err as Error).message}); ` +
          `it may be built for another platform or architecture: ${rebuild}`;
    throw new AddonUnavailableError(`${message}. Transparent capture needs it; explicit listeners do not.`, { cause: err });
  }
  if (typeof (addon as Partial<OriginalDestinationAddon>).originalDestination !== 'function') {
    throw new AddonUnavailableError(`${path} does not export originalDestination(fd): it is not this project's addon; ${rebuild}`);
  }
  loaded.set(path, addon as OriginalDestinationAddon);
  return addon as OriginalDestinationAddon;
}
