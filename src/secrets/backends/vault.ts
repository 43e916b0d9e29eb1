/**
 * The `vault` backend: secrets from a Vault (or OpenBao) KV version 2 mount, over undici.
 *
 * Requests (Vault HTTP API; every one carries `X-Vault-Namespace` when a namespace is set):
 * - read: `GET /v1/{mount}/data/{path}` -> `{data: {data: {k: v}, metadata: {version,
 *   deletion_time, destroyed}}}`. 404 is "no such secret" (null), and so is a latest version
 *   that is deleted or destroyed (Vault answers those with 404 and the metadata, or 200 with
 *   `data: null`). A value that is not a string (KV holds JSON) is served as its JSON text.
 * - token auth: the token is read from a file on every request and re-read when the file
 *   changes (TokenFile: Vault Agent's sink, or an operator's rotation, is picked up at once).
 *   `GET /v1/auth/token/lookup-self` tells whether it is renewable and when it expires; a
 *   renewable one is renewed with `POST /v1/auth/token/renew-self` before its lease ends.
 * - kubernetes auth: `POST /v1/auth/{mountPath}/login` with `{role, jwt}`, the JWT being the
 *   gateway's service-account token (re-read when the kubelet rotates it). The client token is
 *   kept in memory and renewed (renew-self) at 60-70% of its lease; when a renewal fails, the
 *   token is not renewable, or Vault shortened the lease (its max TTL is near), the next step
 *   is a fresh login instead. A token past its lease is never sent: the read logs in first.
 * - failures: a network error, a timeout or a 5xx is retried with capped exponential backoff
 *   and jitter, up to `retry.attempts` tries in all, then `unavailable`; 503 "Vault is sealed"
 *   is `unavailable` at once (retrying a sealed Vault within a second is pointless); 429 waits
 *   the Retry-After it names when that fits in `maxRetryAfterSeconds`, else `unavailable`;
 *   403 drops the token, logs in (or re-reads the file) once and tries again, then `denied`;
 *   a login refused (400, 403) is `denied`.
 * - bounds: each request has a deadline (`timeoutSeconds`, headers and body together), each
 *   answer at most `maxResponseBytes`; TLS is verified against `caFile` when given.
 *
 * No token, JWT or value reaches an error message, an event or a URL: tokens travel in
 * headers and bodies only, and Vault's own error texts are cleaned of them before use
 * (lookup-self even echoes the token back in `data.id`; its body is read for two fields only).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Agent, Dispatcher } from 'undici';
import { systemClock, TokenFile, TokenFileError, type Clock } from '../../kubernetes/index.js';
import { checkSecretPath } from '../../trust-vector/index.js';
import { SecretsBackendError, type SecretsBackend, type SecretValue } from '../backend.js';
import { DEFAULT_VAULT_TIMEOUT_SECONDS, type VaultAuthConfig, type VaultBackendConfig } from '../config.js';
import { safeServerText } from '../../redaction/index.js';
import { DEFAULT_RETRY, backoffMs, raceAbort, sleep, type RetryPolicy } from '../retry.js';

const requireHere = createRequire(import.meta.url);

/** undici, loaded when a vault backend is made: a process that never uses one (a proxy) does not carry its ~5 MiB of heap. */
function undici(): typeof import('undici') {
  return requireHere('undici') as typeof import('undici');
}

/** Something the backend did that an operator may want in a log line. No secrets in it. */
export type VaultEvent =
  | { readonly kind: 'login'; readonly leaseSeconds: number; readonly renewable: boolean }
  | { readonly kind: 'login_failed'; readonly failure: 'unavailable' | 'denied'; readonly message: string }
  | { readonly kind: 'renewed'; readonly leaseSeconds: number }
  | { readonly kind: 'renew_failed'; readonly message: string }
  | { readonly kind: 'lookup_failed'; readonly message: string }
  | { readonly kind: 'token_rejected' };

export interface VaultBackendOptions extends Omit<VaultBackendConfig, 'namespace' | 'caFile' | 'timeoutSeconds'> {
  readonly namespace?: string | undefined;
  readonly caFile?: string | undefined;
  readonly timeoutSeconds?: number;
  /** Default DEFAULT_RETRY: 3 tries, waits from 200 ms doubling to 2 s. */
  readonly retry?: Partial<RetryPolicy>;
  /** Longest Retry-After of a 429 that is waited for; default 2. */
  readonly maxRetryAfterSeconds?: number;
  /** Largest answer read; default 1 MiB (a KV v2 entry is at most 512 KiB by default). */
  readonly maxResponseBytes?: number;
  /** Time for leases, renewals and backoff; request deadlines are real time. */
  readonly clock?: Clock;
  /** In [0, 1): jitter. Default Math.random. */
  readonly random?: () => number;
  readonly onEvent?: (event: VaultEvent) => void;
}

/** Counters since start, for the gateway's metrics. */
export interface VaultStats {
  readonly logins: number;
  readonly loginFailures: number;
  readonly renewals: number;
  readonly renewalFailures: number;
  /** Requests sent again after a retryable failure. */
  readonly retries: number;
}

/** The token in use and its lease (kubernetes auth, or a file token whose lookup succeeded). */
interface Lease {
  readonly token: string;
  /** Epoch ms; Infinity for a token without expiry (a root token's ttl 0). */
  readonly expiresAt: number;
  readonly leaseMs: number;
  readonly renewable: boolean;
}

interface Answer {
  readonly status: number;
  readonly body: unknown;
}

type Mapping = Readonly<Record<string, unknown>>;

function isMapping(v: unknown): v is Mapping {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Vault's `{"errors": [...]}`, joined, for a message. */
function vaultErrors(body: unknown): string[] {
  return isMapping(body) && Array.isArray(body.errors) ? body.errors.filter((e): e is string => typeof e === 'string') : [];
}

const SEALED = /vault is sealed/i;
/** Fraction of a lease after which it is renewed (or the login redone): 60-70%, jittered. */
const RENEW_AT = [0.6, 0.7] as const;
/** A lease this close to its end is treated as over. */
const EXPIRY_MARGIN_MS = 1_000;
/** Tokens kept for redaction after they were sent: a rotated file's old and new, a login's before and after. */
const RECENT_TOKENS = 4;

export class VaultBackend implements SecretsBackend {
  readonly name = 'vault';
  readonly #address: string;
  readonly #mountPath: string;
  readonly #auth: VaultAuthConfig;
  readonly #namespace: string | undefined;
  readonly #timeoutMs: number;
  readonly #retry: RetryPolicy;
  readonly #maxRetryAfterMs: number;
  readonly #maxBytes: number;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #onEvent: (event: VaultEvent) => void;
  readonly #dispatcher: Agent;
  /** The file of the token (token auth) or of the JWT (kubernetes auth). */
  readonly #file: TokenFile;
  #lease: Lease | undefined;
  #login: Promise<Lease> | undefined;
  /** File token whose lookup-self was started: looked up once per value. */
  #lookedUp: string | undefined;
  /** The last tokens sent, for redaction (#remember). */
  readonly #sentTokens: string[] = [];
  #timer: unknown;
  #closed = false;
  readonly #stats = { logins: 0, loginFailures: 0, renewals: 0, renewalFailures: 0, retries: 0 };

  /** Throws SecretsBackendError (`unavailable`) when caFile cannot be read. */
  constructor(options: VaultBackendOptions) {
    this.#address = options.address.replace(/\/+$/, '');
    this.#mountPath = options.mount.split('/').map(encodeURIComponent).join('/');
    this.#auth = options.auth;
    this.#namespace = options.namespace;
    this.#timeoutMs = Math.round((options.timeoutSeconds ?? DEFAULT_VAULT_TIMEOUT_SECONDS) * 1000);
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#maxRetryAfterMs = (options.maxRetryAfterSeconds ?? 2) * 1000;
    this.#maxBytes = options.maxResponseBytes ?? 1024 * 1024;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#onEvent = options.onEvent ?? (() => {});
    let ca: Buffer | undefined;
    if (options.caFile !== undefined) {
      try {
        ca = readFileSync(options.caFile);
      } catch (err) {
        throw new SecretsBackendError('vault', 'unavailable', `vault: the CA bundle ${options.caFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}): fix gateway.backend.vault.caFile`);
      }
    }
    this.#dispatcher = new (undici().Agent)({ connect: { ...(ca !== undefined && { ca }), rejectUnauthorized: true }, keepAliveTimeout: 30_000 });
    this.#file =
      options.auth.method === 'token'
        ? new TokenFile(options.auth.file, 'fix gateway.backend.vault.auth.token.file')
        : new TokenFile(options.auth.tokenFile, 'mount the service-account token, or set gateway.backend.vault.auth.kubernetes.tokenFile');
  }

  stats(): VaultStats {
    return { ...this.#stats };
  }

  async read(path: string, signal?: AbortSignal): Promise<SecretValue | null> {
    // The gateway refuses such paths before asking; a backend still never builds a URL of one.
    if (checkSecretPath(path) !== undefined) return null;
    const url = `/v1/${this.#mountPath}/data/${path.split('/').map(encodeURIComponent).join('/')}`;
    const what = `read ${this.#mountPath}/data/${path}`;
    for (let attempt = 1; ; attempt++) {
      const token = await this.#token(signal);
      const answer = await this.#send('GET', url, token, undefined, what, signal);
      if (answer.status === 403) {
        this.#rejected(token);
        if (attempt === 1) continue;
        throw this.#error('denied', what, answer, 'the Vault policy of the gateway\'s token does not allow reading this path, or the token is invalid');
      }
      if (answer.status === 404) {
        if (vaultErrors(answer.body).some((e) => /no handler for route/i.test(e))) {
          throw this.#error('unavailable', what, answer, `no KV v2 mount at ${this.#mountPath}: check gateway.backend.vault.mount`);
        }
        return null;
      }
      if (answer.status !== 200) throw this.#error('unavailable', what, answer, 'unexpected status');
      return this.#secret(answer.body, what);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#lease = undefined;
    await this.#dispatcher.destroy();
  }

  #secret(body: unknown, what: string): SecretValue | null {
    const data = isMapping(body) && isMapping(body.data) ? body.data : undefined;
    if (data === undefined) throw new SecretsBackendError('vault', 'unavailable', `vault: ${what}: the answer is no KV v2 read (data.data and data.metadata expected)`);
    const metadata = isMapping(data.metadata) ? data.metadata : undefined;
    if (data.data === null || (metadata !== undefined && ((typeof metadata.deletion_time === 'string' && metadata.deletion_time !== '') || metadata.destroyed === true))) return null;
    if (!isMapping(data.data) || metadata === undefined || (typeof metadata.version !== 'number' && typeof metadata.version !== 'string')) {
      throw new SecretsBackendError('vault', 'unavailable', `vault: ${what}: the answer is no KV v2 read (data.data and data.metadata.version expected); is ${this.#mountPath} a KV version 2 mount?`);
    }
    const values: Record<string, string> = {};
    for (const [k, v] of Object.entries(data.data)) {
      Object.defineProperty(values, k, { value: typeof v === 'string' ? v : JSON.stringify(v), enumerable: true });
    }
    return { data: Object.freeze(values), version: String(metadata.version) };
  }

  // --- authentication -------------------------------------------------------------------

  /** The token to send now: the file's (token auth), or the cached or a fresh login's. */
  async #token(signal?: AbortSignal): Promise<string> {
    if (this.#closed) throw new SecretsBackendError('vault', 'unavailable', 'vault: the backend is closed');
    if (this.#auth.method === 'token') {
      const token = this.#readFile();
      if (this.#lookedUp !== token) {
        this.#lookedUp = token;
        this.#lease = undefined;
        this.#stopTimer();
        void this.#lookup(token);
      }
      return token;
    }
    const lease = this.#lease;
    if (lease !== undefined && this.#clock.now() < lease.expiresAt - EXPIRY_MARGIN_MS) return lease.token;
    return (await this.#loginShared(signal)).token;
  }

  #readFile(): string {
    try {
      return this.#file.token();
    } catch (err) {
      const message = err instanceof TokenFileError ? err.message : 'the token file cannot be read';
      throw new SecretsBackendError('vault', 'unavailable', `vault: ${message}`);
    }
  }

  /** Vault refused `token` (403): forget it, so the next try reads the file again or logs in. */
  #rejected(token: string): void {
    this.#onEvent({ kind: 'token_rejected' });
    this.#file.invalidate();
    if (this.#lease?.token === token) {
      this.#lease = undefined;
      this.#stopTimer();
    }
    if (this.#lookedUp === token) this.#lookedUp = undefined;
  }

  /** One login at a time: concurrent reads that need a token share it. */
  #loginShared(signal?: AbortSignal): Promise<Lease> {
    this.#login ??= this.#doLogin().finally(() => {
      this.#login = undefined;
    });
    if (signal === undefined) return this.#login;
    return raceAbort(this.#login, signal, () => aborted('login'));
  }

  async #doLogin(): Promise<Lease> {
    const auth = this.#auth as Extract<VaultAuthConfig, { method: 'kubernetes' }>;
    const what = `login to auth/${auth.mountPath}`;
    let jwt: string;
    try {
      jwt = this.#readFile();
    } catch (err) {
      this.#stats.loginFailures++;
      this.#onEvent({ kind: 'login_failed', failure: 'unavailable', message: (err as Error).message });
      throw err;
    }
    const url = `/v1/auth/${auth.mountPath.split('/').map(encodeURIComponent).join('/')}/login`;
    let answer: Answer;
    try {
      // The JWT is a credential as the tokens are: any later error that echoes it hides it too.
      this.#remember(jwt);
      answer = await this.#send('POST', url, undefined, { role: auth.role, jwt }, what, undefined, [jwt]);
    } catch (err) {
      this.#stats.loginFailures++;
      this.#onEvent({ kind: 'login_failed', failure: 'unavailable', message: (err as Error).message });
      throw err;
    }
    const lease = answer.status === 200 ? leaseOf(answer.body, this.#clock.now()) : undefined;
    if (lease === undefined) {
      this.#stats.loginFailures++;
      // 400 (invalid role, bad JWT) and 403 (the TokenReview refused it) are a configuration
      // to fix, not an outage; a 200 without a token is Vault misbehaving.
      const denied = answer.status === 400 || answer.status === 401 || answer.status === 403;
      if (denied) this.#file.invalidate();
      const err = this.#error(denied ? 'denied' : 'unavailable', what, answer, denied ? `check the role ${auth.role} and its bound service account` : 'no auth.client_token in the answer', [jwt]);
      this.#onEvent({ kind: 'login_failed', failure: err.failure, message: err.message });
      throw err;
    }
    if (this.#closed) throw new SecretsBackendError('vault', 'unavailable', 'vault: the backend is closed');
    this.#stats.logins++;
    this.#lease = lease;
    this.#onEvent({ kind: 'login', leaseSeconds: lease.leaseMs / 1000, renewable: lease.renewable });
    this.#schedule(lease, lease.renewable ? 'renew' : 'login');
    return lease;
  }

  /** Token auth: learns the file token's lease, to renew it if it can be renewed. */
  async #lookup(token: string): Promise<void> {
    let answer: Answer;
    try {
      answer = await this.#send('GET', '/v1/auth/token/lookup-self', token, undefined, 'lookup-self');
    } catch (err) {
      this.#onEvent({ kind: 'lookup_failed', message: (err as Error).message });
      // Vault could not answer: look the token up again at the next read.
      if (this.#lookedUp === token) this.#lookedUp = undefined;
      return;
    }
    if (this.#closed || this.#lookedUp !== token) return;
    const data = isMapping(answer.body) && isMapping(answer.body.data) ? answer.body.data : undefined;
    if (answer.status !== 200 || data === undefined || typeof data.ttl !== 'number') {
      this.#onEvent({ kind: 'lookup_failed', message: this.#error('unavailable', 'lookup-self', answer, 'no data.ttl').message });
      return;
    }
    const leaseMs = data.ttl * 1000;
    const lease: Lease = { token, expiresAt: leaseMs > 0 ? this.#clock.now() + leaseMs : Infinity, leaseMs, renewable: data.renewable === true && leaseMs > 0 };
    this.#lease = lease;
    if (lease.renewable) this.#schedule(lease, 'renew');
  }

  #schedule(lease: Lease, next: 'renew' | 'login'): void {
    this.#stopTimer();
    if (this.#closed || !Number.isFinite(lease.expiresAt)) return;
    // Token auth cannot log in: a token that cannot be renewed is left to expire, and the
    // file's owner (Vault Agent, an operator) must replace it.
    if (next === 'login' && this.#auth.method === 'token') return;
    const fraction = RENEW_AT[0] + (RENEW_AT[1] - RENEW_AT[0]) * this.#random();
    const delay = Math.max(0, Math.round(lease.leaseMs * fraction));
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      void (next === 'renew' ? this.#renew(lease) : this.#relogin());
    }, delay);
    (this.#timer as { unref?: () => void } | null)?.unref?.();
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #relogin(): Promise<void> {
    try {
      await this.#loginShared();
    } catch {
      // Reported as login_failed; the next read logs in again, with its own retries.
      this.#lease = undefined;
    }
  }

  async #renew(lease: Lease): Promise<void> {
    let answer: Answer | undefined;
    let message = '';
    try {
      answer = await this.#send('POST', '/v1/auth/token/renew-self', lease.token, {}, 'renew-self');
    } catch (err) {
      message = (err as Error).message;
    }
    if (this.#closed || this.#lease !== lease) return;
    const renewed = answer?.status === 200 ? leaseOf(answer.body, this.#clock.now()) : undefined;
    if (renewed === undefined || renewed.token !== lease.token) {
      this.#stats.renewalFailures++;
      this.#onEvent({ kind: 'renew_failed', message: message || (answer === undefined ? 'no answer' : this.#error('unavailable', 'renew-self', answer, 'not renewed').message) });
      if (this.#auth.method === 'kubernetes') {
        this.#lease = undefined;
        await this.#relogin();
      }
      return;
    }
    this.#stats.renewals++;
    this.#lease = renewed;
    this.#onEvent({ kind: 'renewed', leaseSeconds: renewed.leaseMs / 1000 });
    // A lease shorter than the last one means the token's max TTL is near: renewing again
    // would only shorten it further, so the next step is a fresh login.
    this.#schedule(renewed, renewed.renewable && renewed.leaseMs >= lease.leaseMs ? 'renew' : 'login');
  }

  // --- HTTP -----------------------------------------------------------------------------

  /**
   * One request, with retries: returns the first answer that is not retryable (any status
   * but 5xx and 429); throws `unavailable` when the tries run out, when Vault is sealed, or
   * when `signal` aborts.
   */
  async #send(method: 'GET' | 'POST', path: string, token: string | undefined, body: unknown, what: string, signal?: AbortSignal, secrets: readonly string[] = []): Promise<Answer> {
    if (token !== undefined) this.#remember(token);
    let last = '';
    for (let attempt = 1; attempt <= this.#retry.attempts; attempt++) {
      if (attempt > 1) this.#stats.retries++;
      let waitMs: number | undefined;
      try {
        const answer = await this.#once(method, path, token, body, what, signal);
        if (answer.status < 500 && answer.status !== 429) return answer;
        if (answer.status === 503 && vaultErrors(answer.body).some((e) => SEALED.test(e))) {
          throw new SecretsBackendError('vault', 'unavailable', `vault: ${what}: HTTP 503 (Vault is sealed)`);
        }
        last = this.#error('unavailable', what, answer, '', secrets).message;
        if (answer.status === 429) {
          // No Retry-After: the usual backoff. One longer than we may wait: give up now,
          // rather than hold the caller for it or hammer a server that asked for quiet.
          waitMs = retryAfterMs(answer);
          if (waitMs !== undefined && waitMs > this.#maxRetryAfterMs) throw new SecretsBackendError('vault', 'unavailable', `${last} (rate limited; retry later)`);
        }
      } catch (err) {
        if (err instanceof SecretsBackendError) throw err;
        if (signal?.aborted) throw aborted(what);
        last = `vault: ${what}: ${networkCause(err)}`;
      }
      if (attempt === this.#retry.attempts) break;
      try {
        await sleep(this.#clock, waitMs ?? backoffMs(this.#retry, attempt, this.#random), signal);
      } catch {
        throw aborted(what);
      }
    }
    throw new SecretsBackendError('vault', 'unavailable', `${last} (after ${this.#retry.attempts} tries)`);
  }

  /** One HTTP exchange within the deadline; the body read whole, up to maxResponseBytes. */
  async #once(method: 'GET' | 'POST', path: string, token: string | undefined, body: unknown, what: string, signal?: AbortSignal): Promise<Answer & { headers: Record<string, unknown> }> {
    const deadline = AbortSignal.timeout(this.#timeoutMs);
    const combined = signal === undefined ? deadline : AbortSignal.any([signal, deadline]);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token !== undefined) headers['x-vault-token'] = token;
    if (this.#namespace !== undefined) headers['x-vault-namespace'] = this.#namespace;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Dispatcher.ResponseData;
    try {
      res = await undici().request(`${this.#address}${path}`, {
        method,
        dispatcher: this.#dispatcher,
        headers,
        ...(body !== undefined && { body: JSON.stringify(body) }),
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
        signal: combined,
      });
    } catch (err) {
      throw deadline.aborted && !signal?.aborted ? new TimeoutCause() : err;
    }
    const parts: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > this.#maxBytes) throw new SecretsBackendError('vault', 'unavailable', `vault: ${what}: the answer is larger than ${this.#maxBytes} bytes`);
        parts.push(chunk);
      }
    } catch (err) {
      res.body.destroy();
      if (err instanceof SecretsBackendError) throw err;
      throw deadline.aborted && !signal?.aborted ? new TimeoutCause() : err;
    }
    let parsed: unknown;
    try {
      parsed = parts.length === 0 ? undefined : JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(parts)));
    } catch {
      if (res.statusCode === 200) throw new SecretsBackendError('vault', 'unavailable', `vault: ${what}: HTTP 200 with a body that is not JSON`);
      parsed = undefined;
    }
    return { status: res.statusCode, body: parsed, headers: res.headers };
  }

  /**
   * Keeps `token` (or the login's JWT) among the last RECENT_TOKENS credentials this backend sent. A token Vault refused is
   * dropped from the backend's state (#rejected) before its error is made, and the error may
   * echo it: the redaction must not depend on what the backend still holds.
   */
  #remember(token: string): void {
    if (this.#sentTokens.includes(token)) return;
    this.#sentTokens.push(token);
    if (this.#sentTokens.length > RECENT_TOKENS) this.#sentTokens.shift();
  }

  #error(failure: 'unavailable' | 'denied', what: string, answer: Answer, fix: string, extra: readonly string[] = []): SecretsBackendError {
    // Every token this backend sent lately or holds, whichever the request carried: a broken
    // or hostile server could echo any of them back, whole or in part.
    const hidden = [...extra, ...this.#sentTokens, ...(this.#lease ? [this.#lease.token] : []), ...(this.#lookedUp ? [this.#lookedUp] : [])];
    const detail = vaultErrors(answer.body).map((e) => safeServerText(e, hidden)).filter((e) => e !== '').join('; ');
    return new SecretsBackendError('vault', failure, `vault: ${what}: HTTP ${answer.status}${detail === '' ? '' : ` (${safeServerText(detail, hidden)})`}${fix === '' ? '' : `: ${fix}`}`);
  }
}

/** A login's or renewal's `auth` block as a lease; undefined when it holds no token. */
function leaseOf(body: unknown, now: number): Lease | undefined {
  const auth = isMapping(body) && isMapping(body.auth) ? body.auth : undefined;
  if (auth === undefined || typeof auth.client_token !== 'string' || auth.client_token === '' || /[\s\0-\x1f\x7f]/.test(auth.client_token)) return undefined;
  const seconds = typeof auth.lease_duration === 'number' && auth.lease_duration > 0 ? auth.lease_duration : 0;
  return {
    token: auth.client_token,
    expiresAt: seconds > 0 ? now + seconds * 1000 : Infinity,
    leaseMs: seconds * 1000,
    renewable: auth.renewable === true && seconds > 0,
  };
}

function retryAfterMs(answer: Answer & { headers?: Record<string, unknown> }): number | undefined {
  const value = answer.headers?.['retry-after'];
  const text = Array.isArray(value) ? value[0] : value;
  if (typeof text !== 'string' || !/^\d{1,6}$/.test(text.trim())) return undefined;
  return Number(text.trim()) * 1000;
}

/** A request that ran past its deadline. */
class TimeoutCause extends Error {
  override get name(): string {
    return 'TimeoutCause';
  }
}

/** A network failure in words that carry no address beyond what an operator configured. */
function networkCause(err: unknown): string {
  if (err instanceof TimeoutCause) return 'no answer within the timeout';
  const e = err as { code?: string; name?: string };
  return safeServerText(e.code ?? e.name ?? 'network error');
}

function aborted(what: string): SecretsBackendError {
  return new SecretsBackendError('vault', 'unavailable', `vault: ${what}: abandoned (the request was aborted)`);
}
