export interface Command {
  /** Runs with the arguments after the command name; resolves to the exit code. */
  run(args: string[]): Promise<number>;
}

/** A command as the dispatcher lists it: its one-line summary, and its module, loaded on use. */
export interface CommandEntry {
  readonly summary: string;
  load(): Promise<Command>;
}
