/**
 * pino, configured once. Log lines carry agentIds, ports, statuses and byte counts; never a
 * key (public or private), a payload or a secret value: every call site passes explicit
 * fields, and no object holding key material is ever handed to the logger.
 */
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino({
    name: options.name ?? 'noisemesh',
    level: options.level ?? process.env.NOISEMESH_LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}

/** A logger that drops everything, for tests and embedded use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
