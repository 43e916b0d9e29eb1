/**
 * registry-sync: ClearanceRegistry sources (a YAML file here; the Kubernetes API in src/kubernetes) -> one
 * in-memory index + change events. Knows nothing of sockets. See README.md for the rules
 * (required fields, defaults, the namespace rule, conflicts, revocation).
 */
export {
  API_GROUP,
  API_VERSION,
  KIND,
  LIST_KIND,
  CLEARANCES,
  AUTHN_STRENGTHS,
  AGENT_TYPES,
  PUBLIC_KEY_LEN,
  MAX_GENERATION,
  clearanceRank,
  authnStrengthRank,
  type Clearance,
  type AuthnStrength,
  type AgentType,
  type Attestation,
  type EntrySource,
  type RegistryEntry,
} from './model.js';
export {
  formatProblem,
  formatPath,
  RegistrySourceError,
  type RegistryProblem,
  type RegistryProblemCode,
  type Severity,
  type PathSegment,
} from './problems.js';
export { normalizeAddress } from './address.js';
export {
  validateClearanceRegistry,
  type BrokenPeer,
  type ValidatedObject,
  type ValidationContext,
  type ValidationResult,
} from './validate.js';
export { parseRegistryBytes, parseRegistryYaml, yamlFaults, yamlFaultHint, yamlFaultMessage, yamlSyntaxHint, type ParsedRegistryFile } from './yaml.js';
export { closest } from './suggest.js';
export { isYamlMapping, describeYamlObject, describeYamlValue, NULL_VALUE_MESSAGE } from './mapping.js';
export { compareEntries, type RegistrySnapshot, type AddressResolution } from './snapshot.js';
export { RegistryState, buildSnapshot, type BuildOptions, type RegistryDocument, type SnapshotDelta, type EntryChange } from './registry-state.js';
export {
  RegistryIndex,
  type RevocationReason,
  type ChangeSummary,
  type KeyVerdict,
  type RegistryIndexEvents,
} from './registry-index.js';
export type { RegistrySource, RegistrySourceEvents, SourceStats } from './source.js';
export { FileRegistrySource, type FileSourceOptions, type SourceClock } from './file-source.js';
export { holdBackUnsettled, onePrefixOfOther, pendingChanges, sameEntries, type HeldBack } from './partial-write.js';
export { Registry, type RegistryEvents, type RegistryStats } from './registry.js';
export { Emitter, type Listener } from './emitter.js';
