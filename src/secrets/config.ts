/**
 * The configuration shapes of the secrets backends and the cache, as the gateway's YAML holds
 * them under `gateway.backend.vault`, `gateway.backend.kubernetes` and `gateway.cache`, and
 * one parse function per shape that reports every wrong key with its path and its fix.
 *
 * The functions take the caller's reader (src/cli/config's ConfigReader fits ConfigChecker),
 * so the gateway's whole file is reported in one go and every accepted key is recorded for
 * the documentation check; secrets/ does not import cli/ (dependencies point cli -> secrets).
 */
import { join } from 'node:path';
import { SERVICE_ACCOUNT_DIR } from '../kubernetes/index.js';

/** What the parse functions need of a reader: the methods of src/cli/config's ConfigReader. */
export interface ConfigChecker {
  /** Every problem so far, `{path, message}`. */
  readonly problems: readonly { readonly path: string; readonly message: string }[];
  problem(path: string, message: string): void;
  required(value: unknown, path: string, what: string): void;
  object(value: unknown, path: string, known: readonly string[]): Record<string, unknown> | undefined;
  string(value: unknown, path: string, fix: string): string | undefined;
  number(value: unknown, path: string, min: number, max: number): number | undefined;
  integer(value: unknown, path: string, min: number, max: number): number | undefined;
}

/** `gateway.backend.vault`. */
export interface VaultBackendConfig {
  /** `https://vault.vault:8200`, no trailing slash (a path prefix, behind a proxy, is kept). */
  readonly address: string;
  /** The KV v2 mount, `secret` or `kv/team`: no leading or trailing slash. */
  readonly mount: string;
  readonly auth: VaultAuthConfig;
  /** Vault Enterprise / OpenBao namespace, sent as X-Vault-Namespace; absent: none. */
  readonly namespace: string | undefined;
  /** PEM CA bundle that signs Vault's certificate (https only); absent: the system's CAs. */
  readonly caFile: string | undefined;
  /** Longest one request may take, headers and body; default 5. */
  readonly timeoutSeconds: number;
}

export type VaultAuthConfig =
  | { readonly method: 'token'; readonly file: string }
  | {
      readonly method: 'kubernetes';
      readonly role: string;
      /** The auth method's mount, default `kubernetes` (`POST /v1/auth/{mountPath}/login`). */
      readonly mountPath: string;
      /** The gateway's service-account token (the JWT of the login); default the kubelet's mount. */
      readonly tokenFile: string;
    };

/** `gateway.backend.kubernetes`. */
export interface KubernetesBackendConfig {
  /** The one namespace whose Secrets the backend reads. */
  readonly namespace: string;
  /** Absent: in-cluster configuration, else $KUBECONFIG (as registry.kubernetes.kubeconfig). */
  readonly kubeconfig: string | undefined;
}

/** `gateway.cache`. */
export interface CacheConfig {
  /** How long a value is served without asking the backend; default 30. */
  readonly ttlSeconds: number;
  /** How long past its TTL a value is still served while the backend is unavailable; default 600. */
  readonly maxStaleSeconds: number;
  /** Secrets held at most (least recently used first out); default 10000. */
  readonly maxEntries: number;
  /** How long a "no such secret" is remembered; 0: never; default 5. */
  readonly notFoundTtlSeconds: number;
  /** "No such secret" answers held at most, apart from the values; default 1000. */
  readonly maxNotFoundEntries: number;
  /** Backend reads in flight at most; default 16. */
  readonly maxConcurrent: number;
  /** Reads waiting for a slot at most; beyond it a read fails as `unavailable`; default 256. */
  readonly maxQueued: number;
}

export const DEFAULT_VAULT_TIMEOUT_SECONDS = 5;
export const DEFAULT_VAULT_KUBERNETES_MOUNT = 'kubernetes';
export const DEFAULT_SERVICE_ACCOUNT_TOKEN = join(SERVICE_ACCOUNT_DIR, 'token');

export const DEFAULT_CACHE: CacheConfig = {
  ttlSeconds: 30,
  maxStaleSeconds: 600,
  maxEntries: 10_000,
  notFoundTtlSeconds: 5,
  maxNotFoundEntries: 1_000,
  maxConcurrent: 16,
  maxQueued: 256,
};

const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** A Vault mount or namespace: segments of letters, digits, `_ - .`, not `.` or `..`. */
const VAULT_PATH = /^(?!\.\.?(\/|$))[A-Za-z0-9_.-]+(\/(?!\.\.?(\/|$))[A-Za-z0-9_.-]+)*$/;
const VAULT_ROLE = /^[A-Za-z0-9_.@-]+$/;

function key(path: string, name: string): string {
  return path === '' ? name : `${path}.${name}`;
}

/** Reads `gateway.backend.vault` (at `path`); undefined when a problem was reported. */
export function parseVaultBackendConfig(value: unknown, path: string, r: ConfigChecker): VaultBackendConfig | undefined {
  const before = r.problems.length;
  const v = r.object(value, path, ['address', 'mount', 'auth', 'namespace', 'caFile', 'timeoutSeconds']);
  if (v === undefined) {
    r.required(value, path, 'the Vault server: {address, mount, auth}');
    return undefined;
  }
  const address = vaultAddress(v.address, key(path, 'address'), r);
  r.required(v.address, key(path, 'address'), 'the Vault server URL, e.g. https://vault.vault:8200');
  const mount = r.string(v.mount, key(path, 'mount'), 'the KV v2 mount, e.g. secret');
  r.required(v.mount, key(path, 'mount'), 'the KV v2 mount, e.g. secret');
  if (mount !== undefined && !VAULT_PATH.test(mount)) {
    r.problem(key(path, 'mount'), `must be a Vault mount path (letters, digits, _ - . and inner slashes, e.g. secret or kv/team); got ${JSON.stringify(mount.slice(0, 60))}`);
  }
  const auth = vaultAuth(v.auth, key(path, 'auth'), r);
  const namespace = r.string(v.namespace, key(path, 'namespace'), 'the Vault namespace, e.g. team-a, or remove the key');
  if (namespace !== undefined && !VAULT_PATH.test(namespace)) {
    r.problem(key(path, 'namespace'), `must be a Vault namespace path (letters, digits, _ - . and inner slashes); got ${JSON.stringify(namespace.slice(0, 60))}`);
  }
  const caFile = r.string(v.caFile, key(path, 'caFile'), 'the PEM CA bundle that signs the Vault certificate');
  if (caFile !== undefined && address !== undefined && address.startsWith('http:')) {
    r.problem(key(path, 'caFile'), 'applies to an https address only: make address https://..., or remove caFile');
  }
  const timeoutSeconds = r.number(v.timeoutSeconds, key(path, 'timeoutSeconds'), 0.1, 300) ?? DEFAULT_VAULT_TIMEOUT_SECONDS;
  if (r.problems.length !== before || address === undefined || mount === undefined || auth === undefined) return undefined;
  return { address, mount, auth, namespace, caFile, timeoutSeconds };
}

function vaultAddress(value: unknown, path: string, r: ConfigChecker): string | undefined {
  const text = r.string(value, path, 'the Vault server URL, e.g. https://vault.vault:8200');
  if (text === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    r.problem(path, `must be an http(s) URL such as https://vault.vault:8200; got ${JSON.stringify(text.slice(0, 60))}`);
    return undefined;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    r.problem(path, `must be an http(s) URL such as https://vault.vault:8200; got the scheme ${url.protocol}`);
    return undefined;
  }
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    // Credentials in a URL end up in logs; Vault takes none there anyway.
    r.problem(path, 'must hold no user, password, query or fragment: write scheme://host:port[/prefix] and put credentials under auth');
    return undefined;
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

function vaultAuth(value: unknown, path: string, r: ConfigChecker): VaultAuthConfig | undefined {
  const a = r.object(value, path, ['token', 'kubernetes']);
  if (a === undefined) {
    r.required(value, path, 'how the gateway logs in to Vault: {token: {file}} or {kubernetes: {role}}');
    return undefined;
  }
  const given = ['token', 'kubernetes'].filter((k) => a[k] !== undefined && a[k] !== null);
  if (given.length !== 1) {
    r.problem(path, given.length === 0 ? 'needs one method: token: {file: F} or kubernetes: {role: R}' : 'has both token and kubernetes: keep one of them');
    return undefined;
  }
  if (given[0] === 'token') {
    const t = r.object(a.token, key(path, 'token'), ['file']);
    const file = r.string(t?.file, key(path, 'token.file'), 'the file holding the Vault token (re-read when it changes)');
    if (t !== undefined) r.required(t.file, key(path, 'token.file'), 'the file holding the Vault token');
    return file === undefined ? undefined : { method: 'token', file };
  }
  const k = r.object(a.kubernetes, key(path, 'kubernetes'), ['role', 'mountPath', 'tokenFile']);
  if (k === undefined) return undefined;
  const role = r.string(k.role, key(path, 'kubernetes.role'), 'the Vault role bound to the gateway\'s service account');
  r.required(k.role, key(path, 'kubernetes.role'), 'the Vault role bound to the gateway\'s service account');
  if (role !== undefined && !VAULT_ROLE.test(role)) r.problem(key(path, 'kubernetes.role'), `must be a Vault role name (letters, digits, _ . @ -); got ${JSON.stringify(role.slice(0, 60))}`);
  const mountPath = r.string(k.mountPath, key(path, 'kubernetes.mountPath'), 'the mount of Vault\'s kubernetes auth method, e.g. kubernetes') ?? DEFAULT_VAULT_KUBERNETES_MOUNT;
  if (!VAULT_PATH.test(mountPath)) r.problem(key(path, 'kubernetes.mountPath'), `must be a Vault mount path such as kubernetes or k8s/prod; got ${JSON.stringify(mountPath.slice(0, 60))}`);
  const tokenFile = r.string(k.tokenFile, key(path, 'kubernetes.tokenFile'), 'the service-account token file') ?? DEFAULT_SERVICE_ACCOUNT_TOKEN;
  return role === undefined ? undefined : { method: 'kubernetes', role, mountPath, tokenFile };
}

/** Reads `gateway.backend.kubernetes` (at `path`). */
export function parseKubernetesBackendConfig(value: unknown, path: string, r: ConfigChecker): KubernetesBackendConfig | undefined {
  const k = r.object(value, path, ['namespace', 'kubeconfig']);
  if (k === undefined) {
    r.required(value, path, 'the namespace whose Secrets are served: {namespace: N}');
    return undefined;
  }
  const namespace = r.string(k.namespace, key(path, 'namespace'), 'the namespace whose Secrets the gateway serves');
  r.required(k.namespace, key(path, 'namespace'), 'the namespace whose Secrets the gateway serves');
  if (namespace !== undefined && (!NAMESPACE.test(namespace) || namespace.length > 63)) {
    r.problem(key(path, 'namespace'), `must be a Kubernetes namespace name (a DNS label: a-z 0-9 -, at most 63); got ${JSON.stringify(namespace.slice(0, 70))}`);
    return undefined;
  }
  const kubeconfig = r.string(k.kubeconfig, key(path, 'kubeconfig'), 'a kubeconfig file, or remove the key to use the in-cluster service account');
  return namespace === undefined ? undefined : { namespace, kubeconfig };
}

/** Reads `gateway.cache` (at `path`); absent keys take DEFAULT_CACHE's values. */
export function parseCacheConfig(value: unknown, path: string, r: ConfigChecker): CacheConfig {
  const c = r.object(value, path, ['ttlSeconds', 'maxStaleSeconds', 'maxEntries', 'notFoundTtlSeconds', 'maxNotFoundEntries', 'maxConcurrent', 'maxQueued']) ?? {};
  const d = DEFAULT_CACHE;
  return {
    ttlSeconds: r.number(c.ttlSeconds, key(path, 'ttlSeconds'), 0, 86_400) ?? d.ttlSeconds,
    maxStaleSeconds: r.number(c.maxStaleSeconds, key(path, 'maxStaleSeconds'), 0, 7 * 86_400) ?? d.maxStaleSeconds,
    maxEntries: r.integer(c.maxEntries, key(path, 'maxEntries'), 1, 1_000_000) ?? d.maxEntries,
    notFoundTtlSeconds: r.number(c.notFoundTtlSeconds, key(path, 'notFoundTtlSeconds'), 0, 3_600) ?? d.notFoundTtlSeconds,
    maxNotFoundEntries: r.integer(c.maxNotFoundEntries, key(path, 'maxNotFoundEntries'), 1, 1_000_000) ?? d.maxNotFoundEntries,
    maxConcurrent: r.integer(c.maxConcurrent, key(path, 'maxConcurrent'), 1, 1_024) ?? d.maxConcurrent,
    maxQueued: r.integer(c.maxQueued, key(path, 'maxQueued'), 0, 100_000) ?? d.maxQueued,
  };
}
