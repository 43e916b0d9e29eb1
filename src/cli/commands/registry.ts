import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { FileReadError, readRegularFileSync } from '../../files/index.js';
import { buildSnapshot, formatProblem, parseRegistryBytes, type RegistryProblem, type RegistrySnapshot } from '../../registry-sync/index.js';
import { ApiError, ClusterConfigError, loadClusterAccess, readRegistryOnce } from '../../kubernetes/index.js';
import type { Command } from '../command.js';
import { UsageError } from '../usage-error.js';

const USAGE = `usage: noisemesh registry validate FILE...
       noisemesh registry get [--kubeconfig FILE] [-n NAMESPACE]...

validate: checks ClearanceRegistry files as a proxy would load them (registry.file): each
file on its own, with the checks across its entries. Prints every problem of every file, one
line each (file:line: document: path: what is wrong and the fix), then a summary. Exit 0 when
there is no problem, 1 when there is any (warnings included), 2 for a wrong command line.

get: what a proxy with registry.kubernetes would load, read once from the API server and put
through the same checks, printed as kubectl get prints (keys only as a fingerprint, the first
8 bytes of their SHA-256). Exit 0 when the read succeeded, problems or not; 1 when the API
server could not be read.

  --kubeconfig FILE   the kubeconfig to use; absent: in-cluster config, else $KUBECONFIG
  -n, --namespace NS  a namespace to read (repeatable); absent: all namespaces
`;

/** The proxy's limit for a registry file (FileSourceOptions.maxBytes). */
const MAX_REGISTRY_BYTES = 16 * 1024 * 1024;

/**
 * Checks registry files as the proxy would load them: each file on its own, with the checks
 * across entries (conflicts, supersession) applied within it. Every problem is printed with
 * its file, line, document, path and fix; any problem, warnings included, exits 1.
 */
export const registry: Command = {
  usage: USAGE,
  async run(args) {
    const [sub, ...rest] = args;
    const synopsis = 'usage: noisemesh registry validate FILE... | registry get [--kubeconfig FILE] [-n NAMESPACE]...';
    if (sub === 'get') return get(rest);
    if (sub !== 'validate') throw new UsageError(sub === undefined ? `name a subcommand; ${synopsis}` : `unknown subcommand '${sub}'; ${synopsis}`);
    const { positionals: files } = parseArgs({ args: rest, allowPositionals: true, options: {} });
    if (files.length === 0) throw new UsageError(`name at least one file; ${synopsis}`);
    let documents = 0;
    let peers = 0;
    let errors = 0;
    let warnings = 0;
    for (const file of files) {
      let problems: readonly RegistryProblem[];
      let bytes: Buffer;
      try {
        bytes = readRegularFileSync(file, { maxBytes: MAX_REGISTRY_BYTES });
      } catch (err) {
        if (!(err instanceof FileReadError)) throw err;
        process.stdout.write(`${err.explainArgument()}\n`);
        errors++;
        continue;
      }
      const parsed = parseRegistryBytes(bytes, file);
      if (parsed.ok) {
        const snapshot = buildSnapshot(parsed.objects, { origin: `file ${file}` }, parsed.problems);
        problems = snapshot.problems;
        documents += parsed.documents;
        peers += snapshot.entries.length;
      } else {
        problems = parsed.problems;
      }
      for (const p of problems) {
        process.stdout.write(`${formatProblem(p)}\n`);
        if (p.severity === 'error') errors++;
        else warnings++;
      }
    }
    const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
    process.stdout.write(
      `${plural(files.length, 'file')}, ${plural(documents, 'document')}, ${plural(peers, 'peer')} loaded; ${plural(errors, 'error')}, ${plural(warnings, 'warning')}\n`,
    );
    return errors + warnings > 0 ? 1 : 0;
  },
};

/**
 * `registry get`: what a proxy with this access and these namespaces would load, read once
 * from the API server and put through the same checks, printed as `kubectl get` prints: one
 * row per entry in aligned columns, then every problem. Keys appear only as a fingerprint
 * (the first 8 bytes of SHA-256 of the 32-byte key, hex). Exit 0 when the read succeeded
 * (problems or not), 1 when the API server could not be read.
 */
async function get(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { kubeconfig: { type: 'string' }, namespace: { type: 'string', short: 'n', multiple: true } } });
  for (const ns of values.namespace ?? []) {
    if (ns.length > 63 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns)) {
      throw new UsageError(`-n: must be a Kubernetes namespace name (lowercase DNS-1123 label), e.g. payments; got ${JSON.stringify(ns.slice(0, 80))}`);
    }
  }
  let snapshot: RegistrySnapshot;
  try {
    const access = await loadClusterAccess({ kubeconfig: values.kubeconfig });
    try {
      snapshot = await readRegistryOnce(access, values.namespace ?? []);
    } finally {
      await access.close();
    }
  } catch (err) {
    if (err instanceof ClusterConfigError) throw new UsageError(err.message);
    if (err instanceof ApiError) {
      process.stderr.write(`noisemesh registry get: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  process.stdout.write(formatRegistryTable(snapshot));
  return 0;
}

/** A key's short public fingerprint: the first 8 bytes of its SHA-256, hex. */
export function keyFingerprint(publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest('hex').slice(0, 16);
}

/** The snapshot as `kubectl get` prints tables: upper-case headers, columns three spaces apart. */
export function formatRegistryTable(snapshot: RegistrySnapshot): string {
  const header = ['NAMESPACE', 'AGENT ID', 'KEY', 'GENERATION', 'CLEARANCE', 'STATUS', 'ADDRESSES', 'PROBLEMS'];
  const rows = snapshot.entries.map((e) => {
    const document = `${e.source.namespace}/${e.source.name}`;
    const own = snapshot.problems.filter((p) => p.document === document && (p.path === e.source.path || p.path.startsWith(`${e.source.path}.`)));
    return [
      e.namespace,
      e.agentId,
      keyFingerprint(e.publicKey),
      String(e.generation),
      e.clearance,
      e.superseded ? 'Superseded' : e.revoked ? 'Revoked' : 'Valid',
      e.addresses.length === 0 ? '<none>' : e.addresses.join(','),
      String(own.length),
    ];
  });
  let out = '';
  if (rows.length === 0) out += `No entries found (${snapshot.objects} ClearanceRegistry object${snapshot.objects === 1 ? '' : 's'}).\n`;
  else {
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    for (const row of [header, ...rows]) out += `${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('   ')}\n`;
  }
  if (snapshot.problems.length > 0) {
    out += `\n${snapshot.problems.length} problem${snapshot.problems.length === 1 ? '' : 's'}:\n`;
    for (const p of snapshot.problems) out += `  ${formatProblem(p)}\n`;
  }
  return out;
}
