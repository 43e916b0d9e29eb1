#!/usr/bin/env node
/** The `noisemesh` command: one binary, several commands (DESIGN.md, Processes). */
import { commands } from './commands/index.js';
import { UsageError } from './usage-error.js';

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const command = name === undefined ? undefined : commands[name];
  if (command === undefined) {
    const width = Math.max(...Object.keys(commands).map((n) => n.length));
    const list = Object.entries(commands)
      .map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`)
      .join('\n');
    process.stderr.write(`${name === undefined ? '' : `unknown command '${name}'\n\n`}usage: noisemesh <command> [options]\n\n${list}\n`);
    return 2;
  }
  try {
    return await (await command.load()).run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`noisemesh ${name}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

process.exitCode = await main(process.argv.slice(2));
