/**
 * Picks a crypto backend by name. The noble backend is imported when it is first asked for,
 * not with this folder: its 70 @noble modules (~2 MB of heap after a full GC) stay out of a
 * proxy that runs `native`, which every full collection of its heap would otherwise walk
 * (bench/README.md, load, "Where a proxy's memory went").
 */
import { nativeBackend } from './backend-native.js';
import type { CryptoBackend } from './primitives.js';

/**
 * The backend named `name` (`native` or `noble`, as BackendName). Rejects with RangeError,
 * naming both, for any other name: a configuration or a command line holds it.
 */
export async function loadBackend(name: string): Promise<CryptoBackend> {
  switch (name) {
    case 'native':
      return nativeBackend;
    case 'noble':
      return (await import('./backend-noble.js')).nobleBackend;
    default:
      throw new RangeError(`unknown crypto backend '${name}': use native or noble`);
  }
}
