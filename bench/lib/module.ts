import { closeSync, constants, openSync, unlinkSync } from 'node:fs';

/** What bench/run.ts dispatches to: one named group of benchmarks. */
export interface BenchModule {
  readonly name: string;
  readonly description: string;
  /**
   * Every option it takes: `--quick` (a flag) or `--ms=` (with a value). run.ts refuses, in one
   * line and before any module runs, an option that no module it is about to run takes, and
   * hands each module only its own.
   */
  readonly options: readonly string[];
  /**
   * Checks the values of its options (`args` holds only its own), throwing one line naming
   * the option and what it takes. Called for every module to run before the first runs, so a
   * mistake never costs a benchmark's minutes first.
   */
  check?(args: readonly string[]): void;
  /**
   * Checks what the run needs from the machine (root, tools, limits), throwing one line naming
   * what is missing. Called, like check, for every module to run before the first runs.
   */
  requires?(args: readonly string[]): void;
  /** Roughly how long a run with `args` takes, seconds (printed before the first module starts); null or absent: not estimated. */
  estimateSeconds?(args: readonly string[]): number | null;
  run(args: readonly string[]): Promise<void> | void;
}

/** Whether `arg` is the option `declared` (`--quick`, or `--ms=` with any value). */
export function isOption(arg: string, declared: string): boolean {
  return declared.endsWith('=') ? arg.startsWith(declared) : arg === declared;
}

/**
 * The options of `args` each module of `modules` takes, by module name; throws one line for an
 * argument that none of them takes (a misspelling, a value without `=`) or one given twice.
 */
export function assignOptions(modules: readonly BenchModule[], args: readonly string[]): Map<string, string[]> {
  for (const a of args) {
    if (!modules.some((m) => m.options.some((o) => isOption(a, o)))) {
      const takes = modules.map((m) => `${m.name} takes ${m.options.length === 0 ? "no option" : m.options.join(" ")}`).join("; ");
      // `--seconds 5`: the option is declared with a value, given without one.
      const valueless = !a.includes('=') && modules.some((m) => m.options.includes(`${a}=`));
      throw new Error(`unknown option ${a} (${takes})${valueless ? `: options take their value after '=' (${a}=VALUE)` : ''}`);
    }
  }
  const declared = [...new Set(modules.flatMap((m) => m.options))];
  for (const o of declared) {
    if (args.filter((a) => isOption(a, o)).length > 1) throw new Error(`${o.replace(/=$/, '')} is given more than once`);
  }
  return new Map(modules.map((m) => [m.name, args.filter((a) => m.options.some((o) => isOption(a, o)))]));
}

/** The value of `--name=...` in `args`, if given. */
export function optionValue(args: readonly string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

/** `--name=N`, a whole number from `min` to `max`, if given; else throws one line. */
export function wholeOption(args: readonly string[], name: string, unit: string, min: number, max: number): number | undefined {
  const v = optionValue(args, name);
  if (v === undefined) return undefined;
  const n = /^\d+$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new Error(`--${name}=${v}: must be ${unit} from ${min} to ${max}`);
  return n;
}

/** `--name=a,b`, a comma-separated list with no empty or repeated item, if given; else throws one line. */
export function listOption(args: readonly string[], name: string, what: string): string[] | undefined {
  const v = optionValue(args, name);
  if (v === undefined) return undefined;
  const items = v.split(',');
  if (items.some((i) => i === '')) throw new Error(`--${name}=${v}: a comma-separated list of ${what}, with no empty item`);
  const twice = items.find((n, i) => items.indexOf(n) !== i);
  if (twice !== undefined) throw new Error(`--${name}: ${twice} is named twice`);
  return items;
}

/**
 * `--name=FILE`, a file the run will write at its end, if given; else throws one line. It is
 * opened for append now, as the run will open it, and closed again; a file this made is
 * removed, one that existed is left as it was. So a missing directory, a path through a file,
 * a directory, or no permission is refused before anything starts, not after the whole run.
 */
export function outputFileOption(args: readonly string[], name: string, what: string): string | undefined {
  const v = optionValue(args, name);
  if (v === undefined) return undefined;
  if (v === '') throw new Error(`--${name}=: give ${what}`);
  if (v.endsWith('/')) throw new Error(`--${name}=${v}: names a directory; give a file`);
  let created = true;
  let fd: number;
  try {
    try {
      fd = openSync(v, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL, 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      created = false;
      fd = openSync(v, constants.O_WRONLY | constants.O_APPEND);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why: Record<string, string> = {
      ENOENT: 'a directory on its path does not exist',
      ENOTDIR: 'a part of its path is not a directory',
      EISDIR: 'is a directory; give a file',
      EACCES: 'permission denied',
      EPERM: 'permission denied',
      EROFS: 'read-only file system',
    };
    throw new Error(`--${name}=${v}: cannot write it: ${why[code ?? ''] ?? code ?? (err as Error).message}`);
  }
  closeSync(fd);
  if (created) unlinkSync(v);
  return v;
}

/** "1 h 5 min", "12 min", "40 s". */
function duration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  const minutes = Math.round(seconds / 60);
  return minutes < 90 ? `${minutes} min` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** The line run.ts prints before the first module starts: the sum of the modules' estimates, and which have none. */
export function estimateLine(estimates: readonly { readonly name: string; readonly seconds: number | null }[]): string {
  const known = estimates.filter((e) => e.seconds !== null);
  const unknown = estimates.filter((e) => e.seconds === null).map((e) => e.name);
  if (known.length === 0) return `Estimated duration: not estimated (${unknown.join(', ')})`;
  const total = known.reduce((sum, e) => sum + e.seconds!, 0);
  const each = known.length > 1 ? ` (${known.map((e) => `${e.name} ${duration(e.seconds!)}`).join(', ')})` : '';
  return `Estimated duration: about ${duration(total)}${each}${unknown.length > 0 ? `, plus ${unknown.join(', ')} (not estimated)` : ''}`;
}
