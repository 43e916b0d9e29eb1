/**
 * A TEST DOUBLE of the Kubernetes API server's HTTP protocol, for the reflector and the
 * Kubernetes registry source. It is not an API server: no etcd, no admission, no schema; it
 * speaks enough of the wire protocol (Kubernetes API concepts: "Efficient detection of
 * changes", "Retrieving large results sets in chunks", "Watch bookmarks") for a client to be
 * driven through everything a real one does to it:
 *
 * - list: `GET /apis/G/V[/namespaces/NS]/PLURAL` (or `/api/v1/...`) answers a `...List` with
 *   `metadata.resourceVersion`; `limit` pages it, with an opaque `continue` token that carries
 *   the list's resourceVersion and expires (410, reason Expired) once history is compacted
 *   past it, as etcd compaction does. Pages after the first show objects' current state (the
 *   real server serves them from the list's snapshot; clients may not rely on either);
 * - get: `GET .../namespaces/NS/PLURAL/NAME` answers the object, or 404 with a NotFound Status
 *   (`secrets "x" not found`, details {name, kind}); v1 Secrets are served (SECRETS), with
 *   `data` values base64 as the real server stores and returns them;
 * - watch: `?watch=1&resourceVersion=RV` streams, chunked, one JSON event a line: ADDED,
 *   MODIFIED, DELETED from RV on (history kept until compacted), BOOKMARK when `bookmark()`
 *   is called and the client sent `allowWatchBookmarks=true`, and ERROR with a Status object.
 *   An RV older than the compaction point is refused with 410 Gone, either as an HTTP status
 *   or (the watch cache's way) as a 200 stream holding one ERROR event with code 410; the
 *   server ends a watch after its `timeoutSeconds`;
 * - label selectors (`labelSelector`, equality-based) on lists and watches;
 * - Services and EndpointSlices are registered from the start (SERVICES, ENDPOINT_SLICES;
 *   test/helpers/kube-services.ts builds them as the API server and the EndpointSlice
 *   controller would);
 * - auth: every request needs `Authorization: Bearer <token>` for one of the accepted tokens,
 *   otherwise 401 with a Status; `authorize`, when set, is RBAC: a request it refuses gets 403
 *   with the Forbidden Status the real server writes (`secrets "x" is forbidden: User ...
 *   cannot get resource "secrets" in API group "" in the namespace "ns"`);
 * - faults: `down()` closes every connection and refuses new ones until `up()`, `dropWatches()`
 *   resets open watch connections, `hangWatches` accepts watches and then sends nothing,
 *   `failNext(status)` answers the next requests with a Status error, which quotes the
 *   request's Authorization header when `echoCredentials` is set (as a careless server or
 *   proxy in front of it might: the client must never pass that on);
 * - plain HTTP on loopback, or HTTPS with a given certificate.
 * Integers beyond 2^53 (a ClearanceRegistry generation) are written as exact JSON numbers.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { randomUUID } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';

export type KubeObject = Record<string, unknown> & { metadata: Record<string, unknown> };

/** `noisemesh.io/v1alpha1/clearanceregistries`, `v1/services`: a resource's identity. */
export interface ResourceId {
  readonly group: string;
  readonly version: string;
  readonly resource: string;
  /** The Kind of its objects; the list kind is Kind + 'List'. */
  readonly kind: string;
}

export const CLEARANCE_REGISTRIES: ResourceId = { group: 'noisemesh.io', version: 'v1alpha1', resource: 'clearanceregistries', kind: 'ClearanceRegistry' };
export const SECRETS: ResourceId = { group: '', version: 'v1', resource: 'secrets', kind: 'Secret' };

/** What an RBAC check sees: the verb (get, list, watch), the resource, namespace and name. */
export interface AccessRequest {
  readonly verb: 'get' | 'list' | 'watch';
  readonly group: string;
  readonly resource: string;
  readonly namespace: string | undefined;
  readonly name: string | undefined;
}
/** core/v1 Services (`/api/v1/.../services`). */
export const SERVICES: ResourceId = { group: '', version: 'v1', resource: 'services', kind: 'Service' };
/** discovery.k8s.io/v1 EndpointSlices. */
export const ENDPOINT_SLICES: ResourceId = { group: 'discovery.k8s.io', version: 'v1', resource: 'endpointslices', kind: 'EndpointSlice' };

interface HistoryEvent {
  readonly rv: number;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly object: KubeObject;
}

interface Watcher {
  readonly resource: string;
  readonly namespace: string | undefined;
  readonly selector: Selector;
  readonly bookmarks: boolean;
  readonly res: ServerResponse;
  readonly socket: Socket;
}

export interface RequestRecord {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly authorized: boolean;
  readonly status: number;
}

export interface FakeApiServerOptions {
  /** Accepted bearer tokens. Default ['test-token']. */
  readonly tokens?: readonly string[];
  /** PEM certificate and key: serve HTTPS. */
  readonly tls?: { readonly cert: string; readonly key: string };
}

/** JSON with bigint written as an exact number. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `@@bigint:${v}@@` : v)).replace(/"@@bigint:(-?\d+)@@"/g, '$1');
}

function status(code: number, reason: string, message: string): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

function resourceKey(r: { group: string; version: string; resource: string }): string {
  return `${r.group}/${r.version}/${r.resource}`;
}

export class FakeApiServer {
  tokens: string[];
  /** Watches opened from now on get headers and then silence, until set back to false. */
  hangWatches = false;
  /** How an expired resourceVersion is refused at watch start: HTTP 410, or an ERROR event. */
  goneAs: 'status' | 'event' = 'event';
  /** RBAC: undefined allows everything; otherwise a request it refuses gets 403 Forbidden. */
  authorize: ((request: AccessRequest) => boolean) | undefined;
  /** Injected failures (failNext) quote the request's Authorization header in their message. */
  echoCredentials = false;
  readonly requests: RequestRecord[] = [];
  readonly #kinds = new Map<string, ResourceId>();
  readonly #objects = new Map<string, Map<string, KubeObject>>();
  readonly #history: HistoryEvent[] = [];
  readonly #historyResource: string[] = [];
  #rv = 100;
  #compactedRv = 0;
  readonly #watchers = new Set<Watcher>();
  readonly #sockets = new Set<Socket>();
  #failures: { status: number; count: number; watchOnly: boolean } | undefined;
  readonly #server: Server;
  #port = 0;
  #listening = false;

  constructor(readonly options: FakeApiServerOptions = {}) {
    this.tokens = [...(options.tokens ?? ['test-token'])];
    const handler = (req: IncomingMessage, res: ServerResponse): void => this.#handle(req, res);
    this.#server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handler) : createHttpServer(handler);
    this.#server.on(options.tls ? 'secureConnection' : 'connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    this.register(CLEARANCE_REGISTRIES);
    this.register(SERVICES);
    this.register(ENDPOINT_SLICES);
  }

  register(resource: ResourceId): void {
    this.#kinds.set(resourceKey(resource), resource);
    if (!this.#objects.has(resourceKey(resource))) this.#objects.set(resourceKey(resource), new Map());
  }

  get url(): string {
    return `${this.options.tls ? 'https' : 'http'}://127.0.0.1:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  get resourceVersion(): number {
    return this.#rv;
  }

  /** Watch connections open now. */
  get watchers(): number {
    return this.#watchers.size;
  }

  /** Watch connections of one resource open now. */
  watchersOf(resource: ResourceId): number {
    let n = 0;
    for (const w of this.#watchers) if (w.resource === resourceKey(resource)) n++;
    return n;
  }

  async start(): Promise<this> {
    await this.up();
    return this;
  }

  /** Listens again on the same port after down(). */
  async up(): Promise<void> {
    if (this.#listening) return;
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#port, '127.0.0.1', () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    this.#port = (this.#server.address() as AddressInfo).port;
    this.#listening = true;
  }

  /** The server goes away: every connection is reset and new ones are refused. */
  async down(): Promise<void> {
    if (!this.#listening) return;
    this.#listening = false;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    this.#watchers.clear();
    await closed;
  }

  async close(): Promise<void> {
    await this.down();
  }

  /** Resets every open watch connection (ECONNRESET on the client), as a load balancer might. */
  dropWatches(): void {
    for (const w of this.#watchers) w.socket.destroy();
    this.#watchers.clear();
  }

  /** Ends every open watch cleanly, as the server does when a watch's timeoutSeconds is up. */
  endWatches(): void {
    for (const w of this.#watchers) w.res.end();
    this.#watchers.clear();
  }

  /** The next `count` requests (watches only, if asked) are answered with `status`. */
  failNext(code: number, count = 1, watchOnly = false): void {
    this.#failures = { status: code, count, watchOnly };
  }

  /** Forgets history up to the current resourceVersion: older watches and continue tokens get 410. */
  compact(): void {
    this.#compactedRv = this.#rv;
    const keep = this.#history.findIndex((e) => e.rv > this.#compactedRv);
    const drop = keep < 0 ? this.#history.length : keep;
    this.#history.splice(0, drop);
    this.#historyResource.splice(0, drop);
  }

  /** Sends a BOOKMARK at the current resourceVersion to every watch that allows bookmarks. */
  bookmark(): void {
    for (const w of this.#watchers) {
      if (!w.bookmarks) continue;
      const kind = this.#kinds.get(w.resource)!;
      this.#send(w, { type: 'BOOKMARK', object: { kind: kind.kind, apiVersion: apiVersionOf(kind), metadata: { resourceVersion: String(this.#rv) } } });
    }
  }

  get(namespace: string, name: string, resource: ResourceId = CLEARANCE_REGISTRIES): KubeObject | undefined {
    return this.#objects.get(resourceKey(resource))?.get(`${namespace}/${name}`);
  }

  /** Creates or replaces an object (ADDED or MODIFIED); returns it as stored. */
  apply(object: Record<string, unknown>, resource: ResourceId = CLEARANCE_REGISTRIES): KubeObject {
    const meta = { ...(object.metadata as Record<string, unknown>) };
    const key = `${String(meta.namespace)}/${String(meta.name)}`;
    const store = this.#objects.get(resourceKey(resource))!;
    const old = store.get(key);
    this.#rv++;
    const stored: KubeObject = {
      apiVersion: apiVersionOf(resource),
      kind: resource.kind,
      ...structuredClone(object),
      metadata: {
        ...meta,
        uid: old?.metadata.uid ?? randomUUID(),
        resourceVersion: String(this.#rv),
        generation: ((old?.metadata.generation as number | undefined) ?? 0) + 1,
        creationTimestamp: old?.metadata.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      },
    };
    store.set(key, stored);
    this.#record(resource, { rv: this.#rv, type: old === undefined ? 'ADDED' : 'MODIFIED', object: stored });
    return stored;
  }

  delete(namespace: string, name: string, resource: ResourceId = CLEARANCE_REGISTRIES): void {
    const store = this.#objects.get(resourceKey(resource))!;
    const old = store.get(`${namespace}/${name}`);
    if (old === undefined) throw new Error(`no ${namespace}/${name}`);
    store.delete(`${namespace}/${name}`);
    this.#rv++;
    // The DELETED event carries the object's last state at the deletion's resourceVersion.
    const last: KubeObject = { ...old, metadata: { ...old.metadata, resourceVersion: String(this.#rv) } };
    this.#record(resource, { rv: this.#rv, type: 'DELETED', object: last });
  }

  #record(resource: ResourceId, event: HistoryEvent): void {
    this.#history.push(event);
    this.#historyResource.push(resourceKey(resource));
    for (const w of this.#watchers) {
      if (w.resource === resourceKey(resource) && matches(event.object, w.namespace, w.selector)) this.#send(w, { type: event.type, object: event.object });
    }
  }

  #send(w: Watcher, event: Record<string, unknown>): void {
    if (!w.res.writableEnded && !w.socket.destroyed) w.res.write(`${toJson(event)}\n`);
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const record = (code: number, authorized: boolean): void => {
      this.requests.push({ method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, authorized, status: code });
    };
    const fail = (code: number, reason: string, message: string, authorized = true): void => {
      record(code, authorized);
      res.writeHead(code, { 'content-type': 'application/json' }).end(toJson(status(code, reason, message)));
    };
    const auth = req.headers.authorization ?? '';
    const authorized = this.tokens.some((t) => auth === `Bearer ${t}`);
    if (!authorized) return fail(401, 'Unauthorized', 'Unauthorized', false);
    if (req.method !== 'GET') return fail(405, 'MethodNotAllowed', 'only GET is served by this double');
    const watch = url.searchParams.get('watch') === '1' || url.searchParams.get('watch') === 'true';
    if (this.#failures !== undefined && this.#failures.count > 0 && (watch || !this.#failures.watchOnly)) {
      this.#failures.count--;
      const code = this.#failures.status;
      return fail(code, code >= 500 ? 'InternalError' : 'BadRequest', `injected failure ${code}${this.echoCredentials ? `: you sent ${auth}` : ''}`);
    }
    const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?$/.exec(url.pathname);
    const key = m === null ? undefined : resourceKey({ group: m[2] ?? '', version: m[1] ?? m[3]!, resource: m[5]! });
    const kind = key === undefined ? undefined : this.#kinds.get(key);
    if (m === null || key === undefined || kind === undefined) return fail(404, 'NotFound', 'the server could not find the requested resource');
    const namespace = m[4] === undefined ? undefined : decodeURIComponent(m[4]);
    const name = m[6] === undefined ? undefined : decodeURIComponent(m[6]);
    // A name needs a namespace for a namespaced kind (every kind this double serves).
    if (name !== undefined && (namespace === undefined || watch)) return fail(404, 'NotFound', 'the server could not find the requested resource');
    const verb = name !== undefined ? 'get' : watch ? 'watch' : 'list';
    if (this.authorize !== undefined && !this.authorize({ verb, group: kind.group, resource: kind.resource, namespace, name })) {
      const subject = `${kind.resource}${name === undefined ? '' : ` "${name}"`}`;
      const scope = namespace === undefined ? 'at the cluster scope' : `in the namespace "${namespace}"`;
      return fail(403, 'Forbidden', `${subject} is forbidden: User "system:serviceaccount:test:tester" cannot ${verb} resource "${kind.resource}" in API group "${kind.group}" ${scope}`);
    }
    if (name !== undefined) {
      const object = this.#objects.get(key)!.get(`${namespace}/${name}`);
      if (object === undefined) {
        record(404, true);
        res.writeHead(404, { 'content-type': 'application/json' }).end(toJson({ ...status(404, 'NotFound', `${kind.resource} "${name}" not found`), details: { name, kind: kind.resource } }));
        return;
      }
      record(200, true);
      res.writeHead(200, { 'content-type': 'application/json' }).end(toJson(object));
      return;
    }
    if (watch) return this.#watch(req, res, url.searchParams, key, kind, namespace, record);
    this.#list(res, url.searchParams, key, kind, namespace, record, fail);
  }

  #list(
    res: ServerResponse,
    query: URLSearchParams,
    key: string,
    kind: ResourceId,
    namespace: string | undefined,
    record: (code: number, authorized: boolean) => void,
    fail: (code: number, reason: string, message: string) => void,
  ): void {
    const limit = Number(query.get('limit') ?? '0');
    let listRv = this.#rv;
    let after = '';
    const token = query.get('continue');
    if (token !== null) {
      try {
        const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { rv: number; after: string };
        listRv = parsed.rv;
        after = parsed.after;
      } catch {
        return fail(400, 'BadRequest', 'invalid continue token');
      }
      if (listRv <= this.#compactedRv) {
        return fail(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
      }
    }
    let selector: Selector;
    try {
      selector = parseSelector(query.get('labelSelector'));
    } catch (err) {
      return fail(400, 'BadRequest', (err as Error).message);
    }
    const all = [...this.#objects.get(key)!.entries()]
      .filter(([, o]) => matches(o, namespace, selector))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .filter(([k]) => k > after);
    const page = limit > 0 ? all.slice(0, limit) : all;
    const more = limit > 0 && all.length > limit;
    const body = {
      kind: `${kind.kind}List`,
      apiVersion: apiVersionOf(kind),
      metadata: {
        resourceVersion: String(listRv),
        ...(more && { continue: Buffer.from(JSON.stringify({ rv: listRv, after: page[page.length - 1]![0] })).toString('base64url') }),
      },
      items: page.map(([, o]) => o),
    };
    record(200, true);
    res.writeHead(200, { 'content-type': 'application/json' }).end(toJson(body));
  }

  #watch(
    req: IncomingMessage,
    res: ServerResponse,
    query: URLSearchParams,
    key: string,
    kind: ResourceId,
    namespace: string | undefined,
    record: (code: number, authorized: boolean) => void,
  ): void {
    const from = Number(query.get('resourceVersion') ?? '0');
    const gone = from > 0 && from < this.#compactedRv;
    const message = `too old resource version: ${from} (${this.#compactedRv})`;
    if (gone && this.goneAs === 'status') {
      record(410, true);
      res.writeHead(410, { 'content-type': 'application/json' }).end(toJson(status(410, 'Gone', message)));
      return;
    }
    record(200, true);
    // No content-length: Node sends the body chunked, as the API server does.
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    if (gone) {
      res.end(`${toJson({ type: 'ERROR', object: status(410, 'Expired', message) })}\n`);
      return;
    }
    if (this.hangWatches) return; // headers, then nothing, ever: a hung connection
    // A malformed selector was refused by the list that must come first; here it matches nothing.
    let selector: Selector;
    try {
      selector = parseSelector(query.get('labelSelector'));
    } catch {
      selector = [{ key: '', op: 'exists' }];
    }
    const w: Watcher = { resource: key, namespace, selector, bookmarks: query.get('allowWatchBookmarks') === 'true', res, socket: req.socket };
    this.#watchers.add(w);
    res.once('close', () => this.#watchers.delete(w));
    for (const [i, e] of this.#history.entries()) {
      if (this.#historyResource[i] === key && e.rv > from && matches(e.object, namespace, selector)) this.#send(w, { type: e.type, object: e.object });
    }
    const timeout = Number(query.get('timeoutSeconds') ?? '0');
    if (timeout > 0) {
      const timer = setTimeout(() => {
        this.#watchers.delete(w);
        res.end();
      }, timeout * 1000);
      timer.unref();
      res.once('close', () => clearTimeout(timer));
    }
    void kind;
  }
}

function apiVersionOf(r: ResourceId): string {
  return r.group === '' ? r.version : `${r.group}/${r.version}`;
}

/**
 * A label selector's equality-based requirements (`k=v`, `k==v`, `k!=v`, `k`, `!k`, comma
 * separated), as the API server parses them; set-based ones (`in`, `notin`) are refused.
 * A watch whose object stops matching gets no DELETED here (the real server sends one): the
 * production code selects nothing, so the double does not pretend to be complete.
 */
type Selector = readonly { readonly key: string; readonly op: '=' | '!=' | 'exists' | '!exists'; readonly value?: string }[];

function parseSelector(text: string | null): Selector {
  if (text === null || text === '') return [];
  return text.split(',').map((part) => {
    const m = /^\s*(!?)([\w./-]+)\s*(?:(==|=|!=)\s*([\w.-]*))?\s*$/.exec(part);
    if (m === null) throw new Error(`unable to parse requirement: ${part}`);
    if (m[3] === undefined) return { key: m[2]!, op: m[1] === '!' ? '!exists' : 'exists' };
    if (m[1] === '!') throw new Error(`unable to parse requirement: ${part}`);
    return { key: m[2]!, op: m[3] === '!=' ? '!=' : '=', value: m[4]! };
  });
}

function matches(object: KubeObject, namespace: string | undefined, selector: Selector = []): boolean {
  if (namespace !== undefined && object.metadata.namespace !== namespace) return false;
  const labels = (object.metadata.labels ?? {}) as Record<string, unknown>;
  return selector.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    if (r.op === 'exists') return has;
    if (r.op === '!exists') return !has;
    if (r.op === '=') return has && labels[r.key] === r.value;
    return !has || labels[r.key] !== r.value;
  });
}

/** A kubeconfig that points at `server` with a bearer token (and its CA, for HTTPS). */
export function kubeconfigFor(server: string, token: string, caPem?: string): string {
  const cluster: Record<string, unknown> = { server };
  if (caPem !== undefined) cluster['certificate-authority-data'] = Buffer.from(caPem).toString('base64');
  return toJson({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'fake', cluster }],
    users: [{ name: 'tester', user: { token } }],
    contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'tester' } }],
    'current-context': 'fake',
  });
}
