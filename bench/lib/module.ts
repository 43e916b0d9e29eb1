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
      throw new Error(`unknown option ${a} (${takes})`);
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
