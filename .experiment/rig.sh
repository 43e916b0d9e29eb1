#!/bin/bash
# $1 = native|node|haproxy|noisemesh|nmstgc|nmpump, $2 = seconds
# nmpump: the examples' proxies with NOISEMESH_NATIVE_PUMP=1 (native/session_pump.c).
cd "${RIG_ROOT:-/work/wt-pump}"
mkdir -p /tmp/relay
node dist/bench/load/http-server.js 18081 >/dev/null &
S=$!
if [ "$1" = noisemesh ] || [ "$1" = nmstgc ] || [ "$1" = nmpump ]; then
  F=""; [ "$1" = nmstgc ] && F="--single-threaded-gc"
  P=0; [ "$1" = nmpump ] && P=1
  NOISEMESH_NATIVE_PUMP=$P node $F dist/src/cli/main.js proxy --config examples/api.yaml >/dev/null 2>&1 & R1=$!
  NOISEMESH_NATIVE_PUMP=$P node $F dist/src/cli/main.js proxy --config examples/web.yaml >/dev/null 2>&1 & R2=$!
  node dist/bench/load/http-server.js 18080 >/dev/null & S2=$!
  PIDS="$R1 $R2"; PORT=17000
elif [ "$1" = native ]; then
  node /tmp/nrelay/nrelay.mjs 27000 27001 & R1=$!
  node /tmp/nrelay/nrelay.mjs 27001 18081 & R2=$!
  PIDS="$R1 $R2"
elif [ "$1" = node ]; then
  node /tmp/relay/relay.mjs 27000 27001 & R1=$!
  node /tmp/relay/relay.mjs 27001 18081 & R2=$!
  PIDS="$R1 $R2"
else
  haproxy -f /tmp/relay/h1.cfg -db >/dev/null 2>&1 & R1=$!
  haproxy -f /tmp/relay/h2.cfg -db >/dev/null 2>&1 & R2=$!
  PIDS="$R1 $R2"
fi
sleep 1.5
SC='{"name":"http-2000","kind":"constant","description":"x","rate":2000,"durationSeconds":'$2',"requestBytes":1024,"responseBytes":1024,"maxInFlight":2000,"thresholds":{"p99Ms":25,"errorRate":0}}'
node dist/bench/load/client.js "{\"scenario\":$SC,\"host\":\"127.0.0.1\",\"port\":${PORT:-27000},\"timeoutMs\":10000,\"warmupSeconds\":3}" > /tmp/relay/client.out &
C=$!
sleep 3.5
t0=0; for p in $PIDS; do t0=$((t0+$(awk '{print $14+$15}' /proc/$p/stat))); done
sleep $(($2-1))
t1=0; for p in $PIDS; do t1=$((t1+$(awk '{print $14+$15}' /proc/$p/stat))); done
wait $C
python3 -c "
import json; d=json.loads(open('/tmp/relay/client.out').read().strip().splitlines()[-1]); l=d['summary']['latencyMs']; print('$1', 'errors', d['summary'].get('errors'), 'cpu us/req (both relays, all threads):', round((($t1-$t0)/100)/(2000*($2-1))*1e6,1), 'p50 %.2f p99 %.2f'%(l['p50'],l['p99']))"
kill $PIDS $S ${S2:-}; wait 2>/dev/null
