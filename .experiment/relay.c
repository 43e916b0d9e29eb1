// Experiment only: a byte relay between two TCP descriptors driven by libuv polls on node's loop.
#include <node_api.h>
#include <uv.h>
#include <unistd.h>
#include <errno.h>
#include <stdlib.h>
#include <poll.h>

typedef struct pair_s { uv_poll_t a, b; int fa, fb; int closed; } pair_t;
static char buf[65536];

static void on_close(uv_handle_t* h) { pair_t* p = h->data; if (++p->closed == 2) free(p); }

static void shut(pair_t* p) {
  uv_poll_stop(&p->a); uv_poll_stop(&p->b);
  close(p->fa); close(p->fb);
  uv_close((uv_handle_t*)&p->a, on_close); uv_close((uv_handle_t*)&p->b, on_close);
}

static int pump(int from, int to) {
  ssize_t n = read(from, buf, sizeof buf);
  if (n == 0) return -1;
  if (n < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
  ssize_t off = 0;
  while (off < n) {
    ssize_t w = write(to, buf + off, n - off);
    if (w < 0) {
      if (errno == EAGAIN) { struct pollfd pf = { to, POLLOUT, 0 }; poll(&pf, 1, 1000); continue; }
      if (errno == EINTR) continue;
      return -1;
    }
    off += w;
  }
  return 0;
}

static void on_a(uv_poll_t* h, int status, int events) { pair_t* p = h->data; if (status < 0 || pump(p->fa, p->fb) < 0) shut(p); (void)events; }
static void on_b(uv_poll_t* h, int status, int events) { pair_t* p = h->data; if (status < 0 || pump(p->fb, p->fa) < 0) shut(p); (void)events; }

static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2]; int32_t fa, fb;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_get_value_int32(env, argv[0], &fa); napi_get_value_int32(env, argv[1], &fb);
  uv_loop_t* loop; napi_get_uv_event_loop(env, &loop);
  pair_t* p = calloc(1, sizeof *p);
  p->fa = dup(fa); p->fb = dup(fb);
  uv_poll_init(loop, &p->a, p->fa); uv_poll_init(loop, &p->b, p->fb);
  p->a.data = p; p->b.data = p;
  uv_poll_start(&p->a, UV_READABLE | UV_DISCONNECT, on_a);
  uv_poll_start(&p->b, UV_READABLE | UV_DISCONNECT, on_b);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn; napi_create_function(env, "start", NAPI_AUTO_LENGTH, start, NULL, &fn);
  napi_set_named_property(env, exports, "start", fn);
  return exports;
}
NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
