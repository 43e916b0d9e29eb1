/**
 * A TEST DOUBLE of the Vault (and OpenBao) HTTP API, for the `vault` secrets backend. It is
 * not Vault: no storage backend, no policy language, no leases beyond tokens. It serves the
 * endpoints the backend uses, with Vault's status codes and JSON envelopes:
 *
 * - `GET /v1/{mount}/data/{path}` (KV version 2 read): 200 `{request_id, lease_id: "",
 *   renewable: false, lease_duration: 0, data: {data, metadata: {created_time,
 *   custom_metadata, deletion_time, destroyed, version}}, wrap_info, warnings, auth,
 *   mount_type: "kv"}`; a path never written: 404 `{"errors": []}`; a latest version deleted
 *   or destroyed: 404 whose `data` holds `data: null` and the metadata, as Vault answers;
 * - `GET /v1/auth/token/lookup-self`: 200 `{data: {id, accessor, ttl, renewable,
 *   expire_time, policies, ...}}` (Vault echoes the token in `data.id`; so does this double);
 * - `POST /v1/auth/token/renew-self`: 200 with an `auth` block whose lease is the token's TTL,
 *   capped by its max TTL; 400 `token is not renewable` for one that is not;
 * - `POST /v1/auth/{kubernetesMount}/login` with `{role, jwt}`: 200 with `auth: {client_token,
 *   accessor, policies, token_policies, metadata, lease_duration, renewable, ...}`; an
 *   unknown role: 400 `invalid role name`; a JWT the role does not accept (Vault's
 *   TokenReview refused it): 403 `permission denied`;
 * - auth: the token travels in `X-Vault-Token`; missing, unknown, revoked or expired (by the
 *   injected clock): 403 `{"errors": ["permission denied"]}`; a token may read the KV paths
 *   its policies' prefixes cover, else 403;
 * - namespaces: when the double is given one, its mounts live there only: a request whose
 *   `X-Vault-Namespace` differs gets 404 `no handler for route` (the mount does not exist in
 *   that namespace), as a Vault Enterprise/OpenBao server does;
 * - faults: `seal()` (every request: 503 `{"errors": ["Vault is sealed"]}`), `failNext(status,
 *   n)`, `rateLimit(n, retryAfterSeconds)` (429 with Retry-After), `hang` (accept, then
 *   silence), `revoke(token)`;
 * - plain HTTP on loopback, or HTTPS with a given certificate.
 * Every request is recorded (method, path, namespace header, whether a token came, status);
 * the double never records a token or a body.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';

export interface FakeVaultOptions {
  readonly tls?: { readonly cert: string; readonly key: string };
  /** The namespace the mounts live in; absent: the root namespace (no header expected). */
  readonly namespace?: string;
  /** The KV v2 mount; default `secret`. */
  readonly mount?: string;
  /** The kubernetes auth method's mount; default `kubernetes`. */
  readonly kubernetesMount?: string;
  /** Epoch ms, for token TTLs; default Date.now. */
  readonly now?: () => number;
}

export interface TokenSpec {
  /** KV path prefixes the token may read (`payments/` covers `payments/db`); `''`: all. */
  readonly policies: readonly string[];
  /** 0: no expiry (a root token). */
  readonly ttlSeconds: number;
  readonly renewable?: boolean;
  /** The longest life, from creation, renewals included; default 10 x ttl. */
  readonly maxTtlSeconds?: number;
}

export interface RoleSpec extends TokenSpec {
  /** Service-account JWTs the role accepts (what TokenReview would say). */
  readonly jwts: readonly string[];
}

export interface VaultRequestRecord {
  readonly method: string;
  readonly path: string;
  readonly namespace: string | undefined;
  readonly token: boolean;
  readonly status: number;
}

interface TokenState {
  readonly accessor: string;
  readonly policies: readonly string[];
  readonly renewable: boolean;
  readonly ttlMs: number;
  readonly createdAt: number;
  /** Infinity: never. */
  expiresAt: number;
  readonly maxExpiresAt: number;
  revoked: boolean;
}

interface Version {
  readonly data: Record<string, unknown>;
  readonly createdTime: string;
  deletionTime: string;
  destroyed: boolean;
}

type Json = Record<string, unknown>;

export class FakeVault {
  readonly requests: VaultRequestRecord[] = [];
  /** Requests from now on get headers never: the server accepts and stays silent. */
  hang = false;
  readonly #tokens = new Map<string, TokenState>();
  readonly #roles = new Map<string, RoleSpec>();
  readonly #kv = new Map<string, Version[]>();
  readonly #issued: string[] = [];
  readonly #sockets = new Set<Socket>();
  readonly #server: Server;
  readonly #now: () => number;
  readonly #mount: string;
  readonly #kubernetesMount: string;
  #sealed = false;
  #failures: { status: number; count: number; message: string | undefined } | undefined;
  #rateLimited: { count: number; retryAfter: number } | undefined;
  #port = 0;

  constructor(readonly options: FakeVaultOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#mount = options.mount ?? 'secret';
    this.#kubernetesMount = options.kubernetesMount ?? 'kubernetes';
    const handler = (req: IncomingMessage, res: ServerResponse): void => this.#handle(req, res);
    this.#server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handler) : createHttpServer(handler);
    this.#server.on(options.tls ? 'secureConnection' : 'connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  get url(): string {
    return `${this.options.tls ? 'https' : 'http'}://127.0.0.1:${this.#port}`;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => resolve());
    });
    this.#port = (this.#server.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    await closed;
  }

  /** Creates a token (as `vault token create` would) and returns it. */
  createToken(spec: TokenSpec): string {
    const token = `hvs.${randomBytes(18).toString('base64url')}`;
    const now = this.#now();
    const ttlMs = spec.ttlSeconds * 1000;
    this.#tokens.set(token, {
      accessor: randomBytes(12).toString('base64url'),
      policies: spec.policies,
      renewable: spec.renewable ?? ttlMs > 0,
      ttlMs,
      createdAt: now,
      expiresAt: ttlMs > 0 ? now + ttlMs : Infinity,
      maxExpiresAt: ttlMs > 0 ? now + (spec.maxTtlSeconds ?? spec.ttlSeconds * 10) * 1000 : Infinity,
      revoked: false,
    });
    this.#issued.push(token);
    return token;
  }

  /** Every token this double ever issued (created or by login). */
  get issuedTokens(): readonly string[] {
    return this.#issued;
  }

  revoke(token: string): void {
    const t = this.#tokens.get(token);
    if (t !== undefined) t.revoked = true;
  }

  /** Seconds the token has left (0 when expired, revoked or unknown; Infinity: no expiry). */
  ttlOf(token: string): number {
    const t = this.#tokens.get(token);
    if (t === undefined || t.revoked) return 0;
    return Math.max(0, (t.expiresAt - this.#now()) / 1000);
  }

  addRole(name: string, spec: RoleSpec): void {
    this.#roles.set(name, spec);
  }

  /** Writes a new version of `path`; returns its version number. */
  put(path: string, data: Record<string, unknown>): number {
    const versions = this.#kv.get(path) ?? [];
    versions.push({ data: structuredClone(data), createdTime: new Date(this.#now()).toISOString(), deletionTime: '', destroyed: false });
    this.#kv.set(path, versions);
    return versions.length;
  }

  /** `vault kv delete`: soft-deletes the latest version. */
  deleteLatest(path: string): void {
    const v = this.#kv.get(path)?.at(-1);
    if (v === undefined) throw new Error(`no ${path}`);
    v.deletionTime = new Date(this.#now()).toISOString();
  }

  /** `vault kv destroy` of the latest version. */
  destroyLatest(path: string): void {
    const v = this.#kv.get(path)?.at(-1);
    if (v === undefined) throw new Error(`no ${path}`);
    v.destroyed = true;
  }

  seal(): void {
    this.#sealed = true;
  }

  unseal(): void {
    this.#sealed = false;
  }

  /**
   * The next `count` requests are answered with `status` and a Vault error body; `message`
   * replaces the usual text (a broken server that echoes what it was sent, say).
   */
  failNext(status: number, count = 1, message?: string): void {
    this.#failures = { status, count, message };
  }

  /** The next `count` requests get 429 with `Retry-After: retryAfterSeconds`. */
  rateLimit(count: number, retryAfterSeconds: number): void {
    this.#rateLimited = { count, retryAfter: retryAfterSeconds };
  }

  /** Requests whose path starts with `prefix` (e.g. `/v1/auth/token/renew-self`). */
  requestsTo(prefix: string): VaultRequestRecord[] {
    return this.requests.filter((r) => r.path.startsWith(prefix));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.hang) return; // accepted, then silence: the client's deadline must end it
    const url = new URL(req.url ?? '/', 'http://x');
    const namespace = header(req, 'x-vault-namespace');
    const token = header(req, 'x-vault-token');
    const send = (status: number, body: Json, extra: Record<string, string> = {}): void => {
      this.requests.push({ method: req.method ?? '', path: url.pathname, namespace, token: token !== undefined, status });
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...extra }).end(JSON.stringify(body));
    };
    const errors = (status: number, ...messages: string[]): void => send(status, { errors: messages });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 64 * 1024) chunks.push(c);
    });
    req.on('end', () => {
      if (size > 64 * 1024) return errors(413, 'http: request body too large');
      if (this.#sealed) return errors(503, 'Vault is sealed');
      if (this.#failures !== undefined && this.#failures.count > 0) {
        this.#failures.count--;
        return errors(this.#failures.status, this.#failures.message ?? (this.#failures.status >= 500 ? 'internal error' : 'injected failure'));
      }
      if (this.#rateLimited !== undefined && this.#rateLimited.count > 0) {
        this.#rateLimited.count--;
        return send(429, { errors: [`request path "${url.pathname.slice(4)}": rate limit quota exceeded`] }, { 'retry-after': String(this.#rateLimited.retryAfter) });
      }
      let body: Json = {};
      if (chunks.length > 0) {
        try {
          const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return errors(400, 'error parsing JSON');
          body = parsed as Json;
        } catch {
          return errors(400, 'error parsing JSON');
        }
      }
      const route = url.pathname.replace(/^\/v1\//, '');
      if (!url.pathname.startsWith('/v1/')) return errors(404, 'not found');
      if (namespace !== this.options.namespace && !route.startsWith('auth/token/')) {
        return errors(404, `no handler for route "${route}". route entry not found.`);
      }
      if (route === `auth/${this.#kubernetesMount}/login`) {
        if (req.method !== 'POST' && req.method !== 'PUT') return errors(405, 'unsupported operation');
        return this.#login(body, send, errors);
      }
      const state = token === undefined ? undefined : this.#tokens.get(token);
      const valid = state !== undefined && !state.revoked && this.#now() < state.expiresAt;
      if (!valid) return errors(403, 'permission denied');
      if (route === 'auth/token/lookup-self' && req.method === 'GET') {
        return send(200, this.#envelope({ data: this.#lookup(token!, state) }));
      }
      if (route === 'auth/token/renew-self' && (req.method === 'POST' || req.method === 'PUT')) {
        if (!state.renewable || state.ttlMs === 0) return errors(400, 'token is not renewable');
        state.expiresAt = Math.min(this.#now() + state.ttlMs, state.maxExpiresAt);
        return send(200, this.#envelope({ auth: this.#auth(token!, state) }));
      }
      const kv = route.startsWith(`${this.#mount}/data/`) ? decodeURIComponent(route.slice(this.#mount.length + 6)) : undefined;
      if (kv !== undefined && req.method === 'GET') {
        if (!state.policies.some((p) => kv.startsWith(p))) return errors(403, 'permission denied');
        return this.#read(kv, send);
      }
      return errors(404, `no handler for route "${route}". route entry not found.`);
    });
  }

  #read(path: string, send: (status: number, body: Json) => void): void {
    const latest = this.#kv.get(path)?.at(-1);
    if (latest === undefined) return send(404, { errors: [] });
    const version = this.#kv.get(path)!.length;
    const metadata = { created_time: latest.createdTime, custom_metadata: null, deletion_time: latest.deletionTime, destroyed: latest.destroyed, version };
    if (latest.deletionTime !== '' || latest.destroyed) return send(404, this.#envelope({ data: { data: null, metadata } }));
    send(200, { ...this.#envelope({ data: { data: latest.data, metadata } }), mount_type: 'kv' });
  }

  #login(body: Json, send: (status: number, body: Json) => void, errors: (status: number, ...m: string[]) => void): void {
    const role = typeof body.role === 'string' ? body.role : '';
    const jwt = typeof body.jwt === 'string' ? body.jwt : '';
    if (role === '') return errors(400, 'missing role');
    if (jwt === '') return errors(400, 'missing jwt');
    const spec = this.#roles.get(role);
    if (spec === undefined) return errors(400, `invalid role name "${role}"`);
    if (!spec.jwts.includes(jwt)) return errors(403, 'permission denied');
    const token = this.createToken(spec);
    send(200, this.#envelope({ auth: { ...this.#auth(token, this.#tokens.get(token)!), metadata: { role, service_account_name: 'gateway', service_account_namespace: 'noisemesh-system' } } }));
  }

  #auth(token: string, t: TokenState): Json {
    const lease = Number.isFinite(t.expiresAt) ? Math.round((t.expiresAt - this.#now()) / 1000) : 0;
    return {
      client_token: token,
      accessor: t.accessor,
      policies: ['default', ...t.policies.map((p) => p.replace(/\/$/, '') || 'all')],
      token_policies: ['default'],
      metadata: null,
      lease_duration: lease,
      renewable: t.renewable,
      entity_id: randomUUID(),
      token_type: 'service',
      orphan: true,
      mfa_requirement: null,
      num_uses: 0,
    };
  }

  #lookup(token: string, t: TokenState): Json {
    const finite = Number.isFinite(t.expiresAt);
    return {
      accessor: t.accessor,
      creation_time: Math.floor(t.createdAt / 1000),
      creation_ttl: t.ttlMs / 1000,
      display_name: 'token',
      entity_id: '',
      expire_time: finite ? new Date(t.expiresAt).toISOString() : null,
      explicit_max_ttl: 0,
      id: token,
      issue_time: new Date(t.createdAt).toISOString(),
      meta: null,
      num_uses: 0,
      orphan: true,
      path: 'auth/token/create',
      policies: ['default'],
      renewable: t.renewable,
      ttl: finite ? Math.max(0, Math.round((t.expiresAt - this.#now()) / 1000)) : 0,
      type: 'service',
    };
  }

  #envelope(part: Json): Json {
    return { request_id: randomUUID(), lease_id: '', renewable: false, lease_duration: 0, data: null, wrap_info: null, warnings: null, auth: null, ...part };
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
