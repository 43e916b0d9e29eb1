import { parseArgs } from 'node:util';
import { FileReadError, readRegularFileSync } from '../../files/index.js';
import { buildSnapshot, formatProblem, parseRegistryYaml, type RegistryProblem } from '../../registry-sync/index.js';
import type { Command } from '../command.js';
import { UsageError } from '../usage-error.js';

const USAGE = `usage: noisemesh registry validate FILE...

Checks ClearanceRegistry files as a proxy would load them (registry.file): each file on its
own, with the checks across its entries. Prints every problem of every file, one line each
(file:line: document: path: what is wrong and the fix), then a summary. Exit 0 when there is
no problem, 1 when there is any (warnings included), 2 for a wrong command line.
`;

/** The proxy's limit for a registry file (FileSourceOptions.maxBytes). */
const MAX_REGISTRY_BYTES = 16 * 1024 * 1024;

/**
 * Checks registry files as the proxy would load them: each file on its own, with the checks
 * across entries (conflicts, supersession) applied within it. Every problem is printed with
 * its file, line, document, path and fix; any problem, warnings included, exits 1.
 */
export const registry: Command = {
  usage: USAGE,
  async run(args) {
    const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
    const [sub, ...files] = positionals;
    const synopsis = USAGE.split('\n')[0]!;
    if (sub !== 'validate') throw new UsageError(sub === undefined ? `name a subcommand; ${synopsis}` : `unknown subcommand '${sub}'; ${synopsis}`);
    if (files.length === 0) throw new UsageError(`name at least one file; ${synopsis}`);
    let documents = 0;
    let peers = 0;
    let errors = 0;
    let warnings = 0;
    for (const file of files) {
      let problems: readonly RegistryProblem[];
      let text: string | undefined;
      try {
        text = readRegularFileSync(file, { maxBytes: MAX_REGISTRY_BYTES }).toString('utf8');
      } catch (err) {
        if (!(err instanceof FileReadError)) throw err;
        process.stdout.write(`${err.message}\n`);
        errors++;
        continue;
      }
      const parsed = parseRegistryYaml(text, file);
      if (parsed.ok) {
        const snapshot = buildSnapshot(parsed.objects, { origin: `file ${file}` }, parsed.problems);
        problems = snapshot.problems;
        documents += parsed.documents;
        peers += snapshot.entries.length;
      } else {
        problems = parsed.problems;
      }
      for (const p of problems) {
        process.stdout.write(`${formatProblem(p)}\n`);
        if (p.severity === 'error') errors++;
        else warnings++;
      }
    }
    const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
    process.stdout.write(
      `${plural(files.length, 'file')}, ${plural(documents, 'document')}, ${plural(peers, 'peer')} loaded; ${plural(errors, 'error')}, ${plural(warnings, 'warning')}\n`,
    );
    return errors + warnings > 0 ? 1 : 0;
  },
};
