/*
 * The 96-bit AEAD nonce of a Noise transport message (Noise spec section 12): 32 bits of zeros,
 * then the 64-bit counter n, little-endian for ChaChaPoly (12.3) and big-endian for AESGCM
 * (12.4). One copy for both addons that seal and open messages (aead_context.c,
 * session_pump.c), as src/noise/nonce-layout.ts is for JavaScript. n is given as its two
 * 32-bit halves; cipher 0 is ChaChaPoly, 1 AESGCM.
 */
#ifndef NOISEMESH_NONCE_LAYOUT_H
#define NOISEMESH_NONCE_LAYOUT_H

#include <stdint.h>
#include <string.h>

#define NOISE_NONCE_LEN 12

static inline void noise_nonce_bytes(int cipher, uint32_t hi, uint32_t lo, unsigned char nonce[NOISE_NONCE_LEN]) {
  memset(nonce, 0, 4);
  if (cipher == 0) {
    for (int i = 0; i < 4; i++) nonce[4 + i] = (unsigned char)(lo >> (8 * i));
    for (int i = 0; i < 4; i++) nonce[8 + i] = (unsigned char)(hi >> (8 * i));
  } else {
    for (int i = 0; i < 4; i++) nonce[4 + i] = (unsigned char)(hi >> (24 - 8 * i));
    for (int i = 0; i < 4; i++) nonce[8 + i] = (unsigned char)(lo >> (24 - 8 * i));
  }
}

#endif
