/**
 * The 96-bit AEAD nonces of spec sections 12.3 and 12.4: 32 zero bits, then the 64-bit
 * counter, little-endian for ChaChaPoly and big-endian for AESGCM.
 *
 * One scratch buffer per layout serves every call: encryption and decryption are
 * synchronous and both backends consume the nonce before they return.
 */
const chachaNonce = new Uint8Array(12);
const chachaView = new DataView(chachaNonce.buffer);
const gcmNonce = new Uint8Array(12);
const gcmView = new DataView(gcmNonce.buffer);

export function chachaPolyNonce(nHi: number, nLo: number): Uint8Array {
  chachaView.setUint32(4, nLo, true);
  chachaView.setUint32(8, nHi, true);
  return chachaNonce;
}

export function aesGcmNonce(nHi: number, nLo: number): Uint8Array {
  gcmView.setUint32(4, nHi, false);
  gcmView.setUint32(8, nLo, false);
  return gcmNonce;
}
