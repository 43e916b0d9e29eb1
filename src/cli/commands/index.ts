/**
 * The commands `noisemesh` knows. A command's module is imported only when that command runs:
 * a proxy never loads the demo's HTTP client or the vector runner, so its heap, which every
 * full garbage collection walks, holds only what the proxy uses.
 */
import type { Command, CommandEntry } from '../command.js';

/**
 * A long-lived sidecar command: the proxy's heap settings are applied before its module graph
 * is loaded, not after. Loading it allocates enough that V8 grows the young generation on the
 * way (to 8 MiB a semi-space), and the settings keep the young generation at the size they
 * find; applied after the imports, they kept the grown one, ~14 MiB of RSS once traffic
 * flows (bench/README.md, load).
 */
async function sidecar(load: () => Promise<Command>, options: { readonly gateway?: boolean } = {}): Promise<Command> {
  (await import('../../proxy/runtime/index.js')).tuneHeapForProxy(options);
  return load();
}

export const commands: Readonly<Record<string, CommandEntry>> = {
  demo: { summary: 'run a local demo mesh on loopback: demo [--serve] [--requests N]', load: async () => (await import('./demo.js')).demo },
  explain: { summary: 'the secrets decision for AGENT asking for PATH, requirement by requirement: explain --policy F --registry F AGENT PATH', load: async () => (await import('./explain.js')).explain },
  gateway: { summary: 'run the secrets gateway: gateway --config FILE (the secrets API on a mesh responder)', load: () => sidecar(async () => (await import('./gateway.js')).gateway, { gateway: true }) },
  'init-iptables': { summary: 'install the pod\'s iptables redirection (init container): init-iptables [--dry-run] [--cleanup] ...', load: async () => (await import('./init-iptables.js')).initIptables },
  keygen: { summary: 'make an X25519 key pair: keygen [--out FILE [--force]]; prints the private key (or where --out wrote it) and the public key', load: async () => (await import('./keygen.js')).keygen },
  proxy: { summary: 'run the sidecar proxy: proxy --config FILE', load: () => sidecar(async () => (await import('./proxy.js')).proxy) },
  registry: { summary: 'check ClearanceRegistry files: registry validate FILE...; what a proxy would load from the cluster: registry get [--kubeconfig F] [-n NS]', load: async () => (await import('./registry.js')).registry },
  secrets: { summary: 'fetch the secrets of secrets.project once and write them (init container): secrets fetch --config FILE', load: async () => (await import('./secrets.js')).secrets },
  vectors: { summary: 'run Noise test vectors (cacophony JSON): vectors [--backend native|noble] FILE...', load: async () => (await import('./vectors.js')).vectors },
};
