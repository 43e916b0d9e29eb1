/**
 * Benchmark dispatcher: `npm run bench` runs every module below, `npm run bench -- noise`
 * only the named ones. A new benchmark (the proxy's, say) is one more entry in MODULES.
 * Every option is checked, against the modules to run, before the first one starts.
 */
import { assignOptions, type BenchModule } from './lib/module.js';
import { describeLoad, describeMachine } from './lib/machine.js';

const MODULES: Readonly<Record<string, () => Promise<BenchModule>>> = {
  noise: async () => (await import('./noise.js')).noiseBench,
  proxy: async () => (await import('./proxy.js')).proxyBench,
  trust: async () => (await import('./trust.js')).trustBench,
  gateway: async () => (await import('./gateway.js')).gatewayBench,
  load: async () => (await import('./load.js')).loadBench,
  revocation: async () => (await import('./revocation.js')).revocationBench,
};

async function main(args: readonly string[]): Promise<void> {
  const names = args.filter((a) => !a.startsWith('-'));
  const options = args.filter((a) => a.startsWith('-'));
  for (const name of names) {
    if (!Object.hasOwn(MODULES, name)) {
      throw new Error(`unknown benchmark '${name}': choose from ${Object.keys(MODULES).join(', ')} (or none for all)`);
    }
  }
  const modules: BenchModule[] = [];
  for (const name of names.length > 0 ? names : Object.keys(MODULES)) modules.push(await MODULES[name]!());
  const own = assignOptions(modules, options);
  for (const bench of modules) bench.check?.(own.get(bench.name)!);
  console.log(describeMachine());
  for (const bench of modules) {
    console.log(`\n# ${bench.name}: ${bench.description}\n`);
    await bench.run(own.get(bench.name)!);
    console.log(`(${bench.name} done; ${describeLoad()})`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
