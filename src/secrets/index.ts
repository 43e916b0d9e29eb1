/**
 * secrets: the gateway's secrets API (DESIGN.md, Secret fetch), its backends (`file`, `vault`
 * for Vault/OpenBao KV v2, `kubernetes` for the Secrets of one namespace), the cache that fronts
 * any of them, and its audit sink. Depends on trust-vector (the decision), registry-sync
 * (entries), kubernetes (API access) and files; not on the proxy, which hands it connections
 * through its BuiltInServices hook (the cli wires them). No value and no credential reaches an
 * error, an event or a counter. See README.md.
 */
export { SecretsBackendError, type BackendFailure, type SecretValue, type SecretsBackend } from './backend.js';
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
export { SecretsCache, type CacheHooks, type CacheOutcome, type CacheStats, type SecretsCacheOptions, type TracedRead } from './cache.js';
export {
  BACKEND_KINDS,
  CACHED_BY_DEFAULT,
  FileSecretsBackend,
  SecretsFileError,
  checkVaultCaFile,
  createBackend,
  formatSecretsFileProblem,
  isLoopbackUrl,
  parseSecretsFile,
  type BackendConfig,
  type BackendDependencies,
  type BackendKind,
  type SecretsFileProblem,
} from './backends/index.js';
export { AuditOpenError, AuditWriteError, descriptorAuditSink, openAuditFile, stdoutAuditSink, type AuditBatchResult, type AuditSink } from './audit.js';
export { AuditGroupCommit, MAX_BATCH_CHARS, type CommitCallback, type GroupCommitOptions } from './audit-commit.js';
export { DEFAULT_GATEWAY_PORT, DEFAULT_HTTP_LIMITS, MAX_URL_LENGTH, SecretsGateway, gatewayDescriptors, keyFingerprint, type UndeliveredReason, type BackendOutcome, type GatewayOptions, type HttpLimits } from './gateway/gateway.js';
export { DECISION_LABELS, NO_RULE, type DecisionLabel } from './gateway/metrics.js';
export type { SecretsLog } from './log.js';
export {
  ENV_FILE,
  JITTER,
  REFRESH_RESULTS,
  RETRY,
  SecretsProjector,
  type ProjectionConfig,
  type ProjectionItem,
  type ProjectionState,
  type ProjectorOptions,
  type RefreshOutcome,
  type RefreshResult,
} from './projection/projector.js';
export { AtomicWriter, DATA_LINK, ProjectionWriteError } from './projection/atomic-writer.js';
export { ENV_NAME, RESERVED_ENV_NAMES, renderEnvFile, reservedEnvName, shellQuote, unwritableValue } from './projection/env-file.js';
export { FETCH_TIMEOUT_MS, fetchSecret, type FetchOutcome, type MeshDialer } from './projection/gateway-client.js';
export { NOTIFY_SIGNALS, notifyApplication, type NotifyConfig, type NotifySignal } from './projection/notify.js';
