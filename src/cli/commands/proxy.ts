/**
 * `noisemesh proxy --config FILE`: the sidecar. Reads and checks the configuration (refusing
 * to start, with the path and the fix, on any problem), loads the identity, opens the
 * registry, binds every listener, and drains on SIGTERM.
 */
import { parseArgs } from 'node:util';
import { FileReadError, readRegularFileSync } from '../../files/index.js';
import { decodeKey, defaultAeadEngine, encodeKey, loadBackend, BadKeyError, type KeyPair } from '../../noise/index.js';
import { REBUILD_HINT } from '../../native/index.js';
import {
  Proxy,
  createLogger,
  descriptorBudget,
  nativePumpSettingError,
  sessionDescriptors,
  PUMP_TURNED_OFF,
  raiseDescriptorLimit,
  sessionPump,
  tuneHeapForProxy,
  type BuiltInServices,
  type ConnectionCaps,
  type Identity,
  type Logger,
  type OriginalDestinationOf,
} from '../../proxy/index.js';
import { addonOriginalDestinationLookup, CaptureError } from '../../proxy/capture/index.js';
import { loadProxyConfig, LOG_LEVELS, type LogLevel, type ProxyConfig } from '../config/proxy-config.js';
import { loadCommandConfig } from '../config/command-config.js';
import { openRegistry, type OpenRegistry } from '../registry-wiring.js';
import type { Command } from '../command.js';
import { UsageError } from '../usage-error.js';

/** After the drain deadline, how long shutdown may take before the process exits anyway. */
const SHUTDOWN_OVERRUN_MS = 2000;
/** After shutdown, how long open handles may take to close before the process exits anyway. */
const EXIT_GRACE_MS = 500;

const USAGE = `usage: noisemesh proxy --config FILE

Runs the sidecar: outbound capture and explicit listeners, the mesh responder, inbound
capture, the admin server (/metrics /healthz /readyz /debug/sessions) and the registry watch.
Every key of FILE, with its default, is in docs/configuration.md. A wrong key or value stops
it at start with exit 2 and a line per problem. SIGTERM or SIGINT drains, then exits 0.

  --config FILE   the YAML configuration (required)

environment:
  NOISEMESH_LOG_LEVEL   log level when FILE sets no log.level: ${LOG_LEVELS.join(', ')} (default info)
  NOISEMESH_NATIVE_PUMP 0: sessions relay through node's streams instead of the native pump (default 1)
`;

export const proxy: Command = {
  usage: USAGE,
  async run(args) {
    const { values } = parseArgs({ args, options: { config: { type: 'string' } } });
    if (values.config === undefined) throw new UsageError('--config FILE is required: the YAML configuration (docs/configuration.md)');
    const config: ProxyConfig = await loadCommandConfig(loadProxyConfig, values.config);
    return runSidecar(config);
  },
};

/**
 * What a command built on the sidecar adds to it (`noisemesh gateway`): services in place of
 * TCP targets, started once the registry is open and the proxy built, before it listens, and
 * stopped after it has drained.
 */
export interface SidecarExtension {
  readonly services: BuiltInServices;
  /**
   * Opens what the extension's configuration names (files, backends) before the sidecar logs
   * or starts anything, so that a refusal is the command's one line. Throws UsageError to
   * refuse to start.
   */
  prepare?(log: Logger): Promise<void>;
  /** Descriptors the services may hold at most (listeners, connections under their own caps): held back from the proxy's caps. */
  readonly descriptors?: number;
  /** Throws UsageError to refuse to start (the registry is then stopped). */
  start(context: { readonly proxy: Proxy; readonly registry: OpenRegistry; readonly identity: Identity; readonly log: Logger }): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Runs a proxy from a checked configuration until SIGTERM or SIGINT: the identity, the
 * registry, every listener, the drain. Resolves to the exit code.
 */
export async function runSidecar(config: ProxyConfig, extension?: SidecarExtension): Promise<number> {
  const level = config.logLevel ?? logLevelFromEnvironment() ?? 'info';
  const pumpSettingError = nativePumpSettingError();
  if (pumpSettingError !== null) throw new UsageError(pumpSettingError);
  tuneHeapForProxy();
  const log = createLogger({ level });
  await extension?.prepare?.(log);
  try {
    return await runPrepared(config, log, extension);
  } catch (err) {
    // What prepare opened (a backend's timers, say) must not keep a refused process alive.
    await extension?.stop();
    throw err;
  }
}

async function runPrepared(config: ProxyConfig, log: Logger, extension: SidecarExtension | undefined): Promise<number> {
  const pump = sessionPump();
  if (pump.engine === 'native') {
    log.info({ event: 'session-pump', engine: pump.engine }, 'established sessions relay on the native session pump');
  } else if (pump.reason === PUMP_TURNED_OFF) {
    log.info({ event: 'session-pump', engine: pump.engine }, `established sessions relay through node's streams (${pump.reason})`);
  } else {
    log.warn(
      { event: 'session-pump', engine: pump.engine },
      `${pump.reason}: established sessions relay through node's streams, which is correct but costs ~40% more CPU a request; ${REBUILD_HINT}`,
    );
  }
  const backend = await loadBackend(config.crypto);
  if (config.crypto === 'native' && defaultAeadEngine.fallbackReason !== undefined) {
    log.warn(
      { event: 'crypto', aead: defaultAeadEngine.engine },
      `the AEAD context addon is unavailable (${defaultAeadEngine.fallbackReason}): sessions encrypt with node:crypto, ` +
        `which is correct but costs ~10 µs more a message; ${REBUILD_HINT}`,
    );
  }
  const caps = connectionCaps(config, log, extension?.descriptors ?? 0);
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

  const registry = await openRegistry(config.registry, log);
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
      ...(config.inbound.targetHost !== null && { targetHost: config.inbound.targetHost }),
      ...(config.inbound.capture && { capture: config.inbound.capture }),
      ...(extension && { services: extension.services }),
    },
    ...(config.admin && { admin: config.admin }),
    keepalive: config.keepalive,
    caps,
  });
  const livenessLost = sidecar.liveness.describeFallback();
  if (livenessLost !== undefined) log.warn({ event: 'keepalive', boundSeconds: sidecar.liveness.boundSeconds }, `${livenessLost}; ${REBUILD_HINT}`);
  registry.attach(sidecar);
  // Not ready until the secrets are on disk: the condition is in /readyz before it listens.
  // Imported for a configuration with the section only: the projection brings src/secrets.
  const projection = config.secrets === null ? undefined : (await import('../projection-wiring.js')).projectorFor(config.secrets, sidecar, log, true);
  try {
    await extension?.start({ proxy: sidecar, registry, identity, log });
  } catch (err) {
    await registry.stop();
    throw err;
  }
  try {
    await sidecar.start();
  } catch (err) {
    registry.stop();
    throw new UsageError(`cannot listen: ${(err as Error).message}`);
  }
  projection?.start();
  // What the registry says about this configuration, once there is a registry to ask.
  const checkAgainstRegistry = (): void => {
    const ownEntry = registry.directory.peerByKey(identity.publicKeyB64);
    if (ownEntry === undefined) {
      log.warn({ event: 'identity', agentId: identity.agentId }, 'this proxy\'s public key is not in the registry: peers will refuse it (status 1) until it is');
    }
    for (const [i, route] of config.outbound.explicit.entries()) {
      if (registry.directory.peersByAgentId(route.peer).length === 0) {
        log.warn(
          { event: 'config', setting: `outbound.explicit[${i}].peer`, peer: route.peer },
          `outbound.explicit[${i}].peer: ${route.peer} is not in the registry: connections to this listener are refused until it is; check the spelling`,
        );
      }
    }
  };
  if (registry.registry.isReady) checkAgainstRegistry();
  else void registry.registry.ready().then(checkAgainstRegistry, () => {});

  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ event: 'signal', signal, drainSeconds: config.drainSeconds }, 'draining');
      // Nothing may keep a terminating pod alive past its deadline: not a read stuck in the
      // threadpool, not a handle we do not know of. Unref'd: a clean exit does not wait for it.
      setTimeout(() => {
        log.error({ event: 'shutdown', outcome: 'forced' }, 'still running after the drain deadline: exiting');
        process.exit(1);
      }, config.drainSeconds * 1000 + SHUTDOWN_OVERRUN_MS).unref();
      void sidecar.shutdown(config.drainSeconds * 1000).then(async () => {
        await projection?.stop();
        void registry.stop();
        await extension?.stop();
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await stopped;
  identity.keyPair.privateKey.fill(0);
  // Sessions are closed and listeners too: the process ends when its last handles close,
  // and at the latest after this grace, whatever is left open.
  setTimeout(() => process.exit(process.exitCode ?? 0), EXIT_GRACE_MS).unref();
  return 0;
}

/**
 * Raises the descriptor limit to the hard limit and shares it out (README, "Strangers");
 * caps set in the configuration may lower a derived cap, never raise it past the limit.
 */
function connectionCaps(config: ProxyConfig, log: Logger, serviceDescriptors: number): ConnectionCaps {
  const limit = raiseDescriptorLimit();
  if (limit.problem !== undefined) log.warn({ event: 'descriptors', limit: limit.soft }, limit.problem);
  const listeners = 1 + (config.admin ? 1 : 0) + (config.outbound.capture ? 1 : 0) + (config.inbound.capture ? 1 : 0) + config.outbound.explicit.length;
  const descriptorsPerSession = sessionDescriptors();
  const budget = descriptorBudget(limit.soft, listeners, descriptorsPerSession, serviceDescriptors);
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
  log.info({ event: 'descriptors', limit: limit.soft, hard: limit.hard, raisedFrom: limit.raisedFrom, reserved: budget.reserved, descriptorsPerSession, ...caps }, 'connection caps');
  return caps;
}

export function loadIdentity(config: ProxyConfig, fromPrivate: (key: Uint8Array) => KeyPair, generate: () => KeyPair): Identity {
  const keyPair = config.identity.privateKeyFile === null
    ? generate()
    : fromPrivate(readKeyFile(config.identity.privateKeyFile, 'identity.privateKeyFile'));
  return { agentId: config.identity.agentId, keyPair, publicKeyB64: encodeKey(keyPair.publicKey) };
}

/** A key file is 44 characters of base64 and a newline; anything near this is not one. */
const MAX_KEY_FILE_BYTES = 4096;

/** NOISEMESH_LOG_LEVEL, checked as log.level is: pino would throw on an unknown level. */
function logLevelFromEnvironment(): LogLevel | undefined {
  const value = process.env.NOISEMESH_LOG_LEVEL;
  if (value === undefined || value === '') return undefined;
  if (!(LOG_LEVELS as readonly string[]).includes(value)) {
    throw new UsageError(`NOISEMESH_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}; got ${JSON.stringify(value)}`);
  }
  return value as LogLevel;
}

/**
 * Reads a base64 32-byte key; errors name the setting and never echo the file's content. The
 * command they suggest works as printed: `--force`, because the file it names exists.
 */
export function readKeyFile(file: string, setting: string): Uint8Array {
  let text: string;
  try {
    const bytes = readRegularFileSync(file, { maxBytes: MAX_KEY_FILE_BYTES });
    text = bytes.toString('utf8');
    bytes.fill(0);
  } catch (err) {
    if (!(err instanceof FileReadError)) throw err;
    const hint = err.failure === 'missing' ? `; make one with: noisemesh keygen --out ${shellWord(file)}` : '';
    throw new UsageError(`${err.explain(setting)}${hint}`);
  }
  try {
    return decodeKey(text, 32, setting);
  } catch (err) {
    if (err instanceof BadKeyError) throw new UsageError(`${err.message} (${file}); replace it with a new key: noisemesh keygen --force --out ${shellWord(file)}`);
    throw err;
  }
}

/** A path as one shell word, quoted only when it needs to be. */
function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}
