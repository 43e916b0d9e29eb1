/*
 * original_dst: the address a connection was meant for before iptables REDIRECT rewrote it.
 *
 * Exports originalDestination(fd) -> {address, port, family}. The kernel keeps the
 * pre-NAT destination in the connection's conntrack entry and hands it out through
 * getsockopt(SO_ORIGINAL_DST) for IPv4 and getsockopt(IP6T_SO_ORIGINAL_DST) for IPv6.
 * Plain Node-API (node_api.h) so the binary works across Node versions without a rebuild
 * and needs no node-addon-api dependency.
 *
 * Failures throw an Error whose `code` is the errno name (ENOENT: the connection was not
 * redirected, so conntrack has no NAT entry for it) and whose `errno` is the number.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include "napi_errno.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#ifdef __linux__
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/netfilter_ipv4.h>            /* SO_ORIGINAL_DST */
#include <linux/netfilter_ipv6/ip6_tables.h> /* IP6T_SO_ORIGINAL_DST */
#endif

#ifdef __linux__
static napi_value make_result(napi_env env, const char *address, uint16_t port, int family) {
  napi_value result, address_value, port_value, family_value;
  if (napi_create_object(env, &result) != napi_ok ||
      napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &address_value) != napi_ok ||
      napi_create_uint32(env, port, &port_value) != napi_ok ||
      napi_create_uint32(env, (uint32_t)family, &family_value) != napi_ok ||
      napi_set_named_property(env, result, "address", address_value) != napi_ok ||
      napi_set_named_property(env, result, "port", port_value) != napi_ok ||
      napi_set_named_property(env, result, "family", family_value) != napi_ok) {
    return NULL; /* a JS exception is pending */
  }
  return result;
}

static napi_value original_destination_of(napi_env env, int fd) {
  /* The socket's own family decides which conntrack view to ask. An AF_INET6 socket that
   * accepted an IPv4 connection (a dual-stack listener on "::") has a v4-mapped local
   * address; its conntrack entry is an IPv4 tuple, so it needs the IPv4 option. The
   * kernel routes SOL_IP options on such sockets to the IPv4 code. */
  struct sockaddr_storage local;
  socklen_t local_len = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &local_len) != 0) {
    return throw_errno(env, "getsockname", errno);
  }

  int ipv4 = local.ss_family == AF_INET;
  if (local.ss_family == AF_INET6) {
    ipv4 = IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&local)->sin6_addr);
  } else if (!ipv4) {
    return throw_errno(env, "originalDestination: not an IP socket", EAFNOSUPPORT);
  }

  char text[INET6_ADDRSTRLEN];
  if (ipv4) {
    struct sockaddr_in dst;
    socklen_t dst_len = sizeof dst;
    memset(&dst, 0, sizeof dst);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dst_len) != 0) {
      return throw_errno(env, "getsockopt(SOL_IP, SO_ORIGINAL_DST)", errno);
    }
    if (inet_ntop(AF_INET, &dst.sin_addr, text, sizeof text) == NULL) {
      return throw_errno(env, "inet_ntop", errno);
    }
    return make_result(env, text, ntohs(dst.sin_port), 4);
  }

  struct sockaddr_in6 dst;
  socklen_t dst_len = sizeof dst;
  memset(&dst, 0, sizeof dst);
  if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &dst_len) != 0) {
    return throw_errno(env, "getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST)", errno);
  }
  if (inet_ntop(AF_INET6, &dst.sin6_addr, text, sizeof text) == NULL) {
    return throw_errno(env, "inet_ntop", errno);
  }
  return make_result(env, text, ntohs(dst.sin6_port), 6);
}
#else
static napi_value original_destination_of(napi_env env, int fd) {
  (void)fd;
  /* SO_ORIGINAL_DST is netfilter's; other systems build the module so that npm install
   * succeeds there, and the proxy reports this when capture is configured. */
  return throw_errno(env, "originalDestination: SO_ORIGINAL_DST exists only on Linux", ENOSYS);
}
#endif

static napi_value original_destination(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;

  napi_valuetype type = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &type);
  double number = -1;
  if (type != napi_number || napi_get_value_double(env, argv[0], &number) != napi_ok ||
      number < 0 || number > 2147483647.0 || number != (double)(int)number) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE",
                          "originalDestination(fd): fd must be a non-negative integer file descriptor");
    return NULL;
  }
  return original_destination_of(env, (int)number);
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "originalDestination", NAPI_AUTO_LENGTH, original_destination, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "originalDestination", fn) != napi_ok) {
    return NULL;
  }
  return exports;
}
