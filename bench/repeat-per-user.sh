#!/usr/bin/env bash
# Repeats the per-user scenario (10k streams) for herald, rawsse and nchan to see run-to-run spread.
# TARGETS (default "herald rawsse nchan"), RATES (default "1000 10000") and ROUNDS (default 3) narrow it.
set -u
root="$(cd "$(dirname "$0")/.." && pwd)"; peers="${PEERS:-$root/../shared/peers}"; herald=$root/target/release/herald
secret=bench-s; key=bench-k
ulimit -n 20000
out="${OUT:-/tmp/peruser.jsonl}"; : > "$out"
for target in ${TARGETS:-herald rawsse nchan}; do
  case $target in herald) port=9100;; nchan) port=9101;; rawsse) port=9103;; esac
  case $target in
    herald) HERALD_LOG=warn ${SERVE_ENV:-} $herald serve --listen 127.0.0.1:$port --jwt-secret $secret --publish-key $key --history 100000 >/tmp/pu-herald.log 2>&1 & pid=$! ;;
    *) PORT=$port setsid $peers/$target/run.sh >/tmp/pu-$target.log 2>&1 & pid=$! ;;
  esac
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  pids="--pid $pid"; [ $target = nchan ] && pids=$(pgrep -P $pid nginx | sed 's/^/--pid /' | tr '\n' ' ')
  for round in $(seq 1 "${ROUNDS:-3}"); do for rate in ${RATES:-1000 10000}; do
    HERALD_JWT_SECRET=$secret HERALD_PUBLISH_KEY=$key $herald bench --json --target $target --url 127.0.0.1:$port $pids --scenario per-user --streams 10000 --rate $rate --duration 10s | sed "s/^{/{\"round\":$round,\"rate\":$rate,/" >> $out
  done; done
  kill -TERM -- -$pid 2>/dev/null || kill -TERM $pid; wait $pid 2>/dev/null; pkill -f "nginx -c /tmp" 2>/dev/null
done
python3 - <<'PY'
import json
import os; rows=[json.loads(l) for l in open(os.environ.get("OUT", "/tmp/peruser.jsonl"))]
for r in rows: print(r['target'], r['rate'], r['round'], 'p50', r.get('latency_p50_us'), 'p99', r.get('latency_p99_us'), 'lost', r.get('lost'))
PY
