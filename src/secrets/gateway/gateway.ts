/**
 * The secrets API (DESIGN.md, Secret fetch): an HTTP/1.1 server that never listens on the
 * network itself. Its connections are handed to it:
 *
 * - by the proxy's responder, one per mesh session to the gateway port: the session's
 *   decrypted stream (a stream pair, stream-pair.ts), the caller being the initiator whose
 *   static key the handshake verified: `encrypted`;
 * - by inbound capture, plaintext to the gateway port: an anonymous caller, `plaintext`;
 * - by the optional loopback listener on 127.0.0.1: the gateway's own pod, `loopback`, with
 *   the gateway's own registry entry.
 *
 * The caller's registry entry is looked up by its key for every request, not once per
 * connection: a revocation refuses the very next request on a keep-alive connection even
 * before the proxy's abort of the session lands. Nothing about a decision is cached.
 *
 * API (docs/gateway.md):
 * - `GET /v1/secrets/{path}`: 200 `{path, data, version}`; 403 `{error, decisionId, ruleId,
 *   reasons, trustVector}`; 404 `{error, decisionId}`; 503 `{error, reason, decisionId}` when
 *   the backend cannot answer (`backend_unavailable`: down, sealed, overloaded, and no cached
 *   value within its staleness bound; `backend_denied`: the backend refused the gateway's own
 *   credentials, an operator's error, logged) or the audit sink fails (`audit_unavailable`);
 *   nothing is released with a 503;
 * - `GET /v1/whoami`: the caller's agentId, registry entry (its key only as a fingerprint)
 *   and TrustVector;
 * - 400 for a body, a query, percent-encoding or a path that is no secret path (`..`, empty
 *   segments), 405 for any method but GET, 414 for a URL over MAX_URL_LENGTH, 431 for
 *   headers over maxHeaderSize or more than maxHeadersCount of them, 408 for a sender slower than headersTimeout/requestTimeout.
 *   A request with a body is answered without reading the body and the connection closed.
 *   CONNECT is 405 too (then closed); an HTTP/1.1 request without Host 400; every refusal,
 *   node:http's parser's included, carries `{error}`.
 *   More than maxPipelined requests unanswered on one connection reset it, and none of the
 *   requests parsed with the one past the cap is decided.
 * - The bytes of answers a connection, and all of them, may hold untaken are bounded
 *   (answer-budget.ts): a request waits, undecided, for its caller to read; a caller that
 *   takes nothing for stalledAnswerMs is reset.
 *
 * Every decision is one audit line (audit.ts), written before the answer; an answer whose
 * connection closes before the transport took it gets a second line, `delivered: false`
 * (settle()). When the line cannot be
 * written the answer is 503 and nothing is released. The lines of the requests decided in one
 * event-loop turn are written together, in one write(2), at the end of the turn
 * (audit-commit.ts), and only then answered.
 *
 * The backend is read through a SecretsCache when `cache` is given (cache.ts: TTL, stale
 * values while the backend is unavailable, single flight, a concurrency limit); the audit
 * line records how each read was answered (`backendOutcome`). Backend failures are counted
 * once per backend read and logged at most once per LOG_EVERY_MS per failure kind, with the
 * number left unlogged meanwhile: an outage under load does not flood the log.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { STATUS_CODES, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Registry as MetricsRegistry } from 'prom-client';
import type { RegistryEntry } from '../../registry-sync/index.js';
import {
  PLAINTEXT_VECTOR,
  checkSecretPath,
  computeTrustVector,
  decide,
  type Decision,
  type NetworkExposure,
  type Policy,
  type Reason,
} from '../../trust-vector/index.js';
import { SecretsBackendError, type BackendFailure, type SecretValue, type SecretsBackend } from '../backend.js';
import { VaultBackend } from '../backends/vault.js';
import { SecretsCache, type CacheOutcome } from '../cache.js';
import type { CacheConfig } from '../config.js';
import type { Clock } from '../../kubernetes/index.js';
import type { AuditSink, AuditWriteError } from '../audit.js';
import { AuditGroupCommit } from '../audit-commit.js';
import type { SecretsLog } from '../log.js';
import { GatewayMetrics, type DecisionLabel } from './metrics.js';
import { PAIR_LINGER_MS, PairEnd, streamPair } from './stream-pair.js';
import { AnswerBudget, ConnectionAnswers, type Ticket } from './answer-budget.js';

/** The target port the secrets API answers on unless configured otherwise. */
export const DEFAULT_GATEWAY_PORT = 8200;

const SECRETS_PREFIX = '/v1/secrets/';
const WHOAMI = '/v1/whoami';
/** The prefix and the longest secret path (trust-vector's MAX_SECRET_PATH_LENGTH, 512). */
export const MAX_URL_LENGTH = SECRETS_PREFIX.length + 512;

/** node:http's limits and timeouts for the API's connections. */
export interface HttpLimits {
  /** The whole head (request line and headers) must arrive within this (408 otherwise). */
  readonly headersTimeoutMs: number;
  /** The whole request must arrive within this. */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  readonly keepAliveTimeoutMs: number;
  /** How often node:http checks the two timeouts above: their granularity. */
  readonly checkIntervalMs: number;
  /** Bytes of request line and headers (431 beyond). */
  readonly maxHeaderSize: number;
  readonly maxHeadersCount: number;
  /** A session whose server end has closed, but whose caller keeps its side open, ends after this. */
  readonly lingerMs: number;
  /**
   * Plaintext connections (inbound capture) held at once; past it the oldest is closed for
   * the newcomer. They come from anyone and fall under none of the proxy's caps.
   */
  readonly maxPlaintextConnections: number;
  /**
   * Requests on one connection that may be unanswered at once (pipelined ahead of their
   * answers); one more resets the connection. node:http parses every request of a chunk it
   * reads (a transport message, up to 64 KiB: some 1,300 requests) and each decided request
   * holds its answer until the caller reads it: without this, 64 KiB from a caller that never
   * reads held megabytes.
   */
  readonly maxPipelined: number;
  /**
   * Loopback connections (`gateway.loopback`) held at once; past it the oldest is closed for
   * the newcomer, as for plaintext ones. Open to every process of the pod, before any request.
   */
  readonly maxLoopbackConnections: number;
  /**
   * Bytes of answers one connection may hold (built and not yet taken by the kernel or the
   * mesh session) before its next request waits, undecided, for the caller to read; one
   * answer, the next to leave, always goes, whatever its size (answer-budget.ts).
   */
  readonly maxHeldBytesPerConnection: number;
  /** Bytes of answers all connections may hold before any request waits. */
  readonly maxHeldBytes: number;
  /**
   * A connection that holds answers over its limit (or while others wait for global room)
   * and whose caller takes none of them for this long is reset.
   */
  readonly stalledAnswerMs: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  keepAliveTimeoutMs: 5_000,
  checkIntervalMs: 1_000,
  maxHeaderSize: 8 * 1024,
  maxHeadersCount: 64,
  lingerMs: PAIR_LINGER_MS,
  maxPlaintextConnections: 128,
  maxPipelined: 64,
  maxLoopbackConnections: 128,
  maxHeldBytesPerConnection: 1024 * 1024,
  maxHeldBytes: 64 * 1024 * 1024,
  stalledAnswerMs: 30_000,
});

/**
 * Descriptors the gateway may hold beside the proxy's own (its share of the descriptor budget,
 * runtime/descriptor-budget.ts): its plaintext connections and, with a loopback listener, that
 * listener and its connections.
 */
export function gatewayDescriptors(limits: Partial<HttpLimits>, loopback: boolean): number {
  const l = { ...DEFAULT_HTTP_LIMITS, ...limits };
  return l.maxPlaintextConnections + (loopback ? 1 + l.maxLoopbackConnections : 0);
}

/** Bytes counted for an answer's status line and headers beside its body. */
const HEAD_BYTES = 256;

/**
 * Why an audited answer was not all taken by the transport, in its `delivered: false` line:
 * the gateway reset the connection for more than maxPipelined requests (`pipelined`) or for a
 * caller that took no answer for stalledAnswerMs (`stalled`); or it closed otherwise (`closed`:
 * the caller, a revocation's abort of its session, the gateway's close).
 */
export type UndeliveredReason = 'pipelined' | 'stalled' | 'closed';

/**
 * How the backend answered a request's read, in its audit line: the cache's outcome
 * (`hit`, `not_found_hit`, `miss`, `stale`), or `uncached` when there is no cache.
 */
export type BackendOutcome = CacheOutcome | 'uncached';

/** A backend failure of one kind is logged at most this often (the rest are counted). */
const LOG_EVERY_MS = 10_000;

export interface GatewayOptions {
  /** The target port the API answers on (`gateway.port`). */
  readonly port: number;
  readonly policy: Policy;
  /** Where secrets are read; closing it is the caller's (after the gateway's close). */
  readonly backend: SecretsBackend;
  /** Fronts the backend with a SecretsCache of these settings; null or absent: none. */
  readonly cache?: CacheConfig | null;
  /** The cache's time; tests pass a fake one. Default the system's. */
  readonly cacheClock?: Clock;
  readonly audit: AuditSink;
  /** The registry entry for a static key, revoked ones included (decide refuses those). */
  readonly entryByKey: (publicKeyB64: string) => RegistryEntry | undefined;
  /** The gateway's own static key: whose entry a loopback caller gets. */
  readonly ownPublicKeyB64: string;
  /** Where the gateway's metrics are registered (the proxy's, served on /metrics). */
  readonly metrics: MetricsRegistry;
  readonly log: SecretsLog;
  readonly http?: Partial<HttpLimits>;
  /** Milliseconds since the epoch; tests fix it. */
  readonly now?: () => number;
}

/** Who is on a connection, as established by whoever handed it over. */
interface Caller {
  readonly exposure: NetworkExposure;
  /** The verified static key; null for a plaintext caller. */
  readonly key: string | null;
  /** First 8 bytes of the key's SHA-256, hex (as `noisemesh registry get` shows keys). */
  readonly fingerprint: string | null;
}

/** An audited answer not yet known taken by the transport. */
interface Audited {
  readonly decisionId: string;
  readonly status: number;
  readonly label: DecisionLabel;
  /** Stream pair: the server end's `accepted` once node:http has handed it all of the answer; -1 before. */
  endOffset: number;
}

/** One connection handed to the API. */
interface Connection {
  readonly socket: Duplex;
  readonly caller: Caller;
  readonly answers: ConnectionAnswers;
  /** Requests handed to handle() and not yet closed (limits.maxPipelined). */
  unanswered: number;
  /** Audited answers the transport may not have taken yet. */
  readonly audited: Map<Ticket, Audited>;
  /** Why the gateway reset it, when it did. */
  resetReason: UndeliveredReason | null;
}

const PLAINTEXT_CALLER: Caller = Object.freeze({ exposure: 'plaintext', key: null, fingerprint: null });
const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' } as const;

export function keyFingerprint(publicKeyB64: string): string {
  return createHash('sha256').update(Buffer.from(publicKeyB64, 'base64')).digest('hex').slice(0, 16);
}

export class SecretsGateway {
  readonly port: number;
  private policy: Policy;
  private readonly server: Server;
  private readonly connections = new WeakMap<object, Connection>();
  private readonly byAnswers = new WeakMap<ConnectionAnswers, Connection>();
  private readonly budget: AnswerBudget;
  private readonly metrics: GatewayMetrics;
  private readonly limits: HttpLimits;
  private readonly now: () => number;
  private readonly loopbackServers: TcpServer[] = [];
  /** Open plaintext connections, oldest first. */
  private readonly plaintext = new Set<Socket>();
  /** Open loopback connections, oldest first. */
  private readonly loopback = new Set<Socket>();
  /** Random bytes for decision ids, drawn ID_POOL_IDS at a time: one system call, not one per request. */
  private readonly idPool = Buffer.alloc(16 * ID_POOL_IDS);
  private idNext = 16 * ID_POOL_IDS;
  private readonly auditCommit: AuditGroupCommit;
  /** The cache in front of o.backend, when configured. */
  private readonly cache: SecretsCache | undefined;
  /** Per failure kind: when it may be logged next, and how many went unlogged since. */
  private readonly failureLog = new Map<BackendFailure, { next: number; unlogged: number }>();
  private closed = false;

  constructor(private readonly o: GatewayOptions) {
    this.port = o.port;
    this.policy = o.policy;
    this.now = o.now ?? Date.now;
    this.auditCommit = new AuditGroupCommit(o.audit);
    const backend = o.backend;
    this.cache =
      o.cache == null
        ? undefined
        : new SecretsCache(backend, { ...o.cache, ...(o.cacheClock !== undefined && { clock: o.cacheClock }), hooks: { backendError: (_f, err) => this.backendFailed(err) } });
    const cache = this.cache;
    const limits = { ...DEFAULT_HTTP_LIMITS, ...o.http };
    this.limits = limits;
    this.budget = new AnswerBudget(
      { maxHeldBytesPerConnection: limits.maxHeldBytesPerConnection, maxHeldBytes: limits.maxHeldBytes, stallMs: limits.stalledAnswerMs },
      (answers) => {
        const conn = this.byAnswers.get(answers);
        if (conn !== undefined) this.reset(conn, 'stalled');
      },
    );
    this.metrics = new GatewayMetrics(o.metrics, {
      ...(cache !== undefined && { cache: () => cache.stats() }),
      ...(backend instanceof VaultBackend && { vault: () => backend.stats() }),
      heldBytes: () => this.budget.held,
    });
    this.server = createServer(
      {
        maxHeaderSize: limits.maxHeaderSize,
        headersTimeout: limits.headersTimeoutMs,
        requestTimeout: limits.requestTimeoutMs,
        keepAliveTimeout: limits.keepAliveTimeoutMs,
        connectionsCheckingInterval: limits.checkIntervalMs,
        noDelay: true,
        // handle() answers a request without Host itself, with an {error} like every refusal
        // (node:http's own answer is a bare 400).
        requireHostHeader: false,
      },
      (req, res) => void this.handle(req, res),
    );
    // node:http's own count limit drops the headers past it silently (a content-length among
    // them would slip by the body check): it counts nothing here, handle() refuses past the
    // limit, and maxHeaderSize bounds the memory either way.
    this.server.maxHeadersCount = 0;
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.parserRefused(err, socket));
    // node:http hands CONNECT to 'connect' (and destroys the connection unanswered when
    // nobody listens): answered 405 like any other method but GET.
    this.server.on('connect', (_req: IncomingMessage, socket: Duplex) => this.refuseConnect(socket));
    // node:http tracks connections, and enforces headersTimeout and requestTimeout on them,
    // from its own 'listening' event (setupConnectionsTracking). This server never listens:
    // its connections are handed over. Without this, a slow sender would hold a connection
    // for ever; the slow-sender test fails if a Node release changes it.
    this.server.emit('listening');
  }

  /** Replaces the policy in force (a reload); requests already decided keep their decision. */
  setPolicy(policy: Policy): void {
    this.policy = policy;
  }

  /**
   * The application end of a mesh session to `targetPort`: the API's connection for the
   * initiator with `publicKeyB64`, or null when `targetPort` is not the gateway port.
   */
  openMeshStream(targetPort: number, publicKeyB64: string): Duplex | null {
    if (targetPort !== this.port || this.closed) return null;
    const [session, server] = streamPair(this.limits.lingerMs);
    this.adopt(server, { exposure: 'encrypted', key: publicKeyB64, fingerprint: keyFingerprint(publicKeyB64) });
    return session;
  }

  /**
   * Takes a plaintext connection (inbound capture) to `port`; false when it is not the gateway
   * port. At most limits.maxPlaintextConnections are held: past it the oldest is closed, as
   * the responder sheds its oldest stranger, so that an anonymous caller can neither exhaust
   * the descriptors the mesh sessions need nor lock out a plaintext caller that speaks.
   */
  takePlaintext(port: number, socket: Socket): boolean {
    if (port !== this.port || this.closed) return false;
    holdShedding(this.plaintext, socket, this.limits.maxPlaintextConnections);
    this.adopt(socket, PLAINTEXT_CALLER);
    socket.resume();
    return true;
  }

  /**
   * A plain HTTP listener on 127.0.0.1 for the gateway's own pod (`gateway.loopback.port`):
   * its callers are `loopback`, with the gateway's own entry. At most
   * limits.maxLoopbackConnections are held, the oldest closed for a newcomer, as plaintext
   * ones: any process of the pod reaches it, and a flood of half-sent requests must not take
   * descriptors beyond the gateway's share (gatewayDescriptors). Resolves to the bound port.
   */
  listenLoopback(port: number, host = '127.0.0.1'): Promise<number> {
    const caller: Caller = { exposure: 'loopback', key: this.o.ownPublicKeyB64, fingerprint: keyFingerprint(this.o.ownPublicKeyB64) };
    const tcp = createTcpServer({ noDelay: true }, (socket) => {
      socket.on('error', () => {});
      if (this.closed) {
        socket.destroy();
        return;
      }
      holdShedding(this.loopback, socket, this.limits.maxLoopbackConnections);
      this.adopt(socket, caller);
    });
    this.loopbackServers.push(tcp);
    return new Promise((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen({ host, port }, () => {
        tcp.off('error', reject);
        resolve((tcp.address() as AddressInfo).port);
      });
    });
  }

  /** Stops taking connections and closes those open, and empties the cache; the backend and sink are the caller's. */
  async close(): Promise<void> {
    this.closed = true;
    // Requests decided this turn are answered before their connections close (and before the
    // caller closes the sink).
    this.auditCommit.flush();
    this.cache?.clear();
    await Promise.all(this.loopbackServers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.server.closeAllConnections();
    this.server.close();
    this.budget.stop();
  }

  /** Serves `socket` for `caller`: its state, and what its close settles. */
  private adopt(socket: Duplex, caller: Caller): void {
    const conn: Connection = { socket, caller, answers: new ConnectionAnswers(), unanswered: 0, audited: new Map(), resetReason: null };
    this.connections.set(socket, conn);
    this.byAnswers.set(conn.answers, conn);
    socket.once('close', () => {
      this.budget.closed(conn.answers);
      // A mesh session may still read what the server end gave it (the linger): the answers'
      // fate is known when the session end closes too.
      if (socket instanceof PairEnd && !socket.other.destroyed) socket.other.once('close', () => this.settle(conn));
      else this.settle(conn);
    });
    this.server.emit('connection', socket);
  }

  /** The connection is closed: each audited answer its caller did not take gets its `delivered: false` line. */
  private settle(conn: Connection): void {
    const reason = conn.resetReason ?? 'closed';
    const taken = conn.socket instanceof PairEnd ? conn.socket.other.taken : -1;
    for (const a of conn.audited.values()) {
      if (a.endOffset >= 0 && a.endOffset <= taken) continue;
      this.undelivered(a, reason);
    }
    conn.audited.clear();
  }

  private undelivered(a: Audited, reason: UndeliveredReason): void {
    this.metrics.undelivered(a.label, reason);
    const line = JSON.stringify({ time: isoNow(), decisionId: a.decisionId, delivered: false, status: a.status, reason });
    this.auditCommit.append(line, (err) => {
      if (err !== null) {
        this.metrics.auditFailures.inc();
        this.o.log.error({ event: 'audit-error', sink: this.o.audit.description, error: err.message }, 'audit line of an undelivered answer not written');
      }
    });
  }

  /** Resets the connection: nothing more it is owed is delivered. */
  private reset(conn: Connection, reason: UndeliveredReason): void {
    if (conn.socket.destroyed) return;
    conn.resetReason = reason;
    this.metrics.connectionReset(reason === 'stalled' ? 'stalled' : 'pipelined');
    if (reason === 'stalled') this.o.log.warn({ event: 'gateway-reset', reason, heldBytes: conn.answers.held, networkExposure: conn.caller.exposure, keyFingerprint: conn.caller.fingerprint }, 'connection reset: its caller took none of its answers');
    if (conn.socket instanceof PairEnd) conn.socket.reset();
    else conn.socket.destroy();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const socket = req.socket;
    const conn = this.connections.get(socket);
    // The rest of a chunk parsed after its connection was reset: nobody to answer.
    if (socket.destroyed || conn === undefined) {
      if (conn === undefined) socket.destroy();
      return;
    }
    if (++conn.unanswered > this.limits.maxPipelined) {
      this.metrics.request('invalid', null, 0);
      this.reset(conn, 'pipelined');
      return;
    }
    res.once('close', () => conn.unanswered--);
    const t = this.budget.ticket(conn.answers);
    // node:http parses every request of a chunk before any of them goes on from here: one past
    // maxPipelined later in the chunk resets the connection, and then none of it is decided
    // (nor audited, nor counted allowed), rather than decided for a caller that gets nothing.
    await undefined;
    if (socket.destroyed) return;
    try {
      const caller = conn.caller;
      if (req.rawHeaders.length > 2 * this.limits.maxHeadersCount) {
        this.refuse(t, res, started, 431, `more than ${this.limits.maxHeadersCount} headers`, true);
        return;
      }
      const url = req.url ?? '';
      const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
      if (req.method !== 'GET') {
        res.setHeader('allow', 'GET');
        this.refuse(t, res, started, 405, 'only GET is served', hasBody);
        return;
      }
      if (hasBody) {
        this.refuse(t, res, started, 400, 'a request with a body is refused: a GET carries none', true);
        return;
      }
      if (req.headers.host === undefined && req.httpVersionMinor === 1) {
        this.refuse(t, res, started, 400, 'an HTTP/1.1 request needs a Host header', false);
        return;
      }
      if (url.length > MAX_URL_LENGTH) {
        this.refuse(t, res, started, 414, `the URL is longer than ${MAX_URL_LENGTH} characters`, false);
        return;
      }
      // A secret path is A-Z a-z 0-9 . _ - and /: nothing in it needs escaping, so any escape
      // (%2e%2e, %2f, double encoding) is refused outright rather than decoded and re-checked.
      if (url.includes('%')) {
        this.refuse(t, res, started, 400, 'percent-encoding is refused: a secret path is A-Z a-z 0-9 . _ - and / as they are', false);
        return;
      }
      if (url.includes('?') || url.includes('#')) {
        this.refuse(t, res, started, 400, 'a query or fragment is refused', false);
        return;
      }
      if (url === WHOAMI) {
        this.whoami(t, caller, res);
        return;
      }
      if (!url.startsWith(SECRETS_PREFIX)) {
        this.refuse(t, res, started, 404, 'not found: GET /v1/secrets/{path} or /v1/whoami', false);
        return;
      }
      const path = url.slice(SECRETS_PREFIX.length);
      const invalid = checkSecretPath(path);
      if (invalid !== undefined) {
        this.refuse(t, res, started, 400, `the secret path ${invalid}`, false);
        return;
      }
      await this.fetch(conn, t, path, res, started);
    } catch (err) {
      this.o.log.error({ event: 'gateway-error', error: (err as Error).message }, 'secrets request failed');
      if (!res.headersSent) this.refuse(t, res, started, 500, 'internal error', true);
      else res.destroy();
    }
  }

  /**
   * Decides, reads and answers a secret request, once its connection has room for the answer
   * (answer-budget.ts): nothing is decided or read while the connection holds more than its
   * limit, and an answer that does not fit waits, unaudited, then is decided again.
   */
  private async fetch(conn: Connection, t: Ticket, path: string, res: ServerResponse, started: number): Promise<void> {
    const caller = conn.caller;
    let waited = false;
    let entry: RegistryEntry | undefined;
    let decision: Decision;
    let decisionId: string;
    let status: number;
    let body = '';
    let bytes: number;
    let backendFailure: BackendFailure | undefined;
    let backendOutcome: BackendOutcome | undefined;
    for (;;) {
      if (!waited) {
        const room = this.budget.reserve(t, 0);
        if (room !== true && !(await room)) return;
      }
      if (conn.socket.destroyed) return;
      entry = caller.key === null ? undefined : this.o.entryByKey(caller.key);
      decision = decide(this.policy, { entry, session: { networkExposure: caller.exposure }, now: this.now(), path });
      decisionId = this.decisionId();
      backendFailure = undefined;
      backendOutcome = undefined;
      let secret: SecretValue | null = null;
      if (!decision.allow) {
        status = 403;
        body = JSON.stringify({ error: 'denied', decisionId, ruleId: decision.ruleId, reasons: decision.reasons, trustVector: decision.trustVector });
      } else {
        try {
          if (this.cache !== undefined) {
            const read = await this.cache.readTraced(path);
            secret = read.value;
            backendOutcome = read.outcome;
          } else {
            backendOutcome = 'uncached';
            secret = await this.o.backend.read(path);
          }
        } catch (err) {
          if (!(err instanceof SecretsBackendError)) throw err;
          backendFailure = err.failure;
          // Through the cache, the backend was asked (and the cache's hook counted the failure).
          if (this.cache !== undefined) backendOutcome = 'miss';
          else this.backendFailed(err);
        }
        // The caller may have been revoked while the backend answered: no value outlives that.
        if (this.revokedSince(caller, entry)) {
          status = 403;
          body = revokedBody(decisionId);
        } else if (backendFailure === 'denied') {
          status = 503;
          body = JSON.stringify({ error: "the secrets backend refused the gateway's own credentials: an operator's error, in the gateway's log", reason: 'backend_denied', decisionId });
        } else if (backendFailure !== undefined) {
          status = 503;
          body = JSON.stringify({ error: 'the secrets backend is unavailable, and no cached value is recent enough to serve', reason: 'backend_unavailable', decisionId });
        } else if (secret === null) {
          status = 404;
          body = JSON.stringify({ error: 'no such secret', decisionId });
        } else {
          status = 200;
        }
      }
      if (status === 200) {
        const built = secretBody(path, secret!);
        body = built.text;
        bytes = built.bytes;
      } else {
        bytes = Buffer.byteLength(body);
      }
      if (waited) {
        // Decided again once there was room: what it holds now is this answer's size.
        this.budget.charge(t, bytes + HEAD_BYTES - t.bytes);
        break;
      }
      const room = this.budget.reserve(t, bytes + HEAD_BYTES);
      if (room === true) break;
      if (!(await room)) return;
      // It waited, perhaps long, for the caller to read: decided again, as the world is now.
      waited = true;
    }
    const seconds = (performance.now() - started) / 1000;
    let label: DecisionLabel = status === 403 || !decision.allow ? 'deny' : 'allow';
    const backendTrace = backendOutcome === undefined ? undefined : { name: this.o.backend.name, outcome: backendOutcome, failure: backendFailure };
    const line = auditLine(decisionId, caller, entry, path, decision, status, backendTrace, seconds);
    // The line waits for the end of the turn, and a revocation may land meanwhile (an I/O
    // callback of the same turn): the last look is taken just before the write, with nothing
    // but the write between it and the answer, so no answer the line calls allowed is
    // released after the revocation was applied.
    const revise = (): string | undefined => {
      if (status === 403 || !this.revokedSince(caller, entry)) return undefined;
      status = 403;
      body = revokedBody(decisionId);
      bytes = Buffer.byteLength(body);
      label = 'deny';
      return auditLine(decisionId, caller, entry, path, decision, status, backendTrace, seconds);
    };
    const err = await new Promise<AuditWriteError | null>((resolve) => this.auditCommit.append(line, resolve, revise));
    if (err !== null) {
      this.metrics.auditFailures.inc();
      this.o.log.error({ event: 'audit-error', sink: this.o.audit.description, error: err.message }, 'audit line not written: answered 503, nothing released');
      label = 'unavailable';
      status = 503;
      body = JSON.stringify({ error: 'the audit log cannot be written: nothing is released until it can', reason: 'audit_unavailable', decisionId });
      bytes = Buffer.byteLength(body);
    }
    this.metrics.request(label, decision.ruleId, (performance.now() - started) / 1000);
    const audited: Audited | undefined = err === null ? { decisionId, status, label, endOffset: -1 } : undefined;
    this.send(conn, t, res, status, { ...JSON_HEADERS, 'content-length': bytes, 'x-noisemesh-decision-id': decisionId }, body, audited);
  }

  /**
   * Writes an answer on its connection and follows it until the transport took it: its bytes
   * stay counted against the connection and the gateway (answer-budget.ts) until then, and an
   * audited answer that never gets there gets a `delivered: false` line when its connection
   * closes (settle()). Taken means: for a socket, node:http's write of its last byte completed
   * (the kernel has it); for a mesh session, the session read it from the stream pair.
   */
  private send(conn: Connection, t: Ticket, res: ServerResponse, status: number, headers: Record<string, string | number>, body: string, audited?: Audited): void {
    if (t.bytes === 0) this.budget.charge(t, Number(headers['content-length']) + HEAD_BYTES);
    const socket = conn.socket;
    if (audited !== undefined) {
      conn.audited.set(t, audited);
      if (socket.destroyed) {
        // Closed while its line was written: its close has been settled already.
        conn.audited.delete(t);
        this.undelivered(audited, conn.resetReason ?? 'closed');
      } else if (socket instanceof PairEnd) {
        res.once('prefinish', () => (audited.endOffset = socket.accepted));
      }
    }
    res.once('finish', () => {
      if (socket.destroyed) return;
      this.budget.taken(t);
      if (audited === undefined) return;
      if (!(socket instanceof PairEnd)) conn.audited.delete(t);
      else this.pruneTaken(conn, socket);
    });
    res.writeHead(status, headers).end(body);
    this.budget.written(t);
  }

  /** Forgets the audited answers a mesh session has read. */
  private pruneTaken(conn: Connection, socket: PairEnd): void {
    const taken = socket.other.taken;
    for (const [ticket, a] of conn.audited) {
      if (a.endOffset >= 0 && a.endOffset <= taken) conn.audited.delete(ticket);
    }
  }

  /** The caller's entry is gone, revoked or replaced since `entry` was decided on (never for a plaintext caller). */
  private revokedSince(caller: Caller, entry: RegistryEntry | undefined): boolean {
    if (caller.key === null) return false;
    const now = this.o.entryByKey(caller.key);
    return now === undefined || now.revoked || now.generation !== entry?.generation;
  }

  private whoami(t: Ticket, caller: Caller, res: ServerResponse): void {
    const entry = caller.key === null ? undefined : this.o.entryByKey(caller.key);
    const vector = caller.exposure === 'plaintext' ? PLAINTEXT_VECTOR : computeTrustVector(entry, { networkExposure: caller.exposure }, this.now());
    if (vector === undefined) {
      this.metrics.whoami('refused');
      this.answerError(t, res, 403, 'the caller is not in the registry, or is revoked', false);
      return;
    }
    const body = {
      agentId: entry?.agentId ?? null,
      networkExposure: caller.exposure,
      keyFingerprint: caller.fingerprint,
      entry: caller.exposure === 'plaintext' || entry === undefined ? null : describeEntry(entry, caller.fingerprint!),
      trustVector: vector,
    };
    this.metrics.whoami('answered');
    const text = JSON.stringify(body);
    this.send(this.byAnswers.get(t.conn)!, t, res, 200, { ...JSON_HEADERS, 'content-length': Buffer.byteLength(text) }, text);
  }

  /** A 4xx/5xx before any decision: counted `invalid`, not audited (no secret was asked for by a valid request). */
  private refuse(t: Ticket, res: ServerResponse, started: number, status: number, error: string, close: boolean): void {
    this.metrics.request('invalid', null, (performance.now() - started) / 1000);
    this.answerError(t, res, status, error, close);
  }

  /** `{error}` with `status`, counted by the caller. */
  private answerError(t: Ticket, res: ServerResponse, status: number, error: string, close: boolean): void {
    const text = JSON.stringify({ error });
    const headers: Record<string, string | number> = { ...JSON_HEADERS, 'content-length': Buffer.byteLength(text) };
    // A body we do not read must not be parsed as the next request: close after answering.
    if (close) headers.connection = 'close';
    this.send(this.byAnswers.get(t.conn)!, t, res, status, headers, text);
  }

  /**
   * A request node:http's parser refused before it reached handle() (headers over
   * maxHeaderSize, a malformed request line or framing such as Content-Length with
   * Transfer-Encoding, a sender slower than the timeouts): answered as node:http would
   * (431, 408 or 400, then the connection closed), with an `{error}` body like every other
   * refusal, and counted `invalid`, so a probe shows in the metrics. Not when an answer is
   * already on its way on the connection (its bytes would be interleaved) or the caller
   * already dropped it.
   */
  private parserRefused(err: NodeJS.ErrnoException, socket: Duplex): void {
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (err.code !== 'ECONNRESET' && socket.writable && inFlight?.headersSent !== true) {
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      const error =
        status === 431 ? `the request line and headers are over ${this.limits.maxHeaderSize} bytes`
        : status === 408 ? `the request was not complete within ${this.limits.headersTimeoutMs / 1000} s (headers) or ${this.limits.requestTimeoutMs / 1000} s (whole request)`
        : `the request is not HTTP/1.1 the API can parse (${err.code ?? 'malformed'})`;
      this.metrics.request('invalid', null, 0);
      socket.write(rawAnswer(status, { error }, ''));
    }
    socket.destroy(err);
  }

  /** A CONNECT request (node:http's 'connect'): 405, as for any method but GET, then closed. */
  private refuseConnect(socket: Duplex): void {
    this.metrics.request('invalid', null, 0);
    if (socket.writable) socket.end(rawAnswer(405, { error: 'only GET is served' }, 'Allow: GET\r\n'));
    else socket.destroy();
  }

  /**
   * One failed backend read: counted, and logged unless a failure of its kind was logged less
   * than LOG_EVERY_MS ago. `denied` is an error (the gateway's own credentials: nothing is
   * served until an operator fixes them), `unavailable` a warning (an outage, which stale
   * values may hide from callers for a while).
   */
  private backendFailed(err: SecretsBackendError): void {
    this.metrics.backendError(this.o.backend.name, err.failure);
    const now = this.now();
    const state = this.failureLog.get(err.failure);
    if (state !== undefined && now < state.next) {
      state.unlogged++;
      return;
    }
    this.failureLog.set(err.failure, { next: now + LOG_EVERY_MS, unlogged: 0 });
    const fields = { event: 'backend-error', backend: this.o.backend.name, failure: err.failure, error: err.message, unloggedSinceLast: state?.unlogged ?? 0 };
    if (err.failure === 'denied') {
      this.o.log.error(fields, "the secrets backend refused the gateway's own credentials: every read it refuses is answered 503 until an operator fixes them");
    } else {
      this.o.log.warn(fields, this.cache === undefined ? 'the secrets backend could not answer: answered 503' : 'the secrets backend could not answer: cached values are served up to cache.maxStaleSeconds, then 503');
    }
  }

  /** 16 random bytes, hex (OPA's decision_id is a UUID; this is as unique). */
  private decisionId(): string {
    if (this.idNext === this.idPool.length) {
      randomFillSync(this.idPool);
      this.idNext = 0;
    }
    const id = this.idPool.toString('hex', this.idNext, this.idNext + 16);
    this.idNext += 16;
    return id;
  }
}

/** Decision ids drawn from one randomFillSync. */
const ID_POOL_IDS = 256;

const revokedMeanwhile: Reason = Object.freeze({
  requirement: 'identity',
  required: null,
  actual: null,
  message: 'the caller was revoked (or its key replaced) while the secret was read',
});

function revokedBody(decisionId: string): string {
  return JSON.stringify({ error: 'denied', decisionId, ruleId: null, reasons: [revokedMeanwhile], trustVector: null });
}

/** The entry as whoami shows it: everything but key material (the key only as its fingerprint). */
function describeEntry(e: RegistryEntry, fingerprint: string): object {
  return {
    agentId: e.agentId,
    namespace: e.namespace,
    workload: e.workload,
    installationId: e.installationId,
    keyFingerprint: fingerprint,
    generation: String(e.generation),
    clearance: e.clearance,
    addresses: e.addresses,
    meshPort: e.meshPort ?? null,
    serviceAccount: e.serviceAccount ?? null,
    agentType: e.agentType,
    delegationDepth: e.delegationDepth,
    attestation:
      e.attestation === undefined
        ? null
        : {
            authnStrength: e.attestation.authnStrength,
            attestedAt: e.attestation.attestedAt,
            imageDigest: e.attestation.imageDigest ?? null,
            nodeName: e.attestation.nodeName ?? null,
            bindingHash: e.attestation.bindingHash ?? null,
            devicePosture: e.attestation.devicePosture ?? null,
          },
  };
}

/** A whole answer written by hand, for a connection node:http no longer answers on; then closed. */
function rawAnswer(status: number, body: object, extraHeaders: string): string {
  const text = JSON.stringify(body);
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n${extraHeaders}Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`;
}

/** Adds `socket` to `held`, closing the oldest first when `max` are held already; removed when it closes. */
function holdShedding(held: Set<Socket>, socket: Socket, max: number): void {
  if (held.size >= max) {
    const oldest = held.values().next().value as Socket;
    held.delete(oldest);
    oldest.destroy();
  }
  held.add(socket);
  socket.once('close', () => held.delete(socket));
}

/**
 * The JSON of each value's `data`, made once per value: a backend (the file's) or the cache
 * hands out the same object for as long as the secret is unchanged, so a warm fetch does not
 * serialize it again. Held only as long as the value itself.
 */
const dataJson = new WeakMap<SecretValue, { readonly text: string; readonly bytes: number }>();

/**
 * `JSON.stringify({path, data, version})` and its UTF-8 length, with `data`'s JSON (and its
 * length) made once per value: the size is known without flattening a large answer.
 */
function secretBody(path: string, secret: SecretValue): { text: string; bytes: number } {
  let data = dataJson.get(secret);
  if (data === undefined) {
    const text = JSON.stringify(secret.data);
    data = { text, bytes: Buffer.byteLength(text) };
    dataJson.set(secret, data);
  }
  const head = `{"path":${JSON.stringify(path)},"data":`;
  const tail = `,"version":${JSON.stringify(secret.version)}}`;
  return { text: head + data.text + tail, bytes: Buffer.byteLength(head) + data.bytes + Buffer.byteLength(tail) };
}

/** The audit lines' `time`: the ISO text of the current millisecond, made once per millisecond. */
let isoMs = -1;
let isoText = '';
function isoNow(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

function failed(reasons: readonly Reason[]): object[] {
  return reasons.map((r) => ({ requirement: r.requirement, required: r.required, actual: r.actual }));
}

/**
 * One audit line: who (agentId, key fingerprint, how it arrived), what (path), the decision
 * (allow/deny, the rule, every failed requirement, dry-run results, the vector), what was
 * answered, how the backend answered (for an allowed request: the backend, the cache's
 * outcome, the failure), and how long it took. Never a value: `data` is not in reach of this
 * function.
 */
function auditLine(
  decisionId: string,
  caller: Caller,
  entry: RegistryEntry | undefined,
  path: string,
  d: Decision,
  status: number,
  backend: { readonly name: string; readonly outcome: BackendOutcome; readonly failure: BackendFailure | undefined } | undefined,
  seconds: number,
): string {
  return JSON.stringify({
    time: isoNow(),
    decisionId,
    agentId: caller.exposure === 'plaintext' ? null : (entry?.agentId ?? null),
    keyFingerprint: caller.fingerprint,
    networkExposure: caller.exposure,
    path,
    decision: d.allow && status !== 403 ? 'allow' : 'deny',
    ruleId: d.ruleId,
    failed: failed(d.reasons),
    dryRunDenied: d.dryRunDenied,
    dryRun: d.dryRun.map((r) => ({ ruleId: r.ruleId, allow: r.allow, failed: failed(r.reasons) })),
    trustVector: d.trustVector,
    status,
    ...(backend !== undefined && { backend: backend.name, backendOutcome: backend.outcome }),
    ...(backend?.failure !== undefined && { backendFailure: backend.failure }),
    latencyMs: Math.round(seconds * 1e6) / 1000,
  });
}
