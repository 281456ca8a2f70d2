#!/usr/bin/env bash
# Instructions a Herald build executes per event, counted by valgrind's callgrind: unlike CPU
# time, the count does not move with whatever else the machine is doing, so two builds can be
# compared on a busy machine. Prints one line per build.
#
#   bench/instructions.sh old=/tmp/herald-old new=target/release/herald                # single events
#   BENCH_ARGS="--scenario publish --publishers 4 --batch 100" bench/instructions.sh a=... b=...
#   BENCH_ARGS="--scenario broadcast --streams 1000" bench/instructions.sh a=... b=...
#
# Each build serves on one worker thread under callgrind with instrumentation off; a first
# 2 s bench run warms it up (connections, allocator pages), then instrumentation is switched
# on for a 5 s run of the same bench. Per event = instructions / events published (publish
# scenario) or delivered (any other). The load generator is this tree's build. Needs valgrind.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cli="$root/target/release/herald"
args=(${BENCH_ARGS:---scenario publish --publishers 4})
case " ${args[*]} " in *" publish "*) counted=published;; *) counted=delivered;; esac
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ulimit -n 20000 2>/dev/null || true
secret=instructions-secret-instructions; key=instructions-key
for pair in "$@"; do
  name=${pair%%=*}; bin=${pair#*=}; port=$((20000 + RANDOM % 20000))
  HERALD_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$out/$name.cg" "$bin" serve --listen "127.0.0.1:$port" \
    --jwt-secret "$secret" --publish-key "$key" --history 100000 --workers 1 \
    >"$out/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.2; done
  curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" || { echo "$name did not start:" >&2; cat "$out/$name.log" >&2; exit 1; }
  bench() { HERALD_JWT_SECRET=$secret HERALD_PUBLISH_KEY=$key "$cli" bench --json \
    --url "http://127.0.0.1:$port" "${args[@]}" --duration "$1" 2>/dev/null | tail -1; }
  bench 2s >/dev/null
  callgrind_control -i on "$pid" >/dev/null 2>&1
  report=$(bench 5s)
  callgrind_control -i off "$pid" >/dev/null 2>&1
  kill "$pid"; wait "$pid" 2>/dev/null || true
  events=$(echo "$report" | python3 -c "import json,sys; print(json.load(sys.stdin)['$counted'])")
  total=$(callgrind_annotate "$out/$name.cg" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "$name: $((total / events)) instructions per event ($events $counted, $total in all)"
done
