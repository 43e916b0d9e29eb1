export interface Command {
  /**
   * The command's help: a `usage: noisemesh <command> ...` line, then its options, each with
   * its meaning and default. Printed by `--help`, and after a mistake in the command line.
   */
  readonly usage: string;
  /**
   * Runs with the arguments after the command name; resolves to the exit code. A mistake in
   * the command line is a thrown UsageError, or the error node:util's parseArgs throws; a
   * file or socket the environment refuses is the system error node throws: the dispatcher
   * prints each as one line, never a stack.
   */
  run(args: string[]): Promise<number>;
}

/** A command as the dispatcher lists it: its one-line summary, and its module, loaded on use. */
export interface CommandEntry {
  readonly summary: string;
  load(): Promise<Command>;
}
