/**
 * The closed set of failures of rule rendering and installation, each with a stable `code`.
 */
export type IptablesErrorCode = 'IPTABLES_BAD_OPTION' | 'IPTABLES_TOOL_MISSING' | 'IPTABLES_COMMAND_FAILED';

export abstract class IptablesError extends Error {
  abstract readonly code: IptablesErrorCode;
  override get name(): string {
    return this.constructor.name;
  }
}

/** An option of the rule set is out of range or malformed; `field` names it (`excludeOutboundCidrs[1]`). */
export class IptablesOptionError extends IptablesError {
  readonly code = 'IPTABLES_BAD_OPTION' as const;
  constructor(
    /** The option's name in `CaptureRulesOptions`, with an index for list items. */
    readonly field: string,
    /** What is wrong and what would be right, without the field name. */
    readonly problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

/** iptables-restore or iptables-save is not installed (or not on PATH). */
export class IptablesToolMissingError extends IptablesError {
  readonly code = 'IPTABLES_TOOL_MISSING' as const;
  constructor(readonly tool: string) {
    super(
      `${tool} was not found on PATH: install iptables (Debian/Ubuntu: apt-get install -y iptables; ` +
        `Alpine: apk add iptables ip6tables)`,
    );
  }
}

/** The tool ran and failed; the message carries its stderr and, when it names one, the input line it refused. */
export class IptablesCommandError extends IptablesError {
  readonly code = 'IPTABLES_COMMAND_FAILED' as const;
  constructor(
    readonly tool: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly failedLine: string | undefined,
  ) {
    const detail = stderr.trim() === '' ? '(no output)' : stderr.trim();
    const line = failedLine === undefined ? '' : `\n  the refused line: ${failedLine}`;
    const hint = /permission denied|operation not permitted|you must be root/i.test(stderr)
      ? '\n  this needs CAP_NET_ADMIN: run as root or give the init container NET_ADMIN'
      : '';
    super(`${tool} failed (exit ${exitCode ?? 'by signal'}): ${detail}${line}${hint}`);
  }
}
