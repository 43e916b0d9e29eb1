// The Noise core under misuse and attack: every failure must be a typed error and must leave
// the state as it was (commit only on success).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import {
  BadKeyError,
  CipherState,
  DecryptError,
  HandshakeState,
  LowOrderKeyError,
  MessageTooLongError,
  NonceExhaustedError,
  ProtocolNameError,
  StateError,
  nativeBackend,
  loadBackend,
  parseProtocolName,
  type CryptoBackend,
  type Transport,
} from '../src/noise/index.js';
import { CRYPTO_ENGINES } from './helpers/crypto-engines.js';

const nobleBackend = await loadBackend('noble');

const IK = 'Noise_IK_25519_ChaChaPoly_BLAKE2s';
/** Byte equality whatever the container (node:crypto gives Buffers, noble Uint8Arrays). */
function sameBytes(actual: Uint8Array | null, expected: Uint8Array | null, message?: string): void {
  assert.ok(actual !== null && expected !== null, message);
  assert.equal(Buffer.from(actual).toString('hex'), Buffer.from(expected).toString('hex'), message);
}

const bytes = (n: number, fill = 7): Uint8Array => new Uint8Array(n).fill(fill);

function ikPair(initBackend: CryptoBackend = nativeBackend, respBackend: CryptoBackend = nativeBackend, protocol = IK, psks?: Uint8Array[][]) {
  const iStatic = initBackend.dh('25519').generateKeyPair();
  const rStatic = respBackend.dh('25519').generateKeyPair();
  const prologue = new TextEncoder().encode('noisemesh/1\0cluster.local');
  const initiator = new HandshakeState({
    protocol, initiator: true, backend: initBackend, prologue, staticKeyPair: iStatic,
    remoteStaticKey: rStatic.publicKey, ...(psks && { psks: psks[0] }),
  });
  const responder = new HandshakeState({
    protocol, initiator: false, backend: respBackend, prologue, staticKeyPair: rStatic,
    ...(psks && { psks: psks[1] }),
  });
  return { initiator, responder, iStatic, rStatic };
}

function complete(p: ReturnType<typeof ikPair>): { i: Transport; r: Transport } {
  const m1 = p.initiator.writeMessage(bytes(5));
  sameBytes(p.responder.readMessage(m1.message).payload, bytes(5));
  const m2 = p.responder.writeMessage(bytes(3));
  const read = p.initiator.readMessage(m2.message);
  assert.ok(m2.transport && read.transport);
  return { i: read.transport, r: m2.transport };
}

for (const [a, b] of [[nativeBackend, nobleBackend], [nobleBackend, nativeBackend]] as const) {
  test(`IK between a ${a.name} initiator and a ${b.name} responder, transport both ways`, () => {
    const p = ikPair(a, b);
    const { i, r } = complete(p);
    sameBytes(i.handshakeHash, r.handshakeHash);
    sameBytes(r.remoteStaticKey, p.iStatic.publicKey);
    sameBytes(i.remoteStaticKey, p.rStatic.publicKey);
    for (const size of [0, 1, 64, 1400, 65519]) {
      const m = bytes(size, size & 0xff);
      sameBytes(r.decrypt(i.encrypt(m)), m);
      sameBytes(i.decrypt(r.encrypt(m)), m);
    }
  });
}

test('a tampered handshake message fails and leaves the responder able to read the genuine one', () => {
  const p = ikPair();
  const { message } = p.initiator.writeMessage(bytes(10));
  for (const index of [0, 40, message.length - 1]) {
    const tampered = Uint8Array.from(message);
    tampered[index]! ^= 0x01;
    assert.throws(() => p.responder.readMessage(tampered), DecryptError);
  }
  assert.throws(() => p.responder.readMessage(message.subarray(0, 40)), { code: 'NOISE_MALFORMED' });
  sameBytes(p.responder.readMessage(message).payload, bytes(10));
});

test('tampered transport ciphertext or tag is rejected without consuming a nonce', () => {
  const { i, r } = complete(ikPair());
  const ct = i.encrypt(bytes(100));
  for (const index of [0, 50, ct.length - 1]) {
    const bad = Uint8Array.from(ct);
    bad[index]! ^= 0x80;
    assert.throws(() => r.decrypt(bad), DecryptError);
  }
  assert.throws(() => r.decrypt(ct.subarray(0, 15)), DecryptError);
  sameBytes(r.decrypt(ct), bytes(100));
});

test('replayed and reordered transport messages are rejected', () => {
  const { i, r } = complete(ikPair());
  const first = i.encrypt(bytes(1, 1));
  const second = i.encrypt(bytes(1, 2));
  assert.throws(() => r.decrypt(second), DecryptError, 'reordered');
  sameBytes(r.decrypt(first), bytes(1, 1));
  assert.throws(() => r.decrypt(first), DecryptError, 'replayed');
  sameBytes(r.decrypt(second), bytes(1, 2));
});

test('calls out of turn and after Split are state errors', () => {
  const p = ikPair();
  assert.throws(() => p.responder.writeMessage(), StateError);
  assert.throws(() => p.initiator.readMessage(bytes(48)), StateError);
  const m1 = p.initiator.writeMessage();
  assert.throws(() => p.initiator.writeMessage(), StateError);
  p.responder.readMessage(m1.message);
  const m2 = p.responder.writeMessage();
  assert.ok(m2.transport);
  assert.throws(() => p.responder.writeMessage(), StateError, 'write after Split');
  assert.throws(() => p.responder.readMessage(m1.message), StateError);
  p.initiator.readMessage(m2.message);
  assert.throws(() => p.initiator.writeMessage(), StateError);
});

test('messages over 65535 bytes are refused on write and on read', () => {
  const p = ikPair();
  // m1 of IK carries 32 (e) + 48 (s) + 16 (tag) bytes besides the payload.
  assert.throws(() => p.initiator.writeMessage(bytes(65535 - 96 + 1)), MessageTooLongError);
  const { message } = p.initiator.writeMessage(bytes(65535 - 96));
  assert.equal(message.length, 65535);
  assert.throws(() => p.responder.readMessage(new Uint8Array(65536)), MessageTooLongError);
  p.responder.readMessage(message);
  const { i, r } = complete(ikPair());
  assert.throws(() => i.encrypt(bytes(65520)), MessageTooLongError);
  assert.throws(() => r.decrypt(bytes(65536)), MessageTooLongError);
  assert.equal(i.encrypt(bytes(65519)).length, 65535);
});

test('the nonce 2^64-1 is never used: encryption and decryption refuse it', () => {
  for (const { label, backend } of CRYPTO_ENGINES) {
    const key = bytes(32, 9);
    const sender = new CipherState(backend.cipher('ChaChaPoly'), Uint8Array.from(key));
    const receiver = new CipherState(backend.cipher('ChaChaPoly'), Uint8Array.from(key));
    sender.setNonce(2n ** 64n - 2n);
    receiver.setNonce(2n ** 64n - 2n);
    const last = sender.encryptWithAd(new Uint8Array(0), bytes(4));
    sameBytes(receiver.decryptWithAd(new Uint8Array(0), last), bytes(4), label);
    assert.equal(sender.getNonce(), 2n ** 64n - 1n);
    assert.throws(() => sender.encryptWithAd(new Uint8Array(0), bytes(4)), NonceExhaustedError);
    assert.throws(() => receiver.decryptWithAd(new Uint8Array(0), last), NonceExhaustedError);
  }
});

test('the nonce carries from the low 32 bits into the high 32 bits', () => {
  const key = bytes(32, 3);
  const cs = new CipherState(nativeBackend.cipher('ChaChaPoly'), Uint8Array.from(key));
  cs.setNonce(2n ** 32n - 1n);
  const ct = cs.encryptWithAd(new Uint8Array(0), bytes(8));
  assert.equal(cs.getNonce(), 2n ** 32n);
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64LE(2n ** 32n - 1n, 4);
  sameBytes(Buffer.from(ct), rawChaChaSeal(key, nonce, bytes(8)));
});

function rawChaChaSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

test('Rekey follows the spec: k = first 32 bytes of ENCRYPT(k, 2^64-1, empty, 32 zeros), n unchanged', () => {
  for (const { label, backend } of CRYPTO_ENGINES) {
    const key = bytes(32, 0x42);
    const cs = new CipherState(backend.cipher('ChaChaPoly'), Uint8Array.from(key));
    cs.encryptWithAd(new Uint8Array(0), bytes(1));
    cs.rekey();
    assert.equal(cs.getNonce(), 1n);
    const maxNonce = Buffer.alloc(12);
    maxNonce.writeBigUInt64LE(2n ** 64n - 1n, 4);
    const rekeyed = rawChaChaSeal(key, maxNonce, new Uint8Array(32)).subarray(0, 32);
    const nonce1 = Buffer.alloc(12);
    nonce1.writeBigUInt64LE(1n, 4);
    sameBytes(Buffer.from(cs.encryptWithAd(new Uint8Array(0), bytes(16))), rawChaChaSeal(rekeyed, nonce1, bytes(16)), label);
  }
});

test('a wrong psk fails the handshake at the first message that depends on it', () => {
  const good = bytes(32, 1);
  const wrong = bytes(32, 2);
  // psk1: the psk is mixed at the end of message 1, so its payload no longer decrypts.
  const p1 = ikPair(nativeBackend, nativeBackend, 'Noise_IKpsk1_25519_ChaChaPoly_BLAKE2s', [[good], [wrong]]);
  assert.throws(() => p1.responder.readMessage(p1.initiator.writeMessage().message), DecryptError);
  // psk2: message 1 is unaffected; the initiator rejects message 2.
  const p2 = ikPair(nativeBackend, nativeBackend, 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s', [[good], [wrong]]);
  p2.responder.readMessage(p2.initiator.writeMessage().message);
  assert.throws(() => p2.initiator.readMessage(p2.responder.writeMessage().message), DecryptError);
  complete(ikPair(nativeBackend, nativeBackend, 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s', [[good], [good]]));
});

test('the psk count and sizes are checked before the handshake starts', () => {
  const s = nativeBackend.dh('25519').generateKeyPair();
  const base = { protocol: 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s', initiator: false, staticKeyPair: s };
  assert.throws(() => new HandshakeState(base), BadKeyError);
  assert.throws(() => new HandshakeState({ ...base, psks: [bytes(31)] }), BadKeyError);
  assert.throws(() => new HandshakeState({ protocol: IK, initiator: true, staticKeyPair: s }), BadKeyError, 'IK initiator needs rs');
  assert.throws(() => new HandshakeState({ protocol: IK, initiator: false }), BadKeyError, 'IK responder needs s');
  assert.throws(() => new HandshakeState({ protocol: IK, initiator: true, staticKeyPair: s, remoteStaticKey: bytes(33) }), BadKeyError);
});

test('invalid public keys give the all-zero DH output on every backend (spec 12.1)', () => {
  // Low-order points of Curve25519: 0, 1, and an order-8 point; the output is all zeros.
  const lowOrder = [
    new Uint8Array(32),
    Uint8Array.from([1, ...new Uint8Array(31)]),
    Uint8Array.from(Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex')),
  ];
  for (const { label, backend } of CRYPTO_ENGINES) {
    const dh = backend.dh('25519');
    const kp = dh.generateKeyPair();
    for (const point of lowOrder) sameBytes(dh.dh(kp, point), new Uint8Array(32), label);
    assert.throws(() => dh.dh(kp, bytes(31)), BadKeyError);
    assert.throws(() => dh.keyPairFromPrivate(bytes(33)), BadKeyError);
    const x448 = backend.dh('448');
    sameBytes(x448.dh(x448.generateKeyPair(), new Uint8Array(56)), new Uint8Array(56));
  }
});

test('a low-order ephemeral from an attacker does not complete an IK handshake', () => {
  const p = ikPair();
  const { message } = p.initiator.writeMessage();
  const forged = Uint8Array.from(message);
  forged.fill(0, 0, 32);
  // Refused at its first DH, before any tag is checked (test/noise-low-order.test.ts has more).
  assert.throws(() => p.responder.readMessage(forged), LowOrderKeyError);
});

test('protocol names are parsed once and errors name the wrong part', () => {
  const parsed = parseProtocolName('Noise_XXpsk0+psk3_448_AESGCM_SHA512');
  assert.equal(parsed.pattern.messages[0]!.tokens[0], 'psk');
  assert.deepEqual(parsed.pattern.messages[2]!.tokens, ['s', 'se', 'psk']);
  const cases: [string, string][] = [
    ['Nois_IK_25519_ChaChaPoly_BLAKE2s', 'prefix'],
    ['Noise_QQ_25519_ChaChaPoly_BLAKE2s', 'pattern'],
    ['Noise_IKfallback_25519_ChaChaPoly_BLAKE2s', 'modifier'],
    ['Noise_NNpsk3_25519_ChaChaPoly_BLAKE2s', 'modifier'],
    ['Noise_IK_25518_ChaChaPoly_BLAKE2s', 'dh'],
    ['Noise_IK_25519_ChaCha_BLAKE2s', 'cipher'],
    ['Noise_IK_25519_ChaChaPoly_MD5', 'hash'],
  ];
  for (const [name, part] of cases) {
    assert.throws(() => parseProtocolName(name), (err: unknown) => err instanceof ProtocolNameError && err.part === part, name);
  }
});

test('one-way patterns give the responder no sending side', () => {
  const r = nativeBackend.dh('25519').generateKeyPair();
  const init = new HandshakeState({ protocol: 'Noise_N_25519_ChaChaPoly_BLAKE2s', initiator: true, remoteStaticKey: r.publicKey });
  const resp = new HandshakeState({ protocol: 'Noise_N_25519_ChaChaPoly_BLAKE2s', initiator: false, staticKeyPair: r });
  const m = init.writeMessage(bytes(2));
  const read = resp.readMessage(m.message);
  assert.ok(m.transport && read.transport);
  assert.throws(() => read.transport!.encrypt(bytes(1)), StateError);
  sameBytes(read.transport!.decrypt(m.transport.encrypt(bytes(9))), bytes(9));
});

test('repeated handshakes between the same static keys agree with the reference backend', () => {
  // The native backend remembers `ss` for key arrays that meet again (as wireguard-go
  // precomputes it); the noble backend computes it every time. Both ways round, several times.
  const dh = nativeBackend.dh('25519');
  const alice = dh.generateKeyPair();
  const bob = dh.generateKeyPair();
  for (const [iBackend, rBackend] of [[nativeBackend, nobleBackend], [nobleBackend, nativeBackend], [nativeBackend, nativeBackend]] as const) {
    for (let round = 0; round < 5; round++) {
      const initiator = new HandshakeState({ protocol: IK, initiator: true, backend: iBackend, staticKeyPair: alice, remoteStaticKey: bob.publicKey });
      const responder = new HandshakeState({ protocol: IK, initiator: false, backend: rBackend, staticKeyPair: bob });
      responder.readMessage(initiator.writeMessage(bytes(4)).message);
      const m2 = responder.writeMessage();
      const i = initiator.readMessage(m2.message).transport!;
      sameBytes(i.handshakeHash, m2.transport!.handshakeHash, `${iBackend.name}->${rBackend.name} round ${round}`);
      sameBytes(m2.transport!.decrypt(i.encrypt(bytes(32, round))), bytes(32, round));
    }
  }
});

test('encryptWithAdInto writes what encryptWithAd returns, at the offset, on every backend and cipher', () => {
  for (const { label, backend } of CRYPTO_ENGINES) {
    for (const cipher of ['ChaChaPoly', 'AESGCM'] as const) {
      const into = new CipherState(backend.cipher(cipher), bytes(32, 9));
      const plain = new CipherState(backend.cipher(cipher), bytes(32, 9));
      const ad = bytes(5, 1);
      for (const size of [0, 1, 64, 4096, 65519]) {
        const m = bytes(size, size & 0xff);
        const out = Buffer.alloc(2 + size + 16 + 3, 0xee);
        assert.equal(into.encryptWithAdInto(ad, m, out, 2), size + 16);
        sameBytes(out.subarray(2, 2 + size + 16), plain.encryptWithAd(ad, m), `${label} ${cipher} ${size}`);
        assert.deepEqual([out[0], out[1], out[out.length - 1]], [0xee, 0xee, 0xee], 'nothing outside the ciphertext is touched');
      }
      // A buffer too small is refused before the nonce is used: the next message still matches.
      assert.throws(() => into.encryptWithAdInto(ad, bytes(10), Buffer.alloc(25), 0), RangeError);
      assert.throws(() => into.encryptWithAdInto(ad, bytes(65520), Buffer.alloc(70_000), 0), MessageTooLongError);
      assert.equal(into.getNonce(), plain.getNonce());
    }
  }
});

test('a decrypted plaintext does not share memory with its ciphertext, on every backend and cipher', () => {
  for (const { label, backend } of CRYPTO_ENGINES) {
    for (const cipher of ['ChaChaPoly', 'AESGCM'] as const) {
      const sender = new CipherState(backend.cipher(cipher), bytes(32, 5));
      const receiver = new CipherState(backend.cipher(cipher), bytes(32, 5));
      for (const size of [1, 4096, 65519]) {
        const m = bytes(size, 0x5a);
        const ciphertext = sender.encryptWithAd(new Uint8Array(0), m);
        const plaintext = receiver.decryptWithAd(new Uint8Array(0), ciphertext);
        ciphertext.fill(0);
        sameBytes(plaintext, m, `${label} ${cipher} ${size}: the proxy reuses frame buffers after decrypting`);
      }
    }
  }
});
