/*
 * One way for every addon to report a failed system call to JavaScript: an Error whose
 * message is `<what>: <ENAME> (<strerror>)`, with `code` (the errno's name, as node's own
 * system errors have it) and `errno` (the number) set, so callers can test `err.code` as they
 * would for a node:fs or node:net error. Header-only (static functions): each addon is its
 * own shared object, and binding.gyp needs no extra source.
 */
#ifndef NOISEMESH_NAPI_ERRNO_H
#define NOISEMESH_NAPI_ERRNO_H

#include <node_api.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The symbolic name of the errno values the addons can meet; `E<number>` for any other. */
static const char *errno_name(int err, char *fallback, size_t size) {
  switch (err) {
    case ENOENT: return "ENOENT";
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case ENOTCONN: return "ENOTCONN";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    default:
      snprintf(fallback, size, "E%d", err);
      return fallback;
  }
}

/* Throws Error(`<what>: <ENAME> (<strerror>)`) with code and errno set; returns NULL for the caller. */
static napi_value throw_errno(napi_env env, const char *what, int err) {
  char fallback[16];
  const char *name = errno_name(err, fallback, sizeof fallback);
  char message[256];
  snprintf(message, sizeof message, "%s: %s (%s)", what, name, strerror(err));

  napi_value code, msg, error, errno_value;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok ||
      napi_create_error(env, code, msg, &error) != napi_ok) {
    napi_throw_error(env, name, message);
    return NULL;
  }
  if (napi_create_int32(env, err, &errno_value) == napi_ok) {
    napi_set_named_property(env, error, "errno", errno_value);
  }
  napi_throw(env, error);
  return NULL;
}

#endif
