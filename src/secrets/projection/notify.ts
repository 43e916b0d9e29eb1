/**
 * Tells the application its secrets changed: a signal to the pid in a pid file. The pod must
 * share one process namespace (`shareProcessNamespace: true`) and the proxy may signal only
 * a process of its own UID (or with CAP_KILL). Every failure is reported to the caller, who
 * logs it: a missing or stale pid file never stops the proxy.
 *
 * The pid file is the application's, so what it names is not trusted: the signal goes only
 * to a process whose real or effective UID is the UID that owns the pid file (after
 * symlinks), read from /proc/<pid>/status. A compromised application that names another
 * user's process (another container's, or the proxy's own helpers) gets it refused, so the
 * proxy's CAP_KILL or root is never lent to it; it can still signal its own processes, as it
 * could without the proxy.
 */
import { readFile } from 'node:fs/promises';
import { FileReadError, openRegularFile, readOpenedFile } from '../../files/index.js';

/** The signals `notify.signal` may name: those applications treat as "reload". */
export const NOTIFY_SIGNALS = ['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGINT', 'SIGTERM', 'SIGQUIT', 'SIGWINCH'] as const;
export type NotifySignal = (typeof NOTIFY_SIGNALS)[number];

export interface NotifyConfig {
  readonly signal: NotifySignal;
  readonly pidFile: string;
}

/** A pid file holds a decimal pid and perhaps a newline. */
const MAX_PID_FILE_BYTES = 64;

/** Resolves to the pid signalled; rejects with a message fit for a log line. */
export async function notifyApplication(config: NotifyConfig): Promise<number> {
  let text: string;
  let owner: number;
  try {
    const opened = await openRegularFile(config.pidFile);
    try {
      owner = Number(opened.stat.uid);
      text = (await readOpenedFile(opened, config.pidFile, { maxBytes: MAX_PID_FILE_BYTES })).toString('latin1');
    } finally {
      await opened.handle.close().catch(() => {});
    }
  } catch (err) {
    if (err instanceof FileReadError) throw new Error(err.explain('secrets.project.notify.pidFile'));
    throw err;
  }
  const match = /^\s*(\d{1,10})\s*$/.exec(text);
  const pid = match ? Number(match[1]) : NaN;
  if (!Number.isSafeInteger(pid) || pid < 2 || pid > 4194304) {
    throw new Error(`secrets.project.notify.pidFile: ${config.pidFile} holds no process id (a decimal number from 2): the application should write its pid there`);
  }
  if (pid === process.pid) throw new Error(`secrets.project.notify.pidFile: ${config.pidFile} holds the proxy's own pid ${pid}, not the application's`);
  const uids = await processUids(pid);
  if (uids === undefined) throw new Error(`cannot send ${config.signal} to pid ${pid} from ${config.pidFile}: no such process (a stale pid file, or the pod does not share its process namespace)`);
  if (uids.real !== owner && uids.effective !== owner) {
    throw new Error(
      `secrets.project.notify.pidFile: ${config.pidFile} (owned by uid ${owner}) names pid ${pid}, a process of uid ${uids.real}: not signalled; only a process of the pid file's owner is (the application writes its own pid file)`,
    );
  }
  try {
    process.kill(pid, config.signal);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ESRCH' ? 'no such process (a stale pid file, or the pod does not share its process namespace)' : code === 'EPERM' ? 'not permitted (the application runs as another user)' : (code ?? 'failed');
    throw new Error(`cannot send ${config.signal} to pid ${pid} from ${config.pidFile}: ${why}`);
  }
  return pid;
}

/** The real and effective UID of `pid` (Linux /proc), or undefined when there is no such process. */
async function processUids(pid: number): Promise<{ real: number; effective: number } | undefined> {
  let status: string;
  try {
    status = await readFile(`/proc/${pid}/status`, 'latin1');
  } catch {
    return undefined;
  }
  const m = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
  return m ? { real: Number(m[1]), effective: Number(m[2]) } : undefined;
}
