/**
 * The sidecar: every listener of DESIGN.md's `noisemesh proxy`, sharing one identity, one
 * registry view, one session table and one set of metrics. Inbound and outbound stay separate
 * stacks over the shared session layer, as in linkerd2-proxy.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { parseProtocolName, type CryptoBackend, type Protocol } from '../noise/index.js';
import { PROTOCOL, prologue as makePrologue } from './protocol/index.js';
import { MeshResponder, type InboundPolicy } from './inbound/mesh-responder.js';
import { handleInboundCaptured, type InboundMode } from './inbound/inbound-capture.js';
import { PodAddresses } from './inbound/arrival-address.js';
import type { BuiltInServices } from './inbound/built-in-services.js';
import { MeshInitiator } from './outbound/mesh-initiator.js';
import {
  PeerBalancer,
  handleCaptured,
  handleExplicit,
  type ExplicitRoute,
  type OriginalDestinationOf,
  type OutboundMode,
} from './outbound/outbound-listeners.js';
import { ServiceBalancer } from './outbound/service-balancer.js';
import { SessionTable } from './session/session-table.js';
import type { TimestampClock } from './session/timestamp-clock.js';
import { ProxyMetrics } from './telemetry/metrics.js';
import { createAdminServer } from './telemetry/admin-server.js';
import { MeshSocketLiveness, type KeepaliveSettings } from './transport/index.js';
import type { ConnectionCaps } from './runtime/descriptor-budget.js';
import type { Logger } from './telemetry/logger.js';
import type { Identity, PeerDirectory } from './peers.js';

export interface ListenAddress {
  readonly host: string;
  /** 0 picks a free port (tests); `ports()` tells which. */
  readonly port: number;
}

export interface ProxyOptions {
  readonly trustDomain: string;
  readonly protocolName?: string;
  readonly backend: CryptoBackend;
  /** Required by, and only by, `Noise_IKpsk2_...` suites. */
  readonly psk?: Uint8Array;
  readonly identity: Identity;
  readonly directory: PeerDirectory;
  readonly log: Logger;
  readonly outbound: {
    readonly mode: OutboundMode;
    readonly capture?: ListenAddress;
    /** Listeners that need no iptables: `listen` carries to `peer`'s target `port`. */
    readonly explicit: readonly (ExplicitRoute & { readonly listen: ListenAddress })[];
  };
  readonly inbound: {
    readonly mesh: ListenAddress;
    /** Absent: the pod address each mesh connection arrived on (PROTOCOL.md 4.2). */
    readonly targetHost?: string;
    readonly capture?: ListenAddress & { readonly mode: InboundMode };
    /** Instead of TCP targets, for sessions and captured plaintext: services run in-process (the gateway). */
    readonly services?: BuiltInServices;
  };
  readonly admin?: ListenAddress;
  /** Required when either capture listener is configured. */
  readonly originalDestinationOf?: OriginalDestinationOf;
  readonly policy?: InboundPolicy;
  readonly handshakeTimeoutMs?: number;
  /** The source of P1 timestamps; tests inject one to step the initiator's wall clock. */
  readonly timestampClock?: TimestampClock;
  /** Dead-peer detection on mesh sockets; DEFAULT_KEEPALIVE when absent. */
  readonly keepalive?: KeepaliveSettings;
  /** From the descriptor limit (`descriptorBudget`); absent: LIMITS' ceilings, admin unbounded. */
  readonly caps?: ConnectionCaps;
}

export interface BoundPorts {
  readonly mesh: number;
  readonly outboundCapture: number | null;
  readonly inboundCapture: number | null;
  readonly admin: number | null;
  readonly explicit: readonly number[];
}

/** One condition of /readyz beside the registry and the listeners. */
export interface ReadinessCondition {
  readonly ready: boolean;
  /** Why not, when not ready. */
  readonly reason?: string;
  /** More for the /readyz body under the condition's name; never decides readiness. */
  readonly details?: () => Record<string, unknown>;
}

const ignore = (): void => {};

export class Proxy {
  readonly sessions = new SessionTable();
  readonly metrics = new ProxyMetrics(this.sessions);
  /** Power of two choices over Service endpoints, by open sessions per peer. */
  readonly serviceBalancer = new ServiceBalancer(this.sessions);
  readonly protocol: Protocol;
  /** Keepalive and user timeout of every mesh socket; says what is lost without its addon. */
  readonly liveness: MeshSocketLiveness;
  private readonly responder: MeshResponder;
  private readonly initiator: MeshInitiator;
  private readonly servers: Server[] = [];
  private adminServer: HttpServer | null = null;
  private bound: BoundPorts | null = null;
  private registryReady = false;
  private registryNotReadyReason: string | undefined;
  private registryDetails: (() => Record<string, unknown>) | undefined;
  private draining = false;
  /** Readiness conditions other parts of the sidecar add (the secrets projection), by name. */
  private readonly conditions = new Map<string, ReadinessCondition>();
  /** Spreads the proxy's own sessions (openSession) over a peer's pods. */
  private readonly ownBalancer = new PeerBalancer();
  private readonly sockets = new Set<Socket>();
  /** Mesh, capture, explicit and admin ports: never a session target (status 4). */
  private readonly ownPorts = new Set<number>();

  constructor(private readonly o: ProxyOptions) {
    this.protocol = parseProtocolName(o.protocolName ?? PROTOCOL.protocolName);
    this.liveness = new MeshSocketLiveness(o.keepalive);
    if ((o.outbound.capture || o.inbound.capture) && o.originalDestinationOf === undefined) {
      throw new Error('capture listeners need an original-destination lookup');
    }
    const shared = {
      identity: o.identity,
      directory: o.directory,
      protocol: this.protocol,
      prologue: makePrologue(o.trustDomain),
      backend: o.backend,
      ...(o.psk && { psk: o.psk }),
      sessions: this.sessions,
      metrics: this.metrics,
      log: o.log,
      liveness: this.liveness,
      ...(o.handshakeTimeoutMs !== undefined && { handshakeTimeoutMs: o.handshakeTimeoutMs }),
    };
    const caps = o.caps && {
      maxSessions: o.caps.sessions,
      pending: { total: o.caps.pendingHandshakes, perSource: o.caps.pendingHandshakesPerSource },
    };
    this.initiator = new MeshInitiator({
      ...shared,
      ...(o.timestampClock && { clock: o.timestampClock }),
      ...(caps && { maxSessions: caps.maxSessions }),
    });
    this.responder = new MeshResponder({
      ...shared,
      ...(o.inbound.targetHost !== undefined && { targetHost: o.inbound.targetHost }),
      ...(o.inbound.services !== undefined && { services: o.inbound.services }),
      ownPorts: this.ownPorts,
      ...(o.policy && { policy: o.policy }),
      ...caps,
    });
  }

  /** Binds every listener; rejects (and closes what it opened) if any cannot bind. */
  async start(): Promise<BoundPorts> {
    const { o } = this;
    try {
      const ownPorts = this.ownPorts;
      const ctx = { directory: o.directory, initiator: this.initiator, metrics: this.metrics, log: o.log };
      let outboundCapture: number | null = null;
      if (o.outbound.capture) {
        const lookup = o.originalDestinationOf!;
        outboundCapture = await this.listen(o.outbound.capture, (s) =>
          handleCaptured(s, lookup, o.outbound.mode, ctx.directory, ctx.initiator, ctx.metrics, ctx.log, this.serviceBalancer),
        );
        ownPorts.add(outboundCapture);
      }
      let inboundCapture: number | null = null;
      if (o.inbound.capture) {
        const { mode } = o.inbound.capture;
        const lookup = o.originalDestinationOf!;
        const podAddresses = new PodAddresses();
        inboundCapture = await this.listen(o.inbound.capture, (s) =>
          handleInboundCaptured(s, lookup, mode, podAddresses, ownPorts, this.metrics, o.log, o.inbound.services),
        );
        ownPorts.add(inboundCapture);
      }
      const balancer = new PeerBalancer();
      const explicit: number[] = [];
      for (const route of o.outbound.explicit) {
        explicit.push(await this.listen(route.listen, (s) => handleExplicit(s, route, ctx.directory, ctx.initiator, balancer, ctx.metrics, ctx.log)));
      }
      let admin: number | null = null;
      if (o.admin) {
        admin = await this.listenAdmin(o.admin);
        ownPorts.add(admin);
      }
      for (const port of explicit) ownPorts.add(port);
      // Last, so that every port of ours is known before the first message 1 is judged.
      const mesh = await this.listenMesh(o.inbound.mesh);
      this.bound = { mesh, outboundCapture, inboundCapture, admin, explicit };
      o.log.info({ event: 'listening', ...this.bound, agentId: o.identity.agentId }, 'proxy listening');
      return this.bound;
    } catch (err) {
      await this.closeListeners(true);
      throw err;
    }
  }

  ports(): BoundPorts {
    if (this.bound === null) throw new Error('proxy not started');
    return this.bound;
  }

  /**
   * The registry has delivered its first good snapshot (readiness). `reason`: why not, for
   * /readyz (no key or secret value: it is served to anyone who reaches the admin port).
   */
  setRegistryReady(ready: boolean, reason?: string): void {
    this.registryReady = ready;
    this.registryNotReadyReason = ready ? undefined : reason;
  }

  /** What /readyz adds about the registry (its source, how stale); not a readiness condition. */
  setRegistryDetails(details: (() => Record<string, unknown>) | undefined): void {
    this.registryDetails = details;
  }

  /**
   * Adds or updates a readiness condition of /readyz (`name` is its key in `checks`); the
   * proxy is ready only when every condition is. `reason` (when not ready) and `details`
   * are served to anyone who reaches the admin port: no key or secret value.
   */
  setReadinessCondition(name: string, condition: ReadinessCondition): void {
    this.conditions.set(name, condition);
  }

  /**
   * The proxy as a client of the mesh: carries `app` (an in-process stream) to `agentId`'s
   * target `port`, as an explicit listener carries a TCP connection. Resolves to `accepted`
   * once the session runs, else why not (`no-peer`, `connect-failed`, a P2 status name);
   * `app` is then destroyed.
   */
  openSession(app: Duplex, agentId: string, port: number): Promise<string> {
    const peer = this.ownBalancer.pick(this.o.directory.peersByAgentId(agentId));
    if (peer === undefined) {
      this.metrics.handshakes.inc({ role: 'initiator', result: 'no-peer' });
      app.destroy();
      return Promise.resolve('no-peer');
    }
    return this.initiator.open(app, { peer, host: peer.addresses[0]!, meshPort: peer.meshPort ?? PROTOCOL.defaultMeshPort, targetPort: port });
  }

  /**
   * A key is no longer valid (removed, revoked, re-keyed or a new generation): abort its
   * sessions. `since` is when the registry change was seen.
   *
   * The key's accepted P1 timestamps stay in the replay window until they age out of it: the
   * registry may restore the same key at the same generation a moment later, and a message 1
   * recorded before the revocation must still be a replay then (PROTOCOL.md 4.3: a timestamp
   * once accepted is refused for as long as it is within the window).
   */
  revokeKey(publicKeyB64: string, since: bigint = process.hrtime.bigint()): number {
    // One metric update per direction for all of them, and no line per session: the caller
    // logs the revocation once, with the count (a line each would cost 10,000 sessions ~0.2 s).
    const ended = this.sessions.abortKeyTogether(publicKeyB64, 'revoked');
    let aborted = 0;
    for (const direction of ['inbound', 'outbound'] as const) {
      const d = ended[direction];
      if (d.sessions === 0) continue;
      aborted += d.sessions;
      this.metrics.sessionEnded(direction, { result: 'aborted', reason: 'revoked', bytesFromApp: d.bytesFromApp, bytesToApp: d.bytesToApp }, d.sessions);
    }
    this.metrics.revocations.inc();
    if (aborted > 0) this.metrics.revocationAbortSeconds.observe(Number(process.hrtime.bigint() - since) / 1e9);
    return aborted;
  }

  /**
   * SIGTERM: stop accepting, let open sessions finish for up to `deadlineMs`, then abort
   * the rest. Resolves when everything is closed.
   */
  async shutdown(deadlineMs: number): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    // The admin server stays up while draining, so /readyz can say we are going.
    const closing = this.closeListeners(false);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => (timer = setTimeout(() => resolve('deadline'), deadlineMs)));
    const outcome = await Promise.race([this.sessions.whenEmpty().then(() => 'drained' as const), deadline]);
    clearTimeout(timer);
    const aborted = outcome === 'deadline' ? this.sessions.abortAll('shutdown') : 0;
    // Connections still in their handshake belong to no session yet.
    for (const socket of this.sockets) socket.destroy();
    this.o.log.info({ event: 'shutdown', outcome, aborted }, 'proxy stopped');
    await closing;
    await this.closeListeners(true);
  }

  /** Reserves the mesh port in `ownPorts` before it can accept anything. */
  private async listenMesh(address: ListenAddress): Promise<number> {
    if (address.port !== 0) this.ownPorts.add(address.port);
    const port = await this.listen(address, (s) => void this.responder.accept(s));
    this.ownPorts.add(port);
    return port;
  }

  private listen(address: ListenAddress, onConnection: (socket: Socket) => void): Promise<number> {
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => {
      // Every accepted socket has an error listener from its first moment to its last: a
      // reset from a peer must end that connection, never the process. Handlers add their own.
      socket.on('error', ignore);
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      onConnection(socket);
    });
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: address.host, port: address.port, backlog: 1024 }, () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    });
  }

  private listenAdmin(address: ListenAddress): Promise<number> {
    const server = createAdminServer({
      metrics: this.metrics,
      sessions: () => this.sessions.summaries(),
      readiness: () => ({
        registry: this.registryReady,
        listeners: this.bound !== null && !this.draining,
        ...Object.fromEntries([...this.conditions].map(([name, c]) => [name, c.ready])),
      }),
      reasons: () => ({
        registry: this.registryNotReadyReason ?? 'no registry snapshot loaded yet',
        listeners: this.draining ? 'draining: the proxy is shutting down' : 'listeners not bound yet',
        ...Object.fromEntries([...this.conditions].map(([name, c]) => [name, c.reason ?? 'not ready'])),
      }),
      readinessDetails: () => ({
        ...(this.registryDetails === undefined ? {} : { registry: this.registryDetails() }),
        ...Object.fromEntries([...this.conditions].flatMap(([name, c]) => (c.details === undefined ? [] : [[name, c.details()]]))),
      }),
    });
    this.adminServer = server;
    // Its share of the descriptor budget: connections beyond it are closed on accept.
    if (this.o.caps) server.maxConnections = this.o.caps.adminConnections;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: address.host, port: address.port }, () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    });
  }

  private async closeListeners(includeAdmin: boolean): Promise<void> {
    const closes = this.servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    if (includeAdmin && this.adminServer) {
      const admin = this.adminServer;
      this.adminServer = null;
      closes.push(new Promise<void>((resolve) => admin.close(() => resolve())));
      admin.closeAllConnections();
    }
    await Promise.all(closes);
  }
}
