/**
 * `noisemesh gateway --config FILE`: the proxy's configuration (proxy-config.ts, every key the
 * same) plus a `gateway` section:
 *
 * ```yaml
 * gateway:
 *   port: 8200                        # the target port the secrets API answers on
 *   policy: /etc/noisemesh/policy.yaml
 *   backend: {file: /etc/noisemesh/secrets.yaml}
 *   audit: {file: /var/log/noisemesh/audit.log}   # or {stdout: true}
 *   loopback: {port: 8201}            # optional: plain HTTP on 127.0.0.1 for the gateway's own pod
 * ```
 *
 * Checked like the rest: every problem at once, each with its path and fix. Keys DESIGN.md
 * plans that this build lacks (`backend.vault`, `backend.kubernetes`, `cache`) are refused by
 * name as "not in this build", not as typos.
 */
import { BACKEND_KINDS, DEFAULT_GATEWAY_PORT, PLANNED_BACKEND_KINDS, type BackendConfig } from '../../secrets/index.js';
import { ConfigError, ConfigReader, describeValue } from './config-reader.js';
import { parseProxyConfig, readConfigDocument, type ProxyConfig } from './proxy-config.js';

export interface GatewaySettings {
  readonly port: number;
  readonly policy: string;
  readonly backend: BackendConfig;
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
  const isMapping = typeof document === 'object' && document !== null && !Array.isArray(document);
  const { gateway: section, ...rest } = isMapping ? (document as Record<string, unknown>) : { gateway: undefined };
  let proxy: ProxyConfig | undefined;
  try {
    proxy = parseProxyConfig(isMapping ? rest : document, source, r);
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
  const planned = value !== null && typeof value === 'object' && !Array.isArray(value) && 'cache' in value;
  const g = r.object(planned ? withoutKey(value as Record<string, unknown>, 'cache') : value, 'gateway', ['port', 'policy', 'backend', 'audit', 'loopback']);
  if (planned) r.problem('gateway.cache', 'not in this build: this noisemesh has no secrets cache yet; remove gateway.cache');
  if (g === undefined) {
    if (value === undefined || value === null) r.problem('gateway', 'required: gateway: {policy, backend: {file}, audit: {file} or {stdout: true}} (docs/configuration.md)');
    return undefined;
  }
  const port = r.port(g.port, 'gateway.port') ?? DEFAULT_GATEWAY_PORT;
  const policy = r.string(g.policy, 'gateway.policy', 'a path to the YAML secrets policy (docs/policy.md)');
  if (g.policy === undefined) r.problem('gateway.policy', 'required: a path to the YAML secrets policy (docs/policy.md)');

  const backend = readBackend(r, g.backend);
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
  if (policy === undefined || backend === undefined || audit === undefined) return undefined;
  return { port, policy, backend, audit, loopback: loopbackPort === undefined ? null : { port: loopbackPort } };
}

/** `gateway.backend`: exactly one key, naming a backend this build has. */
function readBackend(r: ConfigReader, value: unknown): BackendConfig | undefined {
  const fix = `one of ${BACKEND_KINDS.map((k) => `{${k}: ...}`).join(', ')}, e.g. backend: {file: /etc/noisemesh/secrets.yaml}`;
  if (value === undefined || value === null) {
    r.problem('gateway.backend', `required: ${fix}`);
    return undefined;
  }
  let node = value;
  if (typeof value === 'object' && !Array.isArray(value)) {
    for (const kind of PLANNED_BACKEND_KINDS) {
      if (kind in value && !(BACKEND_KINDS as readonly string[]).includes(kind)) {
        r.problem(`gateway.backend.${kind}`, `not in this build: this noisemesh has only the ${BACKEND_KINDS.join(', ')} backend; use ${BACKEND_KINDS.map((k) => `gateway.backend.${k}`).join(' or ')}`);
        node = withoutKey(node as Record<string, unknown>, kind);
      }
    }
  }
  const b = r.object(node, 'gateway.backend', [...BACKEND_KINDS]);
  if (b === undefined) return undefined;
  const chosen = Object.keys(b);
  if (chosen.length > 1) {
    r.problem('gateway.backend', `set exactly one backend, not ${chosen.join(' and ')}`);
    return undefined;
  }
  if (chosen.length === 0) {
    if (node === value) r.problem('gateway.backend', `required: ${fix}`);
    return undefined;
  }
  const file = r.string(b.file, 'gateway.backend.file', 'a path to a YAML file of {<path>: {<key>: <value>}} (docs/gateway.md)');
  return file === undefined ? undefined : { kind: 'file', file };
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

function withoutKey(o: Record<string, unknown>, key: string): Record<string, unknown> {
  const copy = { ...o };
  delete copy[key];
  return copy;
}

/** Every key path the gateway configuration accepts: the proxy's and `gateway.*`. */
export function acceptedGatewayConfigKeys(): string[] {
  const r = new ConfigReader();
  try {
    parseGatewayConfig({ outbound: { explicit: [{}] }, registry: { kubernetes: {} }, gateway: { backend: {}, audit: {}, loopback: {} } }, 'keys', r);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
  }
  return [...r.keys].sort();
}
