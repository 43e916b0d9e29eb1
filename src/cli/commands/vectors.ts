import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { backendByName, runVector, type CacophonyVector } from '../../noise/index.js';
import type { Command } from '../command.js';
import { errnoText } from '../system-error.js';
import { UsageError } from '../usage-error.js';

const USAGE = `usage: noisemesh vectors [--backend native|noble] FILE...

Runs Noise test vectors in the cacophony JSON format ({"vectors": [...]}) and prints each
failure and each vector it cannot run (SKIP, with the reason), then a count. Exit 1 if any
vector failed.

  --backend NAME   native (node:crypto and the AEAD addon; the default) or noble (pure JS)
`;

export const vectors: Command = {
  usage: USAGE,
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { backend: { type: 'string', default: 'native' } },
    });
    if (positionals.length === 0) throw new UsageError('name at least one vector file');
    let backend;
    try {
      backend = backendByName(values.backend!);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const file of positionals) {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new UsageError(`${file}: cannot be read: ${errnoText(err)}`);
      }
      let list: CacophonyVector[];
      try {
        list = (JSON.parse(text) as { vectors?: CacophonyVector[] }).vectors ?? [];
      } catch (err) {
        throw new UsageError(`${file}: not JSON: ${(err as Error).message}`);
      }
      if (!Array.isArray(list)) throw new UsageError(`${file}: "vectors" must be a list of cacophony vectors`);
      for (const [i, v] of list.entries()) {
        const malformed = shapeProblem(v);
        if (malformed !== undefined) {
          failed++;
          process.stdout.write(`FAIL ${file} #${i}: not a cacophony vector: ${malformed}\n`);
          continue;
        }
        const outcome = runVector(v, backend, i);
        if (outcome.status === 'passed') {
          passed++;
        } else if (outcome.status === 'failed') {
          failed++;
          process.stdout.write(`FAIL ${file} ${outcome.name}: ${outcome.reason}\n`);
        } else {
          skipped++;
          process.stdout.write(`SKIP ${file} ${outcome.name}: ${outcome.reason}\n`);
        }
      }
    }
    process.stdout.write(`${passed} passed, ${failed} failed, ${skipped} skipped\n`);
    return failed > 0 ? 1 : 0;
  },
};

const HEX_FIELDS = ['init_prologue', 'resp_prologue', 'init_static', 'init_ephemeral', 'init_remote_static', 'resp_static', 'resp_ephemeral', 'resp_remote_static', 'handshake_hash'] as const;
const REQUIRED = new Set<string>(['init_prologue', 'resp_prologue', 'init_ephemeral']);

/** What is wrong with the shape of one vector read from a file (a hostile input), if anything. */
function shapeProblem(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'each vector must be a JSON object';
  const o = v as Record<string, unknown>;
  if (typeof o.protocol_name !== 'string') return 'protocol_name must be a string';
  if (o.name !== undefined && typeof o.name !== 'string') return 'name must be a string';
  for (const field of HEX_FIELDS) {
    if (o[field] === undefined && !REQUIRED.has(field)) continue;
    if (typeof o[field] !== 'string') return `${field} must be a hex string`;
  }
  for (const field of ['init_psks', 'resp_psks']) {
    if (o[field] !== undefined && !(Array.isArray(o[field]) && (o[field] as unknown[]).every((p) => typeof p === 'string'))) return `${field} must be a list of hex strings`;
  }
  if (!Array.isArray(o.messages)) return 'messages must be a list';
  for (const [i, m] of (o.messages as unknown[]).entries()) {
    const message = m as Record<string, unknown> | null;
    if (typeof message !== 'object' || message === null || typeof message.payload !== 'string' || typeof message.ciphertext !== 'string') {
      return `messages[${i}] must be an object with hex strings payload and ciphertext`;
    }
  }
  return undefined;
}
