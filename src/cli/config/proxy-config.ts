/**
 * `noisemesh proxy --config FILE`: the YAML of DESIGN.md (Configuration), read into a typed
 * value with DESIGN.md's defaults. Every key is optional except `identity.agentId` and a
 * registry source; a wrong key or value is refused at start with its path and the fix.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { parseProtocolName, NoiseError } from '../../noise/index.js';
import { PROTOCOL } from '../../proxy/index.js';
import { ConfigError, ConfigReader } from './config-reader.js';

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
  readonly registry: { readonly file: string };
  readonly outbound: {
    readonly mode: 'permissive' | 'strict';
    readonly capture: HostPort | null;
    readonly explicit: readonly { readonly listen: HostPort; readonly peer: string; readonly port: number }[];
  };
  readonly inbound: {
    readonly bind: string;
    readonly meshPort: number;
    readonly targetHost: string;
    readonly capture: (HostPort & { readonly mode: 'permissive' | 'strict'; readonly excludePorts: readonly number[] }) | null;
  };
  readonly admin: HostPort | null;
  readonly drainSeconds: number;
  readonly logLevel: string;
  /** Lower caps than the descriptor limit allows (README, "Strangers"); null: the derived cap. */
  readonly limits: {
    readonly pendingHandshakes: number | null;
    readonly pendingHandshakesPerSource: number | null;
    readonly sessions: number | null;
  };
}

const AGENT_ID = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function loadProxyConfig(file: string): ProxyConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ path: '(file)', message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]);
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (err) {
    throw new ConfigError(file, [{ path: '(file)', message: `not valid YAML: ${(err as Error).message.split('\n')[0]}` }]);
  }
  return parseProxyConfig(document ?? {}, file);
}

export function parseProxyConfig(document: unknown, source = 'config'): ProxyConfig {
  const r = new ConfigReader();
  const root = r.object(document, '', ['trustDomain', 'suite', 'crypto', 'identity', 'psk', 'registry', 'outbound', 'inbound', 'admin', 'shutdown', 'log', 'limits']) ?? {};

  const trustDomain = r.string(root.trustDomain, 'trustDomain', 'a DNS-like name such as cluster.local') ?? 'cluster.local';
  const suite = r.string(root.suite, 'suite', `a Noise IK protocol name such as ${PROTOCOL.protocolName}`) ?? PROTOCOL.protocolName;
  try {
    const parsed = parseProtocolName(suite);
    if (parsed.dh !== '25519' || !['IK', 'IKpsk2'].includes(parsed.pattern.name)) {
      r.problem('suite', 'NMP/1 runs Noise_IK_25519_<cipher>_<hash> or Noise_IKpsk2_25519_<cipher>_<hash> (PROTOCOL.md section 2)');
    }
  } catch (err) {
    if (!(err instanceof NoiseError)) throw err;
    r.problem('suite', `${err.message}; e.g. ${PROTOCOL.protocolName}`);
  }
  const crypto = r.oneOf(root.crypto, 'crypto', ['native', 'noble'] as const) ?? 'native';

  const identity = r.object(root.identity, 'identity', ['agentId', 'privateKeyFile']);
  if (identity === undefined) r.problem('identity', 'required: identity.agentId names this workload as <namespace>/<workload>');
  const agentId = r.string(identity?.agentId, 'identity.agentId', 'write <namespace>/<workload>, e.g. payments/api');
  if (identity !== undefined && identity.agentId === undefined) r.problem('identity.agentId', 'required: write <namespace>/<workload>, e.g. payments/api');
  if (agentId !== undefined && !AGENT_ID.test(agentId)) r.problem('identity.agentId', `must be <namespace>/<workload> in lower case, e.g. payments/api; got ${JSON.stringify(agentId)}`);
  const privateKeyFile = r.string(identity?.privateKeyFile, 'identity.privateKeyFile', 'a path to a base64 X25519 private key (noisemesh keygen --out FILE)') ?? null;

  const psk = r.object(root.psk, 'psk', ['file']);
  const pskFile = r.string(psk?.file, 'psk.file', 'a path to the base64 32-byte mesh key') ?? null;
  const usesPsk = suite.startsWith('Noise_IKpsk2_');
  if (usesPsk && pskFile === null) r.problem('psk.file', `required by ${suite}: a file holding the mesh's base64 32-byte pre-shared key`);
  if (!usesPsk && pskFile !== null) r.problem('psk.file', `only an IKpsk2 suite uses a pre-shared key; set suite to Noise_IKpsk2_... or remove psk`);

  const registry = r.object(root.registry, 'registry', ['file', 'kubernetes']);
  const registryFile = r.string(registry?.file, 'registry.file', 'a path to a YAML file of ClearanceRegistry documents');
  if (registry?.kubernetes !== undefined) {
    r.problem('registry.kubernetes', 'the Kubernetes registry source is not in this release yet; use registry.file');
  } else if (registryFile === undefined) {
    r.problem('registry.file', 'required: a YAML file of ClearanceRegistry documents');
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
  const explicit = r.list(outbound?.explicit, 'outbound.explicit', '{listen, peer, port}').flatMap((item, i) => {
    const path = `outbound.explicit[${i}]`;
    const e = r.object(item, path, ['listen', 'peer', 'port']);
    if (e === undefined) return [];
    const listen = hostPort(r, e.listen, `${path}.listen`);
    const peer = r.string(e.peer, `${path}.peer`, 'the agentId to reach, e.g. payments/db');
    const port = r.port(e.port, `${path}.port`);
    if (peer === undefined) r.problem(`${path}.peer`, 'required: the agentId to reach, e.g. payments/db');
    if (port === undefined) r.problem(`${path}.port`, "required: the target port on the peer's pod");
    return listen && peer && port ? [{ listen, peer, port }] : [];
  });

  const inbound = r.object(root.inbound, 'inbound', ['bind', 'meshPort', 'targetHost', 'capture']);
  const bind = address(r, inbound?.bind, 'inbound.bind') ?? '0.0.0.0';
  const meshPort = r.port(inbound?.meshPort, 'inbound.meshPort') ?? PROTOCOL.defaultMeshPort;
  const targetHost = address(r, inbound?.targetHost, 'inbound.targetHost') ?? '127.0.0.1';
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
  const shutdown = r.object(root.shutdown, 'shutdown', ['drainSeconds']);
  const drainSeconds = r.number(shutdown?.drainSeconds, 'shutdown.drainSeconds', 0, 3600) ?? 15;
  const log = r.object(root.log, 'log', ['level']);
  const logLevel = r.oneOf(log?.level, 'log.level', LOG_LEVELS) ?? 'info';
  const limitsNode = r.object(root.limits, 'limits', ['pendingHandshakes', 'pendingHandshakesPerSource', 'sessions']);
  const limits = {
    pendingHandshakes: count(r, limitsNode?.pendingHandshakes, 'limits.pendingHandshakes'),
    pendingHandshakesPerSource: count(r, limitsNode?.pendingHandshakesPerSource, 'limits.pendingHandshakesPerSource'),
    sessions: count(r, limitsNode?.sessions, 'limits.sessions'),
  };
  if (limits.pendingHandshakes !== null && limits.pendingHandshakesPerSource !== null && limits.pendingHandshakesPerSource > limits.pendingHandshakes) {
    r.problem('limits.pendingHandshakesPerSource', `must not exceed limits.pendingHandshakes (${limits.pendingHandshakes}); got ${limits.pendingHandshakesPerSource}`);
  }

  const ports = [
    ['inbound.meshPort', meshPort],
    ['outbound.capture.port', capture?.port],
    ['inbound.capture.port', inboundCapture?.port],
    ['admin.port', admin?.port],
  ] as const;
  const seen = new Map<number, string>();
  for (const [path, port] of ports) {
    if (port === undefined) continue;
    const other = seen.get(port);
    if (other !== undefined) r.problem(path, `port ${port} is also ${other}: each listener needs its own port`);
    seen.set(port, path);
  }

  if (r.problems.length > 0) throw new ConfigError(source, r.problems);
  return {
    trustDomain,
    suite,
    crypto,
    identity: { agentId: agentId!, privateKeyFile },
    pskFile,
    registry: { file: registryFile! },
    outbound: { mode, capture, explicit },
    inbound: { bind, meshPort, targetHost, capture: inboundCapture },
    admin,
    drainSeconds,
    logLevel,
    limits,
  };
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
    r.problem(path, `must be an IP address such as 0.0.0.0, 127.0.0.1 or ::; got ${JSON.stringify(text)}`);
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
    r.problem(path, `must be host:port with an IP address and a port 1..65535, e.g. "127.0.0.1:7000"; got ${JSON.stringify(text)}`);
    return undefined;
  }
  return { host, port };
}
