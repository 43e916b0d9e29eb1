/**
 * NMP/1 constants. `PROTOCOL` is normative (PROTOCOL.md section 7): changing a value breaks
 * interoperation. `LIMITS` are this implementation's tunables, each with why it is what it is.
 */
export const PROTOCOL = {
  /** `N`, `M`, version 1, reserved 0: the initiator's first four bytes. */
  preamble: Uint8Array.of(0x4e, 0x4d, 0x01, 0x00),
  version: 1,
  /** Frames carry 1..65535 bytes of Noise message behind a u16 length. */
  maxFrameLength: 65535,
  frameHeaderLength: 2,
  /** Noise's 65535-byte message limit less the 16-byte tag. */
  maxTransportPlaintext: 65519,
  handshakeTimeoutMs: 10_000,
  /** P1 timestamps further than this from the responder's clock are replays (status 3). */
  replayWindowNs: 30_000_000_000n,
  /** Rekey() after this many messages on a CipherState, by sender and receiver alike. */
  rekeyInterval: 65536,
  maxP1Length: 8192,
  p1FixedLength: 21,
  p2FixedLength: 12,
  defaultMeshPort: 15443,
  defaultOutboundCapturePort: 15001,
  defaultInboundCapturePort: 15006,
  defaultAdminPort: 15020,
  defaultProxyUid: 1337,
  prologueLabel: 'noisemesh/1',
  protocolName: 'Noise_IK_25519_ChaChaPoly_BLAKE2s',
} as const;

/** P2 status codes, PROTOCOL.md 4.2. */
export const Status = {
  accepted: 0,
  unknownInitiator: 1,
  staleGeneration: 2,
  replay: 3,
  targetPortNotAllowed: 4,
  targetUnavailable: 5,
  deniedByPolicy: 6,
  overloaded: 7,
  internalError: 255,
} as const;
export type Status = (typeof Status)[keyof typeof Status];

const STATUS_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(Status).map(([name, code]) => [code, name]));

/** A metric- and log-friendly name for a status code (`unknown(42)` for codes we do not define). */
export function statusName(code: number): string {
  return STATUS_NAMES.get(code) ?? `unknown(${code})`;
}

/** P1/P2 extension types, PROTOCOL.md 4.1. Unknown types are carried and ignored. */
export const Extension = {
  traceId: 1,
  applicationProtocol: 2,
} as const;

export const LIMITS = {
  /**
   * Accepted P1 timestamps the responder remembers across all initiators. A current one is
   * kept for the 30 s until it falls out of the window, so this admits ~10,000 new
   * handshakes/s sustained before status 7, far above what one 2-core proxy completes; an
   * entry costs about 60 bytes, ~17 MiB at the bound.
   */
  maxReplayEntries: 300_000,
  /**
   * Per initiator key, so one key cannot crowd out all others: ~3,300 new sessions/s from
   * one client pod to one server pod, sustained. (At 20,000 the proxy benchmark found a
   * single client capped at ~670/s.)
   */
  maxReplayEntriesPerKey: 100_000,
  /** Connecting to the local target (status 5 when it fails) should be near-instant. */
  targetConnectTimeoutMs: 5_000,
  /** Connecting to a remote peer's mesh port. */
  peerConnectTimeoutMs: 10_000,
  /**
   * Sessions one proxy carries at once, inbound and outbound, at most; beyond the cap new
   * handshakes get status 7. The cap a proxy runs with is lower when its descriptor limit
   * is (runtime/descriptor-budget.ts): a session holds two descriptors.
   */
  maxSessions: 50_000,
  /**
   * Mesh-port connections that have not finished their handshake, at most; the descriptor
   * limit may set a lower cap. Each holds at most one message 1 (8,288 bytes) and its socket,
   * ~12 KiB in all (README, "Strangers"), so ~12 MiB at the bound; 1,024 lets a genuine
   * initiator's message 1 outrun ~1,000 newer connections before it would be shed.
   */
  maxPendingHandshakes: 1024,
  /** Of those, from one source address: an eighth of the cap, at most this. */
  maxPendingHandshakesPerSource: 128,
  /** SIGTERM: how long open sessions may drain before they are aborted. */
  drainDeadlineMs: 15_000,
} as const;
