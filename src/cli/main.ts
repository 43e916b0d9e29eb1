#!/usr/bin/env node
/**
 * The `noisemesh` command: one binary, several commands (docs/architecture.md, Processes).
 *
 * Every mistake a user can make on the command line ends here as one line that names it, and
 * an exit code: 2 for a command line (then the usage) or a configuration the command refuses
 * to start with (a UsageError: files it names included), 1 for a command that started and
 * failed at its work, or a system error no check foresaw. Only a bug in the program shows a
 * stack.
 */
import { readFileSync } from 'node:fs';
import type { Command } from './command.js';
import { commands } from './commands/index.js';
import { isSystemError, systemErrorLine } from './system-error.js';
import { CommandFailure } from './command-failure.js';
import { UsageError } from './usage-error.js';

const HELP_FLAGS = new Set(['--help', '-h']);

function overview(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const list = Object.entries(commands)
    .map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`)
    .join('\n');
  return (
    'usage: noisemesh <command> [options]\n' +
    '       noisemesh help <command>    the options of a command (or: noisemesh <command> --help)\n' +
    '       noisemesh --version\n\n' +
    `commands:\n${list}\n`
  );
}

/** package.json beside dist/: this file runs as dist/src/cli/main.js. */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** The one line for an error of node:util's parseArgs, without its advice about `--`. */
function parseArgsLine(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS_')) return undefined;
  const message = (err as Error).message;
  const quoted = /'([^']+)'/.exec(message)?.[1];
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option '${quoted}'`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument '${quoted}'`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      // "Option '--out <value>' argument missing", or "Option '--serve' does not take an argument".
      if (/argument missing/.test(message)) return `option ${quoted?.replace(/ <value>$/, '')} needs a value`;
      if (/does not take an argument/.test(message)) return `option ${quoted} takes no value`;
      // A value that starts with '-' reads as another option: it must be joined with '='.
      if (/argument is ambiguous/.test(message)) return `option ${quoted} takes a value that starts with '-': write it as ${quoted}=VALUE`;
      return message.split('\n')[0]!.replace(/^Option/, 'option');
    default:
      return message.split('\n')[0]!;
  }
}

/**
 * Error text as the terminal will show it. Paths and values a user typed are echoed inside
 * messages; their control characters are escaped here, where every error is written, so they
 * cannot move the cursor or recolour the terminal. `lines` keeps the newlines a message puts
 * between its problems (a configuration's, one a line); otherwise a newline is escaped too and
 * the error stays one line.
 */
function printable(text: string, lines = false): string {
  const control = lines ? /[\u0000-\u0009\u000b-\u001f\u007f]/g : /[\u0000-\u001f\u007f]/g;
  return text.replace(control, (c) => (c === '\n' ? '\\n' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    process.stderr.write(`noisemesh: name a command\n\n${overview()}`);
    return 2;
  }
  if (HELP_FLAGS.has(first) || (first === 'help' && rest.length === 0)) {
    process.stdout.write(overview());
    return 0;
  }
  if (first === '--version' || first === '-V') {
    process.stdout.write(`noisemesh ${version()}\n`);
    return 0;
  }
  if (first === 'help' && rest.length === 1 && rest[0] === 'help') {
    process.stdout.write(overview());
    return 0;
  }
  const helpOnly = first === 'help';
  const name = helpOnly ? rest[0]! : first;
  const entry = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (entry === undefined) {
    const what = name.startsWith('-') ? 'option' : 'command';
    process.stderr.write(`noisemesh: unknown ${what} '${printable(name)}'\n\n${overview()}`);
    return 2;
  }
  const command: Command = await entry.load();
  const args = helpOnly ? [] : rest;
  // `--help` anywhere before a `--` asks for help, whatever else the line holds.
  const end = args.indexOf('--');
  if (helpOnly || (end < 0 ? args : args.slice(0, end)).some((a) => HELP_FLAGS.has(a))) {
    if (helpOnly && rest.length > 1) {
      process.stderr.write(`noisemesh help: unexpected argument '${rest[1]}'\n\n${overview()}`);
      return 2;
    }
    process.stdout.write(command.usage);
    return 0;
  }
  try {
    return await command.run(args);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`noisemesh ${name}: ${printable(err.message, true)}\n`);
      return 2;
    }
    const parse = parseArgsLine(err);
    if (parse !== undefined) {
      process.stderr.write(`noisemesh ${name}: ${printable(parse)}\n\n${command.usage}`);
      return 2;
    }
    if (isSystemError(err)) {
      process.stderr.write(`noisemesh ${name}: ${printable(systemErrorLine(err))}\n`);
      return 1;
    }
    if (err instanceof CommandFailure) {
      process.stderr.write(`noisemesh ${name}: ${printable(err.message)}\n`);
      return 1;
    }
    throw err;
  }
}

process.exitCode = await main(process.argv.slice(2));
