/**
 * `noisemesh gateway --config FILE`: the secrets gateway. A proxy (every key and behaviour of
 * `noisemesh proxy`) whose responder has no TCP targets: sessions to `gateway.port` are
 * served by the secrets API in-process, on the decrypted stream, so every request carries the
 * caller's verified key; any other port gets status 4. Plaintext that inbound capture brings
 * to `gateway.port` reaches the same API as an anonymous `plaintext` caller.
 */
import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { FileReadError, readRegularFile, readRegularFileSync } from '../../files/index.js';
import { ClusterConfigError } from '../../kubernetes/index.js';
import type { BuiltInServices, Logger } from '../../proxy/index.js';
import {
  AuditOpenError,
  SecretsBackendError,
  SecretsFileError,
  SecretsGateway,
  createBackend,
  gatewayDescriptors,
  openAuditFile,
  stdoutAuditSink,
  type AuditSink,
  type SecretsBackend,
} from '../../secrets/index.js';
import { POLICY_LIMITS, PolicyError, parsePolicy, type Policy } from '../../trust-vector/index.js';
import { loadCommandConfig } from '../config/command-config.js';
import { loadGatewayConfig, type GatewayConfig } from '../config/gateway-config.js';
import { LOG_LEVELS } from '../config/proxy-config.js';
import type { Command } from '../command.js';
import { UsageError } from '../usage-error.js';
import { runSidecar, type SidecarExtension } from './proxy.js';

/** How often the policy file's metadata is checked for a change. */
const POLICY_POLL_MS = 1000;

const USAGE = `usage: noisemesh gateway --config FILE

Runs the secrets gateway: a mesh responder whose target port gateway.port (default 8200)
is the secrets API (GET /v1/secrets/{path}, GET /v1/whoami), answered in-process for the
caller whose static key the Noise handshake verified, by the policy gateway.policy, from the
backend gateway.backend (file, vault or kubernetes; the last two through the cache
gateway.cache), with one audit line per decision in gateway.audit. FILE holds every
key of \`noisemesh proxy\` plus the gateway section (docs/configuration.md, docs/gateway.md).
A wrong key or value stops it at start with exit 2 and a line per problem, as does a policy
or secrets file that does not load, an unreadable Vault CA bundle or a kubeconfig that is
unusable; a Vault or an API server that is down does not (reads answer 503 until it is
back, or a cached value while it is recent enough). The policy and the secrets file are re-read when they
change; one that fails to load keeps the last good one. SIGTERM or SIGINT drains, then exits 0.

  --config FILE   the YAML configuration (required)

environment:
  NOISEMESH_LOG_LEVEL   log level when FILE sets no log.level: ${LOG_LEVELS.join(', ')} (default info)
  NOISEMESH_NATIVE_PUMP 0: sessions relay through node's streams instead of the native pump (default 1)
`;

export const gateway: Command = {
  usage: USAGE,
  async run(args) {
    const { values } = parseArgs({ args, options: { config: { type: 'string' } } });
    if (values.config === undefined) throw new UsageError('--config FILE is required: the YAML configuration (docs/configuration.md)');
    const config: GatewayConfig = await loadCommandConfig(loadGatewayConfig, values.config);
    // Checked before anything listens: a policy that does not load is a refusal to start.
    const policy = loadPolicySync(config.gateway.policy);
    return runSidecar(config.proxy, gatewayExtension(config, policy));
  },
};

function gatewayExtension(config: GatewayConfig, initialPolicy: Policy): SidecarExtension {
  const settings = config.gateway;
  let api: SecretsGateway | undefined;
  let backend: SecretsBackend | undefined;
  let audit: AuditSink | undefined;
  let policyWatch: NodeJS.Timeout | undefined;
  const services: BuiltInServices = {
    openMeshStream: (port, peer) => api?.openMeshStream(port, peer.publicKeyB64) ?? null,
    takePlaintext: (port, socket) => api?.takePlaintext(port, socket) ?? false,
  };
  return {
    services,
    descriptors: gatewayDescriptors({}, settings.loopback !== null),
    // The audit sink and the backend are opened before the sidecar logs anything: a path or a
    // file they refuse is the command's one line.
    async prepare(log) {
      try {
        audit = 'file' in settings.audit ? openAuditFile(settings.audit.file) : stdoutAuditSink();
      } catch (err) {
        if (err instanceof AuditOpenError) throw new UsageError(err.message);
        throw err;
      }
      try {
        backend = await createBackend(settings.backend, { log });
      } catch (err) {
        if (err instanceof SecretsFileError) throw new UsageError(err.readError ? err.message : `gateway.backend.file: ${err.message}`);
        // The vault backend's only start-time failure: its CA bundle (the message names the key).
        if (err instanceof SecretsBackendError) throw new UsageError(err.message);
        if (err instanceof ClusterConfigError) throw new UsageError(`gateway.backend.kubernetes: ${err.message}`);
        throw err;
      }
    },
    async start({ proxy, registry, identity, log }) {
      if (audit === undefined || backend === undefined) throw new Error('the gateway extension was started before it was prepared');
      const gw = new SecretsGateway({
        port: settings.port,
        policy: initialPolicy,
        backend,
        cache: settings.cache,
        audit,
        entryByKey: (key) => registry.registry.index.byPublicKey(key),
        ownPublicKeyB64: identity.publicKeyB64,
        metrics: proxy.metrics.registry,
        log,
      });
      api = gw;
      policyWatch = watchPolicy(settings.policy, gw, log);
      let loopbackPort: number | null = null;
      if (settings.loopback !== null) {
        try {
          loopbackPort = await gw.listenLoopback(settings.loopback.port);
        } catch (err) {
          throw new UsageError(`gateway.loopback.port: cannot listen on 127.0.0.1:${settings.loopback.port}: ${(err as Error).message}`);
        }
      }
      log.info(
        {
          event: 'gateway',
          port: settings.port,
          backend: backend.name,
          cache: settings.cache === null ? null : { ttlSeconds: settings.cache.ttlSeconds, maxStaleSeconds: settings.cache.maxStaleSeconds },
          audit: audit.description,
          rules: initialPolicy.rules.length,
          loopbackPort,
        },
        'secrets gateway ready to serve',
      );
    },
    // Idempotent: a refused start stops what prepare opened, a drained one everything.
    async stop() {
      if (policyWatch !== undefined) clearInterval(policyWatch);
      policyWatch = undefined;
      const [closingApi, closingBackend, closingAudit] = [api, backend, audit];
      api = undefined;
      backend = undefined;
      audit = undefined;
      await closingApi?.close();
      await closingBackend?.close();
      closingAudit?.close();
    },
  };
}

function loadPolicySync(file: string): Policy {
  let bytes: Buffer;
  try {
    bytes = readRegularFileSync(file, { maxBytes: POLICY_LIMITS.maxTextBytes });
  } catch (err) {
    if (err instanceof FileReadError) throw new UsageError(err.explain('gateway.policy'));
    throw err;
  }
  return parsePolicyOrRefuse(bytes, file);
}

function parsePolicyOrRefuse(bytes: Buffer, file: string): Policy {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`gateway.policy: ${file} is not UTF-8 text: save it as UTF-8`);
  }
  try {
    return parsePolicy(text, file);
  } catch (err) {
    if (err instanceof PolicyError) throw new UsageError(`gateway.policy: invalid policy ${err.message}`);
    throw err;
  }
}

/**
 * Re-reads the policy when its size, mtime, ctime or inode change; a policy that does not
 * load is logged with every problem and the one in force stays.
 */
function watchPolicy(file: string, gw: SecretsGateway, log: Logger): NodeJS.Timeout {
  let stamp: string | undefined;
  let busy = false;
  const stampOf = async (): Promise<string> => {
    try {
      const s = await stat(file, { bigint: true });
      return `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
    } catch (err) {
      return `error:${(err as NodeJS.ErrnoException).code ?? 'unknown'}`;
    }
  };
  void stampOf().then((s) => (stamp ??= s));
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void (async () => {
      const next = await stampOf();
      if (stamp === undefined || next === stamp) return;
      stamp = next;
      try {
        const policy = parsePolicyOrRefuse(await readRegularFile(file, { maxBytes: POLICY_LIMITS.maxTextBytes }), file);
        gw.setPolicy(policy);
        log.info({ event: 'policy-reload', file, rules: policy.rules.length }, 'policy reloaded');
      } catch (err) {
        const message = err instanceof FileReadError ? err.explain('gateway.policy') : (err as Error).message;
        log.error({ event: 'policy-error', file, error: message }, 'policy not reloaded; the last good policy stays in force');
      }
    })().finally(() => (busy = false));
  }, POLICY_POLL_MS);
  timer.unref();
  return timer;
}
