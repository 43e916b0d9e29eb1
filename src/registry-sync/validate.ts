/**
 * Checks one ClearanceRegistry object, given as plain data (what a YAML document or the
 * Kubernetes API yields), and turns its peers into entries.
 *
 * Bad input loses nothing it need not: a bad peer is skipped and reported, its siblings still
 * load; a document that cannot be attributed to a namespace (no metadata, wrong kind) loses its
 * peers, since the namespace rule cannot be checked without it. Its peers are still checked
 * and their problems reported, so that one run shows everything to fix. Messages name the path
 * and the fix and never quote a key.
 */
import { decodeKey, encodeKey, isLowOrderPublicKey } from '../noise/index.js';
import { isUnspecifiedAddress, normalizeAddress } from './address.js';
import { NULL_VALUE_MESSAGE, describeYamlObject, isYamlMapping as isMapping } from './mapping.js';
import {
  AGENT_TYPES,
  API_VERSION,
  AUTHN_STRENGTHS,
  CLEARANCES,
  KIND,
  MAX_GENERATION,
  PUBLIC_KEY_LEN,
  type AgentType,
  type Attestation,
  type AuthnStrength,
  type Clearance,
  type RegistryEntry,
} from './model.js';
import { formatPath, type PathSegment, type RegistryProblem, type RegistryProblemCode } from './problems.js';

/** One object that passed the document-level checks, with the peers that passed theirs. */
export interface ValidatedObject {
  readonly namespace: string;
  readonly name: string;
  /** `<namespace>/<name>`, how problems name it. */
  readonly label: string;
  readonly file: string | undefined;
  /** Entries before the checks across entries (conflicts, supersession) of buildSnapshot. */
  readonly entries: readonly RegistryEntry[];
  /** Peers refused by a check of their own, with what could be read of them (buildSnapshot). */
  readonly broken: readonly BrokenPeer[];
}

/**
 * What can be told of a peer that failed its checks: the identity fields that were well
 * formed, so that buildSnapshot can find the entry's last good version and keep it in force
 * (a broken entry is not a revocation). A field that is missing or malformed says nothing.
 */
export interface BrokenPeer {
  readonly peerIndex: number;
  /** `spec.peers[2]`, with the List prefix if any. */
  readonly path: string;
  readonly line: number | undefined;
  readonly agentId: string | undefined;
  /** Lowercased. */
  readonly installationId: string | undefined;
  /** Canonical base64 of a usable key. */
  readonly publicKeyB64: string | undefined;
  readonly generation: bigint | undefined;
  /**
   * The peer says `revoked` with any value but false, or has a field we do not know (perhaps
   * a misspelt `revoked`): it may mean to revoke, so it is never kept at a last good version.
   */
  readonly mayRevoke: boolean;
}

export interface ValidationContext {
  readonly file?: string | undefined;
  /** How to name the document while its metadata is unknown, e.g. `document 2`. */
  readonly document: string;
  /** Prepended to every path, e.g. `['items', 3]` for an object inside a List. */
  readonly pathPrefix?: readonly PathSegment[];
  /** Maps a full path to a 1-based line, when the input has lines. */
  readonly locate?: (path: readonly PathSegment[]) => number | undefined;
}

export interface ValidationResult {
  /** Undefined when the document is no usable ClearanceRegistry. */
  readonly object: ValidatedObject | undefined;
  /**
   * `<namespace>/<name>` of a document refused as a whole whose metadata could still be read:
   * buildSnapshot keeps that object's last good entries in force.
   */
  readonly refusedLabel?: string;
  readonly problems: RegistryProblem[];
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const NIL_UUID = '00000000-0000-0000-0000-000000000000';
const IMAGE_DIGEST = /^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$/;
const HEX_32 = /^[0-9a-fA-F]{64}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
/** A value short and plain enough to quote back in an enum error without leaking anything. */
const QUOTABLE = /^[A-Za-z0-9._-]{1,24}$/;

const PEER_FIELDS = [
  'agentId',
  'installationId',
  'publicKey',
  'generation',
  'clearance',
  'addresses',
  'meshPort',
  'serviceAccount',
  'agentType',
  'delegationDepth',
  'revoked',
  'attestation',
] as const;
const ATTESTATION_FIELDS = ['authnStrength', 'imageDigest', 'nodeName', 'bindingHash', 'devicePosture', 'attestedAt'] as const;
const TOP_LEVEL_FIELDS = ['apiVersion', 'kind', 'metadata', 'spec', 'status'] as const;

type Mapping = Readonly<Record<string, unknown>>;


/** Says what was found by type only: values may be secret. */
function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (typeof v === 'object') return describeYamlObject(v)!;
  if (typeof v === 'bigint') return 'an integer';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a number';
  if (typeof v === 'string') return 'a string';
  return `a ${typeof v}`;
}

function quoteEnum(v: unknown): string {
  return typeof v === 'string' && QUOTABLE.test(v) ? ` (got '${v}')` : ` (got ${describe(v)})`;
}

/** An integer from YAML (bigint with intAsBigInt, or number) or from JSON (number). */
function toBigInt(v: unknown): bigint | undefined {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
  return undefined;
}

/** Collects the problems of one document under one name. */
class Reporter {
  readonly problems: RegistryProblem[] = [];
  document: string;
  constructor(private readonly ctx: ValidationContext) {
    this.document = ctx.document;
  }
  report(code: RegistryProblemCode, path: readonly PathSegment[], message: string): void {
    const full = [...(this.ctx.pathPrefix ?? []), ...path];
    this.problems.push({
      code,
      severity: 'error',
      file: this.ctx.file,
      line: this.ctx.locate?.(full),
      document: this.document,
      path: formatPath(full),
      message,
    });
  }
}

/**
 * Validates one ClearanceRegistry object. Peers that fail a check are left out of
 * `object.entries` and reported; the rest are returned.
 */
export function validateClearanceRegistry(value: unknown, ctx: ValidationContext): ValidationResult {
  const r = new Reporter(ctx);
  if (!isMapping(value)) {
    r.report('REGISTRY_DOCUMENT', [], `must be a mapping with apiVersion, kind, metadata and spec (got ${describe(value)})`);
    return { object: undefined, problems: r.problems };
  }

  // Name the document as early as possible, so that every later problem carries its name.
  const metadata = value.metadata;
  let namespace: string | undefined;
  let name: string | undefined;
  if (!isMapping(metadata)) {
    r.report('REGISTRY_DOCUMENT', ['metadata'], 'is required: a mapping with name and namespace');
  } else {
    const ns = metadata.namespace;
    if (typeof ns === 'string' && ns.length <= 63 && DNS_LABEL.test(ns)) namespace = ns;
    else if (ns === null) r.report('REGISTRY_DOCUMENT', ['metadata', 'namespace'], `${NULL_VALUE_MESSAGE} (the namespace whose agents this object may name)`);
    else if (ns === undefined) r.report('REGISTRY_DOCUMENT', ['metadata', 'namespace'], 'is required: the namespace whose agents this object may name (a file has no default namespace)');
    else r.report('REGISTRY_DOCUMENT', ['metadata', 'namespace'], 'must be a Kubernetes namespace name (lowercase DNS-1123 label, at most 63 characters)');
    const nm = metadata.name;
    if (typeof nm === 'string' && nm.length <= 253 && DNS_SUBDOMAIN.test(nm)) name = nm;
    else if (nm === null) r.report('REGISTRY_DOCUMENT', ['metadata', 'name'], `${NULL_VALUE_MESSAGE} (the object name)`);
    else if (nm === undefined) r.report('REGISTRY_DOCUMENT', ['metadata', 'name'], 'is required: the object name, e.g. the namespace name');
    else r.report('REGISTRY_DOCUMENT', ['metadata', 'name'], 'must be a Kubernetes object name (lowercase DNS-1123 subdomain, at most 253 characters)');
  }
  if (namespace !== undefined && name !== undefined) r.document = `${namespace}/${name}`;

  let usable = namespace !== undefined && name !== undefined;
  if (value.apiVersion !== API_VERSION) {
    r.report('REGISTRY_DOCUMENT', ['apiVersion'], `must be ${API_VERSION}${quoteEnum(value.apiVersion)}`);
    usable = false;
  }
  if (value.kind !== KIND) {
    r.report('REGISTRY_DOCUMENT', ['kind'], `must be ${KIND}${quoteEnum(value.kind)}`);
    usable = false;
  }
  for (const key of Object.keys(value)) {
    if (!(TOP_LEVEL_FIELDS as readonly string[]).includes(key)) {
      r.report('REGISTRY_DOCUMENT', [key], `is not a field of a ${KIND} (known: ${TOP_LEVEL_FIELDS.join(', ')}); remove it`);
    }
  }

  const spec = value.spec;
  let peers: readonly unknown[] | undefined;
  if (!isMapping(spec)) {
    r.report('REGISTRY_DOCUMENT', ['spec'], 'is required: a mapping with peers (a list, may be empty)');
    usable = false;
  } else {
    for (const key of Object.keys(spec)) {
      if (key !== 'peers') r.report('REGISTRY_DOCUMENT', ['spec', key], 'is not a field of spec (known: peers); remove it');
    }
    if (Array.isArray(spec.peers)) peers = spec.peers;
    else if (spec.peers === null) {
      // Not read as "no peers": a template that rendered nothing would revoke every one.
      r.report('REGISTRY_DOCUMENT', ['spec', 'peers'], `${NULL_VALUE_MESSAGE}: a list of peers; write \`peers: []\` for a namespace without peers`);
      usable = false;
    } else if (spec.peers === undefined) {
      r.report('REGISTRY_DOCUMENT', ['spec', 'peers'], 'is required: a list of peers; write `peers: []` for a namespace without peers');
      usable = false;
    } else {
      r.report('REGISTRY_DOCUMENT', ['spec', 'peers'], `must be a list of peers (got ${describe(spec.peers)})`);
      usable = false;
    }
  }

  // A document refused as a whole keeps its last good entries when it can still be named.
  const refused = namespace !== undefined && name !== undefined ? { refusedLabel: `${namespace}/${name}` } : {};
  if (peers === undefined) return { object: undefined, ...refused, problems: r.problems };

  const entries: RegistryEntry[] = [];
  const broken: BrokenPeer[] = [];
  for (const [i, peer] of peers.entries()) {
    const at: PathSegment[] = ['spec', 'peers', i];
    const full = [...(ctx.pathPrefix ?? []), ...at];
    // Without a namespace the namespace rule cannot be checked; the entries are dropped below.
    const source = { namespace: namespace ?? '', name: name ?? '', peerIndex: i, path: formatPath(full), file: ctx.file, line: ctx.locate?.(full) };
    const entry = validatePeer(peer, at, source, r, namespace !== undefined);
    if (entry !== undefined) entries.push(entry);
    else broken.push(brokenPeer(peer, source));
  }
  if (!usable || namespace === undefined || name === undefined) return { object: undefined, ...refused, problems: r.problems };
  return {
    object: { namespace, name, label: `${namespace}/${name}`, file: ctx.file, entries, broken },
    problems: r.problems,
  };
}

/** The well-formed identity fields of a refused peer (see BrokenPeer); never throws. */
function brokenPeer(peer: unknown, source: RegistryEntry['source']): BrokenPeer {
  const base = { peerIndex: source.peerIndex, path: source.path, line: source.line };
  if (!isMapping(peer)) {
    return { ...base, agentId: undefined, installationId: undefined, publicKeyB64: undefined, generation: undefined, mayRevoke: false };
  }
  const id = peer.agentId;
  const slash = typeof id === 'string' ? id.indexOf('/') : -1;
  const agentId =
    typeof id === 'string' && slash > 0 && DNS_LABEL.test(id.slice(0, slash)) && DNS_SUBDOMAIN.test(id.slice(slash + 1)) ? id : undefined;
  const inst = peer.installationId;
  const installationId = typeof inst === 'string' && UUID.test(inst) && inst !== NIL_UUID ? inst.toLowerCase() : undefined;
  let publicKeyB64: string | undefined;
  if (typeof peer.publicKey === 'string') {
    try {
      const bytes = decodeKey(peer.publicKey, PUBLIC_KEY_LEN, 'publicKey');
      if (encodeKey(bytes) === peer.publicKey && !bytes.every((b) => b === 0)) publicKeyB64 = peer.publicKey;
    } catch {
      // Malformed: says nothing.
    }
  }
  const gen = toBigInt(peer.generation);
  const generation = gen !== undefined && gen >= 1n && gen <= MAX_GENERATION ? gen : undefined;
  // `revoked:` with no value may be a template that meant true: never kept at a last good version.
  const statesRevoked = peer.revoked !== undefined && peer.revoked !== false;
  const unknownField = Object.keys(peer).some((key) => !(PEER_FIELDS as readonly string[]).includes(key));
  return { ...base, agentId, installationId, publicKeyB64, generation, mayRevoke: statesRevoked || unknownField };
}

/** Checks every field of one peer, reporting each problem; an entry only if all passed. */
function validatePeer(
  peer: unknown,
  at: readonly PathSegment[],
  source: RegistryEntry['source'],
  r: Reporter,
  checkNamespace: boolean,
): RegistryEntry | undefined {
  if (!isMapping(peer)) {
    r.report('REGISTRY_FIELD', at, `must be a mapping with agentId, installationId, publicKey and generation (got ${describe(peer)})`);
    return undefined;
  }
  const before = r.problems.length;
  const bad = (field: PathSegment | readonly PathSegment[], message: string, code: RegistryProblemCode = 'REGISTRY_FIELD'): undefined => {
    r.report(code, [...at, ...(Array.isArray(field) ? field : [field as PathSegment])], message);
    return undefined;
  };

  // An unknown field is refused rather than ignored: `revokd: true` must not leave a key valid.
  // A field with no value is refused rather than read as absent: `revoked:` must not leave a
  // key valid either. The readers below skip a null, reported here once.
  for (const key of Object.keys(peer)) {
    if (!(PEER_FIELDS as readonly string[]).includes(key)) {
      bad(key, `is not a field of a peer (known: ${PEER_FIELDS.join(', ')}); fix the spelling or remove it`);
    } else if (peer[key] === null) {
      bad(key, key === 'revoked' ? `${NULL_VALUE_MESSAGE} (true or false); the peer is refused, and not kept at a last good version` : NULL_VALUE_MESSAGE);
    }
  }

  // agentId and the namespace rule.
  let agentId: string | undefined;
  let workload: string | undefined;
  const id = peer.agentId;
  if (id === null) {
    // reported above
  } else if (id === undefined) bad('agentId', 'is required: `<namespace>/<workload>`, e.g. payments/api');
  else if (typeof id !== 'string') bad('agentId', `must be a string \`<namespace>/<workload>\` (got ${describe(id)})`);
  else {
    const slash = id.indexOf('/');
    const ns = id.slice(0, slash);
    const wl = id.slice(slash + 1);
    if (slash < 0 || !DNS_LABEL.test(ns) || ns.length > 63 || !DNS_SUBDOMAIN.test(wl) || wl.length > 253) {
      bad('agentId', 'must be `<namespace>/<workload>`: a namespace name, one slash, a lowercase workload name (DNS-1123), e.g. payments/api');
    } else if (checkNamespace && ns !== source.namespace) {
      bad(
        'agentId',
        `names namespace '${ns}' but this object is in namespace '${source.namespace}': an entry may only claim an agentId of its own namespace; publish it in a ${KIND} of namespace '${ns}'`,
        'REGISTRY_NAMESPACE',
      );
    } else {
      agentId = id;
      workload = wl;
    }
  }

  let installationId: string | undefined;
  const inst = peer.installationId;
  if (inst === null) {
    // reported above
  } else if (inst === undefined) bad('installationId', 'is required: a UUID, one per pod (e.g. the pod UID)');
  else if (typeof inst !== 'string' || !UUID.test(inst)) bad('installationId', 'must be a UUID: 8-4-4-4-12 hexadecimal digits, one per pod');
  else if (inst === NIL_UUID) bad('installationId', 'must not be the nil UUID: use the pod\'s own UUID');
  else installationId = inst.toLowerCase();

  let publicKey: Uint8Array | undefined;
  let publicKeyB64: string | undefined;
  const pk = peer.publicKey;
  const keyText = `standard base64 of ${PUBLIC_KEY_LEN} bytes (44 characters ending in '='), the X25519 public key as \`noisemesh keygen\` prints it`;
  const keyFix = `must be ${keyText}`;
  if (pk === null) {
    // reported above
  } else if (pk === undefined) bad('publicKey', `is required: ${keyText}`);
  else if (typeof pk !== 'string') bad('publicKey', `${keyFix} (got ${describe(pk)})`);
  else {
    let bytes: Uint8Array | undefined;
    try {
      bytes = decodeKey(pk, PUBLIC_KEY_LEN, 'publicKey');
    } catch {
      bad('publicKey', keyFix);
    }
    if (bytes !== undefined) {
      const canonical = encodeKey(bytes);
      // A low-order point (all zeros is one) authenticates nobody: every DH with it is all
      // zeros, which an impostor predicts (PROTOCOL.md section 2).
      if (canonical !== pk) bad('publicKey', `${keyFix}: rewrite it in canonical form (no whitespace, zero padding bits)`);
      else if (isLowOrderPublicKey('25519', bytes)) bad('publicKey', 'is a low-order X25519 point, which anyone can impersonate (every DH with it is all zeros): publish the peer\'s real public key, as `noisemesh keygen` prints it');
      else {
        publicKey = bytes;
        publicKeyB64 = canonical;
      }
    }
  }

  let generation: bigint | undefined;
  const gen = toBigInt(peer.generation);
  const genText = 'a positive integer, 1 to 2^64-1; raise it to revoke every earlier key of this peer';
  const genFix = `must be ${genText}`;
  if (peer.generation === null) {
    // reported above
  } else if (peer.generation === undefined) bad('generation', `is required: ${genText}`);
  else if (gen === undefined || gen < 1n || gen > MAX_GENERATION) bad('generation', `${genFix} (got ${gen === undefined ? describe(peer.generation) : gen < 1n ? 'an integer below 1' : 'an integer above 2^64-1'})`);
  else generation = gen;

  const clearance = readEnum<Clearance>(peer.clearance, CLEARANCES, 'open', 'clearance', bad);

  const addresses: string[] = [];
  const addrs = peer.addresses;
  if (addrs !== undefined && addrs !== null) {
    if (!Array.isArray(addrs)) bad('addresses', `must be a list of pod IPs, e.g. [10.0.3.7] (got ${describe(addrs)})`);
    else {
      for (const [j, a] of addrs.entries()) {
        const normalized = typeof a === 'string' ? normalizeAddress(a) : undefined;
        if (normalized === undefined) bad(['addresses', j], 'must be one IPv4 or IPv6 address: a pod IP, without prefix length, port or zone');
        else if (isUnspecifiedAddress(normalized)) bad(['addresses', j], 'must be a pod IP, not the unspecified address');
        else if (!addresses.includes(normalized)) addresses.push(normalized);
      }
    }
  }

  let meshPort: number | undefined;
  if (peer.meshPort !== undefined && peer.meshPort !== null) {
    const port = toBigInt(peer.meshPort);
    if (port === undefined || port < 1n || port > 65535n) bad('meshPort', 'must be a TCP port, an integer 1 to 65535; leave it out for the mesh default 15443');
    else meshPort = Number(port);
  }

  let serviceAccount: string | undefined;
  const sa = peer.serviceAccount;
  if (sa !== undefined && sa !== null) {
    if (typeof sa !== 'string' || sa.length > 253 || !DNS_SUBDOMAIN.test(sa)) bad('serviceAccount', 'must be a Kubernetes service account name (lowercase DNS-1123 subdomain)');
    else serviceAccount = sa;
  }

  const agentType = readEnum<AgentType>(peer.agentType, AGENT_TYPES, 'service', 'agentType', bad);

  let delegationDepth = 0;
  if (peer.delegationDepth !== undefined && peer.delegationDepth !== null) {
    const d = toBigInt(peer.delegationDepth);
    if (d === undefined || d < 0n || d > 2147483647n) bad('delegationDepth', 'must be an integer >= 0: how many delegations separate this agent from a human or service principal');
    else delegationDepth = Number(d);
  }

  let revoked = false;
  if (peer.revoked !== undefined && peer.revoked !== null) {
    if (typeof peer.revoked !== 'boolean') bad('revoked', 'must be true or false, unquoted');
    else revoked = peer.revoked;
  }

  let attestation: Attestation | undefined;
  if (peer.attestation !== undefined && peer.attestation !== null) {
    attestation = validateAttestation(peer.attestation, bad);
  }

  if (r.problems.length !== before) return undefined;
  return Object.freeze({
    agentId: agentId!,
    namespace: source.namespace,
    workload: workload!,
    installationId: installationId!,
    publicKey: publicKey!,
    publicKeyB64: publicKeyB64!,
    generation: generation!,
    clearance: clearance!,
    addresses: Object.freeze(addresses),
    meshPort,
    serviceAccount,
    agentType: agentType!,
    delegationDepth,
    revoked,
    superseded: false,
    attestation,
    source: Object.freeze({ ...source }),
  });
}

type Bad = (field: PathSegment | readonly PathSegment[], message: string) => undefined;

function readEnum<T extends string>(v: unknown, values: readonly T[], fallback: T, field: string, bad: Bad): T | undefined {
  if (v === undefined || v === null) return fallback;
  if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
  return bad(field, `must be one of ${values.join(', ')}${quoteEnum(v)}; leave it out for ${fallback}`);
}

function validateAttestation(v: unknown, outer: Bad): Attestation | undefined {
  const bad: Bad = (field, message) => outer(['attestation', ...(Array.isArray(field) ? field : [field as PathSegment])], message);
  if (!isMapping(v)) {
    return outer('attestation', `must be a mapping with authnStrength and attestedAt (got ${describe(v)})`);
  }
  let ok = true;
  const fail: Bad = (field, message) => {
    ok = false;
    return bad(field, message);
  };
  for (const key of Object.keys(v)) {
    if (!(ATTESTATION_FIELDS as readonly string[]).includes(key)) {
      fail(key, `is not a field of an attestation (known: ${ATTESTATION_FIELDS.join(', ')}); fix the spelling or remove it`);
    } else if (v[key] === null) {
      fail(key, NULL_VALUE_MESSAGE);
    }
  }

  let authnStrength: AuthnStrength | undefined;
  if (v.authnStrength === null) {
    // reported above
  } else if (v.authnStrength === undefined) {
    fail('authnStrength', `is required in an attestation: one of ${AUTHN_STRENGTHS.join(', ')}`);
  } else {
    authnStrength = readEnum<AuthnStrength>(v.authnStrength, AUTHN_STRENGTHS, 'none', 'authnStrength', fail);
  }

  let attestedAt: string | undefined;
  let attestedAtMs = Number.NaN;
  const at = v.attestedAt;
  const timeFix = 'must be an RFC 3339 time with a zone, e.g. 2026-11-23T09:00:00Z';
  if (at === null) {
    // reported above
  } else if (at === undefined) fail('attestedAt', 'is required in an attestation: when it was made, an RFC 3339 time with a zone, e.g. 2026-11-23T09:00:00Z');
  else if (at instanceof Date) attestedAtMs = at.getTime(); // a YAML 1.1 !!timestamp
  else if (typeof at === 'string' && RFC3339.test(at)) attestedAtMs = Date.parse(at);
  if (at !== undefined && at !== null) {
    if (Number.isNaN(attestedAtMs)) fail('attestedAt', timeFix);
    else attestedAt = new Date(attestedAtMs).toISOString();
  }

  let imageDigest: string | undefined;
  if (v.imageDigest !== undefined && v.imageDigest !== null) {
    if (typeof v.imageDigest !== 'string' || !IMAGE_DIGEST.test(v.imageDigest)) fail('imageDigest', 'must be an image digest, sha256:<64 lowercase hex> (or sha512:<128 hex>)');
    else imageDigest = v.imageDigest;
  }

  let nodeName: string | undefined;
  if (v.nodeName !== undefined && v.nodeName !== null) {
    if (typeof v.nodeName !== 'string' || v.nodeName.length > 253 || !DNS_SUBDOMAIN.test(v.nodeName)) fail('nodeName', 'must be a Kubernetes node name (lowercase DNS-1123 subdomain)');
    else nodeName = v.nodeName;
  }

  let bindingHash: string | undefined;
  if (v.bindingHash !== undefined && v.bindingHash !== null) {
    if (typeof v.bindingHash !== 'string' || !HEX_32.test(v.bindingHash)) fail('bindingHash', 'must be 64 hexadecimal digits: the 32-byte BLAKE3(pod UID || node ID)');
    else bindingHash = v.bindingHash.toLowerCase();
  }

  let devicePosture: number | undefined;
  if (v.devicePosture !== undefined && v.devicePosture !== null) {
    const p = typeof v.devicePosture === 'bigint' ? Number(v.devicePosture) : v.devicePosture;
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) fail('devicePosture', 'must be a number from 0 to 1');
    else devicePosture = p;
  }

  if (!ok) return undefined;
  return Object.freeze({ authnStrength: authnStrength!, attestedAt: attestedAt!, attestedAtMs, imageDigest, nodeName, bindingHash, devicePosture });
}
