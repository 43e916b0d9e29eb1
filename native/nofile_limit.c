/*
 * nofile_limit: the process's descriptor limit, RLIMIT_NOFILE, which node has no API for.
 *
 * Exports getNofileLimit() -> {soft, hard} and setNofileLimit(soft) -> {soft, hard} (the
 * limit after the change). The proxy raises its soft limit to the hard one at start and
 * sizes its connection caps from the result. RLIM_INFINITY is reported as Infinity. Plain
 * Node-API, as native/original_dst.c.
 *
 * Failures throw an Error whose `code` is the errno name (EPERM, EINVAL) and whose `errno`
 * is the number.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include "napi_errno.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

static double to_number(rlim_t value) {
  return value == RLIM_INFINITY ? INFINITY : (double)value;
}

static napi_value current_limit(napi_env env) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return throw_errno(env, "getrlimit(RLIMIT_NOFILE)", errno);
  napi_value result, soft, hard;
  if (napi_create_object(env, &result) != napi_ok ||
      napi_create_double(env, to_number(limit.rlim_cur), &soft) != napi_ok ||
      napi_create_double(env, to_number(limit.rlim_max), &hard) != napi_ok ||
      napi_set_named_property(env, result, "soft", soft) != napi_ok ||
      napi_set_named_property(env, result, "hard", hard) != napi_ok) {
    return NULL; /* a JS exception is pending */
  }
  return result;
}

static napi_value get_nofile_limit(napi_env env, napi_callback_info info) {
  (void)info;
  return current_limit(env);
}

/* setNofileLimit(soft): soft is a positive integer or Infinity; the hard limit is kept. */
static napi_value set_nofile_limit(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  napi_valuetype type = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &type);
  double number = -1;
  if (type != napi_number || napi_get_value_double(env, argv[0], &number) != napi_ok ||
      !(number >= 1) || (isfinite(number) && number != floor(number))) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "setNofileLimit(soft): soft must be a positive integer or Infinity");
    return NULL;
  }
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return throw_errno(env, "getrlimit(RLIMIT_NOFILE)", errno);
  limit.rlim_cur = isinf(number) ? RLIM_INFINITY : (rlim_t)number;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) return throw_errno(env, "setrlimit(RLIMIT_NOFILE)", errno);
  return current_limit(env);
}

NAPI_MODULE_INIT() {
  napi_value get, set;
  if (napi_create_function(env, "getNofileLimit", NAPI_AUTO_LENGTH, get_nofile_limit, NULL, &get) != napi_ok ||
      napi_set_named_property(env, exports, "getNofileLimit", get) != napi_ok ||
      napi_create_function(env, "setNofileLimit", NAPI_AUTO_LENGTH, set_nofile_limit, NULL, &set) != napi_ok ||
      napi_set_named_property(env, exports, "setNofileLimit", set) != napi_ok) {
    return NULL;
  }
  return exports;
}
