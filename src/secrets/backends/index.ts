/**
 * Which backend a gateway reads its secrets from, and the one place that builds it.
 *
 * A backend is chosen by the one key under `gateway.backend`; the configuration reader
 * (src/cli/config/gateway-config.ts) turns that key into a BackendConfig with the parse
 * functions of ../config.ts. Adding a backend is one more member of BackendConfig, one more
 * name in BACKEND_KINDS, and one more case in createBackend.
 *
 * The cache is not built here: the gateway fronts whichever backend it is given with one
 * (GatewayOptions.cache), so that it can export the cache's counters and audit each read's
 * outcome. Which backends get one by default is CACHED_BY_DEFAULT.
 */
import type { ClusterAccessOptions } from '../../kubernetes/index.js';
import type { SecretsBackend } from '../backend.js';
import type { KubernetesBackendConfig, VaultBackendConfig } from '../config.js';
import type { SecretsLog } from '../log.js';
import { FileSecretsBackend } from './file.js';
import { KubernetesBackend, type KubernetesBackendOptions } from './kubernetes.js';
import { checkVaultAtStart } from './vault-start.js';
import { VaultBackend, type VaultBackendOptions, type VaultEvent } from './vault.js';

/** The backends this build has. */
export const BACKEND_KINDS = ['file', 'vault', 'kubernetes'] as const;
export type BackendKind = (typeof BACKEND_KINDS)[number];

/**
 * The backends a gateway fronts with the cache (DEFAULT_CACHE) when `gateway.cache` is
 * absent: the remote ones, whose reads cost a round trip and fail when the server is down.
 * The file backend is in memory already, re-read when the file changes: a cache would only
 * delay a change by its TTL, so it gets none (and `gateway.cache` is refused with it).
 */
export const CACHED_BY_DEFAULT: readonly BackendKind[] = ['vault', 'kubernetes'];

export type BackendConfig =
  | { readonly kind: 'file'; readonly file: string }
  | { readonly kind: 'vault'; readonly vault: VaultBackendConfig }
  | { readonly kind: 'kubernetes'; readonly kubernetes: KubernetesBackendConfig };

export interface BackendDependencies {
  readonly log: SecretsLog;
  /** The file backend's change check interval; tests shorten it. */
  readonly filePollMs?: number;
  /** Settings of the vault backend that are not configuration (retry, clock); tests shorten them. */
  readonly vault?: Omit<Partial<VaultBackendOptions>, keyof VaultBackendConfig | 'onEvent'>;
  /** As for vault; and the cluster access options (a fake service account's root, the environment). */
  readonly kubernetes?: Omit<KubernetesBackendOptions, 'access' | 'namespace'> & Pick<ClusterAccessOptions, 'inClusterRoot' | 'env'>;
}

/** The setting a kubernetes backend's cluster-access messages tell the operator to fix. */
const KUBECONFIG_SETTING = 'gateway.backend.kubernetes.kubeconfig';

/**
 * Opens the configured backend, ready to read. Nothing here contacts a server: a Vault or an
 * API server that is down at start makes reads fail (`unavailable`, 503) until it is back,
 * it does not stop the gateway. Throws, with the setting named, what cannot be right later
 * either: SecretsFileError (the file backend's file), SecretsBackendError (vault's caFile
 * unreadable or no PEM certificates: vault-start.ts), ClusterConfigError (no usable
 * kubeconfig or service account). Logs one warning for a plain http Vault address that is
 * not loopback.
 */
export async function createBackend(config: BackendConfig, deps: BackendDependencies): Promise<SecretsBackend> {
  switch (config.kind) {
    case 'file':
      return FileSecretsBackend.open(config.file, { log: deps.log, ...(deps.filePollMs !== undefined && { pollMs: deps.filePollMs }) });
    case 'vault':
      await checkVaultAtStart(config.vault, deps.log);
      return new VaultBackend({ ...deps.vault, ...config.vault, onEvent: (event) => logVaultEvent(deps.log, event) });
    case 'kubernetes': {
      const { inClusterRoot, env, ...options } = deps.kubernetes ?? {};
      return KubernetesBackend.open(config.kubernetes, options, {
        kubeconfigSetting: KUBECONFIG_SETTING,
        ...(inClusterRoot !== undefined && { inClusterRoot }),
        ...(env !== undefined && { env }),
      });
    }
  }
}

/** The vault backend's events as log lines: logins and renewals at info, failures at warn/error. */
function logVaultEvent(log: SecretsLog, event: VaultEvent): void {
  const { kind, ...rest } = event;
  const fields = { event: `vault-${kind.replace(/_/g, '-')}`, ...rest };
  switch (event.kind) {
    case 'login':
      log.info(fields, 'vault: logged in');
      return;
    case 'renewed':
      log.info(fields, 'vault: token renewed');
      return;
    case 'login_failed':
      // denied: the role or its binding is wrong, an operator's error; unavailable: an outage.
      if (event.failure === 'denied') log.error(fields, 'vault: login refused: the gateway cannot read any secret until its role is fixed');
      else log.warn(fields, 'vault: login failed');
      return;
    case 'renew_failed':
      log.warn(fields, 'vault: token renewal failed');
      return;
    case 'lookup_failed':
      log.warn(fields, 'vault: token lookup failed; the token is used without renewal');
      return;
    case 'token_rejected':
      log.warn(fields, 'vault: the token was refused (403); re-reading it or logging in again');
      return;
  }
}

export { checkVaultCaFile, isLoopbackUrl, MAX_CA_FILE_BYTES } from './vault-start.js';
export { FileSecretsBackend, SecretsFileError, parseSecretsFile, formatSecretsFileProblem, MAX_SECRETS_FILE_BYTES, type SecretsFileProblem } from './file.js';
