/**
 * The `kubernetes` backend: secrets from Kubernetes Secrets of ONE namespace, read with a
 * `GET /api/v1/namespaces/{namespace}/secrets/{name}` per read (the cache in front keeps the
 * API server's load at one read per path per TTL).
 *
 * Why a GET per read rather than a watch into a local store: a watch (list + watch of
 * Secrets) would hold every Secret of the namespace in the gateway's memory, including the
 * ones no policy will ever release (service-account tokens, Helm releases, TLS keys), and it
 * needs `list` and `watch` on all Secrets of the namespace; a GET needs only `get`, which RBAC
 * can narrow to named Secrets (`resourceNames`). Reads stay fresh to within the cache's TTL.
 *
 * Path -> Secret: the secret path's segments joined with `.`: `payments/db` is the Secret
 * `payments.db`, `db` is `db`. The namespace is the configured one, never part of the path,
 * so a caller can only ever reach that namespace, and the policy's globs see the same paths
 * whichever backend serves them. The mapping is one-to-one: a segment must be a DNS label
 * (`a-z 0-9 -`, alphanumeric at both ends, at most 63), so it holds no `.`, and the name is
 * at most 253 characters; any other path names no Secret (null: the gateway answers 404).
 * A Secret's `data` values are base64-decoded and must be UTF-8 text; its version is its
 * `metadata.resourceVersion`. Secrets of type `kubernetes.io/service-account-token` are never
 * served (null): they are the cluster's credentials, not an application's secret.
 *
 * Failures: 404 -> null; 403 -> `denied` (RBAC does not let the gateway read it); 401 ->
 * the token is re-read (a kubelet rotation) and the read tried once more, then `denied`;
 * 5xx, 429, network errors and timeouts are retried with capped exponential backoff and
 * jitter, then `unavailable`.
 */
import { ApiClient, ApiError, loadClusterAccess, systemClock, type ClusterAccess, type ClusterAccessOptions, type Clock, type ResourcePath } from '../../kubernetes/index.js';
import { SecretsBackendError, type SecretsBackend, type SecretValue } from '../backend.js';
import type { KubernetesBackendConfig } from '../config.js';
import { DEFAULT_RETRY, backoffMs, sleep, type RetryPolicy } from '../retry.js';

export interface KubernetesBackendOptions {
  /** Where the API server is and how to authenticate (loadClusterAccess). Closed with the backend. */
  readonly access: ClusterAccess;
  readonly namespace: string;
  /** Longest wait for an answer; default 10. */
  readonly timeoutSeconds?: number;
  /** Largest Secret read; default 2 MiB (etcd holds at most about 1.5 MiB per object). */
  readonly maxResponseBytes?: number;
  readonly retry?: Partial<RetryPolicy>;
  readonly clock?: Clock;
  readonly random?: () => number;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const MAX_SECRET_NAME = 253;
const SERVICE_ACCOUNT_TOKEN = 'kubernetes.io/service-account-token';

/** The Secret name that holds `path` (`payments/db` -> `payments.db`), or undefined when none can. */
export function secretNameOf(path: string): string | undefined {
  if (path.length === 0 || path.length > MAX_SECRET_NAME) return undefined;
  const segments = path.split('/');
  if (!segments.every((s) => DNS_LABEL.test(s))) return undefined;
  return segments.join('.');
}

type Mapping = Readonly<Record<string, unknown>>;

function isMapping(v: unknown): v is Mapping {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class KubernetesBackend implements SecretsBackend {
  readonly name = 'kubernetes';
  readonly #access: ClusterAccess;
  readonly #client: ApiClient;
  readonly #resource: ResourcePath;
  readonly #maxBytes: number;
  readonly #retry: RetryPolicy;
  readonly #clock: Clock;
  readonly #random: () => number;

  constructor(options: KubernetesBackendOptions) {
    const timeoutMs = Math.round((options.timeoutSeconds ?? 10) * 1000);
    this.#access = options.access;
    this.#client = new ApiClient(options.access, { headersTimeoutMs: timeoutMs, listBodyTimeoutMs: timeoutMs });
    this.#resource = { group: '', version: 'v1', resource: 'secrets', namespace: options.namespace };
    this.#maxBytes = options.maxResponseBytes ?? 2 * 1024 * 1024;
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
  }

  /**
   * A backend for `gateway.backend.kubernetes`: cluster access from its kubeconfig, else
   * in-cluster, else $KUBECONFIG. Throws ClusterConfigError naming the file or variable to fix.
   * `cluster`: loadClusterAccess's other options (the setting its messages name, a test's
   * fake service account).
   */
  static async open(
    config: KubernetesBackendConfig,
    options: Omit<KubernetesBackendOptions, 'access' | 'namespace'> = {},
    cluster: Omit<ClusterAccessOptions, 'kubeconfig'> = {},
  ): Promise<KubernetesBackend> {
    const access = await loadClusterAccess({ ...cluster, kubeconfig: config.kubeconfig });
    return new KubernetesBackend({ ...options, access, namespace: config.namespace });
  }

  get namespace(): string {
    return this.#resource.namespace!;
  }

  async read(path: string, signal?: AbortSignal): Promise<SecretValue | null> {
    const name = secretNameOf(path);
    if (name === undefined) return null;
    let unauthorized = false;
    for (let attempt = 1; ; attempt++) {
      try {
        return this.#secret(await this.#client.get(this.#resource, name, signal, this.#maxBytes), name);
      } catch (err) {
        if (signal?.aborted) throw new SecretsBackendError('kubernetes', 'unavailable', `kubernetes: get secret ${name}: abandoned (the request was aborted)`);
        if (err instanceof SecretsBackendError) throw err;
        const e = err instanceof ApiError ? err : new ApiError('network', String((err as { code?: string }).code ?? 'error'));
        if (e.reason === 'not_found') return null;
        if (e.reason === 'forbidden') throw new SecretsBackendError('kubernetes', 'denied', `kubernetes: ${e.message}: grant the gateway's service account get on secrets in namespace ${this.namespace}`);
        if (e.reason === 'unauthorized') {
          // ApiClient has told the access to re-read its token; one more try with it.
          if (!unauthorized) {
            unauthorized = true;
            continue;
          }
          throw new SecretsBackendError('kubernetes', 'denied', `kubernetes: ${e.message}: the API server refuses the gateway's credentials`);
        }
        const retryable = e.reason === 'server_error' || e.reason === 'network' || e.reason === 'timeout';
        if (!retryable || attempt >= this.#retry.attempts) {
          throw new SecretsBackendError('kubernetes', 'unavailable', `kubernetes: ${e.message}${retryable ? ` (after ${attempt} tries)` : ''}`);
        }
        try {
          await sleep(this.#clock, backoffMs(this.#retry, attempt, this.#random), signal);
        } catch {
          throw new SecretsBackendError('kubernetes', 'unavailable', `kubernetes: get secret ${name}: abandoned (the request was aborted)`);
        }
      }
    }
  }

  async close(): Promise<void> {
    await this.#access.close();
  }

  #secret(object: Mapping, name: string): SecretValue | null {
    const what = `kubernetes: secret ${name} in namespace ${this.namespace}`;
    if (object.type === SERVICE_ACCOUNT_TOKEN) return null;
    const metadata = object.metadata as Mapping;
    if (typeof metadata.resourceVersion !== 'string' || metadata.resourceVersion === '') throw new SecretsBackendError('kubernetes', 'unavailable', `${what}: no metadata.resourceVersion`);
    const data = object.data ?? {};
    if (!isMapping(data)) throw new SecretsBackendError('kubernetes', 'unavailable', `${what}: data is no mapping`);
    const values: Record<string, string> = {};
    const decoder = new TextDecoder('utf-8', { fatal: true });
    for (const [key, encoded] of Object.entries(data)) {
      // The key is safe to name (a Secret's keys are file names); the value never is.
      if (typeof encoded !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(encoded) || encoded.length % 4 !== 0) {
        throw new SecretsBackendError('kubernetes', 'unavailable', `${what}: data.${key.slice(0, 64)} is not base64`);
      }
      let text: string;
      try {
        text = decoder.decode(Buffer.from(encoded, 'base64'));
      } catch {
        throw new SecretsBackendError('kubernetes', 'unavailable', `${what}: data.${key.slice(0, 64)} is not UTF-8 text; the gateway serves text values only`);
      }
      Object.defineProperty(values, key, { value: text, enumerable: true });
    }
    return { data: Object.freeze(values), version: metadata.resourceVersion };
  }
}
