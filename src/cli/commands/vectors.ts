import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { backendByName, runVector, type CacophonyVector } from '../../noise/index.js';
import type { Command } from '../command.js';
import { UsageError } from '../usage-error.js';

export const vectors: Command = {
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
      let list: CacophonyVector[];
      try {
        list = (JSON.parse(readFileSync(file, 'utf8')) as { vectors?: CacophonyVector[] }).vectors ?? [];
      } catch (err) {
        throw new UsageError(`${file}: ${(err as Error).message}`);
      }
      for (const [i, v] of list.entries()) {
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
