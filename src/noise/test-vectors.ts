/**
 * Runs test vectors in the cacophony JSON format: each vector's fixed keys drive both
 * parties, and every handshake message, payload, transport message and the handshake hash
 * are checked. Pure: the caller reads the files and prints the results.
 */
import { NoiseError } from './errors.js';
import { HandshakeState } from './handshake-state.js';
import { parseProtocolName, type Protocol } from './protocol.js';
import type { CryptoBackend, KeyPair } from './primitives.js';
import type { Transport } from './transport.js';

export interface CacophonyVector {
  readonly name?: string;
  readonly protocol_name: string;
  readonly init_prologue: string;
  readonly init_psks?: readonly string[];
  readonly init_static?: string;
  readonly init_ephemeral: string;
  readonly init_remote_static?: string;
  readonly resp_prologue: string;
  readonly resp_psks?: readonly string[];
  readonly resp_static?: string;
  readonly resp_ephemeral?: string;
  readonly resp_remote_static?: string;
  readonly handshake_hash?: string;
  readonly messages: readonly { readonly payload: string; readonly ciphertext: string }[];
}

export type VectorOutcome =
  | { readonly status: 'passed'; readonly name: string }
  | { readonly status: 'failed'; readonly name: string; readonly reason: string }
  | { readonly status: 'skipped'; readonly name: string; readonly reason: string };

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

class Mismatch extends Error {}

function expectEqual(what: string, expected: string, actual: Uint8Array): void {
  const got = toHex(actual);
  if (got !== expected.toLowerCase()) throw new Mismatch(`${what}: expected ${expected}, got ${got}`);
}

export function vectorName(v: CacophonyVector, index: number): string {
  return v.name ?? `#${index} ${v.protocol_name}`;
}

export function runVector(v: CacophonyVector, backend: CryptoBackend, index = 0): VectorOutcome {
  const name = vectorName(v, index);
  let protocol: Protocol;
  try {
    protocol = parseProtocolName(v.protocol_name);
  } catch (err) {
    if (err instanceof NoiseError) return { status: 'skipped', name, reason: err.message };
    throw err;
  }
  try {
    runParsed(v, protocol, backend);
    return { status: 'passed', name };
  } catch (err) {
    if (err instanceof Mismatch || err instanceof NoiseError) return { status: 'failed', name, reason: err.message };
    throw err;
  }
}

function runParsed(v: CacophonyVector, protocol: Protocol, backend: CryptoBackend): void {
  const dh = backend.dh(protocol.dh);
  const keyPair = (privateKey?: string): KeyPair | undefined =>
    privateKey === undefined ? undefined : dh.keyPairFromPrivate(hex(privateKey));
  const party = (side: 'init' | 'resp'): HandshakeState => {
    const ephemeral = keyPair(v[`${side}_ephemeral`]);
    const remote = v[`${side}_remote_static`];
    return new HandshakeState({
      protocol,
      initiator: side === 'init',
      backend,
      prologue: hex(v[`${side}_prologue`]),
      ...(v[`${side}_static`] !== undefined && { staticKeyPair: keyPair(v[`${side}_static`]) }),
      ...(remote !== undefined && { remoteStaticKey: hex(remote) }),
      psks: (v[`${side}_psks`] ?? []).map(hex),
      ...(ephemeral !== undefined && { DANGEROUS_fixedEphemeralForTestVectors: ephemeral }),
    });
  };
  const initiator = party('init');
  const responder = party('resp');

  let initTransport: Transport | null = null;
  let respTransport: Transport | null = null;
  const handshakeLength = protocol.pattern.messages.length;
  for (const [i, m] of v.messages.entries()) {
    const where = `message ${i}`;
    if (i < handshakeLength) {
      const initiatorSends = protocol.pattern.messages[i]!.from === 'initiator';
      const [writer, reader] = initiatorSends ? [initiator, responder] : [responder, initiator];
      const written = writer.writeMessage(hex(m.payload));
      expectEqual(`${where} ciphertext`, m.ciphertext, written.message);
      const read = reader.readMessage(written.message);
      expectEqual(`${where} payload`, m.payload, read.payload);
      if (written.transport !== null) {
        [initTransport, respTransport] = initiatorSends
          ? [written.transport, read.transport]
          : [read.transport, written.transport];
      }
      continue;
    }
    if (initTransport === null || respTransport === null) throw new Mismatch(`${where}: handshake did not complete`);
    // After the handshake the roles keep alternating, except in one-way patterns, where
    // only the initiator ever sends (spec 7.4).
    const initiatorSends = protocol.pattern.oneWay || i % 2 === 0;
    const [sender, receiver] = initiatorSends ? [initTransport, respTransport] : [respTransport, initTransport];
    const ciphertext = sender.encrypt(hex(m.payload));
    expectEqual(`${where} ciphertext`, m.ciphertext, ciphertext);
    expectEqual(`${where} payload`, m.payload, receiver.decrypt(ciphertext));
  }
  if (initTransport === null || respTransport === null) throw new Mismatch('handshake did not complete');
  if (v.handshake_hash !== undefined) {
    expectEqual('handshake hash (initiator)', v.handshake_hash, initTransport.handshakeHash);
    expectEqual('handshake hash (responder)', v.handshake_hash, respTransport.handshakeHash);
  }
}
