/**
 * The `secrets` section of a proxy's configuration: what the sidecar projects from the
 * secrets gateway (docs/configuration.md, Secrets projection; docs/gateway.md, Projection).
 *
 * ```yaml
 * secrets:
 *   gateway: {peer: noisemesh-system/gateway, port: 8200}
 *   project:
 *     dir: /var/run/noisemesh/secrets      # a memory-backed emptyDir
 *     refreshSeconds: 300                  # jittered by 10% either way
 *     fileMode: "0400"                     # "0440" with the pod's fsGroup, for an app of another UID
 *     dirMode: "0700"                      # "0750" likewise
 *     items: [{path: payments/db, file: db.json, env: DB_PASSWORD, key: password}]
 *     notify: {signal: SIGHUP, pidFile: /var/run/app.pid}
 * ```
 *
 * Every key is visited even when the section is absent, so that acceptedConfigKeys() (and
 * the gateway's) list them all for the documentation check.
 */
import { isAbsolute } from 'node:path';
import { DEFAULT_GATEWAY_PORT, ENV_FILE, ENV_NAME, NOTIFY_SIGNALS, reservedEnvName, type ProjectionConfig, type ProjectionItem } from '../../secrets/index.js';
import { checkSecretPath, isAgentId } from '../../trust-vector/index.js';
import { describeValue, type ConfigReader } from './config-reader.js';

export const DEFAULT_REFRESH_SECONDS = 300;
export const DEFAULT_FILE_MODE = 0o400;
export const DEFAULT_DIR_MODE = 0o700;
/** More items than this is a mistake, and each is a fetch per refresh. */
export const MAX_ITEMS = 256;
const FILE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$/;

export function parseSecretsSection(r: ConfigReader, value: unknown): ProjectionConfig | null {
  const s = r.object(value, 'secrets', ['gateway', 'project']);
  const g = r.object(s?.gateway, 'secrets.gateway', ['peer', 'port']);
  const peer = r.string(g?.peer, 'secrets.gateway.peer', "the gateway's agentId, e.g. noisemesh-system/gateway");
  if (peer !== undefined && !isAgentId(peer)) r.problem('secrets.gateway.peer', `must be an agentId, <namespace>/<workload> in lower case, e.g. noisemesh-system/gateway; got ${describeValue(peer)}`);
  const port = r.port(g?.port, 'secrets.gateway.port') ?? DEFAULT_GATEWAY_PORT;

  const p = r.object(s?.project, 'secrets.project', ['dir', 'refreshSeconds', 'fileMode', 'dirMode', 'items', 'notify']);
  const dir = r.string(p?.dir, 'secrets.project.dir', 'an absolute path, e.g. /var/run/noisemesh/secrets (a memory-backed emptyDir)');
  if (dir !== undefined && !isAbsolute(dir)) r.problem('secrets.project.dir', `must be an absolute path, e.g. /var/run/noisemesh/secrets; got ${describeValue(dir)}`);
  const refreshSeconds = r.integer(p?.refreshSeconds, 'secrets.project.refreshSeconds', 1, 86_400) ?? DEFAULT_REFRESH_SECONDS;
  const fileMode = mode(r, p?.fileMode, 'secrets.project.fileMode', 'file') ?? DEFAULT_FILE_MODE;
  const dirMode = mode(r, p?.dirMode, 'secrets.project.dirMode', 'dir') ?? DEFAULT_DIR_MODE;
  if (((fileMode >> 3) & 0o4) !== 0 && ((dirMode >> 3) & 0o5) !== 0o5) {
    r.problem('secrets.project.dirMode', `fileMode ${octal(fileMode)} lets the group read the files, but dirMode ${octal(dirMode)} does not let it reach them: use "0750"`);
  }

  const rawItems = r.list(p?.items, 'secrets.project.items', '{path, file, env, key}');
  if (rawItems.length > MAX_ITEMS) r.problem('secrets.project.items', `at most ${MAX_ITEMS} items; got ${rawItems.length}`);
  const files = new Map<string, string>();
  const envs = new Map<string, string>();
  // One object read with no value, so that the item keys are in the schema even with no items.
  const itemKeys = ['path', 'file', 'env', 'key'];
  if (rawItems.length === 0) r.object(undefined, 'secrets.project.items[0]', itemKeys);
  const items = rawItems.slice(0, MAX_ITEMS).flatMap((raw, i): ProjectionItem[] => {
    const at = `secrets.project.items[${i}]`;
    const item = r.object(raw, at, itemKeys);
    if (item === undefined) {
      if (raw === undefined || raw === null) r.problem(at, 'must be a mapping {path, file, env, key}');
      return [];
    }
    const path = r.string(item.path, `${at}.path`, 'the secret path, e.g. payments/db');
    if (item.path === undefined || item.path === null) r.problem(`${at}.path`, 'required: the secret path to fetch, e.g. payments/db');
    const pathProblem = path === undefined ? undefined : checkSecretPath(path);
    if (pathProblem !== undefined) r.problem(`${at}.path`, `${pathProblem}: write segments of A-Z a-z 0-9 . _ - joined by /, e.g. payments/db`);
    const file = r.string(item.file, `${at}.file`, 'a file name in secrets.project.dir, e.g. db.json');
    if (file !== undefined) {
      if (!FILE_NAME.test(file)) r.problem(`${at}.file`, `must be a plain file name (A-Z a-z 0-9 . _ -, no slash, not starting with a dot); got ${describeValue(file)}`);
      else if (file === ENV_FILE) r.problem(`${at}.file`, `${ENV_FILE} is the file of the env items: choose another name`);
      else if (files.has(file)) r.problem(`${at}.file`, `${file} is also ${files.get(file)}.file: give each item its own file`);
      else files.set(file, at);
    }
    const env = r.string(item.env, `${at}.env`, 'a shell variable name, e.g. DB_PASSWORD');
    if (env !== undefined) {
      const reserved = ENV_NAME.test(env) ? reservedEnvName(env) : undefined;
      if (!ENV_NAME.test(env)) r.problem(`${at}.env`, `must be a shell variable name (a letter or _, then letters, digits, _); got ${describeValue(env)}`);
      else if (reserved !== undefined) r.problem(`${at}.env`, `${env} ${reserved}: choose a name of the application's own, e.g. DB_PASSWORD (docs/configuration.md lists the refused names)`);
      else if (envs.has(env)) r.problem(`${at}.env`, `${env} is also ${envs.get(env)}.env: each variable once`);
      else envs.set(env, at);
    }
    const key = r.string(item.key, `${at}.key`, "one key of the secret's data, e.g. password") ?? null;
    if (item.env !== undefined && item.env !== null && key === null && (item.key === undefined || item.key === null)) {
      r.problem(`${at}.key`, `required with env: the key of the secret whose value ${env ?? 'the variable'} gets, e.g. key: password`);
    }
    if ((item.file === undefined || item.file === null) && (item.env === undefined || item.env === null)) {
      r.problem(at, 'writes nothing: set file (a file in secrets.project.dir), env (a line of secrets.env), or both');
    }
    return path !== undefined ? [{ path, file: file ?? null, env: env ?? null, key }] : [];
  });

  const n = r.object(p?.notify, 'secrets.project.notify', ['signal', 'pidFile']);
  const signal = r.oneOf(n?.signal, 'secrets.project.notify.signal', NOTIFY_SIGNALS) ?? 'SIGHUP';
  const pidFile = r.string(n?.pidFile, 'secrets.project.notify.pidFile', "the path of the application's pid file, e.g. /var/run/app.pid");
  if (n !== undefined && (n.pidFile === undefined || n.pidFile === null)) r.problem('secrets.project.notify.pidFile', "required: the application's pid file (the pod needs shareProcessNamespace: true)");

  if (s === undefined) return null;
  if (g === undefined) r.problem('secrets.gateway', 'required: {peer: <the gateway\'s agentId>, port: 8200}');
  else if (g.peer === undefined || g.peer === null) r.problem('secrets.gateway.peer', "required: the gateway's agentId, e.g. noisemesh-system/gateway");
  if (p === undefined) {
    r.problem('secrets.project', 'required: {dir, items} (what to write where)');
    return null;
  }
  if (p.dir === undefined || p.dir === null) r.problem('secrets.project.dir', 'required: an absolute path, e.g. /var/run/noisemesh/secrets (a memory-backed emptyDir)');
  if (rawItems.length === 0 && Array.isArray(p.items)) r.problem('secrets.project.items', 'lists nothing: add {path, file} or {path, env, key} items, or remove secrets');
  if (p.items === undefined || p.items === null) r.problem('secrets.project.items', 'required: a list of {path, file, env, key}');
  if (peer === undefined || dir === undefined) return null;
  return { gateway: { peer, port }, dir, refreshSeconds, items, notify: pidFile === undefined ? null : { signal, pidFile }, fileMode, dirMode };
}

/**
 * A mode written as a quoted octal string ("0440"): YAML 1.2 reads an unquoted 0440 as the
 * decimal 440, which is another mode, so a number is refused. Files: read bits only, the
 * owner's required; directories: the owner's rwx required, the group's a subset of r-x;
 * never any bit for others.
 */
function mode(r: ConfigReader, value: unknown, path: string, kind: 'file' | 'dir'): number | undefined {
  if (value === undefined || value === null) return undefined;
  const example = kind === 'file' ? '"0400" (or "0440" with fsGroup)' : '"0700" (or "0750" with fsGroup)';
  if (typeof value !== 'string' || !/^0?[0-7]{3}$/.test(value)) {
    r.problem(path, `must be an octal mode in quotes, e.g. ${example}; got ${describeValue(value)}${typeof value === 'number' ? ' (unquoted, YAML reads it as a decimal number)' : ''}`);
    return undefined;
  }
  const m = parseInt(value, 8);
  const ok = kind === 'file' ? (m & 0o400) !== 0 && (m & ~0o440) === 0 : (m & 0o700) === 0o700 && (m & ~0o750) === 0;
  if (!ok) {
    r.problem(path, kind === 'file'
      ? `${value}: secret files take read bits only, the owner's and perhaps the group's, nothing for others: ${example}`
      : `${value}: the owner needs rwx, the group at most r-x, others nothing: ${example}`);
    return undefined;
  }
  return m;
}

function octal(m: number): string {
  return `"0${m.toString(8)}"`;
}
