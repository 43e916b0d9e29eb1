{
  # The original-destination addon (native/original_dst.c). npm runs `node-gyp rebuild` at
  # install when this file exists; the result is build/Release/original_dst.node, loaded by
  # src/proxy/capture/addon.ts.
  "targets": [
    {
      "target_name": "original_dst",
      "sources": ["native/original_dst.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
      "xcode_settings": {"OTHER_CFLAGS": ["-Wall", "-Wextra"]}
    },
    {
      "target_name": "aead_context",
      "sources": ["native/aead_context.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
      "xcode_settings": {"OTHER_CFLAGS": ["-Wall", "-Wextra"]}
    }
  ]
}
