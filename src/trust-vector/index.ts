/**
 * trust-vector: the TrustVector of a caller, and the secrets policy that decides on it
 * (DESIGN.md, TrustVector). Pure: no sockets, no files, no timers, no logs; the caller
 * supplies the registry entry, how the request arrived, the time and the policy text.
 * Imports only registry-sync's model. See README.md for the API and docs/policy.md for the
 * policy format.
 */
export {
  NETWORK_EXPOSURES,
  ATTESTATION_CLOCK_SKEW_SECONDS,
  PLAINTEXT_VECTOR,
  computeTrustVector,
  networkExposureRank,
  type NetworkExposure,
  type SessionSignals,
  type TrustVector,
} from './vector.js';
export { MAX_SECRET_PATH_LENGTH, checkSecretPath, isAgentId } from './glob.js';
export {
  RULE_MODES,
  REQUIREMENTS,
  DEFAULT_NETWORK_EXPOSURE,
  POLICY_LIMITS,
  PolicyError,
  compilePolicy,
  formatPolicyProblem,
  parsePolicy,
  type Policy,
  type PolicyProblem,
  type PolicyRule,
  type Requirements,
  type RequirementName,
  type RuleMode,
} from './policy.js';
export {
  decide,
  evaluate,
  requirementChecks,
  type DecideInput,
  type Decision,
  type DryRunResult,
  type Reason,
  type ReasonKind,
  type ReasonValue,
  type RequirementCheck,
} from './evaluate.js';
