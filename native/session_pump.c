/*
 * session_pump: the transport phase of one established NMP/1 session (PROTOCOL.md section 5)
 * in C, on node's own libuv loop: the proxy's default data path (NOISEMESH_NATIVE_PUMP=0
 * turns it off; docs/architecture.md, "Established sessions").
 *
 * JavaScript does the handshake and all control; once a session is established,
 * src/proxy/session/native-pump.ts hands the two connected TCP descriptors, both
 * CipherStates (key, nonce) and whatever node had already read from either side here. The
 * pump dup()s the descriptors, polls them with uv_poll_t, and moves bytes both ways:
 *   app -> mesh: plaintext reads split into messages of at most 65,519 bytes, each sealed
 *                into a frame `u16 BE length || ciphertext || tag`;
 *   mesh -> app: frames reassembled, opened, the plaintext written to the application.
 * An empty plaintext is END-OF-STREAM: sent when the application half-closes, followed by
 * shutdown(SHUT_WR) of the mesh connection; received, it becomes shutdown(SHUT_WR) of the
 * application connection once everything before it is written. Every 2^16 messages the
 * direction's key is replaced by REKEY(k), exactly as cipher-state.ts/secure-session.ts do.
 *
 * Memory per session is bounded: a side is read only while the queue of the side it writes
 * to is empty, so each queue holds at most what one 64 KiB read became (~64 KiB towards the
 * mesh, ~128 KiB towards the app when the read completed a frame begun earlier); a frame split
 * across reads is assembled in one 65,535-byte buffer. Worst case ~256 KiB; an idle
 * session holds none of these (they are allocated on demand), only the struct and its two
 * EVP contexts.
 *
 * Faults abort the session, never the process: a zero frame length ('frame'), a short or
 * forged ciphertext ('decrypt'), a message after END-OF-STREAM ('data-after-eos'), EOF
 * before END-OF-STREAM or inside a frame ('truncated'), nonce exhaustion, resets and
 * timeouts of either connection. An abort sets SO_LINGER 0 on both sockets (so the final
 * close sends RST); the caller destroys node's own sockets in the end callback, which is the
 * last close (nothing is read or written in between: the callback runs synchronously).
 *
 * Exports:
 *   start(appFd, meshFd, cipher, sendKey, sendHi, sendLo, recvKey, recvHi, recvLo, onEnd
 *         [, appPending, meshPending])
 *       -> handle. cipher 0 = ChaChaPoly, 1 = AESGCM. The key bytes are copied into EVP
 *       contexts; the caller wipes its copies. appPending/meshPending (Uint8Array, optional):
 *       bytes node read from each side before the hand-over, processed first, as if read
 *       from the socket. onEnd(result, reason, bytesFromApp, bytesToApp) is called once:
 *       result 'closed' (reason null) or 'aborted'; a fault in meshPending ends the session
 *       (onEnd runs) before start returns, which still returns the handle. Throws, having
 *       taken nothing (the caller keeps the session), when it cannot set the session up.
 *   abort(handle, reason) -> undefined: aborts now (onEnd runs before abort returns, with
 *       `reason` echoed); a no-op once ended.
 *   stats(handle, out) writes [bytesFromApp, bytesToApp, bufferedBytes, queuedToMesh] into out,
 *       a Float64Array of 4. queuedToMesh is what waits for the mesh socket (its kernel
 *       buffer is full), for the zero-window check of src/proxy/transport/keepalive.ts.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nonce_layout.h"

#define KEY_LEN 32
#define TAG_LEN 16
#define NONCE_LEN NOISE_NONCE_LEN
#define HEADER 2
#define MAX_FRAME 65535
#define MAX_PLAINTEXT (MAX_FRAME - TAG_LEN)
#define READ_SIZE 65536
/*
 * Output of one step: a READ_SIZE plaintext read sealed (at most two messages, or one
 * END-OF-STREAM), or the plaintext of one mesh read, which is the frame completed from
 * earlier reads (<= MAX_PLAINTEXT) plus what the rest of the read opens to (< READ_SIZE).
 */
#define OUT_SCRATCH (MAX_PLAINTEXT + READ_SIZE)

typedef struct {
  unsigned char *data; /* malloc'd remainder of a write that met EAGAIN, or NULL */
  size_t off, len;
} queue;

typedef struct {
  EVP_CIPHER_CTX *ctx;
  unsigned char key[KEY_LEN]; /* for REKEY; wiped at the end */
  int enc;
  uint32_t hi, lo;
} cstate;

typedef struct pump {
  napi_env env;
  napi_ref on_end;
  napi_async_context async;
  uv_poll_t app_poll, mesh_poll;
  int app_fd, mesh_fd;
  int cipher;
  cstate send, recv;
  queue to_app, to_mesh;
  /* Frame under assembly. */
  unsigned char hdr[HEADER];
  size_t hdr_have;
  unsigned char *frame; /* malloc'd MAX_FRAME when a frame spans reads */
  size_t frame_len, frame_have;
  int in_frame;
  /* Stream state. */
  int app_eof, mesh_eof, sent_eos, received_eos, app_shut, mesh_shut;
  int ended, closing;
  /* Keeps the env's teardown (and the addon's unloading) waiting until both polls are closed. */
  napi_async_cleanup_hook_handle cleanup;
  int in_start;       /* inside start(): onEnd is called as a plain JS call */
  int refs; /* the JS external, and the poll handles (one for both) */
  int app_events, mesh_events; /* what each poll watches now */
  double bytes_from_app, bytes_to_app;
} pump;

/* Per-thread scratch: one loop per thread, and the pump never yields mid-step. On the heap
 * (allocated by the thread's first start), so a sanitizer sees their bounds. */
static _Thread_local unsigned char *read_buf;
static _Thread_local unsigned char *out_buf;
static _Thread_local EVP_CIPHER *ciphers[2];
static const char *const CIPHER_NAMES[2] = {"ChaCha20-Poly1305", "AES-256-GCM"};

/* Tags our handles, so that no other external (another addon's) is ever taken for a pump. */
static const napi_type_tag PUMP_TAG = {0x6e6f6973656d6573ULL, 0x685f70756d703031ULL};


static int cstate_init(cstate *cs, int cipher, int enc, const unsigned char *key, uint32_t hi, uint32_t lo) {
  if (ciphers[cipher] == NULL) ciphers[cipher] = EVP_CIPHER_fetch(NULL, CIPHER_NAMES[cipher], NULL);
  if (ciphers[cipher] == NULL) return 0;
  cs->ctx = EVP_CIPHER_CTX_new();
  memcpy(cs->key, key, KEY_LEN);
  cs->enc = enc;
  cs->hi = hi;
  cs->lo = lo;
  if (cs->ctx == NULL) return 0;
  return EVP_CipherInit_ex(cs->ctx, ciphers[cipher], NULL, key, NULL, enc) == 1;
}

static void cstate_free(cstate *cs) {
  /* The provider's free wipes key, keystream and MAC state (OPENSSL_clear_free). */
  EVP_CIPHER_CTX_free(cs->ctx);
  cs->ctx = NULL;
  OPENSSL_cleanse(cs->key, KEY_LEN);
}

static int exhausted(const cstate *cs) { return cs->hi == 0xffffffffu && cs->lo == 0xffffffffu; }

/* REKEY(k) = first 32 bytes of ENCRYPT(k, 2^64-1, "", zeros[32]) (Noise spec 11.3). n is kept. */
static int cstate_after_message(pump *p, cstate *cs) {
  if (++cs->lo == 0) cs->hi++;
  if ((cs->lo & 0xffff) != 0) return 1;
  static const unsigned char zeros[32];
  unsigned char block[32], tag[TAG_LEN], nonce[NONCE_LEN];
  int n = 0, ok;
  noise_nonce_bytes(p->cipher, 0xffffffffu, 0xffffffffu, nonce);
  EVP_CIPHER_CTX *e = EVP_CIPHER_CTX_new();
  ok = e != NULL && EVP_EncryptInit_ex(e, ciphers[p->cipher], NULL, cs->key, nonce) == 1 &&
       EVP_EncryptUpdate(e, block, &n, zeros, 32) == 1 && EVP_EncryptFinal_ex(e, tag, &n) == 1 &&
       EVP_CIPHER_CTX_ctrl(e, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, tag) == 1;
  EVP_CIPHER_CTX_free(e);
  ok = ok && EVP_CipherInit_ex(cs->ctx, NULL, NULL, block, NULL, cs->enc) == 1;
  /* On failure block may be partly uninitialised: the session aborts ('internal') with k unchanged. */
  if (ok) memcpy(cs->key, block, KEY_LEN);
  OPENSSL_cleanse(block, sizeof block);
  OPENSSL_cleanse(tag, sizeof tag);
  return ok;
}

/* Seals `len` bytes of `in` into out as a frame; returns the frame's size, 0 on failure. */
static size_t seal_frame(pump *p, const unsigned char *in, size_t len, unsigned char *out) {
  cstate *cs = &p->send;
  unsigned char nonce[NONCE_LEN];
  int n = 0;
  if (exhausted(cs)) return 0;
  noise_nonce_bytes(p->cipher, cs->hi, cs->lo, nonce);
  unsigned char *body = out + HEADER;
  if (EVP_CipherInit_ex(cs->ctx, NULL, NULL, NULL, nonce, 1) != 1 ||
      (len > 0 && EVP_EncryptUpdate(cs->ctx, body, &n, in, (int)len) != 1) || EVP_EncryptFinal_ex(cs->ctx, body + len, &n) != 1 ||
      EVP_CIPHER_CTX_ctrl(cs->ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, body + len) != 1) {
    ERR_clear_error();
    return 0;
  }
  size_t clen = len + TAG_LEN;
  out[0] = (unsigned char)(clen >> 8);
  out[1] = (unsigned char)clen;
  if (!cstate_after_message(p, cs)) return 0;
  return HEADER + clen;
}

/* Opens one message into out; returns the plaintext length, or -1 when it does not verify. */
static long open_message(pump *p, const unsigned char *in, size_t len, unsigned char *out) {
  cstate *cs = &p->recv;
  unsigned char nonce[NONCE_LEN];
  int n = 0;
  if (len < TAG_LEN) return -1;
  size_t body = len - TAG_LEN;
  noise_nonce_bytes(p->cipher, cs->hi, cs->lo, nonce);
  if (EVP_CipherInit_ex(cs->ctx, NULL, NULL, NULL, nonce, 0) != 1 ||
      EVP_CIPHER_CTX_ctrl(cs->ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, (void *)(in + body)) != 1 ||
      (body > 0 && EVP_DecryptUpdate(cs->ctx, out, &n, in, (int)body) != 1) || EVP_DecryptFinal_ex(cs->ctx, out + body, &n) != 1) {
    OPENSSL_cleanse(out, body);
    ERR_clear_error();
    return -1;
  }
  if (!cstate_after_message(p, cs)) return -2;
  return (long)body;
}

/* ---- ending ----------------------------------------------------------------------------- */

static void release(pump *p) {
  if (--p->refs > 0) return;
  OPENSSL_cleanse(p, sizeof *p);
  free(p);
}

static void on_poll_closed(uv_handle_t *h) {
  pump *p = h->data;
  if (++p->closing < 3) return; /* both handles closed (closing started at 1) */
  if (p->cleanup != NULL) napi_remove_async_cleanup_hook(p->cleanup);
  p->cleanup = NULL;
  release(p);
}

static void call_end(pump *p, const char *result, const char *reason, napi_value reason_value, int from_js) {
  napi_env env = p->env;
  if (p->on_end == NULL) return; /* start() failed after polls were set up: nobody to tell */
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value fn, recv, argv[4];
  napi_get_reference_value(env, p->on_end, &fn);
  /* napi_make_callback needs an object receiver (undefined throws TypeError). */
  napi_get_global(env, &recv);
  napi_create_string_utf8(env, result, NAPI_AUTO_LENGTH, &argv[0]);
  if (reason_value != NULL) argv[1] = reason_value;
  else if (reason != NULL) napi_create_string_utf8(env, reason, NAPI_AUTO_LENGTH, &argv[1]);
  else napi_get_null(env, &argv[1]);
  napi_create_double(env, p->bytes_from_app, &argv[2]);
  napi_create_double(env, p->bytes_to_app, &argv[3]);
  napi_value ignored;
  int plain = from_js || p->in_start;
  napi_status status = plain ? napi_call_function(env, recv, fn, 4, argv, &ignored)
                             : napi_make_callback(env, p->async, recv, fn, 4, argv, &ignored);
  /* A throw from onEnd is an uncaught exception, as from any callback; only abort(), whose
   * caller is onEnd's own code path, sees it thrown. */
  if (status == napi_pending_exception && (!from_js || p->in_start)) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
  napi_close_handle_scope(env, scope);
  napi_delete_reference(env, p->on_end);
  p->on_end = NULL;
  napi_async_destroy(env, p->async);
  p->async = NULL;
}

/* Ends the session: stops both polls, frees buffers and keys, closes our duplicates, calls onEnd. */
static void end_session(pump *p, const char *reason, napi_value reason_value, int from_js);

/*
 * The environment is torn down (a Worker terminated, an embedder's env freed) while this
 * session pumps: node then closes the loop (aborting the process if a handle is still open)
 * and unloads this addon (so no close callback of ours may run after). An async cleanup hook
 * holds the teardown until both polls are closed. Ends the session as an abort (SO_LINGER 0: node's own closes of the sockets, which follow, send RST)
 * without calling into JS, which can no longer run; the env frees the callback's reference.
 */
static void on_env_teardown(napi_async_cleanup_hook_handle handle, void *arg) {
  (void)handle;
  pump *p = arg;
  if (p->ended) return; /* its polls are closing; the last close callback removes this hook */
  p->on_end = NULL;
  p->async = NULL;
  end_session(p, "shutdown", NULL, 1);
}

static void end_session(pump *p, const char *reason, napi_value reason_value, int from_js) {
  if (p->ended) return;
  p->ended = 1;
  int aborted = reason != NULL || reason_value != NULL;
  if (aborted) {
    /* RST at the final close (node's, in onEnd), and nothing more either way meanwhile. */
    struct linger lg = {1, 0};
    setsockopt(p->app_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    setsockopt(p->mesh_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  cstate_free(&p->send);
  cstate_free(&p->recv);
  free(p->to_app.data);
  free(p->to_mesh.data);
  p->to_app.data = p->to_mesh.data = NULL;
  if (p->frame != NULL) OPENSSL_cleanse(p->frame, MAX_FRAME);
  free(p->frame);
  p->frame = NULL;
  p->closing = 1;
  uv_close((uv_handle_t *)&p->app_poll, on_poll_closed);
  uv_close((uv_handle_t *)&p->mesh_poll, on_poll_closed);
  close(p->app_fd);
  close(p->mesh_fd);
  call_end(p, aborted ? "aborted" : "closed", reason, reason_value, from_js);
}

#define ABORT(p, reason) (end_session((p), (reason), NULL, 0), -1)

/* ---- pumping ---------------------------------------------------------------------------- */

static void update_polls(pump *p);
static void on_app_event(uv_poll_t *h, int status, int events);
static void on_mesh_event(uv_poll_t *h, int status, int events);

/* Writes data (after what is queued: the queue must be empty when data is given), queueing the
 * rest on EAGAIN. Returns 0, or -1 when the session ended. */
static int send_bytes(pump *p, int fd, queue *q, const unsigned char *data, size_t len, const char *reset_reason) {
  size_t off = 0;
  while (off < len) {
    ssize_t w = send(fd, data + off, len - off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return ABORT(p, errno == ETIMEDOUT && fd == p->mesh_fd ? "peer-timeout" : reset_reason);
    }
    off += (size_t)w;
  }
  if (off < len) {
    q->data = malloc(len - off);
    if (q->data == NULL) return ABORT(p, "internal");
    memcpy(q->data, data + off, len - off);
    q->off = 0;
    q->len = len - off;
  }
  return 0;
}

static int flush_queue(pump *p, int fd, queue *q, const char *reset_reason) {
  while (q->data != NULL && q->off < q->len) {
    ssize_t w = send(fd, q->data + q->off, q->len - q->off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return ABORT(p, errno == ETIMEDOUT && fd == p->mesh_fd ? "peer-timeout" : reset_reason);
    }
    q->off += (size_t)w;
  }
  free(q->data);
  q->data = NULL;
  q->off = q->len = 0;
  return 0;
}

static int queue_empty(const queue *q) { return q->data == NULL; }

/* send_bytes, or, behind a non-empty queue, an append to it (only the hand-over needs this:
 * afterwards a side is read only while the queue it feeds is empty). */
static int queue_or_send(pump *p, int fd, queue *q, const unsigned char *data, size_t len, const char *reset_reason) {
  if (queue_empty(q)) return send_bytes(p, fd, q, data, len, reset_reason);
  size_t held = q->len - q->off;
  unsigned char *grown = malloc(held + len);
  if (grown == NULL) return ABORT(p, "internal");
  memcpy(grown, q->data + q->off, held);
  memcpy(grown + held, data, len);
  free(q->data);
  q->data = grown;
  q->off = 0;
  q->len = held + len;
  return 0;
}

/* Half-closes whatever side has had its END-OF-STREAM and is flushed; ends a finished session. */
static int settle(pump *p) {
  if (p->sent_eos && !p->mesh_shut && queue_empty(&p->to_mesh)) {
    shutdown(p->mesh_fd, SHUT_WR);
    p->mesh_shut = 1;
  }
  if (p->received_eos && !p->app_shut && queue_empty(&p->to_app)) {
    shutdown(p->app_fd, SHUT_WR);
    p->app_shut = 1;
  }
  if (p->mesh_shut && p->app_shut && p->app_eof && p->mesh_eof) {
    end_session(p, NULL, NULL, 0);
    return -1;
  }
  return 0;
}

static const char *read_error_reason(int fd, pump *p, int err) {
  if (fd == p->mesh_fd) return err == ETIMEDOUT ? "peer-timeout" : "peer-reset";
  return "app-reset";
}

/* Seals n > 0 plaintext bytes at `in` into frames at out_buf; returns their size, or 0 (ended). */
static size_t seal_read(pump *p, const unsigned char *in, size_t n) {
  size_t out = 0;
  p->bytes_from_app += (double)n;
  for (size_t off = 0; off < n;) {
    size_t len = n - off > MAX_PLAINTEXT ? MAX_PLAINTEXT : n - off;
    size_t f = seal_frame(p, in + off, len, out_buf + out);
    if (f == 0) {
      end_session(p, exhausted(&p->send) ? "nonce-exhausted" : "internal", NULL, 0);
      return 0;
    }
    out += f;
    off += len;
  }
  return out;
}

/* One read from the application: sealed into frames and sent. */
static int from_app(pump *p) {
  ssize_t n;
  do n = recv(p->app_fd, read_buf, READ_SIZE, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return ABORT(p, read_error_reason(p->app_fd, p, errno));
  }
  size_t out;
  if (n == 0) {
    p->app_eof = 1;
    p->sent_eos = 1;
    out = seal_frame(p, NULL, 0, out_buf);
    if (out == 0) return ABORT(p, exhausted(&p->send) ? "nonce-exhausted" : "internal");
  } else if ((out = seal_read(p, read_buf, (size_t)n)) == 0) {
    return -1;
  }
  if (send_bytes(p, p->mesh_fd, &p->to_mesh, out_buf, out, "peer-reset") < 0) return -1;
  return settle(p);
}

/* Handles one complete message (ciphertext at msg); appends plaintext at out_buf + *out.
 * Returns NULL, or the abort reason. */
static const char *on_message(pump *p, const unsigned char *msg, size_t len, size_t *out) {
  if (p->received_eos) return "data-after-eos";
  if (exhausted(&p->recv)) return "nonce-exhausted";
  long m = open_message(p, msg, len, out_buf + *out);
  if (m == -1) return "decrypt";
  if (m < 0) return "internal";
  if (m == 0) p->received_eos = 1;
  p->bytes_to_app += (double)m;
  *out += (size_t)m;
  return NULL;
}

/*
 * Aborts a mesh read at a fault. The plaintext opened before the fault in the same read is
 * dropped, not written: written just before the RST, it reached a node application on
 * loopback as data and then an end of stream (libuv reports a hang-up met during a read as
 * EOF), and a truncation should look like a clean end as rarely as the proxy can make it.
 * (The JS pump writes it; both reset. docs/architecture.md, Established sessions, says what
 * an application can and cannot tell.)
 */
static int abort_after(pump *p, const char *reason, size_t out) {
  OPENSSL_cleanse(out_buf, out);
  p->bytes_to_app -= (double)out; /* counted by on_message, never delivered */
  return ABORT(p, reason);
}

/*
 * Reassembles and opens the frames in `total` (<= READ_SIZE) bytes of the mesh stream at
 * `data`, appending their plaintext at out_buf + *out. Returns 0, or -1 when the session ended.
 */
static int open_read(pump *p, const unsigned char *data, size_t total, size_t *out) {
  size_t off = 0;
  while (off < total) {
    if (!p->in_frame) {
      while (p->hdr_have < HEADER && off < total) p->hdr[p->hdr_have++] = data[off++];
      if (p->hdr_have < HEADER) break;
      p->frame_len = ((size_t)p->hdr[0] << 8) | p->hdr[1];
      p->hdr_have = 0;
      if (p->frame_len == 0) return abort_after(p, "frame", *out);
      if (total - off >= p->frame_len) {
        /* The whole frame is in this read: opened in place. */
        const char *fault = on_message(p, data + off, p->frame_len, out);
        if (fault != NULL) return abort_after(p, fault, *out);
        off += p->frame_len;
        continue;
      }
      if (p->frame == NULL && (p->frame = malloc(MAX_FRAME)) == NULL) return abort_after(p, "internal", *out);
      p->in_frame = 1;
      p->frame_have = 0;
    }
    size_t take = p->frame_len - p->frame_have;
    if (take > total - off) take = total - off;
    memcpy(p->frame + p->frame_have, data + off, take);
    p->frame_have += take;
    off += take;
    if (p->frame_have < p->frame_len) break;
    p->in_frame = 0;
    p->frame_have = 0; /* stats() counts it as buffered otherwise */
    const char *fault = on_message(p, p->frame, p->frame_len, out);
    if (fault != NULL) return abort_after(p, fault, *out);
  }
  if (!p->in_frame && p->frame != NULL) {
    /* Only a frame split across reads needs the buffer; an idle session holds none. */
    OPENSSL_cleanse(p->frame, MAX_FRAME);
    free(p->frame);
    p->frame = NULL;
  }
  return 0;
}

/* One read from the mesh: frames reassembled and opened, their plaintext sent on. */
static int from_mesh(pump *p) {
  ssize_t n;
  do n = recv(p->mesh_fd, read_buf, READ_SIZE, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return ABORT(p, read_error_reason(p->mesh_fd, p, errno));
  }
  if (n == 0) {
    /* EOF before END-OF-STREAM, or inside a frame: a truncation the application must not see as a clean end. */
    if (!p->received_eos || p->hdr_have > 0 || p->in_frame) return ABORT(p, "truncated");
    p->mesh_eof = 1;
    return settle(p);
  }
  /* Plaintext is never longer than its ciphertext: OUT_SCRATCH holds a completed frame and the rest. */
  size_t out = 0;
  if (open_read(p, read_buf, (size_t)n, &out) < 0) return -1;
  if (out > 0 && send_bytes(p, p->app_fd, &p->to_app, out_buf, out, "app-reset") < 0) return -1;
  return settle(p);
}

/*
 * Bytes node read from a side before the hand-over (the application's first request, frames
 * that came with the handshake), processed as if the pump had read them first, in chunks of
 * at most READ_SIZE (the bound OUT_SCRATCH is sized for). What cannot be sent at once is
 * appended to the side's queue. Returns 0, or -1 when the session ended.
 */
static int take_pending(pump *p, const unsigned char *data, size_t len, int from_app_side) {
  for (size_t off = 0; off < len;) {
    size_t chunk = len - off > READ_SIZE ? READ_SIZE : len - off;
    size_t out = 0;
    int rc;
    if (from_app_side) {
      if ((out = seal_read(p, data + off, chunk)) == 0) return -1;
      rc = queue_or_send(p, p->mesh_fd, &p->to_mesh, out_buf, out, "peer-reset");
    } else {
      if (open_read(p, data + off, chunk, &out) < 0) return -1;
      rc = out == 0 ? 0 : queue_or_send(p, p->app_fd, &p->to_app, out_buf, out, "app-reset");
    }
    if (rc < 0) return -1;
    off += chunk;
  }
  return settle(p);
}

static void update_polls(pump *p) {
  if (p->ended) return;
  int app_ev = 0, mesh_ev = 0;
  if (!p->app_eof && queue_empty(&p->to_mesh)) app_ev |= UV_READABLE;
  if (!p->mesh_eof && queue_empty(&p->to_app)) mesh_ev |= UV_READABLE;
  if (!queue_empty(&p->to_app)) app_ev |= UV_WRITABLE;
  if (!queue_empty(&p->to_mesh)) mesh_ev |= UV_WRITABLE;
  /* Only on a change: libuv's uv_poll_start stops the watcher first, and each restart costs
   * two epoll_ctl calls (ADD, EEXIST, MOD) at the next loop turn. */
  if (app_ev != p->app_events) {
    if (app_ev) uv_poll_start(&p->app_poll, app_ev, on_app_event);
    else uv_poll_stop(&p->app_poll);
    p->app_events = app_ev;
  }
  if (mesh_ev != p->mesh_events) {
    if (mesh_ev) uv_poll_start(&p->mesh_poll, mesh_ev, on_mesh_event);
    else uv_poll_stop(&p->mesh_poll);
    p->mesh_events = mesh_ev;
  }
}

/* The reason for a poll error (POLLERR): the socket's pending error says reset or timeout. */
static const char *socket_error_reason(pump *p, int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return read_error_reason(fd, p, err);
}

static void on_app_event(uv_poll_t *h, int status, int events) {
  pump *p = h->data;
  if (p->ended) return;
  if (status < 0) {
    end_session(p, socket_error_reason(p, p->app_fd), NULL, 0);
    return;
  }
  if ((events & UV_WRITABLE) && (flush_queue(p, p->app_fd, &p->to_app, "app-reset") < 0 || settle(p) < 0)) return;
  if ((events & UV_READABLE) && queue_empty(&p->to_mesh) && !p->app_eof && from_app(p) < 0) return;
  update_polls(p);
}

static void on_mesh_event(uv_poll_t *h, int status, int events) {
  pump *p = h->data;
  if (p->ended) return;
  if (status < 0) {
    end_session(p, socket_error_reason(p, p->mesh_fd), NULL, 0);
    return;
  }
  if ((events & UV_WRITABLE) && (flush_queue(p, p->mesh_fd, &p->to_mesh, "peer-reset") < 0 || settle(p) < 0)) return;
  if ((events & UV_READABLE) && queue_empty(&p->to_app) && !p->mesh_eof && from_mesh(p) < 0) return;
  update_polls(p);
}

/* ---- JS entry points -------------------------------------------------------------------- */

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  release((pump *)data);
}

static int get_key(napi_env env, napi_value v, unsigned char **key) {
  napi_typedarray_type type;
  size_t len = 0;
  void *raw = NULL;
  if (napi_get_typedarray_info(env, v, &type, &len, &raw, NULL, NULL) != napi_ok || type != napi_uint8_array || len != KEY_LEN) {
    napi_throw_type_error(env, NULL, "session_pump: keys must be 32-byte Uint8Arrays");
    return 0;
  }
  *key = raw;
  return 1;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out) {
  double d = 0;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d <= 4294967295.0) || d != (double)(uint32_t)d) {
    napi_throw_range_error(env, NULL, "session_pump: expected a u32");
    return 0;
  }
  *out = (uint32_t)d;
  return 1;
}

/*
 * Undoes a start() whose polls are set up, without calling onEnd and without SO_LINGER (the
 * caller keeps the session in JavaScript), and throws `message`.
 */
static napi_value start_failed(napi_env env, pump *p, const char *message) {
  if (p->on_end != NULL) napi_delete_reference(env, p->on_end);
  p->on_end = NULL;
  if (p->async != NULL) napi_async_destroy(env, p->async);
  p->async = NULL;
  end_session(p, NULL, NULL, 1);
  napi_throw_error(env, NULL, message);
  return NULL;
}

/* An optional Uint8Array argument (undefined or null: none). Returns 0 after throwing. */
static int get_optional_bytes(napi_env env, napi_value v, const unsigned char **data, size_t *len) {
  napi_valuetype t;
  *data = NULL;
  *len = 0;
  if (napi_typeof(env, v, &t) != napi_ok) return 0;
  if (t == napi_undefined || t == napi_null) return 1;
  napi_typedarray_type type;
  void *raw = NULL;
  if (napi_get_typedarray_info(env, v, &type, len, &raw, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "session_pump: pending bytes must be a Uint8Array");
    return 0;
  }
  *data = raw;
  return 1;
}

static napi_value pump_start(napi_env env, napi_callback_info info) {
  size_t argc = 12;
  napi_value argv[12];
  const unsigned char *app_pending = NULL, *mesh_pending = NULL;
  size_t app_pending_len = 0, mesh_pending_len = 0;
  uint32_t app_fd, mesh_fd, cipher, shi, slo, rhi, rlo;
  unsigned char *skey, *rkey;
  napi_valuetype fn_type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "session_pump: could not read the arguments");
    return NULL;
  }
  if (argc < 10) {
    napi_throw_type_error(env, NULL, "session_pump: start needs 10 arguments");
    return NULL;
  }
  if (!get_u32(env, argv[0], &app_fd) || !get_u32(env, argv[1], &mesh_fd) || !get_u32(env, argv[2], &cipher) ||
      !get_key(env, argv[3], &skey) || !get_u32(env, argv[4], &shi) || !get_u32(env, argv[5], &slo) ||
      !get_key(env, argv[6], &rkey) || !get_u32(env, argv[7], &rhi) || !get_u32(env, argv[8], &rlo))
    return NULL;
  if (cipher > 1 || napi_typeof(env, argv[9], &fn_type) != napi_ok || fn_type != napi_function) {
    napi_throw_type_error(env, NULL, "session_pump: bad cipher or callback");
    return NULL;
  }
  /* argv beyond what was passed is undefined. */
  if (!get_optional_bytes(env, argv[10], &app_pending, &app_pending_len) ||
      !get_optional_bytes(env, argv[11], &mesh_pending, &mesh_pending_len))
    return NULL;
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    napi_throw_error(env, NULL, "session_pump: no event loop");
    return NULL;
  }
  if (read_buf == NULL) read_buf = malloc(READ_SIZE);
  if (out_buf == NULL) out_buf = malloc(OUT_SCRATCH);
  if (read_buf == NULL || out_buf == NULL) {
    napi_throw_error(env, NULL, "session_pump: out of memory");
    return NULL;
  }
  pump *p = calloc(1, sizeof *p);
  if (p == NULL) {
    napi_throw_error(env, NULL, "session_pump: out of memory");
    return NULL;
  }
  p->env = env;
  p->cipher = (int)cipher;
  p->app_fd = p->mesh_fd = -1;
  if (!cstate_init(&p->send, p->cipher, 1, skey, shi, slo) || !cstate_init(&p->recv, p->cipher, 0, rkey, rhi, rlo)) {
    cstate_free(&p->send);
    cstate_free(&p->recv);
    free(p);
    ERR_clear_error();
    napi_throw_error(env, NULL, "session_pump: OpenSSL could not set up the ciphers");
    return NULL;
  }
  p->app_fd = fcntl((int)app_fd, F_DUPFD_CLOEXEC, 0);
  p->mesh_fd = fcntl((int)mesh_fd, F_DUPFD_CLOEXEC, 0);
  if (p->app_fd < 0 || p->mesh_fd < 0 || uv_poll_init(loop, &p->app_poll, p->app_fd) != 0) {
    if (p->app_fd >= 0) close(p->app_fd);
    if (p->mesh_fd >= 0) close(p->mesh_fd);
    cstate_free(&p->send);
    cstate_free(&p->recv);
    free(p);
    napi_throw_error(env, NULL, "session_pump: could not take the descriptors");
    return NULL;
  }
  if (uv_poll_init(loop, &p->mesh_poll, p->mesh_fd) != 0) {
    /* The app poll is initialised and must be closed through the loop. */
    p->refs = 1;
    p->ended = 1;
    p->closing = 2;
    p->app_poll.data = p;
    cstate_free(&p->send);
    cstate_free(&p->recv);
    uv_close((uv_handle_t *)&p->app_poll, on_poll_closed);
    close(p->app_fd);
    close(p->mesh_fd);
    napi_throw_error(env, NULL, "session_pump: could not poll the mesh descriptor");
    return NULL;
  }
  p->app_poll.data = p;
  p->mesh_poll.data = p;
  p->refs = 1; /* the polls' (released when both are closed); the JS handle's is added below */
  napi_value name, handle;
  if (napi_create_string_utf8(env, "noisemesh:session-pump", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &p->async) != napi_ok) {
    p->async = NULL;
    return start_failed(env, p, "session_pump: could not create the async context");
  }
  if (napi_create_reference(env, argv[9], 1, &p->on_end) != napi_ok) {
    p->on_end = NULL;
    return start_failed(env, p, "session_pump: could not reference the callback");
  }
  if (napi_create_external(env, p, finalize_handle, NULL, &handle) != napi_ok) return start_failed(env, p, "session_pump: could not create the handle");
  p->refs = 2; /* the handle's finalizer releases one */
  if (napi_type_tag_object(env, handle, &PUMP_TAG) != napi_ok) return start_failed(env, p, "session_pump: could not tag the handle");
  if (napi_add_async_cleanup_hook(env, on_env_teardown, p, &p->cleanup) != napi_ok) {
    p->cleanup = NULL;
    return start_failed(env, p, "session_pump: could not register the teardown hook");
  }
  /* From here on the session is the pump's: a fault in the pending bytes ends it (onEnd runs
   * before start returns) and start still returns its handle. */
  p->in_start = 1;
  if (app_pending_len > 0 && take_pending(p, app_pending, app_pending_len, 1) < 0) goto started;
  if (mesh_pending_len > 0 && take_pending(p, mesh_pending, mesh_pending_len, 0) < 0) goto started;
  update_polls(p);
started:
  p->in_start = 0;
  return handle;
}

static pump *get_pump(napi_env env, napi_value v) {
  void *data = NULL;
  napi_valuetype t;
  bool ours = false;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_check_object_type_tag(env, v, &PUMP_TAG, &ours) != napi_ok || !ours ||
      napi_get_value_external(env, v, &data) != napi_ok) {
    napi_throw_type_error(env, NULL, "session_pump: not a pump handle");
    return NULL;
  }
  return data;
}

static napi_value pump_abort(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return NULL;
  pump *p = get_pump(env, argv[0]);
  if (p == NULL) return NULL;
  end_session(p, NULL, argv[1], 1);
  return NULL;
}

static napi_value pump_stats(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  /* argv beyond what was passed is undefined: a missing `out` fails its check below. */
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  pump *p = get_pump(env, argv[0]);
  if (p == NULL) return NULL;
  napi_typedarray_type type;
  size_t len = 0;
  void *raw = NULL;
  if (napi_get_typedarray_info(env, argv[1], &type, &len, &raw, NULL, NULL) != napi_ok || type != napi_float64_array || len < 4) {
    napi_throw_type_error(env, NULL, "session_pump: stats needs a Float64Array of 4");
    return NULL;
  }
  /* Written into the caller's array: the zero-window check reads every pumped session's queue
   * once a second, and an array per call would be garbage per session per second. */
  double *out = raw;
  out[0] = p->bytes_from_app;
  out[1] = p->bytes_to_app;
  out[2] = p->ended ? 0 : (double)(p->to_app.len - p->to_app.off + p->to_mesh.len - p->to_mesh.off + p->frame_have + p->hdr_have);
  out[3] = p->ended ? 0 : (double)(p->to_mesh.len - p->to_mesh.off);
  return NULL;
}

/*
 * The thread's scratch buffers and fetched ciphers, freed with the environment that uses them
 * (node runs one per thread: the main one, or a Worker's, whose teardown this is).
 */
static void free_thread_state(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  (void)hint;
  free(read_buf);
  free(out_buf);
  read_buf = out_buf = NULL;
  for (int i = 0; i < 2; i++) {
    EVP_CIPHER_free(ciphers[i]);
    ciphers[i] = NULL;
  }
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  static int instance_marker;
  if (napi_set_instance_data(env, &instance_marker, free_thread_state, NULL) != napi_ok) return NULL;
  const napi_property_descriptor methods[] = {
      {"start", NULL, pump_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"abort", NULL, pump_abort, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, pump_stats, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof methods / sizeof methods[0], methods) != napi_ok) return NULL;
  return exports;
}
