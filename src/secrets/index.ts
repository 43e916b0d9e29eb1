/**
 * secrets: the gateway's secrets API (DESIGN.md, Secret fetch), its backends and its audit
 * sink. Depends on trust-vector (the decision), registry-sync (entries) and files; not on the
 * proxy, which hands it connections through its BuiltInServices hook (the cli wires them).
 * See README.md.
 */
export { SecretsBackendError, type BackendFailure, type SecretValue, type SecretsBackend } from './backend.js';
export {
  BACKEND_KINDS,
  PLANNED_BACKEND_KINDS,
  FileSecretsBackend,
  SecretsFileError,
  createBackend,
  formatSecretsFileProblem,
  parseSecretsFile,
  type BackendConfig,
  type BackendDependencies,
  type BackendKind,
  type SecretsFileProblem,
} from './backends/index.js';
export { AuditOpenError, AuditWriteError, openAuditFile, stdoutAuditSink, type AuditSink } from './audit.js';
export { DEFAULT_GATEWAY_PORT, DEFAULT_HTTP_LIMITS, MAX_URL_LENGTH, SecretsGateway, keyFingerprint, type GatewayOptions, type HttpLimits } from './gateway/gateway.js';
export { DECISION_LABELS, NO_RULE, type DecisionLabel } from './gateway/metrics.js';
export type { SecretsLog } from './log.js';
