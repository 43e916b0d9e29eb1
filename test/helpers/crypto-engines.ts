// Every way this package can run the Noise primitives: the backends, and the native
// backend's two AEAD engines (src/noise/aead-openssl.ts). Tests that must hold for every
// implementation iterate this list.
import { nativeBackendWith, loadBackend, type CryptoBackend } from '../../src/noise/index.js';

const nobleBackend = await loadBackend('noble');

export const CRYPTO_ENGINES: readonly { readonly label: string; readonly backend: CryptoBackend }[] = [
  { label: 'native (AEAD contexts)', backend: nativeBackendWith('context') },
  { label: 'native (node:crypto AEAD)', backend: nativeBackendWith('node-crypto') },
  { label: 'noble', backend: nobleBackend },
];
