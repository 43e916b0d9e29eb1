/** Constants of the Noise Protocol Framework, revision 34. Normative: do not tune. */

/** Section 3: every Noise message, handshake or transport, is at most this long. */
export const MAX_MESSAGE_LEN = 65535;

/** Section 4.2: the AEAD tag that ENCRYPT appends. */
export const TAG_LEN = 16;

/** Largest plaintext one transport message can carry. */
export const MAX_PLAINTEXT_LEN = MAX_MESSAGE_LEN - TAG_LEN;

/** Section 5.1: n = 2^64-1 is reserved (it is the nonce Rekey uses). */
export const NONCE_HALF_MAX = 0xffffffff;

/** Section 4.2: cipher keys are 32 bytes. */
export const CIPHER_KEY_LEN = 32;

/** Section 9.4: pre-shared keys are 32 bytes. */
export const PSK_LEN = 32;
