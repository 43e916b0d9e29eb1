import { spawn } from 'node:child_process';
import type { IpFamily } from './cidr.js';
import { IptablesCommandError, IptablesToolMissingError } from './errors.js';
import type { CaptureRulesOptions } from './options.js';
import { parseNatTable, restoreInput, type NatTable } from './restore-input.js';
import { captureRuleSet, emptyRuleSet } from './rules.js';

/** The pair of tools that read and write one family's tables. */
export interface IptablesTools {
  readonly save: string;
  readonly restore: string;
}

/**
 * Whatever backend the system's alternatives select (nf_tables or legacy); both behave the
 * same for everything we send. Pass `iptables-legacy-save`/`-restore` to pick one: a pod
 * must not mix the two, since both sets of rules would apply.
 */
export const IPTABLES_TOOLS: Readonly<Record<IpFamily, IptablesTools>> = Object.freeze({
  4: Object.freeze({ save: 'iptables-save', restore: 'iptables-restore' }),
  6: Object.freeze({ save: 'ip6tables-save', restore: 'ip6tables-restore' }),
});

/** Each tool call is bounded: a hung iptables (a held xtables lock) fails the init, not hangs it. */
const TOOL_TIMEOUT_MS = 30_000;
/** Seconds iptables-restore waits for the xtables lock another writer holds (legacy backend). */
const LOCK_WAIT_SECONDS = '10';

interface ToolResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runTool(tool: string, args: readonly string[], input?: string): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    // Our own timer rather than spawn's `timeout`: that one is not cleared when the spawn
    // fails (ENOENT), and would hold the process open for its whole length.
    const child = spawn(tool, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, TOOL_TIMEOUT_MS);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(err.code === 'ENOENT' ? new IptablesToolMissingError(tool) : err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (timedOut) stderr += `\nkilled after ${TOOL_TIMEOUT_MS / 1000} s without finishing`;
      resolve({ code, stdout, stderr });
    });
    // EPIPE when the tool exits before reading everything: its exit status tells the story.
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}

/** Reads the current nat table of one family (`iptables-save -t nat`). */
export async function readNatTable(tools: IptablesTools): Promise<NatTable> {
  const result = await runTool(tools.save, ['-t', 'nat']);
  if (result.code !== 0) throw new IptablesCommandError(tools.save, result.code, result.stderr, undefined);
  return parseNatTable(result.stdout);
}

/** Feeds `input` to `iptables-restore --noflush`; a refusal names the input line it refused. */
export async function restoreNatTable(tools: IptablesTools, input: string): Promise<void> {
  const result = await runTool(tools.restore, ['--noflush', '--wait', LOCK_WAIT_SECONDS], input);
  if (result.code === 0) return;
  // `line N failed` when the commit is refused, `Error occurred at line: N` when parsing is.
  const match = /line (\d+) failed|Error occurred at line: (\d+)/.exec(result.stderr);
  const lineNumber = match?.[1] ?? match?.[2];
  const failedLine = lineNumber === undefined ? undefined : input.split('\n')[Number(lineNumber) - 1];
  throw new IptablesCommandError(tools.restore, result.code, result.stderr, failedLine);
}

/** Whether this family's nat table can be read: false when ip6tables is absent or IPv6 is off. */
export async function natTableAvailable(tools: IptablesTools): Promise<boolean> {
  try {
    return (await runTool(tools.save, ['-t', 'nat'])).code === 0;
  } catch (err) {
    if (err instanceof IptablesToolMissingError) return false;
    throw err;
  }
}

/**
 * Installs one family's capture rules, replacing any earlier noisemesh rules; running it
 * again changes nothing. Resolves to the restore input it applied.
 */
export async function installCaptureRules(
  options: CaptureRulesOptions,
  family: IpFamily,
  tools: IptablesTools = IPTABLES_TOOLS[family],
): Promise<string> {
  const input = restoreInput(captureRuleSet(options, family), await readNatTable(tools));
  await restoreNatTable(tools, input);
  return input;
}

/** Removes the jumps into our chains and the chains themselves. Resolves to the restore input applied. */
export async function removeCaptureRules(family: IpFamily, tools: IptablesTools = IPTABLES_TOOLS[family]): Promise<string> {
  const input = restoreInput(emptyRuleSet(family), await readNatTable(tools));
  await restoreNatTable(tools, input);
  return input;
}
