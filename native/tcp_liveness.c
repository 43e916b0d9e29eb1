/*
 * tcp_liveness: how soon the kernel gives up on a TCP peer that has gone silent.
 *
 * Exports
 *   setLiveness(fd, idleSeconds, intervalSeconds, probes, userTimeoutMs) -> undefined
 *     SO_KEEPALIVE on, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, and TCP_USER_TIMEOUT
 *     (milliseconds that sent data may stay unacknowledged; 0 is the kernel's own
 *     retransmission limit). Keepalive probes only run while nothing is in flight, so a
 *     peer that vanishes with data unacknowledged is noticed only through the user timeout.
 *   liveness(fd) -> {keepalive, idleSeconds, intervalSeconds, probes, userTimeoutMs}
 *     the values the socket holds now, read back with getsockopt.
 *   setUserTimeout(fd, userTimeoutMs) -> undefined
 *     TCP_USER_TIMEOUT alone: lifted (0) while the peer holds a zero window, restored after.
 *   tcpInfo(fd) -> {unacked, probes, lastAckRecvMs, queuedBytes}
 *     from TCP_INFO: segments in flight, unanswered zero-window or keepalive probes, and
 *     milliseconds since the last ACK arrived; and from SIOCOUTQ, the bytes in the send
 *     queue (unsent and unacknowledged). Linux applies TCP_USER_TIMEOUT to a zero
 *     window too (since 5.11), so a live peer whose application stops reading would be given
 *     up like a dead one; these let the caller tell the two apart.
 *
 * Node's socket.setKeepAlive(true, ms) sets only SO_KEEPALIVE and the idle time through
 * libuv (libuv 1.46, Node 20's, fixes the interval at 1 s and the count at 10, which
 * test/tcp-liveness.test.ts checks); it has no way to set the user timeout at all.
 * Plain Node-API (node_api.h), like native/original_dst.c.
 *
 * Failures throw an Error whose `code` is the errno name (EBADF, ENOTSOCK, EINVAL, ...) and
 * whose `errno` is the number; bad arguments throw a TypeError (ERR_INVALID_ARG_TYPE) or a
 * RangeError (ERR_OUT_OF_RANGE) before any system call.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include "napi_errno.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#ifdef __linux__
#include <netinet/in.h>
#include <netinet/tcp.h> /* TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT, TCP_INFO */
#include <linux/sockios.h> /* SIOCOUTQ */
#include <sys/ioctl.h>
#include <sys/socket.h>
#endif

/* The kernel's own limits (include/net/tcp.h: MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL,
 * MAX_TCP_KEEPCNT); checked here too so that a bad value names itself, not EINVAL. */
#define MAX_KEEPIDLE 32767
#define MAX_KEEPINTVL 32767
#define MAX_KEEPCNT 127
#define MAX_USER_TIMEOUT_MS 2147483647.0

/* Reads argv[index] as an integer in [min, max]; throws and returns 0 otherwise. */
static int integer_arg(napi_env env, napi_value *argv, size_t argc, size_t index, const char *name,
                       double min, double max, double *out) {
  napi_valuetype type = napi_undefined;
  if (index < argc) napi_typeof(env, argv[index], &type);
  double number = 0;
  char message[160];
  if (type != napi_number || napi_get_value_double(env, argv[index], &number) != napi_ok) {
    snprintf(message, sizeof message, "%s must be an integer", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return 0;
  }
  /* The range first: it also refuses NaN and infinities, and makes the cast below defined. */
  if (!(number >= min && number <= max)) {
    snprintf(message, sizeof message, "%s must be from %.0f to %.0f; got %g", name, min, max, number);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", message);
    return 0;
  }
  if (number != (double)(long long)number) {
    snprintf(message, sizeof message, "%s must be an integer; got %g", name, number);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return 0;
  }
  *out = number;
  return 1;
}

#ifdef __linux__
static napi_value set_liveness_on(napi_env env, int fd, int idle, int interval, int probes, unsigned int user_timeout_ms) {
  int on = 1;
  /* The options before SO_KEEPALIVE, so the first probe is never scheduled from the
   * kernel's two-hour default. */
  if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) != 0) {
    return throw_errno(env, "setsockopt(TCP_KEEPIDLE)", errno);
  }
  if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) != 0) {
    return throw_errno(env, "setsockopt(TCP_KEEPINTVL)", errno);
  }
  if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes) != 0) {
    return throw_errno(env, "setsockopt(TCP_KEEPCNT)", errno);
  }
  if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms) != 0) {
    return throw_errno(env, "setsockopt(TCP_USER_TIMEOUT)", errno);
  }
  if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) != 0) {
    return throw_errno(env, "setsockopt(SO_KEEPALIVE)", errno);
  }
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

static int get_int(int fd, int level, int option, int *out) {
  socklen_t len = sizeof *out;
  return getsockopt(fd, level, option, out, &len);
}

static napi_value liveness_of(napi_env env, int fd) {
  int keepalive = 0, idle = 0, interval = 0, probes = 0;
  unsigned int user_timeout = 0;
  socklen_t len = sizeof user_timeout;
  if (get_int(fd, SOL_SOCKET, SO_KEEPALIVE, &keepalive) != 0) return throw_errno(env, "getsockopt(SO_KEEPALIVE)", errno);
  if (get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle) != 0) return throw_errno(env, "getsockopt(TCP_KEEPIDLE)", errno);
  if (get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval) != 0) return throw_errno(env, "getsockopt(TCP_KEEPINTVL)", errno);
  if (get_int(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes) != 0) return throw_errno(env, "getsockopt(TCP_KEEPCNT)", errno);
  if (getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, &len) != 0) {
    return throw_errno(env, "getsockopt(TCP_USER_TIMEOUT)", errno);
  }
  napi_value result, v_keepalive, v_idle, v_interval, v_probes, v_user;
  if (napi_create_object(env, &result) != napi_ok ||
      napi_get_boolean(env, keepalive != 0, &v_keepalive) != napi_ok ||
      napi_create_int32(env, idle, &v_idle) != napi_ok ||
      napi_create_int32(env, interval, &v_interval) != napi_ok ||
      napi_create_int32(env, probes, &v_probes) != napi_ok ||
      napi_create_uint32(env, user_timeout, &v_user) != napi_ok ||
      napi_set_named_property(env, result, "keepalive", v_keepalive) != napi_ok ||
      napi_set_named_property(env, result, "idleSeconds", v_idle) != napi_ok ||
      napi_set_named_property(env, result, "intervalSeconds", v_interval) != napi_ok ||
      napi_set_named_property(env, result, "probes", v_probes) != napi_ok ||
      napi_set_named_property(env, result, "userTimeoutMs", v_user) != napi_ok) {
    return NULL; /* a JS exception is pending */
  }
  return result;
}
static napi_value set_user_timeout_on(napi_env env, int fd, unsigned int user_timeout_ms) {
  if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms) != 0) {
    return throw_errno(env, "setsockopt(TCP_USER_TIMEOUT)", errno);
  }
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

static napi_value tcp_info_of(napi_env env, int fd) {
  struct tcp_info info;
  socklen_t len = sizeof info;
  memset(&info, 0, sizeof info);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return throw_errno(env, "getsockopt(TCP_INFO)", errno);
  int queued = 0;
  if (ioctl(fd, SIOCOUTQ, &queued) != 0) return throw_errno(env, "ioctl(SIOCOUTQ)", errno);
  napi_value result, v_unacked, v_probes, v_last_ack, v_queued;
  if (napi_create_object(env, &result) != napi_ok ||
      napi_create_uint32(env, info.tcpi_unacked, &v_unacked) != napi_ok ||
      napi_create_uint32(env, info.tcpi_probes, &v_probes) != napi_ok ||
      napi_create_uint32(env, info.tcpi_last_ack_recv, &v_last_ack) != napi_ok ||
      napi_create_int32(env, queued, &v_queued) != napi_ok ||
      napi_set_named_property(env, result, "queuedBytes", v_queued) != napi_ok ||
      napi_set_named_property(env, result, "unacked", v_unacked) != napi_ok ||
      napi_set_named_property(env, result, "probes", v_probes) != napi_ok ||
      napi_set_named_property(env, result, "lastAckRecvMs", v_last_ack) != napi_ok) {
    return NULL;
  }
  return result;
}
#else
/* TCP_USER_TIMEOUT and the keepalive knobs used here are Linux's; elsewhere the module
 * builds so that npm install succeeds, and the proxy falls back to socket.setKeepAlive. */
static napi_value set_liveness_on(napi_env env, int fd, int idle, int interval, int probes, unsigned int user_timeout_ms) {
  (void)fd; (void)idle; (void)interval; (void)probes; (void)user_timeout_ms;
  return throw_errno(env, "setLiveness: TCP_USER_TIMEOUT and TCP_KEEPCNT are set only on Linux", ENOSYS);
}

static napi_value liveness_of(napi_env env, int fd) {
  (void)fd;
  return throw_errno(env, "liveness: read only on Linux", ENOSYS);
}

static napi_value set_user_timeout_on(napi_env env, int fd, unsigned int user_timeout_ms) {
  (void)fd; (void)user_timeout_ms;
  return throw_errno(env, "setUserTimeout: TCP_USER_TIMEOUT is set only on Linux", ENOSYS);
}

static napi_value tcp_info_of(napi_env env, int fd) {
  (void)fd;
  return throw_errno(env, "tcpInfo: read only on Linux", ENOSYS);
}
#endif

static napi_value set_liveness(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  double fd, idle, interval, probes, user_timeout;
  if (!integer_arg(env, argv, argc, 0, "fd", 0, 2147483647.0, &fd) ||
      !integer_arg(env, argv, argc, 1, "idleSeconds", 1, MAX_KEEPIDLE, &idle) ||
      !integer_arg(env, argv, argc, 2, "intervalSeconds", 1, MAX_KEEPINTVL, &interval) ||
      !integer_arg(env, argv, argc, 3, "probes", 1, MAX_KEEPCNT, &probes) ||
      !integer_arg(env, argv, argc, 4, "userTimeoutMs", 0, MAX_USER_TIMEOUT_MS, &user_timeout)) {
    return NULL;
  }
  return set_liveness_on(env, (int)fd, (int)idle, (int)interval, (int)probes, (unsigned int)user_timeout);
}

static napi_value liveness(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  double fd;
  if (!integer_arg(env, argv, argc, 0, "fd", 0, 2147483647.0, &fd)) return NULL;
  return liveness_of(env, (int)fd);
}

static napi_value set_user_timeout(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  double fd, user_timeout;
  if (!integer_arg(env, argv, argc, 0, "fd", 0, 2147483647.0, &fd) ||
      !integer_arg(env, argv, argc, 1, "userTimeoutMs", 0, MAX_USER_TIMEOUT_MS, &user_timeout)) {
    return NULL;
  }
  return set_user_timeout_on(env, (int)fd, (unsigned int)user_timeout);
}

static napi_value tcp_info(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  double fd;
  if (!integer_arg(env, argv, argc, 0, "fd", 0, 2147483647.0, &fd)) return NULL;
  return tcp_info_of(env, (int)fd);
}

static int export_function(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) == napi_ok &&
         napi_set_named_property(env, exports, name, fn) == napi_ok;
}

NAPI_MODULE_INIT() {
  if (!export_function(env, exports, "setLiveness", set_liveness) ||
      !export_function(env, exports, "liveness", liveness) ||
      !export_function(env, exports, "setUserTimeout", set_user_timeout) ||
      !export_function(env, exports, "tcpInfo", tcp_info)) {
    return NULL;
  }
  return exports;
}
