/**
 * `noisemesh gateway --config FILE`: the proxy's configuration (proxy-config.ts, every key the
 * same) plus a `gateway` section:
 *
 * ```yaml
 * gateway:
 *   port: 8200                        # the target port the secrets API answers on
 *   policy: /etc/noisemesh/policy.yaml
 *   backend: {file: /etc/noisemesh/secrets.yaml}   # or {vault: {...}} or {kubernetes: {...}}: exactly one
 *   audit: {file: /var/log/noisemesh/audit.log}   # or {stdout: true}
 *   cache: {ttlSeconds: 30, maxStaleSeconds: 600}  # vault and kubernetes only
 *   loopback: {port: 8201}            # optional: plain HTTP on 127.0.0.1 for the gateway's own pod
 * ```
 *
 * Checked like the rest: every problem at once, each with its path and fix; the backends'
 * and the cache's shapes by src/secrets/config.ts's parse functions, into the same reader.
 * The cache: vault and kubernetes get DEFAULT_CACHE when `cache` is absent
 * (CACHED_BY_DEFAULT); the file backend is in memory and gets none, and `cache` beside it is
 * refused rather than silently ignored.
 */
import {
  BACKEND_KINDS,
  CACHED_BY_DEFAULT,
  DEFAULT_CACHE,
  DEFAULT_GATEWAY_PORT,
  parseCacheConfig,
  parseKubernetesBackendConfig,
  parseVaultBackendConfig,
  type BackendConfig,
  type BackendKind,
  type CacheConfig,
} from '../../secrets/index.js';
import { ConfigError, ConfigReader, describeValue } from './config-reader.js';
import { isYamlMapping } from '../../registry-sync/index.js';
import { parseProxyConfig, readConfigDocument, type ProxyConfig } from './proxy-config.js';
import { parseSecretsSection } from './secrets-config.js';

export interface GatewaySettings {
  readonly port: number;
  readonly policy: string;
  readonly backend: BackendConfig;
  /** The cache in front of the backend; null: none (the file backend). */
  readonly cache: CacheConfig | null;
  readonly audit: { readonly file: string } | { readonly stdout: true };
  /** A plain HTTP listener on 127.0.0.1 (`loopback` callers); null: none. */
  readonly loopback: { readonly port: number } | null;
}

export interface GatewayConfig {
  readonly proxy: ProxyConfig;
  readonly gateway: GatewaySettings;
}

/** Reads and checks a gateway's configuration file; throws FileReadError or ConfigError. */
export function loadGatewayConfig(file: string): GatewayConfig {
  return parseGatewayConfig(readConfigDocument(file) ?? {}, file);
}

/** `r`: the reader to collect into; acceptedGatewayConfigKeys() passes its own. */
export function parseGatewayConfig(document: unknown, source = 'config', r = new ConfigReader()): GatewayConfig {
  const section = isYamlMapping(document) ? (document as Record<string, unknown>).gateway : undefined;
  let proxy: ProxyConfig | undefined;
  try {
    // `gateway` is one of the file's top-level keys: a misspelt one gets "did you mean 'gateway'?".
    proxy = parseProxyConfig(document, source, r, parseSecretsSection, ['gateway']);
  } catch (err) {
    // Its problems are in `r`; the gateway's are added to them, and all reported at once.
    if (!(err instanceof ConfigError)) throw err;
  }
  const gateway = parseGatewaySection(r, section, proxy);
  if (r.problems.length > 0 || proxy === undefined || gateway === undefined) throw new ConfigError(source, r.problems);
  return { proxy, gateway };
}

function parseGatewaySection(r: ConfigReader, value: unknown, proxy: ProxyConfig | undefined): GatewaySettings | undefined {
  // A top-level key of this file, as the proxy's are (their reader records those).
  r.keys.add('gateway');
  const g = r.object(value, 'gateway', ['port', 'policy', 'backend', 'audit', 'cache', 'loopback']);
  if (g === undefined) {
    if (value === undefined || value === null) r.problem('gateway', 'required: gateway: {policy, backend: {file}, audit: {file} or {stdout: true}} (docs/configuration.md)');
    return undefined;
  }
  const port = r.port(g.port, 'gateway.port') ?? DEFAULT_GATEWAY_PORT;
  const policy = r.string(g.policy, 'gateway.policy', 'a path to the YAML secrets policy (docs/policy.md)');
  if (g.policy === undefined) r.problem('gateway.policy', 'required: a path to the YAML secrets policy (docs/policy.md)');

  const backend = readBackend(r, g.backend);
  const cache = readCache(r, g.cache, backend.kind);
  const audit = readAudit(r, g.audit);
  const loopbackNode = r.object(g.loopback, 'gateway.loopback', ['port']);
  const loopbackPort = r.port(loopbackNode?.port, 'gateway.loopback.port');
  if (loopbackNode !== undefined && loopbackNode.port === undefined) r.problem('gateway.loopback.port', 'required: the port of the plain HTTP listener on 127.0.0.1');

  if (proxy !== undefined) {
    // The proxy's own ports are never a target (status 4): the API would be unreachable there.
    const own: [string, number | undefined][] = [
      ['inbound.meshPort', proxy.inbound.meshPort],
      ['admin.port', proxy.admin?.port],
      ['outbound.capture.port', proxy.outbound.capture?.port],
      ['inbound.capture.port', proxy.inbound.capture?.port],
    ];
    const clash = own.find(([, p]) => p === port);
    if (clash !== undefined) r.problem('gateway.port', `${port} is also ${clash[0]}: the proxy's own ports are never a session target; choose another port (default ${DEFAULT_GATEWAY_PORT})`);
    if (proxy.inbound.targetHost !== null) r.problem('inbound.targetHost', 'a gateway has no TCP targets (its port is served in-process): remove inbound.targetHost');
    if (loopbackPort !== undefined) {
      const listeners: [string, string, number][] = [
        ['inbound.meshPort', proxy.inbound.bind, proxy.inbound.meshPort],
        ...(proxy.admin ? [['admin.port', proxy.admin.host, proxy.admin.port] as [string, string, number]] : []),
        ...(proxy.outbound.capture ? [['outbound.capture.port', proxy.outbound.capture.host, proxy.outbound.capture.port] as [string, string, number]] : []),
        ...(proxy.inbound.capture ? [['inbound.capture.port', proxy.inbound.capture.host, proxy.inbound.capture.port] as [string, string, number]] : []),
        ...proxy.outbound.explicit.map((e, i) => [`outbound.explicit[${i}].listen`, e.listen.host, e.listen.port] as [string, string, number]),
      ];
      const taken = listeners.find(([, host, p]) => p === loopbackPort && ['0.0.0.0', '::', '127.0.0.1'].includes(host));
      if (taken !== undefined) r.problem('gateway.loopback.port', `127.0.0.1:${loopbackPort} is also ${taken[0]}: two listeners cannot share an address and port; give one of them another port`);
    }
  }
  if (policy === undefined || backend.config === undefined || cache === undefined || audit === undefined) return undefined;
  return { port, policy, backend: backend.config, cache, audit, loopback: loopbackPort === undefined ? null : { port: loopbackPort } };
}

/**
 * `gateway.backend`: exactly one key, naming a backend. `kind` is the one named even when its
 * settings are wrong (the cache's check needs it); `config` only when they are right. With
 * two backends, both are still read, so that all their problems are reported at once.
 */
function readBackend(r: ConfigReader, value: unknown): { kind: BackendKind | undefined; config: BackendConfig | undefined } {
  const fix = 'exactly one of {file: PATH}, {vault: {address, mount, auth}} or {kubernetes: {namespace}} (docs/gateway.md)';
  const none = { kind: undefined, config: undefined };
  if (value === undefined || value === null) {
    r.problem('gateway.backend', `required: ${fix}`);
    return none;
  }
  const b = r.object(value, 'gateway.backend', [...BACKEND_KINDS]);
  if (b === undefined) return none;
  const chosen = BACKEND_KINDS.filter((k) => b[k] !== undefined && b[k] !== null);
  if (chosen.length === 0) {
    // An unknown key (a typo) was reported as such: not again as a missing backend.
    if (Object.keys(b).every((k) => !(BACKEND_KINDS as readonly string[]).includes(k)) && Object.keys(b).length > 0) return none;
    r.problem('gateway.backend', `required: ${fix}`);
    return none;
  }
  let config: BackendConfig | undefined;
  for (const kind of chosen) {
    config = readOneBackend(r, kind, b[kind]);
  }
  // After their own problems: one at gateway.backend would hide those under it.
  if (chosen.length > 1) r.problem('gateway.backend', `set exactly one backend, not ${chosen.join(' and ')}: keep one of them`);
  return { kind: chosen.length === 1 ? chosen[0] : undefined, config: chosen.length === 1 ? config : undefined };
}

function readOneBackend(r: ConfigReader, kind: BackendKind, value: unknown): BackendConfig | undefined {
  switch (kind) {
    case 'file': {
      const file = r.string(value, 'gateway.backend.file', 'a path to a YAML file of {<path>: {<key>: <value>}} (docs/gateway.md)');
      return file === undefined ? undefined : { kind, file };
    }
    case 'vault': {
      const vault = parseVaultBackendConfig(value, 'gateway.backend.vault', r);
      return vault === undefined ? undefined : { kind, vault };
    }
    case 'kubernetes': {
      const kubernetes = parseKubernetesBackendConfig(value, 'gateway.backend.kubernetes', r);
      return kubernetes === undefined ? undefined : { kind, kubernetes };
    }
  }
}

/**
 * `gateway.cache`: its settings, DEFAULT_CACHE for a backend in CACHED_BY_DEFAULT when absent,
 * null (no cache) for the file backend; undefined when a problem was reported.
 */
function readCache(r: ConfigReader, value: unknown, kind: BackendKind | undefined): CacheConfig | null | undefined {
  const before = r.problems.length;
  const given = value !== undefined && value !== null;
  if (given && kind === 'file') {
    r.problem('gateway.cache', 'the file backend is held in memory and needs no cache (one would only delay a change of the file by ttlSeconds): remove gateway.cache, or use the vault or kubernetes backend');
    return undefined;
  }
  const cache = parseCacheConfig(value, 'gateway.cache', r);
  if (r.problems.length !== before) return undefined;
  if (given) return cache;
  return kind !== undefined && CACHED_BY_DEFAULT.includes(kind) ? DEFAULT_CACHE : null;
}

/** `gateway.audit`: `{file: PATH}` or `{stdout: true}`. */
function readAudit(r: ConfigReader, value: unknown): GatewaySettings['audit'] | undefined {
  const a = r.object(value, 'gateway.audit', ['file', 'stdout']);
  if (a === undefined) {
    if (value === undefined || value === null) r.problem('gateway.audit', 'required: {file: /var/log/noisemesh/audit.log} or {stdout: true}; every decision is one line there');
    return undefined;
  }
  const file = r.string(a.file, 'gateway.audit.file', 'a path the audit lines are appended to');
  if (a.stdout !== undefined && a.stdout !== true) {
    r.problem('gateway.audit.stdout', `must be true (audit lines to standard output), or left out; got ${describeValue(a.stdout)}`);
    return undefined;
  }
  if (a.file !== undefined && a.stdout !== undefined) {
    r.problem('gateway.audit', 'set one of gateway.audit.file and gateway.audit.stdout, not both');
    return undefined;
  }
  if (file !== undefined) return { file };
  if (a.stdout === true) return { stdout: true };
  if (a.file === undefined) r.problem('gateway.audit', 'required: {file: /var/log/noisemesh/audit.log} or {stdout: true}');
  return undefined;
}

/** Every key path the gateway configuration accepts: the proxy's and `gateway.*`. */
export function acceptedGatewayConfigKeys(): string[] {
  const r = new ConfigReader();
  // One document per shape whose keys only show when it is chosen: each backend, each of
  // vault's auth methods.
  const backends = [{ file: 'x' }, { vault: { auth: { token: {} } } }, { vault: { auth: { kubernetes: {} } } }, { kubernetes: {} }];
  for (const backend of backends) {
    try {
      parseGatewayConfig({ outbound: { explicit: [{}] }, registry: { kubernetes: {} }, gateway: { backend, audit: {}, cache: {}, loopback: {} } }, 'keys', r);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
    }
  }
  return [...r.keys].sort();
}
