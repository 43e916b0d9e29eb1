/**
 * secrets: where the gateway's secrets come from. The SecretsBackend interface, the `vault`
 * (Vault/OpenBao KV v2) and `kubernetes` (Secrets of one namespace) backends, the cache that
 * fronts any of them, and the configuration shapes of all three with their parse functions.
 * No value and no credential reaches an error, an event or a counter.
 */
export { SecretsBackendError, type BackendFailure, type SecretsBackend, type SecretValue } from './backend.js';
export {
  DEFAULT_CACHE,
  DEFAULT_SERVICE_ACCOUNT_TOKEN,
  DEFAULT_VAULT_KUBERNETES_MOUNT,
  DEFAULT_VAULT_TIMEOUT_SECONDS,
  parseCacheConfig,
  parseKubernetesBackendConfig,
  parseVaultBackendConfig,
  type CacheConfig,
  type ConfigChecker,
  type KubernetesBackendConfig,
  type VaultAuthConfig,
  type VaultBackendConfig,
} from './config.js';
export { DEFAULT_RETRY, type RetryPolicy } from './retry.js';
export { VaultBackend, type VaultBackendOptions, type VaultEvent, type VaultStats } from './backends/vault.js';
export { KubernetesBackend, secretNameOf, type KubernetesBackendOptions } from './backends/kubernetes.js';
export { SecretsCache, type CacheHooks, type CacheOutcome, type CacheStats, type SecretsCacheOptions } from './cache.js';
