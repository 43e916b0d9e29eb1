/**
 * Which backend a gateway reads its secrets from, and the one place that builds it.
 *
 * A backend is chosen by the one key under `gateway.backend`; the configuration reader
 * (src/cli/config/gateway-config.ts) turns that key into a BackendConfig and refuses keys
 * whose backend this build does not have. Adding a backend is one more member of
 * BackendConfig, one more name in BACKEND_KINDS, and one more case in createBackend.
 */
import type { SecretsBackend } from '../backend.js';
import type { SecretsLog } from '../log.js';
import { FileSecretsBackend } from './file.js';

/** The backends this build has. */
export const BACKEND_KINDS = ['file'] as const;
export type BackendKind = (typeof BACKEND_KINDS)[number];

/** The backends DESIGN.md plans that this build does not have yet: refused by name. */
export const PLANNED_BACKEND_KINDS = ['vault', 'kubernetes'] as const;

export type BackendConfig = { readonly kind: 'file'; readonly file: string };

export interface BackendDependencies {
  readonly log: SecretsLog;
  /** The file backend's change check interval; tests shorten it. */
  readonly filePollMs?: number;
}

/**
 * Opens the configured backend, ready to read. Throws what the backend throws when it
 * cannot start (SecretsFileError for the file backend), with the setting named.
 */
export async function createBackend(config: BackendConfig, deps: BackendDependencies): Promise<SecretsBackend> {
  switch (config.kind) {
    case 'file':
      return FileSecretsBackend.open(config.file, { log: deps.log, ...(deps.filePollMs !== undefined && { pollMs: deps.filePollMs }) });
  }
}

export { FileSecretsBackend, SecretsFileError, parseSecretsFile, formatSecretsFileProblem, MAX_SECRETS_FILE_BYTES, type SecretsFileProblem } from './file.js';
