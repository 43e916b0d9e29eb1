/*
 * aead_context: Noise's ENCRYPT and DECRYPT (ChaChaPoly, AESGCM) on the OpenSSL that node
 * itself links, through EVP contexts that outlive a message.
 *
 * node:crypto builds a new cipher object and OpenSSL context for every createCipheriv, and
 * a Noise transport needs one per message (each has its own nonce): ~7.5 us of set-up for a
 * 64-byte message whose encryption takes ~0.3 us. Here each thread keeps one context per
 * cipher and direction, and a message only sets its nonce. The key is set again only when
 * it differs from the one the context holds (a proxy relays for many sessions, so it does
 * change), which for ChaCha20 is a copy and for AES-256 a key schedule, both well under a
 * microsecond. Nothing is kept per session: an idle session costs no native memory.
 *
 * Exports (all buffers are Uint8Arrays; nonces come as two u32 halves, as in cipher-state.ts):
 *   seal(cipher, key, nHi, nLo, ad, plaintext, out, offset) -> undefined
 *       writes ciphertext || tag (plaintext.length + 16 bytes) into out at offset.
 *   open(cipher, key, nHi, nLo, ad, ciphertext, out) -> boolean
 *       writes the plaintext (ciphertext.length - 16 bytes) into out; false when the tag
 *       does not verify, and then out has been zeroed, so no unauthenticated byte escapes.
 *   forget(key) -> undefined
 *       overwrites every context and copy that holds `key`: CipherState.wipe calls it.
 * `cipher` is 0 for ChaChaPoly (nonce: 4 zero bytes, then n little-endian) and 1 for AESGCM
 * (4 zero bytes, then n big-endian): Noise spec section 12.
 *
 * Misuse (wrong types or lengths, out too small, a number that is not a u32) throws
 * TypeError or RangeError; the TypeScript wrapper checks first, so these guard memory
 * safety, not the API. `out` must not overlap the input, and the input must not be shared
 * memory another thread writes: ChaCha20-Poly1305 reads the ciphertext twice, once for the
 * tag and once to decrypt.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nonce_layout.h"

#define KEY_LEN 32
#define TAG_LEN 16
#define NONCE_LEN NOISE_NONCE_LEN
#define CIPHERS 2

enum direction { SEAL = 0, OPEN = 1 };

typedef struct {
  EVP_CIPHER_CTX *ctx; /* NULL until first used */
  unsigned char key[KEY_LEN];
  int keyed; /* whether ctx holds `key` */
} slot;

/* Per Node-API environment (main thread or worker): contexts are not thread-safe. */
typedef struct {
  /* Fetched once: an EVP_chacha20_poly1305()-style cipher is fetched again at every init. */
  EVP_CIPHER *ciphers[CIPHERS];
  slot slots[CIPHERS][2];
} contexts;

static const char *const CIPHER_NAMES[CIPHERS] = {"ChaCha20-Poly1305", "AES-256-GCM"};


/*
 * Drops the context and our copy of its key. Freeing, not re-keying with zeros: a re-keyed
 * ChaCha20 context would still hold the last keystream block and Poly1305 state, while
 * the provider's free wipes all of it (OPENSSL_clear_free). prepare() makes a new one.
 */
static void wipe_slot(slot *s) {
  EVP_CIPHER_CTX_free(s->ctx);
  s->ctx = NULL;
  OPENSSL_cleanse(s->key, KEY_LEN);
  s->keyed = 0;
}

static void free_contexts(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  contexts *all = data;
  for (int c = 0; c < CIPHERS; c++) {
    for (int d = 0; d < 2; d++) wipe_slot(&all->slots[c][d]);
    EVP_CIPHER_free(all->ciphers[c]);
  }
  OPENSSL_cleanse(all, sizeof *all);
  free(all);
}

/*
 * The context for (cipher, direction), holding `key` and reset to `nonce`: only the nonce is
 * set when the key is the one it already holds. NULL when OpenSSL fails (out of memory).
 */
static EVP_CIPHER_CTX *prepare(contexts *all, int cipher, enum direction dir, const unsigned char *key,
                               const unsigned char nonce[NONCE_LEN]) {
  slot *s = &all->slots[cipher][dir];
  int enc = dir == SEAL ? 1 : 0;
  if (all->ciphers[cipher] == NULL) {
    all->ciphers[cipher] = EVP_CIPHER_fetch(NULL, CIPHER_NAMES[cipher], NULL);
    if (all->ciphers[cipher] == NULL) return NULL;
  }
  if (s->ctx == NULL) {
    s->ctx = EVP_CIPHER_CTX_new();
    if (s->ctx == NULL || EVP_CipherInit_ex(s->ctx, all->ciphers[cipher], NULL, NULL, NULL, enc) != 1) {
      wipe_slot(s);
      return NULL;
    }
  }
  /* Compared in constant time: the context's key is another session's secret. */
  int same = s->keyed && CRYPTO_memcmp(s->key, key, KEY_LEN) == 0;
  if (EVP_CipherInit_ex(s->ctx, NULL, NULL, same ? NULL : key, nonce, enc) != 1) {
    wipe_slot(s);
    return NULL;
  }
  if (!same) {
    memcpy(s->key, key, KEY_LEN);
    s->keyed = 1;
  }
  return s->ctx;
}

/* ---- argument plumbing ------------------------------------------------------------------ */

static int get_bytes(napi_env env, napi_value value, const char *name, unsigned char **data, size_t *length) {
  napi_typedarray_type type;
  void *raw = NULL;
  /* napi_invalid_arg, without throwing, for anything that is not a typed array. */
  if (napi_get_typedarray_info(env, value, &type, length, &raw, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, name);
    return 0;
  }
  /* A zero-length view may have no backing store; give OpenSSL a valid pointer anyway. */
  static unsigned char empty[1];
  *data = raw != NULL ? raw : empty;
  return 1;
}

/* Exactly a u32: napi_get_value_uint32 would wrap 2^32 to 0 and -1 to 2^32-1, turning a
 * caller's bug into a reused nonce. */
static int get_u32(napi_env env, napi_value value, const char *name, uint32_t *out) {
  double number = 0;
  if (napi_get_value_double(env, value, &number) != napi_ok) {
    napi_throw_type_error(env, NULL, name);
    return 0;
  }
  if (!(number >= 0 && number <= 4294967295.0) || number != (double)(uint32_t)number) {
    napi_throw_range_error(env, NULL, name);
    return 0;
  }
  *out = (uint32_t)number;
  return 1;
}

/* Throws Error(message), leaving OpenSSL's error queue empty for node's own users of it. */
static napi_value throw_openssl(napi_env env, const char *message) {
  ERR_clear_error();
  napi_throw_error(env, NULL, message);
  return NULL;
}

typedef struct {
  contexts *all;
  uint32_t cipher;
  unsigned char *key;
  unsigned char nonce[NONCE_LEN];
  unsigned char *ad;
  size_t ad_len;
  unsigned char *in;
  size_t in_len;
  unsigned char *out;
  size_t out_len;
} call;

/* Reads (cipher, key, nHi, nLo, ad, in, out) from argv[0..6]. */
static int read_call(napi_env env, napi_callback_info info, size_t want, napi_value *argv, call *c) {
  size_t argc = want;
  size_t key_len = 0;
  uint32_t hi = 0, lo = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, (void **)&c->all) != napi_ok) return 0;
  if (argc < want) {
    napi_throw_type_error(env, NULL, "aead_context: too few arguments");
    return 0;
  }
  if (!get_u32(env, argv[0], "aead_context: cipher must be 0 (ChaChaPoly) or 1 (AESGCM)", &c->cipher)) return 0;
  if (c->cipher >= CIPHERS) {
    napi_throw_range_error(env, NULL, "aead_context: cipher must be 0 (ChaChaPoly) or 1 (AESGCM)");
    return 0;
  }
  if (!get_bytes(env, argv[1], "aead_context: key must be a Uint8Array", &c->key, &key_len)) return 0;
  if (key_len != KEY_LEN) {
    napi_throw_range_error(env, NULL, "aead_context: key must be 32 bytes");
    return 0;
  }
  if (!get_u32(env, argv[2], "aead_context: nHi must be a u32", &hi) ||
      !get_u32(env, argv[3], "aead_context: nLo must be a u32", &lo) ||
      !get_bytes(env, argv[4], "aead_context: ad must be a Uint8Array", &c->ad, &c->ad_len) ||
      !get_bytes(env, argv[5], "aead_context: input must be a Uint8Array", &c->in, &c->in_len) ||
      !get_bytes(env, argv[6], "aead_context: out must be a Uint8Array", &c->out, &c->out_len)) {
    return 0;
  }
  if (c->ad_len > INT_MAX || c->in_len > INT_MAX - TAG_LEN) {
    napi_throw_range_error(env, NULL, "aead_context: input too long");
    return 0;
  }
  noise_nonce_bytes((int)c->cipher, hi, lo, c->nonce);
  return 1;
}

static napi_value undefined_value(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

/* ---- exports ---------------------------------------------------------------------------- */

static napi_value aead_seal(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  call c;
  uint32_t offset = 0;
  if (!read_call(env, info, 8, argv, &c)) return NULL;
  if (!get_u32(env, argv[7], "aead_context: offset must be a u32", &offset)) return NULL;
  if (offset > c.out_len || c.out_len - offset < c.in_len + TAG_LEN) {
    napi_throw_range_error(env, NULL, "aead_context: out has no room for the ciphertext at offset");
    return NULL;
  }
  unsigned char *out = c.out + offset;
  int n = 0;
  EVP_CIPHER_CTX *ctx = prepare(c.all, (int)c.cipher, SEAL, c.key, c.nonce);
  if (ctx == NULL ||
      (c.ad_len > 0 && EVP_EncryptUpdate(ctx, NULL, &n, c.ad, (int)c.ad_len) != 1) ||
      (c.in_len > 0 && EVP_EncryptUpdate(ctx, out, &n, c.in, (int)c.in_len) != 1) ||
      EVP_EncryptFinal_ex(ctx, out + c.in_len, &n) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, out + c.in_len) != 1) {
    OPENSSL_cleanse(out, c.in_len + TAG_LEN);
    return throw_openssl(env, "aead_context: OpenSSL failed to encrypt");
  }
  return undefined_value(env);
}

static napi_value aead_open(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  call c;
  if (!read_call(env, info, 7, argv, &c)) return NULL;
  if (c.in_len < TAG_LEN || c.out_len < c.in_len - TAG_LEN) {
    napi_throw_range_error(env, NULL, "aead_context: ciphertext shorter than its tag, or out too small");
    return NULL;
  }
  size_t body = c.in_len - TAG_LEN;
  int n = 0;
  EVP_CIPHER_CTX *ctx = prepare(c.all, (int)c.cipher, OPEN, c.key, c.nonce);
  if (ctx == NULL ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, c.in + body) != 1 ||
      (c.ad_len > 0 && EVP_DecryptUpdate(ctx, NULL, &n, c.ad, (int)c.ad_len) != 1) ||
      (body > 0 && EVP_DecryptUpdate(ctx, c.out, &n, c.in, (int)body) != 1)) {
    OPENSSL_cleanse(c.out, body);
    return throw_openssl(env, "aead_context: OpenSSL failed to decrypt");
  }
  int verified = EVP_DecryptFinal_ex(ctx, c.out + body, &n) == 1;
  if (!verified) {
    OPENSSL_cleanse(c.out, body);
    ERR_clear_error();
  }
  napi_value result;
  napi_get_boolean(env, verified, &result);
  return result;
}

static napi_value aead_forget(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  contexts *all = NULL;
  unsigned char *key = NULL;
  size_t key_len = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, (void **)&all) != napi_ok) return NULL;
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "aead_context: forget(key) needs the key");
    return NULL;
  }
  if (!get_bytes(env, argv[0], "aead_context: key must be a Uint8Array", &key, &key_len)) return NULL;
  if (key_len != KEY_LEN) return undefined_value(env);
  for (int cipher = 0; cipher < CIPHERS; cipher++) {
    for (int dir = 0; dir < 2; dir++) {
      slot *s = &all->slots[cipher][dir];
      if (s->keyed && CRYPTO_memcmp(s->key, key, KEY_LEN) == 0) wipe_slot(s);
    }
  }
  return undefined_value(env);
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  contexts *all = calloc(1, sizeof *all);
  if (all == NULL) {
    napi_throw_error(env, NULL, "aead_context: out of memory");
    return NULL;
  }
  if (napi_set_instance_data(env, all, free_contexts, NULL) != napi_ok) {
    free(all);
    return NULL;
  }
  const napi_property_descriptor methods[] = {
      {"seal", NULL, aead_seal, NULL, NULL, NULL, napi_enumerable, all},
      {"open", NULL, aead_open, NULL, NULL, NULL, napi_enumerable, all},
      {"forget", NULL, aead_forget, NULL, NULL, NULL, napi_enumerable, all},
  };
  if (napi_define_properties(env, exports, sizeof methods / sizeof methods[0], methods) != napi_ok) return NULL;
  return exports;
}
