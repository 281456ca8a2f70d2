#!/usr/bin/env bash
# Six Herald nodes on one Redis holding STREAMS streams together (default 100,000), on one
# machine: the process descriptor limit (20,000 here) is why there are six nodes and six load
# generators, each holding a sixth. Every generator opens its streams on its own node and
# publishes per-user events through the next node, so each event crosses Redis; it reports
# what it received (latency percentiles, lost, duplicated) and its node's RSS before and after.
# With MODE=broadcast, generators 1-5 only listen (`--listen-only`) and generator 0 publishes
# BROADCASTS broadcasts through node 1, closed loop on its own streams (WINDOW in flight,
# default 4: the saturation rate; 1: how long one takes to reach everyone); every generator counts
# what reached its streams.
#
#   bench/six-nodes.sh                           # 100k streams, 1,200 events/s in all, 20 s
#   STREAMS=30000 RATE=600 DURATION=10s bench/six-nodes.sh
#   MODE=broadcast BROADCASTS=50 bench/six-nodes.sh   # 50 broadcasts to 100k streams
#   MODE=broadcast WINDOW=1 bench/six-nodes.sh        # one at a time: the fan-out latency
#
# Results: one JSON line per generator in bench/results/six-nodes-<date>.jsonl; a table on
# stdout. Needs redis-server; builds the release binary first.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
streams="${STREAMS:-100000}"
rate="${RATE:-1200}"
duration="${DURATION:-20s}"
mode="${MODE:-per-user}"
broadcasts="${BROADCASTS:-50}"
window="${WINDOW:-4}"
nodes=6
per_node=$(( (streams + nodes - 1) / nodes ))
herald="$root/target/release/herald"
secret="bench-secret-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
key="bench-key-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkdir -p "$root/bench/results"
out="$root/bench/results/six-nodes-$mode-$(date -u +%Y-%m-%dT%H%M%SZ).jsonl"
work=$(mktemp -d)

(cd "$root" && cargo build --release --quiet)
ulimit -n 20000

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  >"$work/redis.log" 2>&1 &
pids=($!)
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

ports=()
node_pids=()
for n in $(seq 0 $((nodes - 1))); do
  port=$(free_port)
  HERALD_LOG=warn "$herald" serve --listen "127.0.0.1:$port" --jwt-secret "$secret" \
    --publish-key "$key" --redis "redis://127.0.0.1:$redis_port" \
    --max-connections $((per_node + 1000)) >"$work/node-$n.log" 2>&1 &
  pids+=($!); node_pids+=($!); ports+=("$port")
done
for port in "${ports[@]}"; do
  for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done

gens=()
generate() { # generate N ARGS...: generator N on node N, publishing through the next node
  local n=$1 next=$(( ($1 + 1) % nodes )); shift
  HERALD_JWT_SECRET="$secret" HERALD_PUBLISH_KEY="$key" "$herald" bench --json --target herald \
    --url "127.0.0.1:${ports[$n]}" --publish-url "127.0.0.1:${ports[$next]}" \
    --pid "${node_pids[$n]}" --user-prefix "n${n}u" --streams "$per_node" "$@" \
    >"$work/gen-$n.json" 2>"$work/gen-$n.err" &
  gens+=($!)
}
if [ "$mode" = broadcast ]; then
  for n in $(seq 1 $((nodes - 1))); do
    generate "$n" --scenario broadcast --listen-only --events "$broadcasts"
  done
  # The broadcaster starts once every listener holds its streams.
  for n in $(seq 1 $((nodes - 1))); do
    for _ in $(seq 1 1200); do grep -q "streams open" "$work/gen-$n.err" 2>/dev/null && break; sleep 0.1; done
  done
  generate 0 --scenario broadcast --events "$broadcasts" --window "$window" --duration 600s
else
  for n in $(seq 0 $((nodes - 1))); do
    generate "$n" --scenario per-user --rate "$(( rate / nodes ))" --duration "$duration"
  done
fi
for pid in "${gens[@]}"; do wait "$pid" || echo "a generator failed: see its stderr" >&2; done
for n in $(seq 0 $((nodes - 1))); do
  if [ -s "$work/gen-$n.json" ]; then sed "s|^{|{\"node\":$n,|" "$work/gen-$n.json" >>"$out"
  else cat "$work/gen-$n.err" >&2; fi
done

python3 - "$out" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print("| node | streams | delivered / expected | lost | duplicated | p50 µs | p99 µs | p99.9 µs | max µs | deliveries/s | node RSS idle → loaded | KiB per stream |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
total = {"streams": 0, "delivered": 0, "expected": 0, "lost": 0, "duplicates": 0, "deliveries_per_s": 0}
for r in rows:
    per = (r.get("rss_loaded_bytes", 0) - r.get("rss_idle_bytes", 0)) / max(r.get("streams_open", 1), 1) / 1024
    print(f"| {r['node']} | {r.get('streams_open')} | {r.get('delivered')} / {r.get('expected')} | {r.get('lost')} | {r.get('duplicates')} "
          f"| {r.get('latency_p50_us')} | {r.get('latency_p99_us')} | {r.get('latency_p999_us')} | {r.get('latency_max_us')} "
          f"| {r.get('deliveries_per_s', 0):,.0f} "
          f"| {r.get('rss_idle_bytes', 0) / 2**20:.1f} → {r.get('rss_loaded_bytes', 0) / 2**20:.1f} MiB | {per:.2f} |")
    for k in total:
        total[k] += r.get(k if k != "streams" else "streams_open", 0) or 0
print(f"| all | {total['streams']} | {total['delivered']} / {total['expected']} | {total['lost']} | {total['duplicates']} | | | | | {total['deliveries_per_s']:,.0f} | | |")
print(f"raw results: {sys.argv[1]}", file=sys.stderr)
EOF
