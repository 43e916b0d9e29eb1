/**
 * Services and EndpointSlices as kube-proxy reads them, pure: objects in, a ClusterIP:port's
 * endpoint candidates out. No I/O, no clock; the catalog (service-catalog.ts) feeds it from
 * reflectors and the tests feed it objects.
 *
 * What kube-proxy does (pkg/proxy: servicechangetracker, endpointslicecache, topology), and
 * so what this does:
 * - a Service has one frontend per ClusterIP (`spec.clusterIPs`, else `spec.clusterIP`) and
 *   TCP port (`spec.ports[].port`); a headless Service (`clusterIP: None`) and an
 *   ExternalName one have none, so their pod IPs are reached as pod IPs;
 * - its endpoints are those of the EndpointSlices labelled `kubernetes.io/service-name`
 *   with its name, in its namespace, of the ClusterIP's family (`addressType` IPv4 or IPv6;
 *   FQDN slices are not proxied);
 * - the target port is never the Service's `targetPort` itself: the EndpointSlice
 *   controller has already resolved it (a named one per pod), and the slice's port whose
 *   `name` is the Service port's name (both empty for a single unnamed port) and whose
 *   protocol is the same carries it. A slice without that port contributes nothing to it;
 * - an endpoint is `addresses[0]` (kube-proxy uses only the first); `conditions.ready`
 *   absent means ready, `serving` absent means as ready, `terminating` absent means false;
 * - ready endpoints take new connections; only when none is ready do `serving &&
 *   terminating` ones (kube-proxy's terminating-endpoints fallback); the same address:port
 *   in two slices (a pod moving between slices) counts once, ready if either says so.
 *
 * Everything from the API server is hostile: malformed parts are skipped (a port out of
 * range, an address that is no IP, a condition that is no boolean), never thrown, and every
 * list is bounded by what the API server itself allows (100 ports, 1000 endpoints a slice).
 */
import { normalizeAddress } from '../registry-sync/index.js';
import type { KubeObject } from './reflector.js';

/** The label the EndpointSlice controller puts on a Service's slices. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** The API server's own limits (discovery/v1 validation): more is not a real object. */
const MAX_SLICE_ENDPOINTS = 1000;
const MAX_PORTS = 100;

export type IpFamily = 'IPv4' | 'IPv6';

export interface ServicePort {
  /** '' for an unnamed port (allowed only when it is the Service's single port). */
  readonly name: string;
  readonly port: number;
}

/** What of a Service matters to routing. */
export interface ParsedService {
  /** `namespace/name`. */
  readonly key: string;
  /** Normalized ClusterIPs; empty for a headless or ExternalName Service. */
  readonly clusterIPs: readonly string[];
  /** TCP ports only: nothing else is captured. */
  readonly ports: readonly ServicePort[];
}

export interface SliceEndpoint {
  readonly address: string;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
}

export interface ParsedSlice {
  readonly key: string;
  /** `namespace/name` of the Service it belongs to. */
  readonly service: string;
  readonly family: IpFamily;
  /** TCP ports by name ('' for unnamed). */
  readonly ports: ReadonlyMap<string, number>;
  readonly endpoints: readonly SliceEndpoint[];
}

/** One endpoint a connection to a frontend may go to. */
export interface EndpointCandidate {
  /** The pod IP, normalized. */
  readonly address: string;
  /** The target port on it. */
  readonly port: number;
}

/** A ClusterIP:port and where its new connections go. */
export interface ServiceFrontend {
  /** `namespace/name`. */
  readonly service: string;
  /** The Service port's name ('' when unnamed). */
  readonly portName: string;
  readonly clusterIP: string;
  readonly port: number;
  /** Ready endpoints, or, when there is none, the serving and terminating ones; may be empty. */
  readonly endpoints: readonly EndpointCandidate[];
  /** True when `endpoints` are the terminating fallback. */
  readonly terminatingFallback: boolean;
}

type Mapping = Readonly<Record<string, unknown>>;

function mapping(v: unknown): Mapping | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Mapping) : undefined;
}

function keyOf(object: KubeObject): { namespace: string; name: string } | undefined {
  const meta = mapping(object.metadata);
  const name = meta?.name;
  const namespace = meta?.namespace;
  if (typeof name !== 'string' || name === '' || typeof namespace !== 'string' || namespace === '') return undefined;
  return { namespace, name };
}

function isPort(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;
}

/** Protocol absent means TCP, as the API server defaults it. */
function isTcp(v: unknown): boolean {
  return v === undefined || v === null || v === 'TCP';
}

export function familyOf(address: string): IpFamily {
  return address.includes(':') ? 'IPv6' : 'IPv4';
}

/** A Service's routing part; undefined for an object that is not a usable Service. */
export function parseService(object: KubeObject): ParsedService | undefined {
  const id = keyOf(object);
  const spec = mapping(object.spec);
  if (id === undefined || spec === undefined) return undefined;
  const written = Array.isArray(spec.clusterIPs) && spec.clusterIPs.length > 0 ? spec.clusterIPs.slice(0, 2) : [spec.clusterIP];
  const clusterIPs: string[] = [];
  // `None` (headless) and '' (ExternalName) are no address; normalizeAddress refuses both.
  for (const ip of written) {
    const normalized = typeof ip === 'string' ? normalizeAddress(ip) : undefined;
    if (normalized !== undefined && !clusterIPs.includes(normalized)) clusterIPs.push(normalized);
  }
  const ports: ServicePort[] = [];
  if (Array.isArray(spec.ports)) {
    for (const p of spec.ports.slice(0, MAX_PORTS)) {
      const port = mapping(p);
      if (port === undefined || !isPort(port.port) || !isTcp(port.protocol)) continue;
      const name = typeof port.name === 'string' ? port.name : '';
      if (ports.some((q) => q.port === port.port || q.name === name)) continue;
      ports.push({ name, port: port.port });
    }
  }
  return { key: `${id.namespace}/${id.name}`, clusterIPs, ports };
}

/** An EndpointSlice's routing part; undefined for one that belongs to no Service or no IP family. */
export function parseEndpointSlice(object: KubeObject): ParsedSlice | undefined {
  const id = keyOf(object);
  if (id === undefined) return undefined;
  const labels = mapping(mapping(object.metadata)?.labels);
  const service = labels?.[SERVICE_NAME_LABEL];
  if (typeof service !== 'string' || service === '') return undefined;
  const family = object.addressType;
  if (family !== 'IPv4' && family !== 'IPv6') return undefined;
  const ports = new Map<string, number>();
  if (Array.isArray(object.ports)) {
    for (const p of object.ports.slice(0, MAX_PORTS)) {
      const port = mapping(p);
      // A port without a number means "all ports" only for a Service without selector ports;
      // kube-proxy skips it, and so do we.
      if (port === undefined || !isPort(port.port) || !isTcp(port.protocol)) continue;
      const name = typeof port.name === 'string' ? port.name : '';
      if (!ports.has(name)) ports.set(name, port.port);
    }
  }
  const endpoints: SliceEndpoint[] = [];
  if (Array.isArray(object.endpoints)) {
    for (const e of object.endpoints.slice(0, MAX_SLICE_ENDPOINTS)) {
      const endpoint = mapping(e);
      const first = Array.isArray(endpoint?.addresses) ? endpoint.addresses[0] : undefined;
      const address = typeof first === 'string' ? normalizeAddress(first) : undefined;
      if (endpoint === undefined || address === undefined || familyOf(address) !== family) continue;
      const c = mapping(endpoint.conditions) ?? {};
      const ready = c.ready === undefined || c.ready === null ? true : c.ready === true;
      const serving = c.serving === undefined || c.serving === null ? ready : c.serving === true;
      const terminating = c.terminating === true;
      endpoints.push({ address, ready, serving, terminating });
    }
  }
  return { key: `${id.namespace}/${id.name}`, service: `${id.namespace}/${service}`, family, ports, endpoints };
}

/** `10.96.0.10:80`, `[fd00::a]:80`: a frontend's map key. */
export function frontendKey(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * Every frontend of `service` with its endpoints from `slices` (the Service's own: callers
 * pass the slices whose `service` is its key; others are ignored).
 */
export function serviceFrontends(service: ParsedService, slices: Iterable<ParsedSlice>): ServiceFrontend[] {
  const own = [...slices].filter((s) => s.service === service.key);
  const frontends: ServiceFrontend[] = [];
  for (const clusterIP of service.clusterIPs) {
    const family = familyOf(clusterIP);
    for (const servicePort of service.ports) {
      // address:port -> the best conditions any slice gives it.
      const seen = new Map<string, { candidate: EndpointCandidate; ready: boolean; fallback: boolean }>();
      for (const slice of own) {
        if (slice.family !== family) continue;
        const port = slice.ports.get(servicePort.name);
        if (port === undefined) continue;
        for (const e of slice.endpoints) {
          const id = frontendKey(e.address, port);
          const fallback = e.serving && e.terminating;
          const known = seen.get(id);
          if (known === undefined) seen.set(id, { candidate: { address: e.address, port }, ready: e.ready, fallback });
          else seen.set(id, { candidate: known.candidate, ready: known.ready || e.ready, fallback: known.fallback || fallback });
        }
      }
      const all = [...seen.values()];
      const ready = all.filter((e) => e.ready).map((e) => e.candidate);
      const terminating = ready.length > 0 ? [] : all.filter((e) => e.fallback).map((e) => e.candidate);
      frontends.push({
        service: service.key,
        portName: servicePort.name,
        clusterIP,
        port: servicePort.port,
        endpoints: ready.length > 0 ? ready : terminating,
        terminatingFallback: ready.length === 0 && terminating.length > 0,
      });
    }
  }
  return frontends;
}
