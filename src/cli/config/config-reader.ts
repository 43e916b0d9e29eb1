/**
 * A small reader for YAML configuration that collects every problem with its path and its
 * fix, instead of stopping at the first. Tools outside the project write these files, so
 * each message must say exactly what to change.
 *
 * A key written with no value (`key:`, `key: ~`) is refused (NULL_VALUE_MESSAGE) by object()
 * and a list item with none by list(), before any reader sees it: no key's null has a
 * meaning, and read as "absent" it would put a default (or nothing) where a template meant a
 * value. The per-key readers below still take null as absent, since it was reported already.
 */
import { looksLikeKeyText } from '../../noise/index.js';
// One typo suggester for every reader of hand-written YAML, the policy's among them.
import { NULL_VALUE_MESSAGE, closest, describeYamlValue, isYamlMapping } from '../../registry-sync/index.js';
export interface ConfigProblem {
  /** `inbound.meshPort`, `outbound.explicit[0].peer`; `(top level)` for the document itself, `(file)` for the file. */
  readonly path: string;
  readonly message: string;
}

/** How a problem of the whole document is named: an empty path would print as nothing. */
export const TOP_LEVEL = '(top level)';
/** The path of a problem with the file itself (unreadable, not YAML). */
export const FILE = '(file)';

function formatConfigProblem(p: ConfigProblem): string {
  return p.path === FILE ? p.message : `${p.path}: ${p.message}`;
}

export class ConfigError extends Error {
  constructor(readonly source: string, readonly problems: readonly ConfigProblem[]) {
    // One problem fits on one line; several get a line each under a count.
    super(
      problems.length === 1
        ? `${source}: ${formatConfigProblem(problems[0]!)}`
        : `${source}: ${problems.length} problems\n${problems.map((p) => `  ${formatConfigProblem(p)}`).join('\n')}`,
    );
  }
}

type Plain = Record<string, unknown>;

export class ConfigReader {
  readonly problems: ConfigProblem[] = [];
  /**
   * Every key path this reader was told to accept, list items written `[]` (e.g.
   * `outbound.explicit[].peer`): the configuration's schema as the code has it, which the
   * documentation is checked against.
   */
  readonly keys = new Set<string>();

  /**
   * Records a problem, unless one is already recorded at this path or above it: a key that is
   * wrong is reported once, not again as missing, and the keys under a value that is no
   * mapping are not reported one by one.
   */
  problem(path: string, message: string): void {
    const shown = path === '' ? TOP_LEVEL : path;
    const covered = this.problems.some((p) => p.path === TOP_LEVEL || p.path === shown || shown.startsWith(`${p.path}.`) || shown.startsWith(`${p.path}[`));
    if (!covered) this.problems.push({ path: shown, message });
  }

  /** A required key that is absent (a wrong value was already reported by its reader). */
  required(value: unknown, path: string, what: string): void {
    if (value === undefined || value === null) this.problem(path, `required: ${what}`);
  }

  /** An object at `path` with only the keys in `known`; unknown keys are problems (typos). */
  object(value: unknown, path: string, known: readonly string[]): Plain | undefined {
    for (const key of known) this.keys.add(`${path === '' ? '' : `${path.replace(/\[\d+\]/g, '[]')}.`}${key}`);
    if (value === undefined || value === null) return undefined;
    if (!isYamlMapping(value)) {
      this.problem(path, `must be a mapping with keys ${known.join(', ')}; got ${describeValue(value)}`);
      return undefined;
    }
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) {
        const guess = closest(key, known);
        this.problem(`${path === '' ? '' : `${path}.`}${key}`, `unknown key${guess ? `: did you mean '${guess}'?` : `; known keys: ${known.join(', ')}`}`);
      } else if ((value as Plain)[key] === null) {
        this.problem(`${path === '' ? '' : `${path}.`}${key}`, NULL_VALUE_MESSAGE);
      }
    }
    return value as Plain;
  }

  string(value: unknown, path: string, fix: string): string | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string' || value.length === 0) {
      this.problem(path, `must be a non-empty string: ${fix}; got ${describeValue(value)}`);
      return undefined;
    }
    return value;
  }

  oneOf<T extends string>(value: unknown, path: string, allowed: readonly T[]): T | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      this.problem(path, `must be one of ${allowed.join(', ')}; got ${describeValue(value)}`);
      return undefined;
    }
    return value as T;
  }

  port(value: unknown, path: string): number | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
      this.problem(path, `must be a TCP port, an integer 1..65535; got ${describeValue(value, 'number')}`);
      return undefined;
    }
    return value;
  }

  number(value: unknown, path: string, min: number, max: number): number | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
      this.problem(path, `must be a number from ${min} to ${max}; got ${describeValue(value, 'number')}`);
      return undefined;
    }
    return value;
  }

  integer(value: unknown, path: string, min: number, max: number): number | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.problem(path, `must be an integer from ${min} to ${max}; got ${describeValue(value, 'number')}`);
      return undefined;
    }
    return value;
  }

  list(value: unknown, path: string, what: string): unknown[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) {
      this.problem(path, `must be a list of ${what}; got ${describeValue(value)}`);
      return [];
    }
    value.forEach((item, i) => {
      if (item === null) this.problem(`${path}[${i}]`, `is empty (null): remove the item, or give it a value (${what})`);
    });
    return value;
  }
}

/**
 * What a wrong value is, in words a user can act on, faithfully: YAML's `.nan` and `.inf`
 * (and a number too large, `1e400`) are numbers to JavaScript and would print as `null`
 * through JSON; a long string is cut; key-like text is not shown. `expected: 'number'` for a
 * field that takes a number: only there is a quoted number told to lose its quotes (a
 * field that must be quoted, such as fileMode, says so itself).
 */
export function describeValue(value: unknown, expected?: 'number'): string {
  const text = describeYamlValue(value, looksLikeKeyText);
  if (expected === 'number' && typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) {
    return `the string ${text} (write numbers without quotes)`;
  }
  return text;
}
