/**
 * `noisemesh secrets fetch --config FILE`: the projection of `noisemesh proxy` (the same
 * configuration file, the same code), once, for an init container: it fetches every item of
 * `secrets.project` from the gateway through a mesh session, writes the files, and exits 0;
 * or prints one line naming the item and the reason and exits 1. The sidecar that starts
 * next finds the files in place and swaps them only when the gateway's answer differs.
 */
import { parseArgs } from 'node:util';
import { loadBackend } from '../../noise/index.js';
import { Proxy, createLogger } from '../../proxy/index.js';
import { loadCommandConfig } from '../config/command-config.js';
import { loadProxyConfig, type ProxyConfig } from '../config/proxy-config.js';
import { openRegistry } from '../registry-wiring.js';
import { projectorFor } from '../projection-wiring.js';
import type { Command } from '../command.js';
import { UsageError } from '../usage-error.js';
import { loadIdentity, readKeyFile } from './proxy.js';

/** How long the registry may take to load before the fetch gives up. */
const REGISTRY_WAIT_MS = 15_000;

const USAGE = `usage: noisemesh secrets fetch --config FILE [--registry-wait SECONDS]

Fetches every item of secrets.project in FILE (the proxy's configuration) from the secrets
gateway through the mesh, as the sidecar does, writes them into secrets.project.dir
(atomically, with secrets.env), and exits: 0 when the files are written (or already
current), 1 with one line naming the item and the reason (denied, with the gateway's rule
and reasons; unreachable; no such secret; a file that cannot be written), 2 with one line
when the command line or FILE is wrong (nothing is fetched). For an init container, so that
the application starts with its secrets (docs/gateway.md, Projection).

  --config FILE             the proxy's YAML configuration, with a secrets section (required)
  --registry-wait SECONDS   how long to wait for the registry to load (default ${REGISTRY_WAIT_MS / 1000})
`;

export const secrets: Command = {
  usage: USAGE,
  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { config: { type: 'string' }, 'registry-wait': { type: 'string' } } });
    if (positionals[0] !== 'fetch' || positionals.length !== 1) {
      throw new UsageError(positionals.length === 0 ? 'a subcommand is required: fetch' : `unknown subcommand ${JSON.stringify(positionals.join(' '))}: the one subcommand is fetch`);
    }
    if (values.config === undefined) throw new UsageError('--config FILE is required: the proxy\'s YAML configuration with a secrets section');
    const waitSeconds = values['registry-wait'] === undefined ? REGISTRY_WAIT_MS / 1000 : Number(values['registry-wait']);
    if (!Number.isFinite(waitSeconds) || waitSeconds < 0 || waitSeconds > 3600) throw new UsageError(`--registry-wait must be a number of seconds from 0 to 3600; got ${JSON.stringify(values['registry-wait'])}`);
    const config: ProxyConfig = await loadCommandConfig(loadProxyConfig, values.config);
    if (config.secrets === null) throw new UsageError(`${values.config} has no secrets section: nothing to fetch (docs/configuration.md, Secrets projection)`);
    // Silent unless the configuration asks for a level: the one line below is the outcome, and
    // carries the reason (the registry's, the gateway's); the proxy's JSON lines would bury it.
    const log = createLogger({ level: config.logLevel ?? 'silent' });
    const backend = await loadBackend(config.crypto);
    const dh = backend.dh('25519');
    const identity = loadIdentity(config, dh.keyPairFromPrivate.bind(dh), () => dh.generateKeyPair());
    const psk = config.pskFile === null ? undefined : readKeyFile(config.pskFile, 'psk.file');
    const registry = await openRegistry(config.registry, log);
    try {
      // A client only: it opens sessions and never listens.
      const client = new Proxy({
        trustDomain: config.trustDomain,
        protocolName: config.suite,
        backend,
        identity,
        directory: registry.directory,
        log,
        ...(psk && { psk }),
        outbound: { mode: config.outbound.mode, explicit: [] },
        inbound: { mesh: { host: '127.0.0.1', port: 0 } },
        keepalive: config.keepalive,
      });
      if (!(await readyWithin(registry.registry.ready(), waitSeconds * 1000))) {
        const why = registry.notReadyReason();
        process.stderr.write(`noisemesh secrets fetch: the registry did not load within ${waitSeconds} s${why === undefined ? '' : ` (${why})`}: nothing fetched\n`);
        return 1;
      }
      const outcome = await projectorFor(config.secrets, client, log, false).refreshOnce();
      if (!outcome.ok) {
        process.stderr.write(`noisemesh secrets fetch: ${outcome.message}\n`);
        return 1;
      }
      const n = config.secrets.items.length;
      process.stdout.write(`${n} item${n === 1 ? '' : 's'} ${outcome.result === 'changed' ? 'written to' : 'already current in'} ${config.secrets.dir}\n`);
      return 0;
    } finally {
      identity.keyPair.privateKey.fill(0);
      await registry.stop();
    }
  },
};

async function readyWithin(ready: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([ready.then(() => true, () => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
