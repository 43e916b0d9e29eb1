/**
 * scenarios.json, read by the runner: the file the k6 scripts `open()`, checked field by
 * field here so that a wrong value names its place and the fix rather than surfacing as NaN
 * in a table. The types are the k6 side's own (bench/k6/contract.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../test/helpers/paths.js';
import type { Scenario, ScenarioFile, ScenarioKind, Thresholds } from '../k6/contract.js';

export const SCENARIO_FILE = join(repoRoot, 'bench/k6/scenarios.json');

/** The k6 script that runs each kind of scenario, in bench/k6/. */
export const K6_SCRIPTS: Readonly<Record<ScenarioKind, string>> = {
  constant: 'http.ts',
  ramp: 'ramp.ts',
  churn: 'churn.ts',
  gateway: 'gateway.ts',
};

/** Upper bounds that keep a typo from asking for a run of a day or a million connections. */
const LIMITS = { rate: 100_000, seconds: 3600, bytes: 1 << 20, inFlight: 20_000, steps: 32 } as const;

class ScenarioError extends Error {}

type Json = Record<string, unknown>;

/** A wrong value as the message shows it: JSON, cut to 80 characters (a value may be any size). */
function shown(v: unknown): string {
  const text = String(JSON.stringify(v));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function field(where: string, obj: Json, key: string): unknown {
  if (!(key in obj)) throw new ScenarioError(`${where}.${key}: missing`);
  return obj[key];
}

function number(where: string, obj: Json, key: string, min: number, max: number, integer = true): number {
  const v = field(where, obj, key);
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
    throw new ScenarioError(`${where}.${key}: must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, not ${shown(v)}`);
  }
  return v;
}

function string(where: string, obj: Json, key: string): string {
  const v = field(where, obj, key);
  if (typeof v !== 'string' || v === '') throw new ScenarioError(`${where}.${key}: must be a non-empty string`);
  return v;
}

/**
 * A scenario's name: k6 refuses any other scenario name (`options.scenarios` keys: numbers,
 * latin letters, underscores and dashes), and the runner puts it in file names. 64 at most.
 */
function name(where: string, obj: Json): string {
  const v = field(where, obj, 'name');
  if (typeof v !== 'string' || !/^[0-9A-Za-z_-]{1,64}$/.test(v)) {
    throw new ScenarioError(`${where}.name: must be 1 to 64 letters, digits, '_' or '-' (k6's rule for scenario names), not ${shown(v)}`);
  }
  return v;
}

function object(where: string, v: unknown): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ScenarioError(`${where}: must be an object`);
  return v as Json;
}

function paths(where: string, obj: Json, key: string): string[] {
  const v = field(where, obj, key);
  // A path goes into a URL as it is: letters, digits and - _ . / only, no "..".
  if (!Array.isArray(v) || v.length === 0 || v.some((p) => typeof p !== 'string' || !/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(p) || p.split('/').includes('..'))) {
    throw new ScenarioError(`${where}.${key}: must be a non-empty list of secret paths like "team/db"`);
  }
  return v as string[];
}

/**
 * Refuses a field the checked value does not have: a misspelt or misplaced one (a ramp's
 * "durationSeconds", a "p95Ms" threshold) would otherwise be ignored without a word.
 */
function onlyKnown<T extends object>(where: string, raw: Json, checked: T, what: string): T {
  const unknown = Object.keys(raw).find((k) => !Object.hasOwn(checked, k));
  if (unknown !== undefined) {
    const at = /^[A-Za-z0-9_]{1,40}$/.test(unknown) ? `${where}.${unknown}` : `${where}[${shown(unknown)}]`;
    throw new ScenarioError(`${at}: not a field of ${what} (its fields: ${Object.keys(checked).join(', ')})`);
  }
  return checked;
}

function thresholds(where: string, obj: Json): Thresholds {
  const t = object(`${where}.thresholds`, field(where, obj, 'thresholds'));
  return onlyKnown(`${where}.thresholds`, t, {
    p99Ms: number(`${where}.thresholds`, t, 'p99Ms', 0.001, 60_000, false),
    errorRate: number(`${where}.thresholds`, t, 'errorRate', 0, 1, false),
  }, 'thresholds');
}

function scenario(where: string, raw: unknown): Scenario {
  const checked = scenarioFields(where, raw);
  return onlyKnown(where, raw as Json, checked, `a ${checked.kind} scenario`);
}

function scenarioFields(where: string, raw: unknown): Scenario {
  const o = object(where, raw);
  const common = {
    name: name(where, o),
    description: string(where, o, 'description'),
    thresholds: thresholds(where, o),
    maxInFlight: number(where, o, 'maxInFlight', 1, LIMITS.inFlight),
  };
  const kind = field(where, o, 'kind');
  const bytes = () => ({
    requestBytes: number(where, o, 'requestBytes', 0, LIMITS.bytes),
    responseBytes: number(where, o, 'responseBytes', 0, LIMITS.bytes),
  });
  switch (kind) {
    case 'constant':
    case 'churn':
      return { ...common, kind, rate: number(where, o, 'rate', 1, LIMITS.rate), durationSeconds: number(where, o, 'durationSeconds', 1, LIMITS.seconds), ...bytes() };
    case 'ramp': {
      const steps = field(where, o, 'steps');
      if (!Array.isArray(steps) || steps.length === 0 || steps.length > LIMITS.steps) throw new ScenarioError(`${where}.steps: must be a list of 1 to ${LIMITS.steps} rates`);
      const rates = steps.map((_, i) => number(`${where}.steps`, steps as unknown as Json, String(i), 1, LIMITS.rate));
      if (rates.some((r, i) => i > 0 && r <= rates[i - 1]!)) throw new ScenarioError(`${where}.steps: rates must ascend`);
      return { ...common, kind, steps: rates, stepSeconds: number(where, o, 'stepSeconds', 1, LIMITS.seconds), ...bytes() };
    }
    case 'gateway':
      return {
        ...common,
        kind,
        rate: number(where, o, 'rate', 1, LIMITS.rate),
        durationSeconds: number(where, o, 'durationSeconds', 1, LIMITS.seconds),
        deniedShare: number(where, o, 'deniedShare', 0, 1, false),
        allowedPaths: paths(where, o, 'allowedPaths'),
        deniedPaths: paths(where, o, 'deniedPaths'),
      };
    default:
      throw new ScenarioError(`${where}.kind: must be one of constant, ramp, churn, gateway, not ${shown(kind)}`);
  }
}

/** Parses and checks a scenario file's text; errors name the field (`scenarios[2].rate: ...`). */
export function parseScenarios(text: string, source = 'scenarios.json'): ScenarioFile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source}: not JSON: ${(err as Error).message}`);
  }
  try {
    const top = object('(top level)', raw);
    const list = field('', top, 'scenarios');
    onlyKnown('(top level)', top, { scenarios: list }, 'the scenario file');
    if (!Array.isArray(list) || list.length === 0) throw new ScenarioError('scenarios: must be a non-empty list');
    const scenarios = list.map((s, i) => scenario(`scenarios[${i}]`, s));
    const seen = new Set<string>();
    scenarios.forEach((s, i) => {
      if (seen.has(s.name)) throw new ScenarioError(`scenarios[${i}].name: "${s.name}" is already used by an earlier scenario`);
      seen.add(s.name);
    });
    return { scenarios };
  } catch (err) {
    if (err instanceof ScenarioError) throw new Error(`${source}: ${err.message.replace(/^\./, '')}`);
    throw err;
  }
}

export function loadScenarios(file = SCENARIO_FILE): ScenarioFile {
  return parseScenarios(readFileSync(file, 'utf8'), file);
}
