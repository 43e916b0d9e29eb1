/**
 * Services and EndpointSlices for the API-server test double, shaped as a real cluster
 * stores them: a Service with the API server's defaults filled in (protocol TCP, targetPort
 * = port, type ClusterIP, ipFamilies), and EndpointSlices as the EndpointSlice controller
 * (pkg/controller/endpointslice) writes them from pods:
 * - one slice per distinct set of resolved ports (pods whose named targetPort resolves to
 *   different numbers land in different slices), labelled `kubernetes.io/service-name` and
 *   `endpointslice.kubernetes.io/managed-by`;
 * - a slice port per Service port, named as the Service port (unnamed: ''), with the port
 *   resolved on the pod: a number as is, a name through the pod's container ports (a pod
 *   without that named port gets no slice port for it);
 * - `conditions.ready` = pod ready and not terminating, `serving` = pod ready,
 *   `terminating` = the pod has a deletionTimestamp.
 */
export interface ServicePortSpec {
  readonly name?: string;
  readonly port: number;
  /** A number, or the name of a container port; default: `port`. */
  readonly targetPort?: number | string;
  readonly protocol?: 'TCP' | 'UDP' | 'SCTP';
}

export interface ServiceSpec {
  /** An address, or 'None' for a headless Service. */
  readonly clusterIP: string;
  readonly clusterIPs?: readonly string[];
  readonly ports: readonly ServicePortSpec[];
}

/** A Service as the API server returns it after defaulting. */
export function serviceObject(namespace: string, name: string, spec: ServiceSpec): Record<string, unknown> {
  const clusterIPs = spec.clusterIPs ?? [spec.clusterIP];
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: {
      type: 'ClusterIP',
      selector: { app: name },
      clusterIP: spec.clusterIP,
      clusterIPs,
      ipFamilies: spec.clusterIP === 'None' ? ['IPv4'] : clusterIPs.map((ip) => (ip.includes(':') ? 'IPv6' : 'IPv4')),
      ipFamilyPolicy: clusterIPs.length > 1 ? 'PreferDualStack' : 'SingleStack',
      sessionAffinity: 'None',
      ports: spec.ports.map((p) => ({
        ...(p.name !== undefined && { name: p.name }),
        protocol: p.protocol ?? 'TCP',
        port: p.port,
        targetPort: p.targetPort ?? p.port,
      })),
    },
  };
}

export interface PodSpec {
  readonly name: string;
  readonly ip: string;
  /** Named container ports: `{http: 8080}`. */
  readonly ports?: Readonly<Record<string, number>>;
  /** Default true. */
  readonly ready?: boolean;
  /** The pod is being deleted (has a deletionTimestamp). */
  readonly terminating?: boolean;
}

export interface SliceEndpointSpec {
  readonly addresses: readonly string[];
  readonly conditions?: { readonly ready?: boolean; readonly serving?: boolean; readonly terminating?: boolean };
  readonly targetRef?: Record<string, unknown>;
  readonly nodeName?: string;
}

export interface SliceSpec {
  readonly addressType?: 'IPv4' | 'IPv6' | 'FQDN';
  readonly ports: readonly { readonly name?: string; readonly port: number; readonly protocol?: string }[];
  readonly endpoints: readonly SliceEndpointSpec[];
}

/** An EndpointSlice of `service` (a hand-written one, as for a Service without selector). */
export function endpointSliceObject(namespace: string, name: string, service: string, spec: SliceSpec): Record<string, unknown> {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name,
      namespace,
      labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
    },
    addressType: spec.addressType ?? 'IPv4',
    ports: spec.ports.map((p) => ({ name: p.name ?? '', port: p.port, protocol: p.protocol ?? 'TCP' })),
    endpoints: spec.endpoints.map((e) => ({ addresses: [...e.addresses], conditions: { ...e.conditions }, ...(e.targetRef && { targetRef: e.targetRef }), ...(e.nodeName && { nodeName: e.nodeName }) })),
  };
}

/**
 * The slices the EndpointSlice controller would write for `service` (as serviceObject built
 * it) and these pods, named `<service>-<n>` in the order their port sets first appear.
 */
export function slicesFor(service: Record<string, unknown>, pods: readonly PodSpec[]): Record<string, unknown>[] {
  const meta = service.metadata as { name: string; namespace: string };
  const ports = (service.spec as { ports: { name?: string; port: number; targetPort: number | string; protocol: string }[] }).ports;
  const groups = new Map<string, { ports: { name: string; port: number; protocol: string }[]; pods: PodSpec[] }>();
  for (const pod of pods) {
    const resolved: { name: string; port: number; protocol: string }[] = [];
    for (const p of ports) {
      const port = typeof p.targetPort === 'number' ? p.targetPort : pod.ports?.[p.targetPort];
      if (port === undefined) continue;
      resolved.push({ name: p.name ?? '', port, protocol: p.protocol });
    }
    const id = JSON.stringify(resolved);
    let group = groups.get(id);
    if (group === undefined) groups.set(id, (group = { ports: resolved, pods: [] }));
    group.pods.push(pod);
  }
  return [...groups.values()].map((g, i) =>
    endpointSliceObject(meta.namespace, `${meta.name}-${i}`, meta.name, {
      addressType: g.pods[0]!.ip.includes(':') ? 'IPv6' : 'IPv4',
      ports: g.ports,
      endpoints: g.pods.map((pod) => {
        const ready = pod.ready ?? true;
        const terminating = pod.terminating ?? false;
        return {
          addresses: [pod.ip],
          conditions: { ready: ready && !terminating, serving: ready, terminating },
          targetRef: { kind: 'Pod', namespace: meta.namespace, name: pod.name },
        };
      }),
    }),
  );
}
