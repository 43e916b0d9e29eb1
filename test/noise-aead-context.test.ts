// The AEAD context addon (native/aead_context.c): built at install, the default engine, and
// byte-for-byte the same cipher as noble's and node:crypto's, including while the key
// changes between calls as a proxy's sessions interleave. Its misuse must throw, never
// touch memory it was not given, and never crash the process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { randomBytes } from 'node:crypto';
import { CipherState, DecryptError, defaultAeadEngine, nativeBackend, nativeBackendWith, loadBackend, type CipherName } from '../src/noise/index.js';
import { addonPath } from '../src/native/index.js';

const nobleBackend = await loadBackend('noble');

const CIPHERS: readonly CipherName[] = ['ChaChaPoly', 'AESGCM'];
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('npm install built the addon, and the native backend uses it', () => {
  assert.deepEqual(defaultAeadEngine, { engine: 'context' });
});

test('contexts agree with noble and node:crypto while keys, nonces and sizes change every call', () => {
  for (const name of CIPHERS) {
    const context = nativeBackendWith('context').cipher(name);
    const perMessage = nativeBackendWith('node-crypto').cipher(name);
    const noble = nobleBackend.cipher(name);
    const keys = [randomBytes(32), randomBytes(32), randomBytes(32)];
    let calls = 0;
    // Sizes around ChaCha's 64-byte and GHASH's 16-byte blocks, and the largest plaintext.
    for (const size of [0, 1, 15, 16, 17, 63, 64, 65, 1400, 4096, 65519]) {
      for (const [nHi, nLo] of [[0, 0], [0, 1], [1, 0], [0x01020304, 0x05060708], [0xffffffff, 0xfffffffe]] as const) {
        const k = keys[calls++ % keys.length]!;
        const ad = randomBytes(calls % 3 === 0 ? 0 : 32);
        const plaintext = randomBytes(size);
        const expected = noble.encrypt(k, nHi, nLo, ad, plaintext);
        const where = `${name}, ${size} bytes, nonce ${nHi}:${nLo}`;
        assert.equal(hex(context.encrypt(k, nHi, nLo, ad, plaintext)), hex(expected), where);
        assert.equal(hex(perMessage.encrypt(k, nHi, nLo, ad, plaintext)), hex(expected), where);
        assert.equal(hex(context.decrypt(k, nHi, nLo, ad, expected)), hex(plaintext), where);
      }
    }
  }
});

test('a forgery is refused and leaves the context fit for the next message', () => {
  for (const name of CIPHERS) {
    const cipher = nativeBackend.cipher(name);
    const k = randomBytes(32);
    const ad = Buffer.from('ad');
    const sealed = cipher.encrypt(k, 0, 7, ad, Buffer.from('attack at dawn'));
    const tampered: [string, () => Uint8Array][] = [
      ['body', () => cipher.decrypt(k, 0, 7, ad, flip(sealed, 0))],
      ['tag', () => cipher.decrypt(k, 0, 7, ad, flip(sealed, sealed.length - 1))],
      ['ad', () => cipher.decrypt(k, 0, 7, Buffer.from('ae'), sealed)],
      ['nonce', () => cipher.decrypt(k, 0, 8, ad, sealed)],
      ['key', () => cipher.decrypt(flip(k, 31), 0, 7, ad, sealed)],
      ['short', () => cipher.decrypt(k, 0, 7, ad, sealed.subarray(0, 15))],
    ];
    for (const [what, attempt] of tampered) assert.throws(attempt, DecryptError, `${name}: tampered ${what}`);
    assert.equal(Buffer.from(cipher.decrypt(k, 0, 7, ad, sealed)).toString(), 'attack at dawn');
  }
});

test('a refused message leaves no unauthenticated plaintext in the output buffer', () => {
  const addon = rawAddon();
  const k = randomBytes(32);
  const out = Buffer.alloc(64 + 16);
  addon.seal(0, k, 0, 0, new Uint8Array(0), Buffer.alloc(64, 0x41), out, 0);
  out[70]! ^= 1;
  const plaintext = Buffer.alloc(64, 0xee);
  assert.equal(addon.open(0, k, 0, 0, new Uint8Array(0), out, plaintext), false);
  assert.ok(plaintext.every((b) => b === 0), 'zeroed, not the decrypted body');
});

test('CipherState.wipe has the context forget its key, and the same key works again after', () => {
  for (const name of CIPHERS) {
    const key = randomBytes(32);
    const sender = new CipherState(nativeBackend.cipher(name), Uint8Array.from(key));
    const receiver = new CipherState(nativeBackend.cipher(name), Uint8Array.from(key));
    const first = sender.encryptWithAd(new Uint8Array(0), Buffer.from('one'));
    sender.wipe(); // the seal context held this key; forget overwrites it
    assert.equal(Buffer.from(receiver.decryptWithAd(new Uint8Array(0), first)).toString(), 'one');
    receiver.wipe();
    // A fresh pair with the same bytes re-keys both contexts from scratch.
    const again = new CipherState(nativeBackend.cipher(name), Uint8Array.from(key));
    assert.equal(hex(again.encryptWithAd(new Uint8Array(0), Buffer.from('one'))), hex(first));
    assert.equal(hex(key.filter(() => true)), hex(key), 'the caller\'s copy is untouched');
  }
});

test('misuse of the addon throws TypeError or RangeError and touches nothing', () => {
  const addon = rawAddon();
  const k = randomBytes(32);
  const empty = new Uint8Array(0);
  const out = Buffer.alloc(32, 0xee);
  const cases: [string, () => unknown, ErrorConstructor][] = [
    ['unknown cipher', () => addon.seal(2, k, 0, 0, empty, empty, out, 0), RangeError],
    ['short key', () => addon.seal(0, k.subarray(0, 31), 0, 0, empty, empty, out, 0), RangeError],
    ['key not bytes', () => addon.seal(0, 'k'.repeat(32) as unknown as Uint8Array, 0, 0, empty, empty, out, 0), TypeError],
    ['nonce not a number', () => addon.seal(0, k, '0' as unknown as number, 0, empty, empty, out, 0), TypeError],
    ['ad not bytes', () => addon.seal(0, k, 0, 0, [] as unknown as Uint8Array, empty, out, 0), TypeError],
    ['Uint16Array', () => addon.seal(0, k, 0, 0, empty, new Uint16Array(4) as unknown as Uint8Array, out, 0), TypeError],
    ['out too small', () => addon.seal(0, k, 0, 0, empty, new Uint8Array(17), out, 0), RangeError],
    ['offset past room', () => addon.seal(0, k, 0, 0, empty, empty, out, 17), RangeError],
    ['offset past end', () => addon.seal(0, k, 0, 0, empty, empty, out, 33), RangeError],
    ['nonce past a u32', () => addon.seal(0, k, 2 ** 32, 0, empty, empty, out, 0), RangeError],
    ['negative nonce', () => addon.seal(0, k, 0, -1, empty, empty, out, 0), RangeError],
    ['fractional nonce', () => addon.seal(0, k, 0, 1.5, empty, empty, out, 0), RangeError],
    ['offset past a u32', () => addon.seal(0, k, 0, 0, empty, empty, out, 2 ** 32), RangeError],
    ['too few arguments', () => (addon.seal as (...a: unknown[]) => void)(0, k), TypeError],
    ['forget without a key', () => (addon.forget as () => void)(), TypeError],
    ['ciphertext shorter than a tag', () => addon.open(0, k, 0, 0, empty, new Uint8Array(15), out), RangeError],
    ['plaintext out too small', () => addon.open(0, k, 0, 0, empty, new Uint8Array(16 + 33), out), RangeError],
  ];
  for (const [what, call, type] of cases) assert.throws(call, type, what);
  assert.ok(out.every((b) => b === 0xee), 'out is untouched by every refused call');
  addon.forget(new Uint8Array(5)); // not a key: nothing to forget, no error
});

test('each worker thread has contexts of its own', async () => {
  const key = randomBytes(32);
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    const addon = require(workerData.path);
    const out = new Uint8Array(1000 + 16);
    let last = '';
    for (let i = 0; i < 2000; i++) {
      addon.seal(0, workerData.key, 0, i, new Uint8Array(0), new Uint8Array(1000).fill(i & 0xff), out, 0);
      last = Buffer.from(out).toString('hex');
    }
    parentPort.postMessage(last);`;
  const runs = Array.from({ length: 2 }, () => new Promise<string>((resolve, reject) => {
    const worker = new Worker(source, { eval: true, workerData: { path: addonPath('aead_context'), key } });
    worker.once('message', resolve);
    worker.once('error', reject);
  }));
  // Meanwhile the main thread seals under another key with the same contexts' addon.
  const other = nativeBackend.cipher('ChaChaPoly');
  for (let i = 0; i < 2000; i++) other.encrypt(randomBytes(32), 0, i, new Uint8Array(0), new Uint8Array(64));
  const expected = hex(nobleBackend.cipher('ChaChaPoly').encrypt(key, 0, 1999, new Uint8Array(0), new Uint8Array(1000).fill(1999 & 0xff)));
  for (const result of await Promise.all(runs)) assert.equal(result, expected);
});

function flip(bytes: Uint8Array, index: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[index]! ^= 1;
  return copy;
}

interface RawAddon {
  seal(cipher: number, key: Uint8Array, nHi: number, nLo: number, ad: Uint8Array, plaintext: Uint8Array, out: Uint8Array, offset: number): void;
  open(cipher: number, key: Uint8Array, nHi: number, nLo: number, ad: Uint8Array, ciphertext: Uint8Array, out: Uint8Array): boolean;
  forget(key: Uint8Array): void;
}

function rawAddon(): RawAddon {
  return createRequire(import.meta.url)(addonPath('aead_context')) as RawAddon;
}
