/**
 * The two API-server requests a reflector makes, list and watch (and a get of one object, for
 * the secrets backend), over undici, with every
 * answer treated as hostile: bodies and watch lines are bounded, JSON is parsed with integers
 * kept exact (json.ts), and every failure becomes an ApiError whose `reason` is a closed set,
 * usable as a metric label. A Status message from the server is shortened and stripped of
 * control characters before it reaches an error; a token never does.
 *
 * The protocol (Kubernetes API concepts, "Efficient detection of changes"): a list answers
 * `{metadata: {resourceVersion, continue}, items}`; a watch (`?watch=1&resourceVersion=RV`)
 * answers a chunked stream of one JSON object per line, `{type, object}`, type ADDED,
 * MODIFIED, DELETED, BOOKMARK (object carries only metadata.resourceVersion) or ERROR
 * (object is a Status; code 410 means the resourceVersion is too old to watch from).
 */
import type { request } from 'undici';
import { loadUndici, type ClusterAccess } from './cluster.js';
import { parseJson } from './json.js';
import { safeServerText } from '../redaction/index.js';

/** A resource to list and watch: `{group: '', version: 'v1', resource: 'services'}`. */
export interface ResourcePath {
  /** '' for the core group (`/api/v1`). */
  readonly group: string;
  readonly version: string;
  /** The plural resource name, e.g. `clearanceregistries`, `endpointslices`. */
  readonly resource: string;
  /** One namespace; absent: across all namespaces. */
  readonly namespace?: string | undefined;
}

/** `/apis/noisemesh.io/v1alpha1/namespaces/payments/clearanceregistries`. */
export function resourceUrlPath(r: ResourcePath): string {
  const base = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  return r.namespace === undefined ? `${base}/${r.resource}` : `${base}/namespaces/${encodeURIComponent(r.namespace)}/${r.resource}`;
}

/** `clearanceregistries in namespace payments` / `clearanceregistries in all namespaces`. */
export function describeResource(r: ResourcePath): string {
  return `${r.resource}${r.group === '' ? '' : `.${r.group}`} ${r.namespace === undefined ? 'in all namespaces' : `in namespace ${r.namespace}`}`;
}

/**
 * Why a request failed, from a closed set (metric labels):
 * - `gone`: 410, the resourceVersion (or continue token) is too old: relist;
 * - `unauthorized` (401), `forbidden` (403), `not_found` (404: the CRD is not installed);
 * - `server_error` (5xx, 429), `http_error` (any other status);
 * - `network`: refused, reset, DNS, TLS; `timeout`: no answer in time;
 * - `decode`: a body or line that is not the JSON the protocol promises; `too_large`.
 */
export type ApiFailure = 'gone' | 'unauthorized' | 'forbidden' | 'not_found' | 'server_error' | 'http_error' | 'network' | 'timeout' | 'decode' | 'too_large';

export class ApiError extends Error {
  constructor(readonly reason: ApiFailure, message: string, readonly status?: number) {
    super(message);
  }
  override get name(): string {
    return 'ApiError';
  }
}

export interface ListPage {
  readonly items: readonly unknown[];
  readonly resourceVersion: string;
  /** Present when more pages follow. */
  readonly continueToken: string | undefined;
  /** Length of the page's body, in UTF-16 code units (the reflector's store bound). */
  readonly bytes?: number;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

export interface WatchEvent {
  readonly type: WatchEventType;
  readonly object: Readonly<Record<string, unknown>>;
  /** Length of the event's line in bytes (the reflector's store bound). */
  readonly bytes?: number;
}

export interface ApiClientLimits {
  /** Largest list page body. Default 64 MiB. */
  readonly maxListBytes?: number;
  /** Longest watch line (one event). Default 16 MiB (etcd's object limit is 1.5 MiB). */
  readonly maxEventBytes?: number;
  /** Longest wait for response headers. Default 30 s. */
  readonly headersTimeoutMs?: number;
  /** Longest a list page may take to arrive, once headers came. Default 60 s. */
  readonly listBodyTimeoutMs?: number;
  /**
   * Longest the credentials may take (an exec plugin, an OIDC refresh) before a request is
   * given up. Default 60 s: an exec plugin's own deadline (30 s) and some.
   */
  readonly credentialsTimeoutMs?: number;
}

type Mapping = Readonly<Record<string, unknown>>;

function isMapping(v: unknown): v is Mapping {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}


function reasonForStatus(status: number): ApiFailure {
  if (status === 410) return 'gone';
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status >= 500 || status === 429) return 'server_error';
  return 'http_error';
}

/** An ApiError from a Status object (a failed response's body, or an ERROR event). */
function statusError(status: number, body: unknown, what: string, secrets: readonly string[]): ApiError {
  const s = isMapping(body) ? body : {};
  const code = typeof s.code === 'number' ? s.code : status;
  const reason = reasonForStatus(code);
  const detail = safeServerText(s.message, secrets) || safeServerText(s.reason, secrets);
  return new ApiError(reason, `${what}: HTTP ${code}${detail === '' ? '' : ` (${detail})`}`, code);
}

/**
 * A list or watch refused for a reason the operator fixes: the error says how. (A get's 404
 * is an answer, "no such object", and gets no fix.)
 */
function withFix(e: ApiError, resource: ResourcePath): ApiError {
  const name = `${resource.resource}${resource.group === '' ? '' : `.${resource.group}`}`;
  const fix =
    e.reason === 'not_found' ? `the API server does not serve ${name}/${resource.version}${resource.group === '' ? '' : ': is its CustomResourceDefinition installed (for ClearanceRegistry, crds/clearanceregistry.yaml)?'} Check the API server's URL too`
    : e.reason === 'unauthorized' ? 'the API server refused our credentials: check the kubeconfig\'s user, or the service-account token'
    : e.reason === 'forbidden' ? `grant get, list and watch on ${name} to this identity (a Role or ClusterRole, and its binding)`
    : undefined;
  return fix === undefined ? e : new ApiError(e.reason, `${e.message}: ${fix}`, e.status);
}

function networkError(err: unknown, what: string): ApiError {
  if (err instanceof ApiError) return err;
  const e = err as { code?: string; name?: string };
  const code = e.code ?? e.name ?? 'error';
  const timeout = code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT';
  return new ApiError(timeout ? 'timeout' : 'network', `${what}: ${safeServerText(code)}`);
}

export class ApiClient {
  readonly #access: ClusterAccess;
  readonly #maxListBytes: number;
  readonly #maxEventBytes: number;
  readonly #headersTimeoutMs: number;
  readonly #listBodyTimeoutMs: number;
  readonly #credentialsTimeoutMs: number;
  /** The credentials last sent, and their parts: never to appear in an error message. */
  #secrets: string[] = [];

  constructor(access: ClusterAccess, limits: ApiClientLimits = {}) {
    this.#access = access;
    this.#maxListBytes = limits.maxListBytes ?? 64 * 1024 * 1024;
    this.#maxEventBytes = limits.maxEventBytes ?? 16 * 1024 * 1024;
    this.#headersTimeoutMs = limits.headersTimeoutMs ?? 30_000;
    this.#listBodyTimeoutMs = limits.listBodyTimeoutMs ?? 60_000;
    this.#credentialsTimeoutMs = limits.credentialsTimeoutMs ?? 60_000;
  }

  get server(): string {
    return this.#access.server;
  }

  /** One page of a list. `resourceVersion` '' (or absent) asks for a consistent, current read. */
  async listPage(resource: ResourcePath, query: { limit?: number; continueToken?: string | undefined; resourceVersion?: string }, signal?: AbortSignal): Promise<ListPage> {
    const params = new URLSearchParams();
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    if (query.continueToken !== undefined) params.set('continue', query.continueToken);
    else if (query.resourceVersion !== undefined && query.resourceVersion !== '') params.set('resourceVersion', query.resourceVersion);
    const what = `list ${describeResource(resource)}`;
    const res = await this.#request(resource, params, what, this.#listBodyTimeoutMs, signal);
    const text = await this.#readBody(res.body, this.#maxListBytes, what);
    if (res.statusCode !== 200) throw withFix(statusError(res.statusCode, safeParse(text), what, this.#secrets), resource);
    const list = safeParse(text);
    if (!isMapping(list) || !Array.isArray(list.items) || !isMapping(list.metadata) || typeof list.metadata.resourceVersion !== 'string') {
      throw new ApiError('decode', `${what}: the answer is no list (items and metadata.resourceVersion expected)`);
    }
    const next = list.metadata.continue;
    return {
      items: list.items as unknown[],
      resourceVersion: list.metadata.resourceVersion,
      continueToken: typeof next === 'string' && next !== '' ? next : undefined,
      bytes: text.length,
    };
  }

  /**
   * One object by name: `GET .../PLURAL/NAME`. Throws ApiError (`not_found` for 404). The body
   * is bounded by `maxBytes` (default: the largest event, as one object is one event).
   */
  async get(resource: ResourcePath, name: string, signal?: AbortSignal, maxBytes = this.#maxEventBytes): Promise<Readonly<Record<string, unknown>>> {
    const what = `get ${describeResource(resource).replace(/^(\S+)/, `$1/${safeServerText(name)}`)}`;
    const res = await this.#request(resource, new URLSearchParams(), what, this.#listBodyTimeoutMs, signal, name);
    const text = await this.#readBody(res.body, maxBytes, what);
    if (res.statusCode !== 200) throw statusError(res.statusCode, safeParse(text), what, this.#secrets);
    const object = safeParse(text);
    if (!isMapping(object) || !isMapping(object.metadata)) throw new ApiError('decode', `${what}: the answer is no object (metadata expected)`);
    return object;
  }

  /**
   * Watches from `resourceVersion`, calling `opened` once the server accepted the watch and
   * `event` for each event, in order. Resolves when the server ends the stream (its
   * timeoutSeconds ran out); rejects with an ApiError (`gone` for 410, as a status or an
   * ERROR event) or with the abort of `signal`.
   */
  async watch(
    resource: ResourcePath,
    query: { resourceVersion: string; timeoutSeconds: number },
    handlers: { opened(): void; event(e: WatchEvent): void },
    signal: AbortSignal,
  ): Promise<void> {
    const params = new URLSearchParams({
      watch: '1',
      resourceVersion: query.resourceVersion,
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(query.timeoutSeconds),
    });
    const what = `watch ${describeResource(resource)}`;
    const res = await this.#request(resource, params, what, 0, signal);
    if (res.statusCode !== 200) {
      const text = await this.#readBody(res.body, 64 * 1024, what).catch(() => '');
      throw withFix(statusError(res.statusCode, safeParse(text), what, this.#secrets), resource);
    }
    handlers.opened();
    const decoder = new TextDecoder('utf-8', { fatal: true });
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const line = (bytes: Buffer): void => {
      if (bytes.length === 0 || (bytes.length === 1 && bytes[0] === 0x0d)) return;
      let value: unknown;
      try {
        value = parseJson(decoder.decode(bytes));
      } catch {
        throw new ApiError('decode', `${what}: a line of the stream is not JSON`);
      }
      if (!isMapping(value) || typeof value.type !== 'string' || !isMapping(value.object)) throw new ApiError('decode', `${what}: an event without type and object`);
      if (value.type === 'ERROR') throw statusError(500, value.object, `${what}: ERROR event`, this.#secrets);
      if (value.type !== 'ADDED' && value.type !== 'MODIFIED' && value.type !== 'DELETED' && value.type !== 'BOOKMARK') {
        throw new ApiError('decode', `${what}: an event of unknown type`);
      }
      handlers.event({ type: value.type, object: value.object, bytes: bytes.length });
    };
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        let start = 0;
        for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
          const part = chunk.subarray(start, nl);
          if (pendingBytes + part.length > this.#maxEventBytes) throw new ApiError('too_large', `${what}: an event larger than ${this.#maxEventBytes} bytes`);
          line(pending.length === 0 ? part : Buffer.concat([...pending, part]));
          pending = [];
          pendingBytes = 0;
          start = nl + 1;
        }
        if (start < chunk.length) {
          const rest = chunk.subarray(start);
          pendingBytes += rest.length;
          if (pendingBytes > this.#maxEventBytes) throw new ApiError('too_large', `${what}: an event larger than ${this.#maxEventBytes} bytes`);
          pending.push(rest);
        }
      }
    } catch (err) {
      res.body.destroy();
      if (signal.aborted || err instanceof ApiError) throw err;
      throw networkError(err, what);
    }
    if (pendingBytes > 0) line(Buffer.concat(pending));
  }

  async #request(resource: ResourcePath, params: URLSearchParams, what: string, bodyTimeout: number, signal?: AbortSignal, name?: string): Promise<Awaited<ReturnType<typeof request>>> {
    let headers: Record<string, string>;
    // Bounded here, whatever supplies them: a credential source that never answers would
    // otherwise hold this request, and the reflector waiting on it, for ever.
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new ApiError('timeout', `${what}: no credentials in ${this.#credentialsTimeoutMs / 1000} s`)), this.#credentialsTimeoutMs);
    });
    try {
      headers = await Promise.race([this.#access.headers(), late]);
    } catch (err) {
      if (err instanceof ApiError) throw err;
      throw new ApiError('unauthorized', `${what}: no credentials: ${safeServerText((err as Error).message)}`);
    } finally {
      clearTimeout(timer);
    }
    this.#secrets = Object.values(headers).flatMap((v) => [v, v.replace(/^(Bearer|Basic) /, '')]);
    const query = params.toString();
    const url = `${this.#access.server}${resourceUrlPath(resource)}${name === undefined ? '' : `/${encodeURIComponent(name)}`}${query === '' ? '' : `?${query}`}`;
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await loadUndici().request(url, {
        method: 'GET',
        dispatcher: this.#access.dispatcher,
        headers: { accept: 'application/json', ...headers },
        headersTimeout: this.#headersTimeoutMs,
        bodyTimeout,
        ...(signal && { signal }),
      });
    } catch (err) {
      if (signal?.aborted) throw err;
      // A list or watch that cannot connect says where it tried: the URL (never credentials)
      // is the first thing to check. (A get's callers word their own errors.)
      const e = networkError(err, what);
      throw name === undefined ? new ApiError(e.reason, `${e.message} (${this.#access.server})`, e.status) : e;
    }
    if (res.statusCode === 401) this.#access.credentialsRejected();
    return res;
  }

  async #readBody(body: AsyncIterable<Buffer> & { destroy(): unknown }, max: number, what: string): Promise<string> {
    const parts: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of body) {
        size += chunk.length;
        if (size > max) throw new ApiError('too_large', `${what}: the answer is larger than ${max} bytes`);
        parts.push(chunk);
      }
    } catch (err) {
      body.destroy();
      if (err instanceof ApiError) throw err;
      throw networkError(err, what);
    }
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(parts));
    } catch {
      throw new ApiError('decode', `${what}: the answer is not UTF-8`);
    }
  }
}

function safeParse(text: string): unknown {
  try {
    return parseJson(text);
  } catch {
    return undefined;
  }
}
