import { parseArgs } from 'node:util';
import { FileReadError, readRegularFileSync } from '../../files/index.js';
import { loadBackend, runVector, type CacophonyVector } from '../../noise/index.js';
import type { Command } from '../command.js';
import { UsageError } from '../usage-error.js';

const USAGE = `usage: noisemesh vectors [--backend native|noble] FILE...

Runs Noise test vectors in the cacophony JSON format ({"vectors": [...]}) and prints each
failure and each vector it cannot run (SKIP, with the reason), then a count. Exit 1 if any
vector failed.

  --backend NAME   native (node:crypto and the AEAD addon; the default) or noble (pure JS)
`;

/** Longest vector file read (the cacophony set is 1.7 MB). */
const MAX_VECTOR_BYTES = 64 * 1024 * 1024;

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
      backend = await loadBackend(values.backend!);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const file of positionals) {
      const list = readVectorFile(file);
      for (const [i, v] of list.entries()) {
        const malformed = shapeProblem(v);
        if (malformed !== undefined) {
          failed++;
          process.stdout.write(`FAIL ${file} #${i}: not a cacophony vector: ${malformed}\n`);
          continue;
        }
        const outcome = runVector(v as CacophonyVector, backend, i);
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

/**
 * The vectors of one file, through src/files (a FIFO or /dev/zero would hang a plain read), or
 * a one-line UsageError. JSON.parse's message quotes the text where it failed, and a file named
 * by mistake may be a key: only the position reaches the message.
 */
function readVectorFile(file: string): unknown[] {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(readRegularFileSync(file, { maxBytes: MAX_VECTOR_BYTES }));
  } catch (err) {
    if (err instanceof FileReadError) throw new UsageError(err.explainArgument());
    throw new UsageError(`${file} is not UTF-8 text: name a cacophony JSON file`);
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (err) {
    const position = /position (\d+)/.exec((err as Error).message)?.[1];
    throw new UsageError(`${file} is not valid JSON${position === undefined ? '' : ` (at character ${position})`}: name a cacophony JSON file, {"vectors": [...]}`);
  }
  const list = typeof document === 'object' && document !== null && !Array.isArray(document) ? (document as { vectors?: unknown }).vectors : undefined;
  if (!Array.isArray(list)) throw new UsageError(`${file} holds no "vectors" list: a cacophony file is a JSON object {"vectors": [...]}`);
  return list;
}

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
