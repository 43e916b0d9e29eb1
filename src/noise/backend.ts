/** Picks a crypto backend by name. */
import { nativeBackend } from './backend-native.js';
import { nobleBackend } from './backend-noble.js';
import type { BackendName, CryptoBackend } from './primitives.js';

export const backends: Readonly<Record<BackendName, CryptoBackend>> = { native: nativeBackend, noble: nobleBackend };

export function backendByName(name: string): CryptoBackend {
  const backend = (backends as Record<string, CryptoBackend | undefined>)[name];
  if (backend === undefined) throw new RangeError(`unknown crypto backend '${name}': use native or noble`);
  return backend;
}
