/**
 * The process's descriptor limit (RLIMIT_NOFILE), raised to its hard limit at start so the
 * proxy's connection caps can be as large as the pod allows, and read so that they can be
 * derived from it. node has no API for either, so a small addon does both
 * (native/nofile_limit.c); without the addon the limit is read from /proc/self/limits and left
 * as it is, with a warning that says how to get the addon. (node itself raises the soft limit
 * to the hard one as it starts on POSIX systems, so the raise here is usually a no-op; it is
 * kept for a runtime that does not.)
 */
import { readFileSync } from 'node:fs';
import { addonPath, loadAddon, REBUILD_HINT } from '../../native/index.js';

/** What native/nofile_limit.c exports. Infinity stands for RLIM_INFINITY. */
export interface NofileLimitAddon {
  getNofileLimit(): { soft: number; hard: number };
  /** Sets the soft limit, keeps the hard one; returns the limit after. Throws (code EPERM, EINVAL). */
  setNofileLimit(soft: number): { soft: number; hard: number };
}

export interface DescriptorLimit {
  /** The soft limit the process runs with now: descriptors it may hold at once. */
  readonly soft: number;
  readonly hard: number;
  /** The soft limit found at start, when it was raised; null when it was not. */
  readonly raisedFrom: number | null;
  /** Why the limit could not be raised or read, for a warning; absent when all went well. */
  readonly problem?: string;
}

export const NOFILE_LIMIT_ADDON_PATH = addonPath('nofile_limit');

/** What a process without /proc assumes: the common default soft limit. */
const ASSUMED_LIMIT = 1024;

/** Raises the soft descriptor limit to the hard limit, if it is lower. Never throws. */
export function raiseDescriptorLimit(path: string = NOFILE_LIMIT_ADDON_PATH): DescriptorLimit {
  const load = loadAddon<NofileLimitAddon>(path, ['getNofileLimit', 'setNofileLimit']);
  if (!load.ok) {
    const read = readProcLimits();
    const why = `the descriptor-limit addon ${load.reason}; ${REBUILD_HINT}`;
    if (typeof read === 'string') return { soft: ASSUMED_LIMIT, hard: ASSUMED_LIMIT, raisedFrom: null, problem: `${why}; ${read}: assuming ${ASSUMED_LIMIT}` };
    const raisable = read.soft < read.hard ? ` (could be raised to the hard limit, ${read.hard})` : '';
    return { ...read, raisedFrom: null, ...(raisable !== '' && { problem: `${why}; running with the soft limit ${read.soft}${raisable}` }) };
  }
  const { addon } = load;
  const found = addon.getNofileLimit();
  if (found.soft >= found.hard) return { ...found, raisedFrom: null };
  try {
    return { ...addon.setNofileLimit(found.hard), raisedFrom: found.soft };
  } catch (err) {
    return { ...found, raisedFrom: null, problem: `cannot raise the descriptor limit from ${found.soft} to ${found.hard}: ${(err as Error).message}` };
  }
}

/**
 * The "Max open files" row of /proc/self/limits (Linux), or why it could not be read.
 * Exported for tests.
 */
export function readProcLimits(file = '/proc/self/limits'): { soft: number; hard: number } | string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  const row = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  const value = (field: string | undefined): number => (field === 'unlimited' ? Infinity : Number(field));
  const soft = value(row?.[1]);
  const hard = value(row?.[2]);
  if (row === null || !(soft > 0) || !(hard > 0)) return `no "Max open files" row in ${file}`;
  return { soft, hard };
}
