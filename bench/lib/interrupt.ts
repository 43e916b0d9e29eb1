/**
 * What a benchmark that builds pods does when it is interrupted: each signal that would end
 * node without running its 'exit' handlers instead exits with 128 + the signal's number, so
 * that those handlers still run (PodNetwork's: kill what it started and delete its network
 * namespaces, and with them every iptables rule installed there; the run's own: its temporary
 * directory, which holds the run's keys). SIGINT is Ctrl-C, SIGTERM a kill or a timeout,
 * SIGHUP a closed terminal or a dropped ssh session, SIGQUIT Ctrl-\. SIGKILL cannot be caught:
 * the next PodNetwork.create deletes the namespaces of a pid that is gone.
 */
import { constants } from 'node:os';

export const INTERRUPTS = ['SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGTERM'] as const;

/** Installs the handlers; returns the function that removes them (call it once the run is cleaned up). */
export function exitOnInterrupt(): () => void {
  const handlers = INTERRUPTS.map((signal) => {
    const handler = (): void => process.exit(128 + constants.signals[signal]);
    process.once(signal, handler);
    return [signal, handler] as const;
  });
  return () => {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  };
}
