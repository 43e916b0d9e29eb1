/**
 * P1 and P2, the handshake payloads of PROTOCOL.md 4.1 and 4.2: fixed offsets, big-endian,
 * then a list of (type u16, length u16, value) extensions. Decoders return null for anything
 * malformed; the responder answers such a P1 with silence, so the reason only matters to
 * our log, which gets it from `describeP1Error`.
 */
import { PROTOCOL } from './constants.js';

export interface ExtensionField {
  readonly type: number;
  readonly value: Uint8Array;
}

export interface P1 {
  /** Nanoseconds since the Unix epoch; strictly increasing per initiator key. */
  readonly timestampNs: bigint;
  /** The initiator's key generation as published in the registry. */
  readonly generation: bigint;
  readonly targetPort: number;
  readonly extensions: readonly ExtensionField[];
}

export interface P2 {
  readonly status: number;
  /** The responder's key generation as published in the registry. */
  readonly generation: bigint;
  readonly extensions: readonly ExtensionField[];
}

const U64_MAX = 0xffff_ffff_ffff_ffffn;

function extensionsLength(extensions: readonly ExtensionField[]): number {
  let length = 0;
  for (const e of extensions) length += 4 + e.value.length;
  return length;
}

function writeExtensions(out: Buffer, offset: number, extensions: readonly ExtensionField[]): void {
  for (const e of extensions) {
    if (e.type < 0 || e.type > 0xffff || e.value.length > 0xffff) throw new RangeError('extension type or length out of u16 range');
    out.writeUInt16BE(e.type, offset);
    out.writeUInt16BE(e.value.length, offset + 2);
    out.set(e.value, offset + 4);
    offset += 4 + e.value.length;
  }
}

/** Parses exactly `length` bytes of extensions at `offset`, or null if they overrun. */
function readExtensions(data: Uint8Array, offset: number, length: number): ExtensionField[] | null {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const end = offset + length;
  const out: ExtensionField[] = [];
  while (offset < end) {
    if (end - offset < 4) return null;
    const type = view.getUint16(offset);
    const valueLength = view.getUint16(offset + 2);
    offset += 4;
    if (offset + valueLength > end) return null;
    out.push({ type, value: data.subarray(offset, offset + valueLength) });
    offset += valueLength;
  }
  return out;
}

function checkU64(value: bigint, what: string): void {
  if (value < 0n || value > U64_MAX) throw new RangeError(`${what} must fit in a u64`);
}

export function encodeP1(p1: P1): Buffer {
  checkU64(p1.timestampNs, 'timestamp');
  checkU64(p1.generation, 'generation');
  if (!Number.isInteger(p1.targetPort) || p1.targetPort < 1 || p1.targetPort > 65535) {
    throw new RangeError('target port must be 1..65535');
  }
  const extLength = extensionsLength(p1.extensions);
  const out = Buffer.allocUnsafe(PROTOCOL.p1FixedLength + extLength);
  if (out.length > PROTOCOL.maxP1Length) throw new RangeError(`P1 of ${out.length} bytes exceeds ${PROTOCOL.maxP1Length}`);
  out.writeUInt8(PROTOCOL.version, 0);
  out.writeBigUInt64BE(p1.timestampNs, 1);
  out.writeBigUInt64BE(p1.generation, 9);
  out.writeUInt16BE(p1.targetPort, 17);
  out.writeUInt16BE(extLength, 19);
  writeExtensions(out, PROTOCOL.p1FixedLength, p1.extensions);
  return out;
}

export type P1Problem = 'too-long' | 'too-short' | 'version' | 'target-port' | 'extensions';

/** Parses P1 once: the fields, or the first reason it is malformed (PROTOCOL.md 4.2). */
function parseP1(data: Uint8Array): P1 | P1Problem {
  if (data.length > PROTOCOL.maxP1Length) return 'too-long';
  if (data.length < PROTOCOL.p1FixedLength) return 'too-short';
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (view.getUint8(0) !== PROTOCOL.version) return 'version';
  const targetPort = view.getUint16(17);
  if (targetPort === 0) return 'target-port';
  // PROTOCOL.md 4.2 lists what makes a P1 malformed, and bytes after the declared extensions
  // are not on that list: they are ignored, like unknown extensions, so that a later minor
  // revision can append without breaking version 1 responders.
  const extLength = view.getUint16(19);
  if (PROTOCOL.p1FixedLength + extLength > data.length) return 'extensions';
  const extensions = readExtensions(data, PROTOCOL.p1FixedLength, extLength);
  if (extensions === null) return 'extensions';
  return { timestampNs: view.getBigUint64(1), generation: view.getBigUint64(9), targetPort, extensions };
}

/** Why a P1 is malformed, or null if it is well formed. */
export function describeP1Error(data: Uint8Array): P1Problem | null {
  const parsed = parseP1(data);
  return typeof parsed === 'string' ? parsed : null;
}

export function decodeP1(data: Uint8Array): P1 | null {
  const parsed = parseP1(data);
  return typeof parsed === 'string' ? null : parsed;
}

export function encodeP2(p2: P2): Buffer {
  checkU64(p2.generation, 'generation');
  if (!Number.isInteger(p2.status) || p2.status < 0 || p2.status > 255) throw new RangeError('status must be a u8');
  const extLength = extensionsLength(p2.extensions);
  const out = Buffer.allocUnsafe(PROTOCOL.p2FixedLength + extLength);
  out.writeUInt8(PROTOCOL.version, 0);
  out.writeUInt8(p2.status, 1);
  out.writeBigUInt64BE(p2.generation, 2);
  out.writeUInt16BE(extLength, 10);
  writeExtensions(out, PROTOCOL.p2FixedLength, p2.extensions);
  return out;
}

export function decodeP2(data: Uint8Array): P2 | null {
  if (data.length < PROTOCOL.p2FixedLength) return null;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (view.getUint8(0) !== PROTOCOL.version) return null;
  const extLength = view.getUint16(10);
  if (PROTOCOL.p2FixedLength + extLength > data.length) return null;
  const extensions = readExtensions(data, PROTOCOL.p2FixedLength, extLength);
  if (extensions === null) return null;
  return { status: view.getUint8(1), generation: view.getBigUint64(2), extensions };
}

/** The prologue of PROTOCOL.md section 2: `noisemesh/1`, a zero byte, the trust domain. */
export function prologue(trustDomain: string): Uint8Array {
  return Buffer.concat([Buffer.from(PROTOCOL.prologueLabel, 'ascii'), Buffer.of(0), Buffer.from(trustDomain, 'utf8')]);
}
