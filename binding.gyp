{
  # The native addons (native/*.c). npm runs `node-gyp rebuild` at install when this file
  # exists; the results are build/Release/<target>.node: original_dst (loaded by
  # src/proxy/capture/addon.ts), tcp_liveness (src/proxy/transport/liveness-addon.ts),
  # aead_context (src/noise/aead-openssl.ts), nofile_limit
  # (src/proxy/runtime/descriptor-limit.ts) and session_pump (src/proxy/session/native-pump.ts:
  # established sessions' transport; NOISEMESH_NATIVE_PUMP=0 turns it off).
  "targets": [
    {
      "target_name": "original_dst",
      "sources": ["native/original_dst.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
      "xcode_settings": {"OTHER_CFLAGS": ["-Wall", "-Wextra"]}
    },
    {
      "target_name": "tcp_liveness",
      "sources": ["native/tcp_liveness.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
      "xcode_settings": {"OTHER_CFLAGS": ["-Wall", "-Wextra"]}
    },
    {
      "target_name": "aead_context",
      "sources": ["native/aead_context.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
      "xcode_settings": {"OTHER_CFLAGS": ["-Wall", "-Wextra"]}
    },
    {
      "target_name": "nofile_limit",
      "sources": ["native/nofile_limit.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
      "xcode_settings": {"OTHER_CFLAGS": ["-Wall", "-Wextra"]}
    },
    {
      "target_name": "session_pump",
      "sources": ["native/session_pump.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
      "xcode_settings": {"OTHER_CFLAGS": ["-Wall", "-Wextra"]}
    }
  ]
}
