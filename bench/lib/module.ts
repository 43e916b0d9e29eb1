/** What bench/run.ts dispatches to: one named group of benchmarks. */
export interface BenchModule {
  readonly name: string;
  readonly description: string;
  run(args: readonly string[]): Promise<void> | void;
}
