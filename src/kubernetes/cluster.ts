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
 * client-node and undici are loaded when cluster access is, not with this module: client-node
 * is ~70 MiB of a process's resident memory (a third of it heap that every full collection
 * walks), undici ~5 MiB of heap (it loads node's own copy of undici too), and every process
 * that imports this folder for a clock or an error class, a proxy with a file registry among
 * them, would carry them (bench/README.md, load).
 */
import type { RequestOptions } from 'node:https';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Agent } from 'undici';
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
  if (options.kubeconfig !== undefined) return fromKubeconfig(options.kubeconfig, `kubeconfig ${options.kubeconfig}`);
  if (env.KUBERNETES_SERVICE_HOST !== undefined && env.KUBERNETES_SERVICE_HOST !== '') return inCluster(options.inClusterRoot ?? '', env, setting);
  const fromEnv = env.KUBECONFIG;
  if (fromEnv !== undefined && fromEnv !== '') {
    // KUBECONFIG may list several files; the first that exists wins, as kubectl merges them
    // with the first file's current-context winning.
    const file = fromEnv.split(':').find((f) => f !== '' && existsSync(f));
    if (file === undefined) throw new ClusterConfigError(`$KUBECONFIG names no file that exists (${fromEnv}): fix it, or set ${setting}`);
    return fromKubeconfig(file, `kubeconfig ${file} (from $KUBECONFIG)`);
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

async function fromKubeconfig(file: string, description: string): Promise<ClusterAccess> {
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
  try {
    kc.loadFromString(bytes.toString('utf8'));
    kc.makePathsAbsolute(dirname(file));
  } catch (err) {
    // The parser's message can quote the file, and a kubeconfig holds credentials: say where only.
    const code = (err as NodeJS.ErrnoException).code;
    throw new ClusterConfigError(
      code !== undefined ? `the kubeconfig ${file} cannot be read (${code})` : `the kubeconfig ${file} is not a valid kubeconfig (YAML with clusters, users and contexts)`,
    );
  }
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
  const tls = await kubeconfigOptions(forOptions, file);
  const credentials: Credentials = async () => (await kubeconfigOptions(forOptions, file)).headers;
  return new ClusterAccess(server.origin + server.pathname, `${description} (context ${kc.getCurrentContext()})`, tls, credentials);
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
async function kubeconfigOptions(kc: KubeConfig, file: string): Promise<TlsSettings & { headers: Record<string, string> }> {
  const opts: RequestOptions & { headers: Record<string, string> } = { headers: {} };
  try {
    await kc.applyToHTTPSOptions(opts);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
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

async function inCluster(root: string, env: NodeJS.ProcessEnv, setting: string): Promise<ClusterAccess> {
  const kc = new (await kubeConfigClass())();
  // loadFromCluster reads the environment, not a parameter: give it ours for the moment.
  const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
  process.env.KUBERNETES_SERVICE_HOST = env.KUBERNETES_SERVICE_HOST;
  process.env.KUBERNETES_SERVICE_PORT = env.KUBERNETES_SERVICE_PORT ?? '443';
  try {
    kc.loadFromCluster(root);
  } finally {
    restore('KUBERNETES_SERVICE_HOST', saved.host);
    restore('KUBERNETES_SERVICE_PORT', saved.port);
  }
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new ClusterConfigError('in-cluster configuration is incomplete');
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
  return new ClusterAccess(cluster.server, 'in-cluster', { ca, rejectUnauthorized: true }, credentials, token);
}

function readCa(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ClusterConfigError(`the service-account CA ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}): is the service-account token mounted?`);
  }
}

function restore(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}
