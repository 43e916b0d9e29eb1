/**
 * Where this package's compiled addons live and how they load. binding.gyp builds each
 * native/<name>.c into build/Release/<name>.node when npm installs the package.
 */
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** This file runs as dist/src/native/addons.js; node-gyp builds into build/ at the root. */
const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export function addonPath(name: string): string {
  return resolve(PACKAGE_ROOT, 'build', 'Release', `${name}.node`);
}

/** How to get the addons back, for the messages of whoever needs one. */
export const REBUILD_HINT =
  `run \`npm ci\` (its install step runs node-gyp rebuild; needs python3, make and a C compiler) ` +
  `or \`npx node-gyp rebuild\` in ${PACKAGE_ROOT}`;

export type AddonLoad<T> =
  | { readonly ok: true; readonly addon: T }
  | { readonly ok: false; readonly missing: boolean; readonly reason: string; readonly cause?: unknown };

/**
 * Loads the addon at `path` and checks that it exports what `exportsAll` names. Never
 * throws: the caller decides whether an absent addon is fatal (capture) or only slower
 * (the AEAD contexts).
 */
export function loadAddon<T>(path: string, exportsAll: readonly (keyof T & string)[]): AddonLoad<T> {
  let addon: unknown;
  try {
    addon = createRequire(import.meta.url)(path);
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND';
    const reason = missing
      ? `${path} is missing`
      : `${path} could not be loaded (${(err as Error).message}); it may be built for another platform or architecture`;
    return { ok: false, missing, reason, cause: err };
  }
  const absent = exportsAll.filter((name) => typeof (addon as Record<string, unknown>)[name] !== 'function');
  if (absent.length > 0) {
    return { ok: false, missing: false, reason: `${path} does not export ${absent.join(', ')}: it is not this project's addon` };
  }
  return { ok: true, addon: addon as T };
}
