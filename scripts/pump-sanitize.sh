#!/bin/sh
# The native session pump's fuzzer (test/native-pump-fuzz.test.ts) against an AddressSanitizer
# + UndefinedBehaviorSanitizer build of native/session_pump.c. The release build in
# build/Release is not touched: the instrumented addon is built into a temporary directory and
# loaded through PUMP_FUZZ_ADDON; node itself is not instrumented, so the sanitizer runtimes
# are preloaded. Any sanitizer report fails the run (UBSan does not recover; ASan aborts).
#
#   scripts/pump-sanitize.sh [CASES [FIRST_SEED]]     default 5000 cases from seed 1
#   PUMP_SANITIZE_TIMEOUT=seconds                     bound on the whole run (default 3600)
#
# Needs gcc with libasan/libubsan (Debian: gcc, libasan8, libubsan1), libssl-dev and the node
# headers (/usr/include/node). Leak detection is off: node's own allocations are not ours.
set -eu
cd "$(dirname "$0")/.."
cases=${1:-5000}
seed=${2:-1}
timeout_s=${PUMP_SANITIZE_TIMEOUT:-3600}

work=$(mktemp -d /tmp/pump-sanitize.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM

gcc -shared -fPIC -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
  -I/usr/include/node native/session_pump.c -o "$work/session_pump.node" -lcrypto
nm "$work/session_pump.node" | grep -q __asan_report || { echo "pump-sanitize: the addon is not instrumented" >&2; exit 1; }
npx tsc -p tsconfig.json

libasan=$(gcc -print-file-name=libasan.so)
libubsan=$(gcc -print-file-name=libubsan.so)
for lib in "$libasan" "$libubsan"; do
  [ -e "$lib" ] || { echo "pump-sanitize: $lib not found (Debian: libasan8, libubsan1)" >&2; exit 1; }
done

status=0
LD_PRELOAD="$libasan $libubsan" \
  ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$work/asan" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$work/ubsan" \
  PUMP_FUZZ_ADDON="$work/session_pump.node" PUMP_FUZZ_CASES="$cases" PUMP_FUZZ_SEED="$seed" \
  timeout --kill-after=10 "$timeout_s" node --test dist/test/native-pump-fuzz.test.js || status=$?

# Reports go to files (log_path), one per process; any at all is a failure.
reports=$(ls "$work"/asan.* "$work"/ubsan.* 2>/dev/null || true)
if [ -n "$reports" ]; then
  for r in $reports; do echo "==== $r"; cat "$r"; done
  echo "pump-sanitize: sanitizer reports above" >&2
  exit 1
fi
[ "$status" -eq 0 ] || { echo "pump-sanitize: the fuzzer failed (exit $status)" >&2; exit "$status"; }
echo "pump-sanitize: $cases cases from seed $seed, no sanitizer report"
