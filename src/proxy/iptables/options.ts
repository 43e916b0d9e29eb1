import { PROTOCOL } from '../protocol/index.js';
import { parseCidr, type Cidr } from './cidr.js';
import { IptablesOptionError } from './errors.js';

/** What the pod's redirection rules capture and what they leave alone. */
export interface CaptureRulesOptions {
  /** Connections made by this UID are never captured: the proxy's own, or it would capture itself. */
  readonly proxyUid: number;
  /** Where captured outbound connections are redirected (the proxy's outbound capture listener). */
  readonly outboundPort: number;
  /** Where captured inbound connections are redirected; `null`: no inbound capture, no inbound rules. */
  readonly inboundPort: number | null;
  /** The responder's port: meshed traffic arrives here and must reach it untouched. */
  readonly meshPort: number;
  /** Destination ports the app reaches directly, outside the mesh. */
  readonly excludeOutboundPorts: readonly number[];
  /** Destination networks the app reaches directly, either family. */
  readonly excludeOutboundCidrs: readonly Cidr[];
  /** Local ports reached directly from outside (probes, the admin port). */
  readonly excludeInboundPorts: readonly number[];
}

/** The same, as a caller writes it: every field optional, networks as text. */
export interface CaptureRulesInput {
  readonly proxyUid?: number;
  readonly outboundPort?: number;
  readonly inboundPort?: number | null;
  readonly meshPort?: number;
  readonly excludeOutboundPorts?: readonly number[];
  readonly excludeOutboundCidrs?: readonly string[];
  readonly excludeInboundPorts?: readonly number[];
}

/** DESIGN.md, Defaults: ports 15001 / 15006 / 15443, admin 15020 left uncaptured, UID 1337. */
export const DEFAULT_CAPTURE_RULES_OPTIONS: CaptureRulesOptions = Object.freeze({
  proxyUid: PROTOCOL.defaultProxyUid,
  outboundPort: PROTOCOL.defaultOutboundCapturePort,
  inboundPort: PROTOCOL.defaultInboundCapturePort,
  meshPort: PROTOCOL.defaultMeshPort,
  excludeOutboundPorts: Object.freeze([]),
  excludeOutboundCidrs: Object.freeze([]),
  excludeInboundPorts: Object.freeze([PROTOCOL.defaultAdminPort]),
});

/** Fills in defaults and checks every value; throws IptablesOptionError naming the field. */
export function captureRulesOptions(input: CaptureRulesInput = {}): CaptureRulesOptions {
  const d = DEFAULT_CAPTURE_RULES_OPTIONS;
  const proxyUid = input.proxyUid ?? d.proxyUid;
  // 2^32-1 is (uid_t)-1, "no uid" to the kernel; the owner match cannot mean it.
  if (!Number.isInteger(proxyUid) || proxyUid < 0 || proxyUid > 0xfffffffe) {
    throw new IptablesOptionError('proxyUid', `${proxyUid} is no UID: use an integer 0..4294967294 (default ${d.proxyUid})`);
  }
  const outboundPort = port('outboundPort', input.outboundPort ?? d.outboundPort);
  const inboundPort = input.inboundPort === null ? null : port('inboundPort', input.inboundPort ?? d.inboundPort!);
  const meshPort = port('meshPort', input.meshPort ?? d.meshPort);

  // The proxy tells captured directions apart by the port they arrive on, and the mesh port
  // is exempt from inbound capture: sharing any of these ports breaks one of the paths.
  if (inboundPort !== null && inboundPort === outboundPort) {
    throw new IptablesOptionError('inboundPort', `${inboundPort} is also the outbound port: the two capture ports must differ`);
  }
  if (meshPort === outboundPort || meshPort === inboundPort) {
    throw new IptablesOptionError('meshPort', `${meshPort} is also a capture port: the mesh port must differ from both`);
  }

  const cidrs = (input.excludeOutboundCidrs ?? []).map((text, i) => {
    const parsed = parseCidr(String(text).trim());
    if ('problem' in parsed) {
      throw new IptablesOptionError(
        `excludeOutboundCidrs[${i}]`,
        `'${text}' is no network: ${parsed.problem}; write e.g. 10.96.0.0/12 or fd00::/8`,
      );
    }
    return parsed;
  });

  return Object.freeze({
    proxyUid,
    outboundPort,
    inboundPort,
    meshPort,
    excludeOutboundPorts: portList('excludeOutboundPorts', input.excludeOutboundPorts ?? d.excludeOutboundPorts),
    excludeOutboundCidrs: Object.freeze(uniqueBy(cidrs, (c) => c.text)),
    excludeInboundPorts: portList('excludeInboundPorts', input.excludeInboundPorts ?? d.excludeInboundPorts),
  });
}

function port(field: string, value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    throw new IptablesOptionError(field, `${value} is no TCP port: use an integer 1..65535`);
  }
  return value;
}

function portList(field: string, values: readonly number[]): readonly number[] {
  return Object.freeze(uniqueBy(values.map((v, i) => port(`${field}[${i}]`, v)), (p) => p));
}

/** First occurrence wins: a repeated value would only render the same rule twice. */
function uniqueBy<T, K>(items: readonly T[], key: (item: T) => K): T[] {
  const seen = new Set<K>();
  return items.filter((item) => !seen.has(key(item)) && (seen.add(key(item)), true));
}
