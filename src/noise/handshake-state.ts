/**
 * HandshakeState, spec section 5.3. One loop over the tokens of the pattern table; nothing
 * here knows a pattern by name.
 *
 * Every WriteMessage and ReadMessage commits only on success: the state is snapshotted
 * first and restored if any step throws (a bad tag, a short message, a missing key), so a
 * failed message leaves the handshake exactly as it was, as in wireguard-go's Consume
 * functions and flynn/noise's rollback.
 *
 * A DH whose output is all zeros fails the message with LowOrderKeyError: the peer's key is a
 * low-order point and the output is one anyone can compute. The spec prefers mixing the zeros
 * (12.1) and allows signalling an error; we signal it, here, once for every backend, pattern
 * and role, rather than leave it to each caller (NMP/1 requires it: PROTOCOL.md section 2).
 */
import { concat, copyOf } from './bytes.js';
import { MAX_MESSAGE_LEN, PSK_LEN, TAG_LEN } from './constants.js';
import { BadKeyError, DecryptError, LowOrderKeyError, MalformedMessageError, MessageTooLongError, StateError } from './errors.js';
import { isAllZero } from './low-order.js';
import { parseProtocolName, cipherSuite, type CipherSuite, type Protocol } from './protocol.js';
import type { HandshakePattern, Role, Token } from './patterns.js';
import type { CryptoBackend, KeyPair } from './primitives.js';
import { SymmetricState, discardSnapshot } from './symmetric-state.js';
import { Transport } from './transport.js';
import { nativeBackend } from './backend-native.js';

const EMPTY = new Uint8Array(0);

export interface HandshakeOptions {
  /** A protocol name such as `Noise_IK_25519_ChaChaPoly_BLAKE2s`, or one parsed already. */
  readonly protocol: string | Protocol;
  readonly initiator: boolean;
  readonly prologue?: Uint8Array;
  /** s: this party's static key pair, when the pattern has one. */
  readonly staticKeyPair?: KeyPair;
  /** rs: the peer's static public key, when the pattern's pre-messages carry it. */
  readonly remoteStaticKey?: Uint8Array;
  /** re: the peer's ephemeral public key, when the pre-messages carry it. */
  readonly remoteEphemeralKey?: Uint8Array;
  /** One 32-byte key per psk token, in the order the tokens occur. */
  readonly psks?: readonly Uint8Array[];
  /** Where the primitives come from; node:crypto unless said otherwise. */
  readonly backend?: CryptoBackend;
  /**
   * TEST VECTORS ONLY. Replaces the ephemeral key this party would generate, which destroys
   * every security property of the handshake. It exists so that published vectors can be
   * reproduced; nothing outside the vector runner and tests may set it.
   */
  readonly DANGEROUS_fixedEphemeralForTestVectors?: KeyPair;
  /**
   * Lets an all-zero DH output into the handshake, as the spec's DH functions return it for
   * a low-order key (12.1), instead of failing with LowOrderKeyError. The handshake then
   * no longer authenticates a peer with such a key. Nothing in noisemesh sets it: NMP/1
   * forbids it (PROTOCOL.md section 2); tests that play an attacker, who must mix the zeros
   * it predicts, do.
   */
  readonly DANGEROUS_allowAllZeroDh?: boolean;
}

export interface WriteResult {
  readonly message: Uint8Array;
  /** Set when this message completed the handshake; the HandshakeState is spent. */
  readonly transport: Transport | null;
}

export interface ReadResult {
  readonly payload: Uint8Array;
  readonly transport: Transport | null;
}

export class HandshakeState {
  readonly protocol: Protocol;
  readonly role: Role;
  private readonly pattern: HandshakePattern;
  private readonly suite: CipherSuite;
  private readonly symmetric: SymmetricState;
  private readonly s: KeyPair | null;
  private e: KeyPair | null = null;
  private rs: Uint8Array | null;
  private re: Uint8Array | null;
  private readonly psks: readonly Uint8Array[];
  private pskIndex = 0;
  private messageIndex = 0;
  private spent = false;
  private readonly fixedEphemeral: KeyPair | null;
  private readonly allowAllZeroDh: boolean;

  /** Initialize(), spec 5.3. */
  constructor(options: HandshakeOptions) {
    this.protocol = typeof options.protocol === 'string' ? parseProtocolName(options.protocol) : options.protocol;
    this.pattern = this.protocol.pattern;
    this.role = options.initiator ? 'initiator' : 'responder';
    this.suite = cipherSuite(this.protocol, options.backend ?? nativeBackend);
    const dhLen = this.suite.dh.dhLen;

    this.s = options.staticKeyPair ?? null;
    this.rs = options.remoteStaticKey ?? null;
    this.re = options.remoteEphemeralKey ?? null;
    this.fixedEphemeral = options.DANGEROUS_fixedEphemeralForTestVectors ?? null;
    this.allowAllZeroDh = options.DANGEROUS_allowAllZeroDh ?? false;
    this.psks = options.psks ?? [];
    checkKeyLength(this.s?.publicKey, dhLen, 'local static public key');
    checkKeyLength(this.s?.privateKey, dhLen, 'local static private key');
    checkKeyLength(this.rs ?? undefined, dhLen, 'remote static key');
    checkKeyLength(this.re ?? undefined, dhLen, 'remote ephemeral key');
    this.checkKeysThePatternNeeds();

    this.symmetric = new SymmetricState(this.suite, this.protocol.name);
    this.symmetric.mixHash(options.prologue ?? EMPTY);
    for (const from of ['initiator', 'responder'] as const) {
      for (const token of this.pattern.preMessages[from]) {
        this.symmetric.mixHash(this.preMessageKey(from, token));
      }
    }
  }

  /** True when it is this party's turn to write. */
  get isMyTurn(): boolean {
    return !this.spent && this.pattern.messages[this.messageIndex]?.from === this.role;
  }

  /** rs, once known: from the pre-message or after reading an `s` token. */
  get remoteStaticKey(): Uint8Array | null {
    return this.rs;
  }

  /** The handshake hash so far (spec 5.2 GetHandshakeHash). */
  get handshakeHash(): Uint8Array {
    return this.symmetric.getHandshakeHash();
  }

  writeMessage(payload: Uint8Array = EMPTY): WriteResult {
    this.checkTurn('write', this.role);
    const tokens = this.pattern.messages[this.messageIndex]!.tokens;
    return this.atomically(() => {
      const parts: Uint8Array[] = [];
      for (const token of tokens) {
        switch (token) {
          case 'e': {
            const e = this.fixedEphemeral ?? this.suite.dh.generateKeyPair();
            this.e = e;
            parts.push(e.publicKey);
            this.symmetric.mixHash(e.publicKey);
            if (this.pattern.hasPsk) this.symmetric.mixKey(e.publicKey);
            break;
          }
          case 's':
            parts.push(this.symmetric.encryptAndHash(this.need(this.s, 'local static key').publicKey));
            break;
          default:
            this.mixToken(token);
        }
      }
      parts.push(this.symmetric.encryptAndHash(payload));
      const message = concat(parts);
      if (message.length > MAX_MESSAGE_LEN) throw new MessageTooLongError(message.length, MAX_MESSAGE_LEN);
      return { message, transport: this.advance() };
    });
  }

  readMessage(message: Uint8Array): ReadResult {
    this.checkTurn('read', this.peerRole);
    if (message.length > MAX_MESSAGE_LEN) throw new MessageTooLongError(message.length, MAX_MESSAGE_LEN);
    const tokens = this.pattern.messages[this.messageIndex]!.tokens;
    const dhLen = this.suite.dh.dhLen;
    return this.atomically(() => {
      let offset = 0;
      const take = (length: number, what: string): Uint8Array => {
        if (offset + length > message.length) {
          throw new MalformedMessageError(`handshake message too short for ${what}: ${message.length} bytes`);
        }
        const slice = message.subarray(offset, offset + length);
        offset += length;
        return slice;
      };
      for (const token of tokens) {
        switch (token) {
          case 'e': {
            const re = copyOf(take(dhLen, 'e'));
            this.re = re;
            this.symmetric.mixHash(re);
            if (this.pattern.hasPsk) this.symmetric.mixKey(re);
            break;
          }
          case 's': {
            const tagLen = this.symmetric.cipherState.hasKey() ? TAG_LEN : 0;
            this.rs = copyOf(this.decrypt(take(dhLen + tagLen, 's')));
            break;
          }
          default:
            this.mixToken(token);
        }
      }
      const payload = this.decrypt(message.subarray(offset));
      return { payload, transport: this.advance() };
    });
  }

  /** Discards the handshake's secrets without completing it (a failed or abandoned session). */
  wipe(): void {
    this.spent = true;
    this.symmetric.wipe();
    if (this.e !== this.fixedEphemeral) this.e?.privateKey.fill(0);
    this.e = null;
  }

  private get peerRole(): Role {
    return this.role === 'initiator' ? 'responder' : 'initiator';
  }

  private decrypt(ciphertext: Uint8Array): Uint8Array {
    try {
      return this.symmetric.decryptAndHash(ciphertext);
    } catch (err) {
      if (err instanceof DecryptError) throw new DecryptError('handshake');
      throw err;
    }
  }

  /** The DH and psk tokens, identical for reader and writer (spec 5.3). */
  private mixToken(token: Exclude<Token, 'e' | 's'>): void {
    const initiator = this.role === 'initiator';
    switch (token) {
      case 'ee':
        return this.mixDh(this.e, this.re, 'ee', 'ephemeral');
      case 'es':
        return initiator ? this.mixDh(this.e, this.rs, 'es', 'static') : this.mixDh(this.s, this.re, 'es', 'ephemeral');
      case 'se':
        return initiator ? this.mixDh(this.s, this.re, 'se', 'ephemeral') : this.mixDh(this.e, this.rs, 'se', 'static');
      case 'ss':
        return this.mixDh(this.s, this.rs, 'ss', 'static');
      case 'psk': {
        const psk = this.psks[this.pskIndex++];
        this.symmetric.mixKeyAndHash(this.need(psk ?? null, `psk #${this.pskIndex}`));
        return;
      }
    }
  }

  private mixDh(local: KeyPair | null, remote: Uint8Array | null, token: LowOrderKeyError['token'], remoteKey: LowOrderKeyError['remoteKey']): void {
    const shared = this.suite.dh.dh(this.need(local, `local key for ${token}`), this.need(remote, `remote key for ${token}`));
    // Our own private key is clamped and cannot cause zeros; only the peer's key can.
    if (!this.allowAllZeroDh && isAllZero(shared)) throw new LowOrderKeyError(token, remoteKey);
    this.symmetric.mixKey(shared);
    shared.fill(0);
  }

  /** Moves to the next message; after the last, Split() and hand back the transport. */
  private advance(): Transport | null {
    this.messageIndex++;
    if (this.messageIndex < this.pattern.messages.length) return null;
    const handshakeHash = this.symmetric.getHandshakeHash();
    const [c1, c2] = this.symmetric.split();
    this.wipe();
    const initiator = this.role === 'initiator';
    if (this.pattern.oneWay) {
      c2.wipe();
      return initiator
        ? new Transport(c1, null, handshakeHash, this.rs)
        : new Transport(null, c1, handshakeHash, this.rs);
    }
    return initiator ? new Transport(c1, c2, handshakeHash, this.rs) : new Transport(c2, c1, handshakeHash, this.rs);
  }

  private atomically<T>(step: () => T): T {
    const saved = {
      symmetric: this.symmetric.snapshot(),
      e: this.e,
      re: this.re,
      rs: this.rs,
      pskIndex: this.pskIndex,
    };
    try {
      const result = step();
      discardSnapshot(saved.symmetric);
      return result;
    } catch (err) {
      if (this.e !== saved.e && this.e !== this.fixedEphemeral) this.e?.privateKey.fill(0);
      this.symmetric.restore(saved.symmetric);
      this.e = saved.e;
      this.re = saved.re;
      this.rs = saved.rs;
      this.pskIndex = saved.pskIndex;
      throw err;
    }
  }

  private checkTurn(op: 'write' | 'read', expected: Role): void {
    if (this.spent) throw new StateError(`cannot ${op}: the handshake is complete or was abandoned`);
    const next = this.pattern.messages[this.messageIndex]!;
    if (next.from !== expected) {
      throw new StateError(`cannot ${op} message ${this.messageIndex + 1}: it is the ${next.from}'s to send`);
    }
  }

  private need<T>(value: T | null, what: string): T {
    if (value === null) throw new BadKeyError(`${this.protocol.pattern.name} needs a ${what}, which was not supplied`);
    return value;
  }

  private preMessageKey(from: Role, token: Token): Uint8Array {
    const mine = from === this.role;
    if (token === 's') return mine ? this.need(this.s, 'local static key').publicKey : this.need(this.rs, 'remote static key');
    return mine
      ? this.need(this.fixedEphemeral, 'local ephemeral pre-message key').publicKey
      : this.need(this.re, 'remote ephemeral key');
  }

  /** Fails at construction, not mid-handshake, when a key the pattern will use is missing. */
  private checkKeysThePatternNeeds(): void {
    const { pattern, role } = this;
    const mine = pattern.messages.filter((m) => m.from === role).flatMap((m) => m.tokens);
    const all = pattern.messages.flatMap((m) => m.tokens);
    const usesLocalStatic =
      pattern.preMessages[role].includes('s') ||
      mine.includes('s') ||
      all.includes('ss') ||
      all.includes(role === 'initiator' ? 'se' : 'es');
    if (usesLocalStatic) this.need(this.s, 'local static key');
    const pskCount = all.filter((t) => t === 'psk').length;
    if (this.psks.length !== pskCount) {
      throw new BadKeyError(`${pattern.name} takes ${pskCount} psk(s), got ${this.psks.length}`);
    }
    for (const psk of this.psks) checkKeyLength(psk, PSK_LEN, 'psk');
  }
}

function checkKeyLength(key: Uint8Array | undefined, length: number, what: string): void {
  if (key !== undefined && key.length !== length) {
    throw new BadKeyError(`${what} must be ${length} bytes, got ${key.length}`);
  }
}
