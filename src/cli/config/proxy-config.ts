/**
 * `noisemesh proxy --config FILE`: the YAML of DESIGN.md (Configuration), read into a typed
 * value with DESIGN.md's defaults. Every key is optional except `identity.agentId` and a
 * registry source; a wrong key or value is refused at start with its path and the fix.
 */
import { BlockList, isIP } from 'node:net';
import { LineCounter, parseDocument } from 'yaml';
import { readRegularFileSync } from '../../files/index.js';
import { looksLikeKeyText, parseProtocolName, NoiseError } from '../../noise/index.js';
import { DEFAULT_KEEPALIVE, KEEPALIVE_LIMITS, PROTOCOL, deadPeerBoundSeconds, type KeepaliveSettings } from '../../proxy/index.js';
import { isYamlMapping, yamlFaultHint, yamlFaults } from '../../registry-sync/index.js';
import { ConfigError, ConfigReader, FILE, describeValue } from './config-reader.js';
import type { ProjectionConfig } from '../../secrets/index.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface ProxyConfig {
  readonly trustDomain: string;
  readonly suite: string;
  readonly crypto: 'native' | 'noble';
  readonly identity: { readonly agentId: string; readonly privateKeyFile: string | null };
  /** For `Noise_IKpsk2_...` suites: the mesh-wide 32-byte pre-shared key, base64 in a file. */
  readonly pskFile: string | null;
  /** Exactly one source: a file, or the Kubernetes API. */
  readonly registry: RegistryConfig;
  readonly outbound: {
    readonly mode: 'permissive' | 'strict';
    readonly capture: HostPort | null;
    readonly explicit: readonly { readonly listen: HostPort; readonly peer: string; readonly port: number }[];
  };
  readonly inbound: {
    readonly bind: string;
    readonly meshPort: number;
    /** null: the pod address each mesh connection arrived on (PROTOCOL.md 4.2). */
    readonly targetHost: string | null;
    readonly capture: (HostPort & { readonly mode: 'permissive' | 'strict'; readonly excludePorts: readonly number[] }) | null;
  };
  readonly admin: HostPort | null;
  /** Dead-peer detection on mesh connections, both roles. */
  readonly keepalive: KeepaliveSettings;
  readonly drainSeconds: number;
  /** Null when the file does not set it: NOISEMESH_LOG_LEVEL, then `info`, apply. */
  readonly logLevel: LogLevel | null;
  /** Lower caps than the descriptor limit allows (README, "Strangers"); null: the derived cap. */
  readonly limits: {
    readonly pendingHandshakes: number | null;
    readonly pendingHandshakesPerSource: number | null;
    readonly sessions: number | null;
  };
  /** `secrets`: what to project from the secrets gateway; null: nothing. */
  readonly secrets: ProjectionConfig | null;
}

export type RegistryConfig =
  | { readonly file: string; readonly kubernetes?: undefined }
  | { readonly file?: undefined; readonly kubernetes: KubernetesRegistryConfig };

export interface KubernetesRegistryConfig {
  /** Empty: all namespaces (one cluster-wide watch). */
  readonly namespaces: readonly string[];
  /** Absent: in-cluster configuration, else $KUBECONFIG. */
  readonly kubeconfig: string | undefined;
  /** Periodic full relist; 0: none. */
  readonly resyncSeconds: number;
}

const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const AGENT_ID = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Reads the `secrets` section into `r` (secrets-config.ts's parseSecretsSection). A parameter
 * of parseProxyConfig, not an import of this module: it brings src/secrets and trust-vector,
 * which a proxy without the section never uses (bench/README.md, load).
 */
export type SecretsSectionReader = (r: ConfigReader, value: unknown) => ProjectionConfig | null;

/** Longest configuration file read; a real one is a few KiB. */
const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * Reads and checks the configuration file, importing the `secrets` section's reader only when
 * the file has the key. Rejects with FileReadError (files/) when the file cannot be read or is
 * no regular file (a FIFO would block the process), ConfigError when its content is wrong.
 */
export async function loadProxyConfig(file: string): Promise<ProxyConfig> {
  const document = readConfigDocument(file) ?? {};
  const hasSecrets = isYamlMapping(document) && Object.hasOwn(document, 'secrets');
  const secretsSection = hasSecrets ? (await import('./secrets-config.js')).parseSecretsSection : undefined;
  return parseProxyConfig(document, file, new ConfigReader(), secretsSection);
}

/**
 * The YAML document of a configuration file, not yet checked (the gateway's reader adds its
 * own section). Throws FileReadError or ConfigError as loadProxyConfig does.
 */
export function readConfigDocument(file: string): unknown {
  const bytes = readRegularFileSync(file, { maxBytes: MAX_CONFIG_BYTES });
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ConfigError(file, [{ path: FILE, message: 'is not UTF-8 text: save it as UTF-8' }]);
  }
  const lineCounter = new LineCounter();
  const parsed = parseDocument(text, { lineCounter, prettyErrors: false });
  const faults = yamlFaults(parsed);
  if (faults.length > 0) {
    // One problem per line: the first error there is the fault, the others its echoes.
    const byLine = new Map<number, string>();
    for (const err of faults) {
      const line = lineCounter.linePos(err.pos[0]).line;
      if (!byLine.has(line)) byLine.set(line, yamlFaultHint(err, text));
    }
    throw new ConfigError(file, [...byLine].map(([line, hint]) => ({ path: FILE, message: `line ${line}: not valid YAML: ${hint}` })));
  }
  let document: unknown;
  try {
    document = parsed.toJS({ maxAliasCount: 100 });
  } catch {
    throw new ConfigError(file, [{ path: FILE, message: 'YAML could not be resolved (too many or circular aliases): write the values out' }]);
  }
  return document;
}

/**
 * `r`: the reader to collect into; acceptedConfigKeys() passes its own to read the schema.
 * `secretsSection`: required when the document has a `secrets` section (a caller that
 * leaves it out for such a document is a bug: Error). `otherSections`: top-level keys another
 * reader takes (the gateway's `gateway`): accepted here, and offered when one is misspelt.
 */
export function parseProxyConfig(
  document: unknown,
  source = 'config',
  r = new ConfigReader(),
  secretsSection?: SecretsSectionReader,
  otherSections: readonly string[] = [],
): ProxyConfig {
  const root = r.object(document, '', ['trustDomain', 'suite', 'crypto', 'identity', 'psk', 'registry', 'outbound', 'inbound', 'admin', 'keepalive', 'shutdown', 'log', 'limits', 'secrets', ...otherSections]) ?? {};

  const trustDomain = r.string(root.trustDomain, 'trustDomain', 'a DNS-like name such as cluster.local') ?? 'cluster.local';
  const suite = r.string(root.suite, 'suite', `a Noise IK protocol name such as ${PROTOCOL.protocolName}`) ?? PROTOCOL.protocolName;
  try {
    const parsed = parseProtocolName(suite);
    if (parsed.dh !== '25519' || !['IK', 'IKpsk2'].includes(parsed.pattern.name)) {
      r.problem('suite', 'NMP/1 runs Noise_IK_25519_<cipher>_<hash> or Noise_IKpsk2_25519_<cipher>_<hash> (PROTOCOL.md section 2)');
    }
  } catch (err) {
    if (!(err instanceof NoiseError)) throw err;
    // The parser's message quotes the name it was given, which may be a key pasted here.
    r.problem('suite', looksLikeKeyText(suite) ? `must be a Noise protocol name; got ${describeValue(suite)}; e.g. ${PROTOCOL.protocolName}` : `${err.message}; e.g. ${PROTOCOL.protocolName}`);
  }
  const crypto = r.oneOf(root.crypto, 'crypto', ['native', 'noble'] as const) ?? 'native';

  const identity = r.object(root.identity, 'identity', ['agentId', 'privateKeyFile']);
  if (identity === undefined) r.problem('identity', 'required: identity.agentId names this workload as <namespace>/<workload>');
  const agentId = r.string(identity?.agentId, 'identity.agentId', 'write <namespace>/<workload>, e.g. payments/api');
  if (identity !== undefined && identity.agentId === undefined) r.problem('identity.agentId', 'required: write <namespace>/<workload>, e.g. payments/api');
  if (agentId !== undefined && !AGENT_ID.test(agentId)) r.problem('identity.agentId', `must be <namespace>/<workload> in lower case, e.g. payments/api; got ${describeValue(agentId)}`);
  const privateKeyFile = filePath(r, identity?.privateKeyFile, 'identity.privateKeyFile', 'a path to a base64 X25519 private key (noisemesh keygen --out FILE)') ?? null;

  const psk = r.object(root.psk, 'psk', ['file']);
  const pskFile = filePath(r, psk?.file, 'psk.file', 'a path to the base64 32-byte mesh key') ?? null;
  const usesPsk = suite.startsWith('Noise_IKpsk2_');
  if (usesPsk && pskFile === null) r.problem('psk.file', `required by ${suite}: a file holding the mesh's base64 32-byte pre-shared key`);
  if (!usesPsk && pskFile !== null) r.problem('psk.file', `only an IKpsk2 suite uses a pre-shared key; set suite to Noise_IKpsk2_... or remove psk`);

  const registry = r.object(root.registry, 'registry', ['file', 'kubernetes']);
  const registryFile = filePath(r, registry?.file, 'registry.file', 'a path to a YAML file of ClearanceRegistry documents');
  const kubernetes = registry?.kubernetes === undefined || registry.kubernetes === null ? undefined : kubernetesRegistry(r, registry.kubernetes);
  if (registry?.file !== undefined && registry.kubernetes !== undefined) {
    r.problem('registry', 'set exactly one of registry.file and registry.kubernetes, not both');
  } else if ((registry?.file === undefined || registry.file === null) && kubernetes === undefined && registry?.kubernetes === undefined) {
    // Only when neither is written: a registry.file of the wrong kind has its own problem above.
    r.problem('registry', 'required: registry.file (a YAML file of ClearanceRegistry documents) or registry.kubernetes (watch the cluster)');
  }

  const outbound = r.object(root.outbound, 'outbound', ['mode', 'capture', 'explicit']);
  const mode = r.oneOf(outbound?.mode, 'outbound.mode', ['permissive', 'strict'] as const) ?? 'permissive';
  const outCapture = r.object(outbound?.capture, 'outbound.capture', ['port', 'bind']);
  const capture: HostPort | null =
    outCapture === undefined
      ? null
      : {
          host: address(r, outCapture.bind, 'outbound.capture.bind') ?? '0.0.0.0',
          port: r.port(outCapture.port, 'outbound.capture.port') ?? PROTOCOL.defaultOutboundCapturePort,
        };
  const explicitListeners: { path: string; at: HostPort }[] = [];
  const explicit = r.list(outbound?.explicit, 'outbound.explicit', '{listen, peer, port}').flatMap((item, i) => {
    const path = `outbound.explicit[${i}]`;
    const e = r.object(item, path, ['listen', 'peer', 'port']);
    if (e === undefined) return [];
    const listen = hostPort(r, e.listen, `${path}.listen`);
    if (listen !== undefined) explicitListeners.push({ path: `${path}.listen`, at: listen });
    const peer = r.string(e.peer, `${path}.peer`, 'the agentId to reach, e.g. payments/db');
    if (peer !== undefined && !AGENT_ID.test(peer)) r.problem(`${path}.peer`, `must be an agentId, <namespace>/<workload> in lower case, e.g. payments/db; got ${describeValue(peer)}`);
    const port = r.port(e.port, `${path}.port`);
    if (peer === undefined) r.problem(`${path}.peer`, 'required: the agentId to reach, e.g. payments/db');
    if (port === undefined) r.problem(`${path}.port`, "required: the target port on the peer's pod");
    return listen && peer && port ? [{ listen, peer, port }] : [];
  });

  const inbound = r.object(root.inbound, 'inbound', ['bind', 'meshPort', 'targetHost', 'capture']);
  const bind = address(r, inbound?.bind, 'inbound.bind') ?? '0.0.0.0';
  const meshPort = r.port(inbound?.meshPort, 'inbound.meshPort') ?? PROTOCOL.defaultMeshPort;
  const targetHost = address(r, inbound?.targetHost, 'inbound.targetHost') ?? null;
  const inCapture = r.object(inbound?.capture, 'inbound.capture', ['port', 'mode', 'excludePorts']);
  const inboundCapture =
    inCapture === undefined
      ? null
      : {
          host: bind,
          port: r.port(inCapture.port, 'inbound.capture.port') ?? PROTOCOL.defaultInboundCapturePort,
          mode: r.oneOf(inCapture.mode, 'inbound.capture.mode', ['permissive', 'strict'] as const) ?? 'permissive',
          excludePorts: r.list(inCapture.excludePorts, 'inbound.capture.excludePorts', 'ports').flatMap((p, i) => {
            const port = r.port(p, `inbound.capture.excludePorts[${i}]`);
            return port === undefined ? [] : [port];
          }),
        };

  const adminNode = root.admin === false ? undefined : r.object(root.admin, 'admin', ['bind', 'port']);
  const admin: HostPort | null =
    root.admin === false
      ? null
      : {
          host: address(r, adminNode?.bind, 'admin.bind') ?? '0.0.0.0',
          port: r.port(adminNode?.port, 'admin.port') ?? PROTOCOL.defaultAdminPort,
        };
  const keepaliveNode = r.object(root.keepalive, 'keepalive', ['idleSeconds', 'intervalSeconds', 'probes']);
  const keepalive: KeepaliveSettings = {
    idleSeconds: r.integer(keepaliveNode?.idleSeconds, 'keepalive.idleSeconds', 1, KEEPALIVE_LIMITS.maxIdleSeconds) ?? DEFAULT_KEEPALIVE.idleSeconds,
    intervalSeconds: r.integer(keepaliveNode?.intervalSeconds, 'keepalive.intervalSeconds', 1, KEEPALIVE_LIMITS.maxIntervalSeconds) ?? DEFAULT_KEEPALIVE.intervalSeconds,
    probes: r.integer(keepaliveNode?.probes, 'keepalive.probes', 1, KEEPALIVE_LIMITS.maxProbes) ?? DEFAULT_KEEPALIVE.probes,
  };
  if (deadPeerBoundSeconds(keepalive) > KEEPALIVE_LIMITS.maxBoundSeconds) {
    r.problem('keepalive', `idleSeconds + intervalSeconds x probes is the dead-peer bound and TCP_USER_TIMEOUT, at most ${KEEPALIVE_LIMITS.maxBoundSeconds} s; got ${deadPeerBoundSeconds(keepalive)}`);
  }
  const shutdown = r.object(root.shutdown, 'shutdown', ['drainSeconds']);
  const drainSeconds = r.number(shutdown?.drainSeconds, 'shutdown.drainSeconds', 0, 3600) ?? 15;
  const log = r.object(root.log, 'log', ['level']);
  const logLevel = r.oneOf(log?.level, 'log.level', LOG_LEVELS) ?? null;
  const limitsNode = r.object(root.limits, 'limits', ['pendingHandshakes', 'pendingHandshakesPerSource', 'sessions']);
  const limits = {
    pendingHandshakes: count(r, limitsNode?.pendingHandshakes, 'limits.pendingHandshakes'),
    pendingHandshakesPerSource: count(r, limitsNode?.pendingHandshakesPerSource, 'limits.pendingHandshakesPerSource'),
    sessions: count(r, limitsNode?.sessions, 'limits.sessions'),
  };
  if (limits.pendingHandshakes !== null && limits.pendingHandshakesPerSource !== null && limits.pendingHandshakesPerSource > limits.pendingHandshakes) {
    r.problem('limits.pendingHandshakesPerSource', `must not exceed limits.pendingHandshakes (${limits.pendingHandshakes}); got ${limits.pendingHandshakesPerSource}`);
  }
  if (secretsSection === undefined && root.secrets !== undefined && root.secrets !== null) {
    throw new Error('parseProxyConfig: this document has a secrets section, and no reader for it was passed (parseSecretsSection)');
  }
  const secrets = secretsSection === undefined ? null : secretsSection(r, root.secrets);

  // Two listeners on one address would fail at start with EADDRINUSE and no key named. A
  // listener whose address or port was refused above stands on a default: left out, so that
  // a default never reports a collision of its own.
  const flawed = (...paths: string[]): boolean => r.problems.some((p) => paths.includes(p.path));
  const listeners: { path: string; at: HostPort }[] = [
    ...(flawed('inbound.meshPort', 'inbound.bind') ? [] : [{ path: 'inbound.meshPort', at: { host: bind, port: meshPort } }]),
    ...(capture && !flawed('outbound.capture.port', 'outbound.capture.bind') ? [{ path: 'outbound.capture.port', at: capture }] : []),
    ...(inboundCapture && !flawed('inbound.capture.port', 'inbound.bind') ? [{ path: 'inbound.capture.port', at: inboundCapture }] : []),
    ...(admin && !flawed('admin.port', 'admin.bind') ? [{ path: 'admin.port', at: admin }] : []),
    ...explicitListeners,
  ];
  for (const [i, l] of listeners.entries()) {
    const other = listeners.slice(0, i).find((o) => o.at.port === l.at.port && sameListenAddress(o.at.host, l.at.host));
    if (other !== undefined) {
      r.problem(l.path, `${formatHostPort(l.at)} is also ${other.path} (${formatHostPort(other.at)}): two listeners cannot share an address and port; give one of them another port`);
    }
  }

  if (r.problems.length > 0) throw new ConfigError(source, r.problems);
  return {
    trustDomain,
    suite,
    crypto,
    identity: { agentId: agentId!, privateKeyFile },
    pskFile,
    registry: kubernetes !== undefined ? { kubernetes } : { file: registryFile! },
    outbound: { mode, capture, explicit },
    inbound: { bind, meshPort, targetHost, capture: inboundCapture },
    admin,
    keepalive,
    drainSeconds,
    logLevel,
    limits,
    secrets,
  };
}

/**
 * Every key path the configuration accepts (`outbound.explicit[].peer`), read from the code
 * that reads it, so that the documentation can be checked against it.
 */
export async function acceptedConfigKeys(): Promise<string[]> {
  const r = new ConfigReader();
  const { parseSecretsSection } = await import('./secrets-config.js');
  try {
    // One list item, so that the keys of the list's items are visited too, and the
    // Kubernetes section, read only when it is there.
    parseProxyConfig({ outbound: { explicit: [{}] }, registry: { kubernetes: {} } }, 'keys', r, parseSecretsSection);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
  }
  return [...r.keys].sort();
}

/** Whether two listeners on these addresses collide: the same address, or a wildcard over it. */
function sameListenAddress(a: string, b: string): boolean {
  const family = (h: string): 'ipv4' | 'ipv6' => (isIP(h) === 6 ? 'ipv6' : 'ipv4');
  // `::` is dual stack (Node listens with IPV6_V6ONLY off): it holds every IPv4 port as well.
  if (a === '::' || b === '::') return true;
  if (family(a) !== family(b)) return false;
  if (a === '0.0.0.0' || b === '0.0.0.0') return true;
  const list = new BlockList();
  list.addAddress(a, family(a));
  return list.check(b, family(b));
}

function formatHostPort(at: HostPort): string {
  return isIP(at.host) === 6 ? `[${at.host}]:${at.port}` : `${at.host}:${at.port}`;
}

/** `registry.kubernetes: {namespaces, kubeconfig, resyncSeconds}`. */
function kubernetesRegistry(r: ConfigReader, value: unknown): KubernetesRegistryConfig | undefined {
  const k = r.object(value, 'registry.kubernetes', ['namespaces', 'kubeconfig', 'resyncSeconds']);
  if (k === undefined) return undefined;
  const namespaces = r.list(k.namespaces, 'registry.kubernetes.namespaces', 'namespace names').flatMap((ns, i) => {
    const path = `registry.kubernetes.namespaces[${i}]`;
    if (typeof ns !== 'string' || ns.length > 63 || !NAMESPACE.test(ns)) {
      r.problem(path, `must be a Kubernetes namespace name (lowercase DNS-1123 label), e.g. payments; got ${describeValue(ns)}`);
      return [];
    }
    return [ns];
  });
  const kubeconfig = filePath(r, k.kubeconfig, 'registry.kubernetes.kubeconfig', 'a path to a kubeconfig file; leave it out in a pod (in-cluster service account)');
  const resyncSeconds = r.number(k.resyncSeconds, 'registry.kubernetes.resyncSeconds', 0, 86_400) ?? 0;
  if (resyncSeconds > 0 && resyncSeconds < 10) r.problem('registry.kubernetes.resyncSeconds', `must be 0 (no periodic relist) or at least 10 seconds; got ${resyncSeconds}`);
  return { namespaces: [...new Set(namespaces)], kubeconfig, resyncSeconds };
}

/**
 * A key whose value is a file's path. A key pasted in place of its file's path would come back
 * in every message about that file (does not exist, and the keygen hint), and in logs: refused
 * here, without quoting it.
 */
function filePath(r: ConfigReader, value: unknown, path: string, fix: string): string | undefined {
  const text = r.string(value, path, fix);
  if (text !== undefined && looksLikeKeyText(text)) {
    r.problem(path, `holds what looks like a key itself (not shown), not a path: write the path of the file that holds it (${fix})`);
    return undefined;
  }
  return text;
}

/** A cap: an integer from 1 to 1,000,000, or null when absent. */
function count(r: ConfigReader, value: unknown, path: string): number | null {
  const n = r.number(value, path, 1, 1_000_000);
  if (n === undefined) return null;
  if (!Number.isInteger(n)) {
    r.problem(path, `must be a whole number from 1 to 1000000; got ${JSON.stringify(value)}`);
    return null;
  }
  return n;
}

function address(r: ConfigReader, value: unknown, path: string): string | undefined {
  const text = r.string(value, path, 'an IP address such as 0.0.0.0, 127.0.0.1 or ::');
  if (text !== undefined && isIP(text) === 0) {
    r.problem(path, `must be an IP address such as 0.0.0.0, 127.0.0.1 or ::; got ${describeValue(text)}`);
    return undefined;
  }
  return text;
}

/** "127.0.0.1:7000" or "[::1]:7000". */
function hostPort(r: ConfigReader, value: unknown, path: string): HostPort | undefined {
  const text = r.string(value, path, 'write host:port, e.g. "127.0.0.1:7000" or "[::1]:7000"');
  if (text === undefined) {
    if (value === undefined) r.problem(path, 'required: write host:port, e.g. "127.0.0.1:7000"');
    return undefined;
  }
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (host === undefined || isIP(host) === 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
    r.problem(path, `must be host:port with an IP address and a port 1..65535, e.g. "127.0.0.1:7000"; got ${describeValue(text)}`);
    return undefined;
  }
  return { host, port };
}
