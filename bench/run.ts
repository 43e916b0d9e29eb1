/**
 * Benchmark dispatcher: `npm run bench` runs every module below, `npm run bench -- noise`
 * only the named ones. A new benchmark (the proxy's, say) is one more entry in MODULES.
 * Before the first module starts, everything is checked against the modules to run: every
 * name (once each), every option (known, not repeated, applying to what was selected), every
 * module's needs from the machine (root, tools); then the estimated duration is printed.
 * `--help` prints the modules and their options.
 */
import { assignOptions, estimateLine, type BenchModule } from './lib/module.js';
import { describeLoad, describeMachine } from './lib/machine.js';

const MODULES: Readonly<Record<string, () => Promise<BenchModule>>> = {
  noise: async () => (await import('./noise.js')).noiseBench,
  proxy: async () => (await import('./proxy.js')).proxyBench,
  trust: async () => (await import('./trust.js')).trustBench,
  gateway: async () => (await import('./gateway.js')).gatewayBench,
  load: async () => (await import('./load.js')).loadBench,
  revocation: async () => (await import('./revocation.js')).revocationBench,
};

async function usage(): Promise<string> {
  const lines = ['usage: npm run bench -- [MODULE ...] [--option=VALUE ...]   (no module: all of them; options take their value after =)', ''];
  for (const name of Object.keys(MODULES)) {
    const m = await MODULES[name]!();
    lines.push(`  ${name}: ${m.description}`);
    lines.push(`      options: ${m.options.length === 0 ? 'none' : m.options.map((o) => (o.endsWith('=') ? `${o}VALUE` : o)).join(' ')}`);
  }
  lines.push('', 'bench/README.md explains each module and its options.');
  return lines.join('\n');
}

async function main(args: readonly string[]): Promise<void> {
  if (args.includes('--help') || args.includes('-h')) {
    console.log(await usage());
    return;
  }
  const names = args.filter((a) => !a.startsWith('-'));
  const options = args.filter((a) => a.startsWith('-'));
  for (const [i, name] of names.entries()) {
    if (!Object.hasOwn(MODULES, name)) {
      const before = args[args.indexOf(name) - 1];
      // `--seconds 5`: the value was taken for a benchmark's name.
      const hint = before !== undefined && before.startsWith('--') && !before.includes('=') ? ` (options take their value after '=': ${before}=${name})` : '';
      throw new Error(`unknown benchmark '${name}': choose from ${Object.keys(MODULES).join(', ')} (or none for all)${hint}`);
    }
    if (names.indexOf(name) !== i) throw new Error(`benchmark ${name} is named more than once`);
  }
  const modules: BenchModule[] = [];
  for (const name of names.length > 0 ? names : Object.keys(MODULES)) modules.push(await MODULES[name]!());
  const own = assignOptions(modules, options);
  for (const bench of modules) bench.check?.(own.get(bench.name)!);
  // Every module's needs, before the first starts: one line naming all that is missing.
  const missing: string[] = [];
  for (const bench of modules) {
    try {
      bench.requires?.(own.get(bench.name)!);
    } catch (err) {
      missing.push(`${bench.name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (missing.length > 0) throw new Error(missing.join('; '));
  console.log(describeMachine());
  console.log(estimateLine(modules.map((m) => ({ name: m.name, seconds: m.estimateSeconds?.(own.get(m.name)!) ?? null }))));
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
