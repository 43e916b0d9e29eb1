/**
 * The pod's redirection rules (nat table): rendered as iptables-restore input by pure
 * functions, installed idempotently and removed by `apply`.
 */
export { parseCidr, type Cidr, type IpFamily } from './cidr.js';
export { IptablesError, IptablesOptionError, IptablesToolMissingError, IptablesCommandError, type IptablesErrorCode } from './errors.js';
export {
  captureRulesOptions,
  DEFAULT_CAPTURE_RULES_OPTIONS,
  type CaptureRulesOptions,
  type CaptureRulesInput,
} from './options.js';
export { CHAINS, CHAIN_PREFIX, captureRuleSet, emptyRuleSet, type CaptureRuleSet } from './rules.js';
export { parseNatTable, natTableOf, restoreInput, EMPTY_NAT_TABLE, type NatTable } from './restore-input.js';
export {
  IPTABLES_TOOLS,
  readNatTable,
  restoreNatTable,
  natTableAvailable,
  installCaptureRules,
  removeCaptureRules,
  type IptablesTools,
} from './apply.js';
