/**
 * A small reader for YAML configuration that collects every problem with its path and its
 * fix, instead of stopping at the first. Tools outside the project write these files, so
 * each message must say exactly what to change.
 */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
}

export class ConfigError extends Error {
  constructor(readonly source: string, readonly problems: readonly ConfigProblem[]) {
    super(`${source}: ${problems.length} problem(s)\n${problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}`);
  }
}

type Plain = Record<string, unknown>;

export class ConfigReader {
  readonly problems: ConfigProblem[] = [];

  problem(path: string, message: string): void {
    this.problems.push({ path, message });
  }

  /** An object at `path` with only the keys in `known`; unknown keys are problems (typos). */
  object(value: unknown, path: string, known: readonly string[]): Plain | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'object' || Array.isArray(value)) {
      this.problem(path, `must be a mapping with keys ${known.join(', ')}`);
      return undefined;
    }
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) {
        const guess = closest(key, known);
        this.problem(`${path === '' ? '' : `${path}.`}${key}`, `unknown key${guess ? `: did you mean '${guess}'?` : `; known keys: ${known.join(', ')}`}`);
      }
    }
    return value as Plain;
  }

  string(value: unknown, path: string, fix: string): string | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string' || value.length === 0) {
      this.problem(path, `must be a non-empty string: ${fix}`);
      return undefined;
    }
    return value;
  }

  oneOf<T extends string>(value: unknown, path: string, allowed: readonly T[]): T | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      this.problem(path, `must be one of ${allowed.join(', ')}; got ${JSON.stringify(value)}`);
      return undefined;
    }
    return value as T;
  }

  port(value: unknown, path: string): number | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
      this.problem(path, `must be a TCP port, an integer 1..65535; got ${JSON.stringify(value)}`);
      return undefined;
    }
    return value;
  }

  number(value: unknown, path: string, min: number, max: number): number | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
      this.problem(path, `must be a number from ${min} to ${max}; got ${JSON.stringify(value)}`);
      return undefined;
    }
    return value;
  }

  integer(value: unknown, path: string, min: number, max: number): number | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.problem(path, `must be an integer from ${min} to ${max}; got ${JSON.stringify(value)}`);
      return undefined;
    }
    return value;
  }

  list(value: unknown, path: string, what: string): unknown[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) {
      this.problem(path, `must be a list of ${what}`);
      return [];
    }
    return value;
  }
}

/** The known key nearest to a typo, if it is near enough to be a useful hint. */
function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}
