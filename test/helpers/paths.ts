import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';

/** The repository root: tests run from dist/test, compiled. */
export const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');

/** ../shared beside the repository, where the spec, protocol and vectors live. */
export function sharedPath(relative: string): string {
  return join(process.env.NOISEMESH_SHARED ?? resolve(repoRoot, '..', 'shared'), relative);
}
