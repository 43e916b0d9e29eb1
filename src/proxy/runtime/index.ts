/** How the proxy process sets up the runtime it runs in. */
export { tuneHeapForProxy, GATEWAY_V8_FLAGS, PROXY_V8_FLAGS } from './heap-tuning.js';
export { raiseDescriptorLimit, readProcLimits, NOFILE_LIMIT_ADDON_PATH, type DescriptorLimit, type NofileLimitAddon } from './descriptor-limit.js';
export { descriptorBudget, DESCRIPTOR_RESERVE, type ConnectionCaps, type DescriptorBudget } from './descriptor-budget.js';
