/**
 * Where the gateway's secrets come from (DESIGN.md, Secret fetch): the file, Vault KV v2 and
 * Kubernetes backends, and the cache in front of any of them, all behind this one interface.
 *
 * A secret path is `<segment>/<segment>/...` as the policy's `paths` globs see it (for
 * example `payments/db`); a backend maps it to its own store. Values are strings; a secret is
 * a flat map of them, as Vault KV v2 and Kubernetes Secrets both hold. No value, and no
 * credential of the backend, ever appears in an error message, a log line or a metric label.
 */

/** A secret as the backend holds it now. */
export interface SecretValue {
  /** Key -> value; never logged. */
  readonly data: Readonly<Record<string, string>>;
  /**
   * Changes whenever the data changes: Vault's KV v2 version, a Kubernetes Secret's
   * resourceVersion, a content hash for a file.
   */
  readonly version: string;
}

/**
 * Why a backend could not answer. `unavailable`: down, sealed, timed out, 5xx (the caller may
 * serve a cached value up to its staleness bound, else 503). `denied`: the backend refused
 * the gateway's own credentials (403/401 after a re-login): an operator error, never the
 * caller's fault.
 */
export type BackendFailure = 'unavailable' | 'denied';

export class SecretsBackendError extends Error {
  readonly code = 'NOISEMESH_SECRETS_BACKEND';
  constructor(
    readonly backend: string,
    readonly failure: BackendFailure,
    /** Safe to log: no value, no token, no URL query. */
    message: string,
  ) {
    super(message);
  }
}

export interface SecretsBackend {
  /** `file`, `vault` or `kubernetes`, for logs and metric labels. */
  readonly name: string;
  /**
   * The secret at `path`, or null when there is none (the gateway answers 404). Throws
   * SecretsBackendError when the backend cannot answer; never anything else for a failure
   * of the backend. `signal` aborts a slow read.
   */
  read(path: string, signal?: AbortSignal): Promise<SecretValue | null>;
  /** Releases connections, timers and watches. */
  close(): Promise<void>;
}
