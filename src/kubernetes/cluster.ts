/**
 * Where the API server is and how to talk to it: the server URL, TLS settings and a bearer
 * token (or whatever the kubeconfig's user says), from a kubeconfig file or from the pod's
 * service account.
 *
 * `@kubernetes/client-node`'s KubeConfig reads kubeconfig files (contexts, clusters, users,
 * CA/cert/key files or data, exec and OIDC credential plugins) and the in-cluster environment;
 * its HTTP client is not used (see reflector.ts). In-cluster, the token is a TokenFile, re-read
 * when the kubelet rotates it. Errors name the file and the fix, never a token.
 *
 * A kubeconfig is input we do not control, and client-node trusts it: it reads every file it
 * names (CA, client certificate and key, `token-file`, an auth-provider's `tokenFile`) with
 * readFileSync, which blocks the process for ever on a FIFO and fills memory from /dev/zero,
 * and it runs an exec credential plugin with no time limit, keeping all it writes (a plugin
 * that writes without end crashes the process). So every file the kubeconfig's current
 * context names is read here, through src/files (regular files only, bounded), and handed to
 * client-node as data; an auth-provider's token file is a TokenFile; and exec plugins run
 * with a deadline and a cap on their output. In-cluster, the CA and the token are read the
 * same way, and client-node's loadFromCluster (which also reads the namespace file with
 * readFileSync) is not used.
 *
 * client-node and undici are loaded when cluster access is, not with this module: client-node
 * is ~70 MiB of a process's resident memory (a third of it heap that every full collection
 * walks), undici ~5 MiB of heap (it loads node's own copy of undici too), and every process
 * that imports this folder for a clock or an error class, a proxy with a file registry among
 * them, would carry them (bench/README.md, load).
 */
import type { RequestOptions } from 'node:https';
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIPv6 } from 'node:net';
import { dirname, isAbsolute, join } from 'node:path';
import type { KubeConfig, User } from '@kubernetes/client-node';
import type { Agent } from 'undici';
import { parse as parseYaml } from 'yaml';
import { FileReadError, readRegularFileSync } from '../files/index.js';
import { TokenFile, TokenFileError } from './token-file.js';

/** The service account's files, as the kubelet mounts them. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface ClusterAccessOptions {
  /** A kubeconfig file. Absent: in-cluster when KUBERNETES_SERVICE_HOST is set, else $KUBECONFIG. */
  readonly kubeconfig?: string | undefined;
  /** Prefix of SERVICE_ACCOUNT_DIR (tests put a fake service account under a temporary root). */
  readonly inClusterRoot?: string;
  /** Default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** The configuration key messages tell the operator to set; default `registry.kubernetes.kubeconfig`. */
  readonly kubeconfigSetting?: string;
  /** How long an exec credential plugin may run; default 30 s (tests shorten it). */
  readonly execTimeoutMs?: number;
}

export class ClusterConfigError extends Error {
  override get name(): string {
    return 'ClusterConfigError';
  }
}

type Credentials = () => Promise<Record<string, string>>;

const requireHere = createRequire(import.meta.url);

/** undici, loaded on first use (see the top of this file); CommonJS, so synchronously. */
export function loadUndici(): typeof import('undici') {
  return requireHere('undici') as typeof import('undici');
}

/** One API server, its TLS settings and its credentials. */
export class ClusterAccess {
  /** `https://10.96.0.1:443`, no trailing slash. */
  readonly server: string;
  /** For logs: `in-cluster` or `kubeconfig FILE (context NAME)`. */
  readonly description: string;
  readonly dispatcher: Agent;
  readonly #credentials: Credentials;
  readonly #token: TokenFile | undefined;

  constructor(server: string, description: string, tls: TlsSettings, credentials: Credentials, token?: TokenFile) {
    this.server = server.replace(/\/+$/, '');
    this.description = description;
    this.#credentials = credentials;
    this.#token = token;
    this.dispatcher = new (loadUndici().Agent)({
      connect: {
        ...(tls.ca !== undefined && { ca: tls.ca }),
        ...(tls.cert !== undefined && { cert: tls.cert }),
        ...(tls.key !== undefined && { key: tls.key }),
        ...(tls.servername !== undefined && { servername: tls.servername }),
        rejectUnauthorized: tls.rejectUnauthorized,
      },
      // A watch is one long response; the reflector's watchdog bounds it, not undici.
      bodyTimeout: 0,
      keepAliveTimeout: 30_000,
    });
  }

  /** Request headers that authenticate us (Authorization), fetched fresh for each request. */
  headers(): Promise<Record<string, string>> {
    return this.#credentials();
  }

  /** The server answered 401: re-read the token file before the next request. */
  credentialsRejected(): void {
    this.#token?.invalidate();
  }

  /** The token file, when credentials come from one (in-cluster). */
  get tokenFile(): TokenFile | undefined {
    return this.#token;
  }

  async close(): Promise<void> {
    await this.dispatcher.destroy();
  }
}

interface TlsSettings {
  readonly ca?: Buffer | string | undefined;
  readonly cert?: Buffer | string | undefined;
  readonly key?: Buffer | string | undefined;
  readonly servername?: string | undefined;
  readonly rejectUnauthorized: boolean;
}

/**
 * Loads the access the options ask for. Throws ClusterConfigError when there is none or it is
 * unusable; the message says which file or variable to fix.
 */
export async function loadClusterAccess(options: ClusterAccessOptions = {}): Promise<ClusterAccess> {
  const env = options.env ?? process.env;
  const setting = options.kubeconfigSetting ?? 'registry.kubernetes.kubeconfig';
  const execTimeoutMs = options.execTimeoutMs ?? EXEC_TIMEOUT_MS;
  if (options.kubeconfig !== undefined) return fromKubeconfig(options.kubeconfig, `kubeconfig ${options.kubeconfig}`, execTimeoutMs);
  if (env.KUBERNETES_SERVICE_HOST !== undefined && env.KUBERNETES_SERVICE_HOST !== '') return inCluster(options.inClusterRoot ?? '', env, setting);
  const fromEnv = env.KUBECONFIG;
  if (fromEnv !== undefined && fromEnv !== '') {
    // KUBECONFIG may list several files; the first that exists wins, as kubectl merges them
    // with the first file's current-context winning.
    const file = fromEnv.split(':').find((f) => f !== '' && existsSync(f));
    if (file === undefined) throw new ClusterConfigError(`$KUBECONFIG names no file that exists (${fromEnv}): fix it, or set ${setting}`);
    return fromKubeconfig(file, `kubeconfig ${file} (from $KUBECONFIG)`, execTimeoutMs);
  }
  throw new ClusterConfigError(
    `no Kubernetes API server configured: not in a cluster (KUBERNETES_SERVICE_HOST is unset) and no kubeconfig; set ${setting} or $KUBECONFIG`,
  );
}

/** A kubeconfig is a few KiB; one with embedded certificates for many clusters, a few hundred. */
const MAX_KUBECONFIG_BYTES = 4 * 1024 * 1024;

/** client-node's KubeConfig class, loaded on first use (see the top of this file). */
async function kubeConfigClass(): Promise<typeof KubeConfig> {
  return (await import('@kubernetes/client-node')).KubeConfig;
}

/** A CA bundle, client certificate or key: a few KiB; a bundle of many CAs, a few hundred. */
const MAX_CREDENTIAL_FILE_BYTES = 1024 * 1024;
/** An exec credential plugin gets this long to answer (kubectl waits for ever; we cannot). */
const EXEC_TIMEOUT_MS = 30_000;
/** ...and may write this much: an ExecCredential is a few KiB, with a client certificate. */
const MAX_EXEC_OUTPUT = 1024 * 1024;

async function fromKubeconfig(file: string, description: string, execTimeoutMs: number): Promise<ClusterAccess> {
  const kc = new (await kubeConfigClass())();
  // KubeConfig.loadFromFile reads with readFileSync, which blocks for ever on a FIFO and never
  // ends on /dev/zero: read it through src/files, then resolve its relative paths as it would.
  let bytes: Buffer;
  try {
    bytes = readRegularFileSync(file, { maxBytes: MAX_KUBECONFIG_BYTES });
  } catch (err) {
    if (err instanceof FileReadError) throw new ClusterConfigError(`the kubeconfig ${err.explainArgument()}`);
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(bytes.toString('utf8'));
  } catch {
    // The parser's message can quote the file, and a kubeconfig holds credentials: say where only.
    throw new ClusterConfigError(`the kubeconfig ${file} is not a valid kubeconfig (YAML with clusters, users and contexts)`);
  }
  const inlined = inlineFiles(parsed, file);
  try {
    // JSON is YAML: client-node parses what we hand it, with no file left for it to read.
    kc.loadFromString(JSON.stringify(inlined));
    kc.makePathsAbsolute(dirname(file));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ClusterConfigError(
      code !== undefined ? `the kubeconfig ${file} cannot be read (${code})` : `the kubeconfig ${file} is not a valid kubeconfig (YAML with clusters, users and contexts)`,
    );
  }
  const exec: ExecReport = { failure: undefined, timeoutMs: execTimeoutMs };
  boundExecPlugins(kc, exec);
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new ClusterConfigError(`the kubeconfig ${file} has no current context with a cluster: set current-context`);
  let server: URL;
  try {
    server = new URL(cluster.server);
  } catch {
    throw new ClusterConfigError(`the kubeconfig ${file}: cluster ${cluster.name} has no valid server URL`);
  }
  if (server.protocol !== 'https:' && server.protocol !== 'http:') throw new ClusterConfigError(`the kubeconfig ${file}: cluster ${cluster.name}'s server must be an http(s) URL`);
  // client-node refuses to compute options for an http:// server (kubectl proxy, a local test
  // server) unless TLS checks are off; TLS options mean nothing there, so compute them as if
  // the URL were https and use only the credentials.
  const forOptions = server.protocol === 'https:' ? kc : withHttpsServer(kc);
  if (forOptions !== kc) boundExecPlugins(forOptions, exec);
  const tls = await kubeconfigOptions(forOptions, file, exec);
  const credentials: Credentials = async () => (await kubeconfigOptions(forOptions, file, exec)).headers;
  return new ClusterAccess(server.origin + server.pathname, `${description} (context ${kc.getCurrentContext()})`, tls, credentials);
}

type Mapping = Record<string, unknown>;

function asMapping(v: unknown): Mapping | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Mapping) : undefined;
}

/** The entry of `list` (a kubeconfig's clusters, users or contexts) named `name`, its inner mapping. */
function named(list: unknown, name: unknown, inner: string): Mapping | undefined {
  if (!Array.isArray(list) || typeof name !== 'string') return undefined;
  for (const item of list) {
    const m = asMapping(item);
    if (m?.name === name) return asMapping(m[inner]);
  }
  return undefined;
}

/**
 * The kubeconfig with the files its current context names read (through src/files) and put
 * in as data, as kubectl lets `*-data` win over a file; `token-file` of every other user is
 * dropped, since client-node would read it while parsing although it is never used. Paths
 * are relative to the kubeconfig's directory, as kubectl resolves them. An auth-provider's
 * `tokenFile` stays a path: it is re-read on rotation, by a TokenFile (boundExecPlugins).
 */
function inlineFiles(parsed: unknown, file: string): unknown {
  const root = asMapping(parsed);
  if (root === undefined) return parsed;
  const context = named(root.contexts, root['current-context'], 'context');
  const cluster = named(root.clusters, context?.cluster, 'cluster');
  const user = named(root.users, context?.user, 'user');
  const read = (key: string, path: unknown): Buffer => {
    if (typeof path !== 'string' || path === '') throw new ClusterConfigError(`the kubeconfig ${file}: ${key} must be a file path`);
    const full = isAbsolute(path) ? path : join(dirname(file), path);
    try {
      return readRegularFileSync(full, { maxBytes: MAX_CREDENTIAL_FILE_BYTES });
    } catch (err) {
      if (err instanceof FileReadError) throw new ClusterConfigError(`the kubeconfig ${file}: ${key}: ${err.explainArgument()}`);
      throw err;
    }
  };
  const inline = (section: Mapping | undefined, key: string): void => {
    if (section === undefined || section[key] === undefined || section[key] === null) return;
    if (section[`${key}-data`] === undefined || section[`${key}-data`] === null) section[`${key}-data`] = read(key, section[key]).toString('base64');
    delete section[key];
  };
  // Settings kubectl honours that our requests would silently drop: refuse them, since a
  // request made without impersonation runs with the kubeconfig user's own, wider, rights.
  for (const [section, keys] of [[cluster, ['proxy-url']], [user, ['as', 'as-groups', 'as-uid', 'as-user-extra']]] as const) {
    for (const key of keys) {
      if (section !== undefined && section[key] !== undefined && section[key] !== null) {
        throw new ClusterConfigError(`the kubeconfig ${file}: ${key} is not supported (noisemesh connects to the API server directly, as the user itself): remove it, or use a kubeconfig without it`);
      }
    }
  }
  // client-node runs these two legacy providers' `cmd-path` with execSync: no deadline, and the
  // whole process (every session) stops while it runs. kubectl dropped both in 1.26.
  const provider = asMapping(user?.['auth-provider'])?.name;
  if (provider === 'gcp' || provider === 'azure') {
    throw new ClusterConfigError(
      `the kubeconfig ${file}: auth-provider ${provider} is not supported (kubectl removed it in 1.26): use its exec credential plugin instead (${provider === 'gcp' ? 'gke-gcloud-auth-plugin' : 'kubelogin'})`,
    );
  }
  inline(cluster, 'certificate-authority');
  inline(user, 'client-certificate');
  inline(user, 'client-key');
  if (user !== undefined && user['token-file'] !== undefined && user['token-file'] !== null) {
    if (user.token === undefined || user.token === null || user.token === '') user.token = read('token-file', user['token-file']).toString('utf8').trim();
    delete user['token-file'];
  }
  if (Array.isArray(root.users)) {
    for (const item of root.users) {
      const other = asMapping(asMapping(item)?.user);
      if (other !== undefined && other !== user) delete other['token-file'];
    }
  }
  return root;
}

/** Why the last exec plugin run was stopped, for the error message (never its output). */
interface ExecReport {
  failure: string | undefined;
  readonly timeoutMs: number;
}

interface Authenticator {
  isAuthProvider(user: User): boolean;
  applyAuthentication(user: User, opts: RequestOptions & { headers?: Record<string, unknown> }): Promise<void>;
}

/**
 * Bounds what client-node's authenticators do with the kubeconfig: its exec plugin runner
 * gets a deadline and an output cap, and its auth-provider token file reader (readFileSync,
 * every 60 s) is replaced by a TokenFile. Reaches into client-node 1.4.0's private
 * `authenticators` (pinned; dependencies.test.ts imports it).
 */
function boundExecPlugins(kc: KubeConfig, report: ExecReport): void {
  const authenticators = (kc as unknown as { authenticators?: unknown[] }).authenticators;
  if (!Array.isArray(authenticators)) throw new ClusterConfigError('@kubernetes/client-node has changed: its authenticators cannot be bounded');
  for (const [i, a] of authenticators.entries()) {
    const auth = a as { execFn?: unknown; refreshToken?: unknown };
    if (typeof auth.execFn === 'function') auth.execFn = boundedSpawn(report);
    else if (typeof auth.refreshToken === 'function') authenticators[i] = tokenFileAuth();
  }
}

/** child_process.spawn for an exec credential plugin: killed at its deadline or past MAX_EXEC_OUTPUT. */
function boundedSpawn(report: ExecReport): (command: string, args: readonly string[] | undefined, opts: SpawnOptions) => ChildProcess {
  return (command, args, opts) => {
    report.failure = undefined;
    const child = spawn(command, args ?? [], { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    // Our own timer, not spawn's `timeout`: that one outlives a plugin that could not start.
    const deadline = setTimeout(() => {
      report.failure ??= `gave no answer in ${report.timeoutMs / 1000} s`;
      child.kill('SIGKILL');
    }, report.timeoutMs);
    deadline.unref();
    let written = 0;
    const count = (chunk: string | Buffer): void => {
      written += chunk.length;
      if (written <= MAX_EXEC_OUTPUT || report.failure !== undefined) return;
      report.failure = `wrote more than ${MAX_EXEC_OUTPUT} bytes`;
      child.kill('SIGKILL');
      child.stdout?.destroy();
      child.stderr?.destroy();
    };
    child.stdout?.on('data', count);
    child.stderr?.on('data', count);
    child.on('exit', (code, signal) => {
      clearTimeout(deadline);
      if (report.failure === undefined && code !== 0) report.failure = code === null ? `ended by ${signal}` : `exited with status ${code}`;
    });
    child.on('error', (err) => {
      clearTimeout(deadline);
      report.failure ??= `cannot be run (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
    });
    return child;
  };
}

/** client-node's FileAuth (`auth-provider: {config: {tokenFile}}`), reading through a TokenFile. */
function tokenFileAuth(): Authenticator {
  const files = new Map<string, TokenFile>();
  return {
    isAuthProvider: (user) => typeof (user.authProvider as { config?: { tokenFile?: unknown } } | undefined)?.config?.tokenFile === 'string',
    applyAuthentication: async (user, opts) => {
      const path = (user.authProvider as { config: { tokenFile: string } }).config.tokenFile;
      let tokenFile = files.get(path);
      if (tokenFile === undefined) files.set(path, (tokenFile = new TokenFile(path, 'fix the kubeconfig\'s auth-provider tokenFile')));
      opts.headers = { ...opts.headers, Authorization: `Bearer ${tokenFile.token()}` };
    },
  };
}

function withHttpsServer(kc: KubeConfig): KubeConfig {
  const copy = new (kc.constructor as typeof KubeConfig)();
  copy.loadFromOptions({
    clusters: kc.clusters.map((c) => ({ ...c, server: c.server.replace(/^http:/, 'https:') })),
    users: kc.users,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
  });
  return copy;
}

/** What KubeConfig adds to a request: TLS material, and Authorization (token, plugin or basic). */
async function kubeconfigOptions(kc: KubeConfig, file: string, exec: ExecReport): Promise<TlsSettings & { headers: Record<string, string> }> {
  const opts: RequestOptions & { headers: Record<string, string> } = { headers: {} };
  try {
    await kc.applyToHTTPSOptions(opts);
  } catch (err) {
    if (err instanceof TokenFileError) throw new ClusterConfigError(`the kubeconfig ${file}: ${err.message}`);
    const code = (err as NodeJS.ErrnoException).code;
    const command = kc.getCurrentUser()?.exec?.command;
    if (exec.failure !== undefined && typeof command === 'string') {
      throw new ClusterConfigError(`the kubeconfig ${file}: its exec credential plugin ${command} ${exec.failure}: fix the plugin or the kubeconfig's exec section`);
    }
    throw new ClusterConfigError(`the kubeconfig ${file}: its credentials or certificates cannot be loaded${code === undefined ? '' : ` (${code})`}`);
  }
  const headers: Record<string, string> = {};
  const authorization = opts.headers.Authorization ?? opts.headers.authorization;
  if (typeof authorization === 'string') headers.authorization = authorization;
  else if (typeof opts.auth === 'string') headers.authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
  return {
    ca: opts.ca as Buffer | undefined,
    cert: opts.cert as Buffer | undefined,
    key: opts.key as Buffer | undefined,
    servername: opts.servername,
    rejectUnauthorized: opts.rejectUnauthorized ?? true,
    headers,
  };
}

function inCluster(root: string, env: NodeJS.ProcessEnv, setting: string): ClusterAccess {
  // What client-node's loadFromCluster computes, without its readFileSync of the namespace file.
  const host = env.KUBERNETES_SERVICE_HOST ?? '';
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  const scheme = port === '80' || port === '8080' || port === '8001' ? 'http' : 'https';
  let server: URL;
  try {
    server = new URL(`${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`);
  } catch {
    throw new ClusterConfigError(`in-cluster configuration: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT make no URL: fix them, or set ${setting}`);
  }
  const dir = join(root, SERVICE_ACCOUNT_DIR);
  const caFile = join(dir, 'ca.crt');
  const ca = readCa(caFile);
  const token = new TokenFile(join(dir, 'token'), `mount the service-account token, or set ${setting}`);
  // Fail at start, not at the first list, when the token is missing.
  try {
    token.token();
  } catch (err) {
    if (err instanceof TokenFileError) throw new ClusterConfigError(err.message);
    throw err;
  }
  const credentials: Credentials = () => {
    try {
      return Promise.resolve({ authorization: `Bearer ${token.token()}` });
    } catch (err) {
      return Promise.reject(err);
    }
  };
  return new ClusterAccess(server.origin, 'in-cluster', { ca, rejectUnauthorized: true }, credentials, token);
}

function readCa(file: string): Buffer {
  try {
    return readRegularFileSync(file, { maxBytes: MAX_CREDENTIAL_FILE_BYTES });
  } catch (err) {
    if (!(err instanceof FileReadError)) throw err;
    throw new ClusterConfigError(`the service-account CA ${err.message}${err.failure === 'missing' ? ': is the service-account token mounted?' : ''}`);
  }
}
