/**
 * `noisemesh proxy --config FILE`: the sidecar. Reads and checks the configuration (refusing
 * to start, with the path and the fix, on any problem), loads the identity, opens the
 * registry, binds every listener, and drains on SIGTERM.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { backendByName, decodeKey, defaultAeadEngine, encodeKey, BadKeyError, type KeyPair } from '../../noise/index.js';
import { REBUILD_HINT } from '../../native/index.js';
import {
  Proxy,
  createLogger,
  descriptorBudget,
  raiseDescriptorLimit,
  tuneHeapForProxy,
  type ConnectionCaps,
  type Identity,
  type Logger,
  type OriginalDestinationOf,
} from '../../proxy/index.js';
import { addonOriginalDestinationLookup, CaptureError } from '../../proxy/capture/index.js';
import { loadProxyConfig, type ProxyConfig } from '../config/proxy-config.js';
import { ConfigError } from '../config/config-reader.js';
import { openRegistry } from '../registry-wiring.js';
import type { Command } from '../command.js';
import { UsageError } from '../usage-error.js';

export const proxy: Command = {
  async run(args) {
    const { values } = parseArgs({ args, options: { config: { type: 'string' } } });
    if (values.config === undefined) throw new UsageError('--config FILE is required (the YAML of DESIGN.md, Configuration)');
    let config: ProxyConfig;
    try {
      config = loadProxyConfig(values.config);
    } catch (err) {
      if (err instanceof ConfigError) throw new UsageError(`configuration refused:\n${err.message}`);
      throw err;
    }
    tuneHeapForProxy();
    const log = createLogger({ level: config.logLevel });
    const backend = backendByName(config.crypto);
    if (config.crypto === 'native' && defaultAeadEngine.fallbackReason !== undefined) {
      log.warn(
        { event: 'crypto', aead: defaultAeadEngine.engine },
        `the AEAD context addon is unavailable (${defaultAeadEngine.fallbackReason}): sessions encrypt with node:crypto, ` +
          `which is correct but costs ~10 µs more a message; ${REBUILD_HINT}`,
      );
    }
    const caps = connectionCaps(config, log);
    const identity = loadIdentity(config, backend.dh('25519').keyPairFromPrivate.bind(backend.dh('25519')), () => backend.dh('25519').generateKeyPair());
    const psk = config.pskFile === null ? undefined : readKeyFile(config.pskFile, 'psk.file');

    let originalDestinationOf: OriginalDestinationOf | undefined;
    if (config.outbound.capture !== null || config.inbound.capture !== null) {
      try {
        const lookup = addonOriginalDestinationLookup();
        originalDestinationOf = (socket) => lookup.lookup(socket);
      } catch (err) {
        if (err instanceof CaptureError) {
          throw new UsageError(`capture is configured but the original-destination addon is unavailable: ${err.message}`);
        }
        throw err;
      }
    }

    const registry = await openRegistry(config.registry.file, log);
    const sidecar = new Proxy({
      trustDomain: config.trustDomain,
      protocolName: config.suite,
      backend,
      identity,
      directory: registry.directory,
      log,
      ...(psk && { psk }),
      ...(originalDestinationOf && { originalDestinationOf }),
      outbound: {
        mode: config.outbound.mode,
        ...(config.outbound.capture && { capture: config.outbound.capture }),
        explicit: config.outbound.explicit,
      },
      inbound: {
        mesh: { host: config.inbound.bind, port: config.inbound.meshPort },
        targetHost: config.inbound.targetHost,
        ...(config.inbound.capture && { capture: config.inbound.capture }),
      },
      ...(config.admin && { admin: config.admin }),
      caps,
    });
    registry.attach(sidecar);
    try {
      await sidecar.start();
    } catch (err) {
      registry.stop();
      throw new UsageError(`cannot listen: ${(err as Error).message}`);
    }
    const ownEntry = registry.directory.peerByKey(identity.publicKeyB64);
    if (ownEntry === undefined) {
      log.warn({ event: 'identity', agentId: identity.agentId }, 'this proxy\'s public key is not in the registry: peers will refuse it (status 1) until it is');
    }

    const stopped = new Promise<void>((resolve) => {
      const stop = (signal: string): void => {
        log.info({ event: 'signal', signal, drainSeconds: config.drainSeconds }, 'draining');
        void sidecar.shutdown(config.drainSeconds * 1000).then(() => {
          registry.stop();
          resolve();
        });
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    await stopped;
    identity.keyPair.privateKey.fill(0);
    return 0;
  },
};

/**
 * Raises the descriptor limit to the hard limit and shares it out (README, "Strangers");
 * caps set in the configuration may lower a derived cap, never raise it past the limit.
 */
function connectionCaps(config: ProxyConfig, log: Logger): ConnectionCaps {
  const limit = raiseDescriptorLimit();
  if (limit.problem !== undefined) log.warn({ event: 'descriptors', limit: limit.soft }, limit.problem);
  const listeners = 1 + (config.admin ? 1 : 0) + (config.outbound.capture ? 1 : 0) + (config.inbound.capture ? 1 : 0) + config.outbound.explicit.length;
  const budget = descriptorBudget(limit.soft, listeners);
  const pick = (key: keyof ProxyConfig['limits'], derived: number, ceiling: number, why: string): number => {
    const wanted = config.limits[key];
    if (wanted === null) return Math.min(derived, ceiling);
    if (wanted > ceiling) {
      log.warn({ event: 'descriptors', setting: `limits.${key}`, wanted, used: ceiling, limit: limit.soft }, `limits.${key} is more than ${why}; using ${ceiling}`);
      return ceiling;
    }
    return wanted;
  };
  const allows = `the descriptor limit allows (raise it with ulimit -n or the pod's limits)`;
  const pendingHandshakes = pick('pendingHandshakes', budget.pendingHandshakes, budget.pendingHandshakes, allows);
  const caps: ConnectionCaps = {
    pendingHandshakes,
    pendingHandshakesPerSource: pick('pendingHandshakesPerSource', budget.pendingHandshakesPerSource, pendingHandshakes, 'limits.pendingHandshakes'),
    sessions: pick('sessions', budget.sessions, budget.sessions, allows),
    adminConnections: budget.adminConnections,
  };
  log.info({ event: 'descriptors', limit: limit.soft, hard: limit.hard, raisedFrom: limit.raisedFrom, reserved: budget.reserved, ...caps }, 'connection caps');
  return caps;
}

function loadIdentity(config: ProxyConfig, fromPrivate: (key: Uint8Array) => KeyPair, generate: () => KeyPair): Identity {
  const keyPair = config.identity.privateKeyFile === null
    ? generate()
    : fromPrivate(readKeyFile(config.identity.privateKeyFile, 'identity.privateKeyFile'));
  return { agentId: config.identity.agentId, keyPair, publicKeyB64: encodeKey(keyPair.publicKey) };
}

/** Reads a base64 32-byte key; errors name the setting and never echo the file's content. */
function readKeyFile(file: string, setting: string): Uint8Array {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${setting}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    return decodeKey(text, 32, setting);
  } catch (err) {
    if (err instanceof BadKeyError) throw new UsageError(`${err.message} (${file}); make one with: noisemesh keygen --out ${file}`);
    throw err;
  }
}
