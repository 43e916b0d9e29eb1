/**
 * An in-process secrets gateway on loopback, built as `noisemesh gateway` builds one: a real
 * Proxy whose responder serves the real SecretsGateway (BuiltInServices), the real registry
 * file source (so revocations come from rewriting the file), the file backend (or another
 * one, built by the same createBackend, with its cache) and a file audit sink; and a real client Proxy per caller identity, each with explicit listeners to the
 * gateway's port and to another port. Used by the gateway tests (test/gateway-*.test.ts, test/secrets-*.test.ts) and test/bench-load.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { nativeBackend } from '../../src/noise/index.js';
import { Proxy, type Identity, type Logger } from '../../src/proxy/index.js';
import { openRegistry, type OpenRegistry } from '../../src/cli/registry-wiring.js';
import {
  SecretsGateway,
  createBackend,
  openAuditFile,
  type AuditSink,
  type BackendConfig,
  type BackendDependencies,
  type CacheConfig,
  type HttpLimits,
  type SecretsBackend,
} from '../../src/secrets/index.js';
import type { Clock } from '../../src/kubernetes/index.js';
import { parsePolicy } from '../../src/trust-vector/index.js';
import { TestDirectory, TRUST_DOMAIN, makeIdentity, peerOf } from './mesh.js';

export const GATEWAY_AGENT = 'noisemesh-system/gateway';
export const GATEWAY_PORT = 8200;
/** A port the gateway serves nothing on: status 4. */
export const OTHER_PORT = 9999;

/** What a caller's registry entry says (the rest is fixed: generation 1, 127.0.0.1). */
export interface CallerSpec {
  readonly agentId: string;
  readonly clearance?: string;
  readonly authnStrength?: string;
  /** Seconds before now. */
  readonly attestedAgo?: number;
  readonly delegationDepth?: number;
  readonly devicePosture?: number;
  readonly agentType?: string;
}

export interface GatewayCaller {
  readonly spec: CallerSpec;
  readonly identity: Identity;
  readonly proxy: Proxy;
  /** The client proxy's listener to the gateway port. */
  readonly entryPort: number;
  /** Its listener to OTHER_PORT on the gateway. */
  readonly otherPort: number;
}

export interface GatewayFixture {
  readonly dir: string;
  readonly registryFile: string;
  readonly auditFile: string;
  readonly gatewayId: Identity;
  readonly gatewayProxy: Proxy;
  readonly gateway: SecretsGateway;
  readonly registry: OpenRegistry;
  readonly backend: SecretsBackend;
  readonly audit: AuditSink;
  readonly callers: ReadonlyMap<string, GatewayCaller>;
  /** Inbound capture's port on the gateway (plaintext; the original destination is faked as the gateway port). */
  readonly capturePort: number;
  readonly loopbackPort: number;
  readonly adminPort: number;
  /** Every log line the gateway and its proxy wrote. */
  readonly logLines: string[];
  /** Rewrites the registry (atomically) with `revoked` set on these agentIds. */
  writeRegistry(revoked?: readonly string[]): void;
  close(): Promise<void>;
}

export const GOOD: Omit<CallerSpec, 'agentId'> = {
  clearance: 'secrets-only',
  authnStrength: 'high',
  attestedAgo: 60,
  delegationDepth: 0,
  devicePosture: 0.9,
  agentType: 'service',
};

export interface GatewayFixtureOptions {
  readonly callers: readonly CallerSpec[];
  readonly policy: string;
  /** The file backend's content; ignored when `backend` is given. */
  readonly secrets?: string;
  /** Another backend than the file of `secrets`. */
  readonly backend?: BackendConfig;
  /** What createBackend gets beside the log (retry and timeouts a test shortens). */
  readonly backendDeps?: Omit<BackendDependencies, 'log'>;
  /** The cache in front of the backend; default none. */
  readonly cache?: CacheConfig | null;
  readonly cacheClock?: Clock;
  readonly http?: Partial<HttpLimits>;
  /** Default: a file in the fixture's directory. */
  readonly auditFile?: string;
  /** An audit sink to use instead of opening `auditFile` (a descriptor on /dev/full, say). */
  readonly auditSink?: AuditSink;
  /** Log level of the captured logs; default `info`. */
  readonly logLevel?: string;
}

function entryOf(spec: CallerSpec, identity: Identity, index: number, now: number, revoked: boolean): Record<string, unknown> {
  const s = { ...GOOD, ...spec };
  return {
    agentId: spec.agentId,
    installationId: `11111111-2222-4333-8444-${String(index).padStart(12, '0')}`,
    publicKey: identity.publicKeyB64,
    generation: 1,
    clearance: s.clearance,
    addresses: ['127.0.0.1'],
    agentType: s.agentType,
    delegationDepth: s.delegationDepth,
    revoked,
    attestation: { authnStrength: s.authnStrength, attestedAt: new Date(now - s.attestedAgo! * 1000).toISOString(), devicePosture: s.devicePosture },
  };
}

export async function startGatewayFixture(o: GatewayFixtureOptions): Promise<GatewayFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-gateway-'));
  const registryFile = join(dir, 'registry.yaml');
  const secretsFile = join(dir, 'secrets.yaml');
  const auditFile = o.auditFile ?? join(dir, 'audit.log');
  // Opened first: a path it refuses throws before anything runs that would keep the test alive.
  const audit = o.auditSink ?? openAuditFile(auditFile);
  writeFileSync(secretsFile, o.secrets ?? '');
  const gatewayId = makeIdentity(GATEWAY_AGENT);
  const ids = new Map(o.callers.map((c) => [c.agentId, makeIdentity(c.agentId)]));
  const now = Date.now();
  const writeRegistry = (revoked: readonly string[] = []): void => {
    const byNamespace = new Map<string, Record<string, unknown>[]>();
    const add = (spec: CallerSpec, id: Identity, i: number): void => {
      const ns = spec.agentId.split('/')[0]!;
      if (!byNamespace.has(ns)) byNamespace.set(ns, []);
      byNamespace.get(ns)!.push(entryOf(spec, id, i, now, revoked.includes(spec.agentId)));
    };
    add({ agentId: GATEWAY_AGENT }, gatewayId, 0);
    o.callers.forEach((c, i) => add(c, ids.get(c.agentId)!, i + 1));
    const text = [...byNamespace].map(([ns, peers]) => stringify({ apiVersion: 'noisemesh.io/v1alpha1', kind: 'ClearanceRegistry', metadata: { name: 'peers', namespace: ns }, spec: { peers } })).join('---\n');
    writeFileSync(`${registryFile}.tmp`, text);
    renameSync(`${registryFile}.tmp`, registryFile);
  };
  writeRegistry();

  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      logLines.push(chunk.toString());
      cb();
    },
  });
  const log: Logger = pino({ level: o.logLevel ?? 'info' }, sink);
  const registry = await openRegistry({ file: registryFile }, log);
  let gateway: SecretsGateway | undefined;
  const gatewayProxy = new Proxy({
    trustDomain: TRUST_DOMAIN,
    backend: nativeBackend,
    identity: gatewayId,
    directory: registry.directory,
    log,
    outbound: { mode: 'permissive', explicit: [] },
    inbound: {
      mesh: { host: '127.0.0.1', port: 0 },
      capture: { host: '127.0.0.1', port: 0, mode: 'permissive' },
      services: {
        openMeshStream: (port, peer) => gateway!.openMeshStream(port, peer.publicKeyB64),
        takePlaintext: (port, socket) => gateway!.takePlaintext(port, socket),
      },
    },
    // What SO_ORIGINAL_DST would say of plaintext iptables redirected from the gateway port.
    originalDestinationOf: () => ({ address: '127.0.0.1', port: GATEWAY_PORT }),
    admin: { host: '127.0.0.1', port: 0 },
  });
  registry.attach(gatewayProxy);
  const backend = await createBackend(o.backend ?? { kind: 'file', file: secretsFile }, { filePollMs: 100, ...o.backendDeps, log });
  gateway = new SecretsGateway({
    port: GATEWAY_PORT,
    policy: parsePolicy(o.policy, 'policy.yaml'),
    backend,
    cache: o.cache ?? null,
    ...(o.cacheClock !== undefined && { cacheClock: o.cacheClock }),
    audit,
    entryByKey: (key) => registry.registry.index.byPublicKey(key),
    ownPublicKeyB64: gatewayId.publicKeyB64,
    metrics: gatewayProxy.metrics.registry,
    log,
    ...(o.http && { http: o.http }),
  });
  const ports = await gatewayProxy.start();
  const loopbackPort = await gateway.listenLoopback(0);

  const view = new TestDirectory();
  view.set(peerOf(gatewayId, ports.mesh));
  const callers = new Map<string, GatewayCaller>();
  for (const spec of o.callers) {
    const identity = ids.get(spec.agentId)!;
    const proxy = new Proxy({
      trustDomain: TRUST_DOMAIN,
      backend: nativeBackend,
      identity,
      directory: view,
      log: pino({ level: 'silent' }),
      outbound: {
        mode: 'permissive',
        explicit: [
          { listen: { host: '127.0.0.1', port: 0 }, peer: GATEWAY_AGENT, port: GATEWAY_PORT },
          { listen: { host: '127.0.0.1', port: 0 }, peer: GATEWAY_AGENT, port: OTHER_PORT },
        ],
      },
      inbound: { mesh: { host: '127.0.0.1', port: 0 } },
    });
    const p = await proxy.start();
    view.set(peerOf(identity, p.mesh));
    callers.set(spec.agentId, { spec, identity, proxy, entryPort: p.explicit[0]!, otherPort: p.explicit[1]! });
  }
  return {
    dir,
    registryFile,
    auditFile,
    gatewayId,
    gatewayProxy,
    gateway,
    registry,
    backend,
    audit,
    callers,
    capturePort: ports.inboundCapture!,
    loopbackPort,
    adminPort: ports.admin!,
    logLines,
    writeRegistry,
    async close() {
      await Promise.all([...callers.values()].map((c) => c.proxy.shutdown(0)));
      await gatewayProxy.shutdown(0);
      await gateway!.close();
      await registry.stop();
      await backend.close();
      audit.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
