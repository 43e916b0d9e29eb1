/**
 * Tells the application its secrets changed: a signal to the pid in a pid file. The pod must
 * share one process namespace (`shareProcessNamespace: true`) and the proxy may signal only
 * a process of its own UID (or with CAP_KILL). Every failure is reported to the caller, who
 * logs it: a missing or stale pid file never stops the proxy.
 */
import { readRegularFile, FileReadError } from '../../files/index.js';

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
  try {
    text = (await readRegularFile(config.pidFile, { maxBytes: MAX_PID_FILE_BYTES })).toString('latin1');
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
  try {
    process.kill(pid, config.signal);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ESRCH' ? 'no such process (a stale pid file, or the pod does not share its process namespace)' : code === 'EPERM' ? 'not permitted (the application runs as another user)' : (code ?? 'failed');
    throw new Error(`cannot send ${config.signal} to pid ${pid} from ${config.pidFile}: ${why}`);
  }
  return pid;
}
