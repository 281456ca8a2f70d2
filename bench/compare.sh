#!/usr/bin/env bash
# Runs every benchmark scenario against Herald and each peer in shared/peers/ in one go and
# prints one table with the ratio of every figure to the floor (rawsse).
#
#   bench/compare.sh                  # full run (about 15 minutes)
#   QUICK=1 bench/compare.sh          # shorter runs, fewer streams (about 3 minutes)
#   PEERS=../shared/peers TARGETS="herald rawsse" bench/compare.sh
#   HERALD_WORKERS=1 bench/compare.sh # Herald with one worker thread (any HERALD_* setting of
#                                     # `herald serve` passes through the environment)
#   PARTS=encrypted bench/compare.sh  # only the TLS and HTTP/2 rows (PARTS="plain encrypted": all)
#   HERALD_BIN=/path/to/old/herald bench/compare.sh
#                                     # serve another build of Herald (before/after); the load
#                                     # generator is always this checkout's build
#
# Every server gets a fresh process per scenario, so memory figures start from the same point.
# Results (one JSON object per run) go to bench/results/<date>.jsonl; the table to stdout.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
peers="${PEERS:-$root/../shared/peers}"
targets="${TARGETS:-herald rawsse nchan express}"
quick="${QUICK:-}"
parts=" ${PARTS:-plain encrypted} "
generator="$root/target/release/herald"
herald="${HERALD_BIN:-$generator}"
secret="bench-secret-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
key="bench-key-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkdir -p "$root/bench/results"
out="$root/bench/results/$(date -u +%Y-%m-%dT%H%M%SZ).jsonl"

if [ -n "$quick" ]; then
  idle_sizes="1000 5000"; streams=2000; duration=3s; rates="1000 2000"; large_streams=200
else
  idle_sizes="1000 10000 18000"; streams=10000; duration=10s; rates="1000 2000 5000 10000"; large_streams=1000
fi

(cd "$root" && cargo build --release --quiet)
ulimit -n 20000 2>/dev/null || true

port_of() { case "$1" in herald) echo 9100;; nchan) echo 9101;; express) echo 9102;; rawsse) echo 9103;;
  herald-tls) echo 9110;; nchan-tls) echo 9111;; nchan-h2) echo 9112;; esac; }

# One certificate for every TLS server (ECDSA P-256, as the peers' own script makes), trusted by
# the load generator; an end-entity certificate with the name in subjectAltName, as rustls wants.
tls_dir=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$tls_dir/key.pem" -out "$tls_dir/cert.pem" -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost" -addext "basicConstraints=critical,CA:FALSE" 2>/dev/null

server_pid=""
start() { # start TARGET: runs the server in the background and waits until it accepts
  local target=$1 port; port=$(port_of "$1")
  case "$target" in
    herald) HERALD_LOG=warn "$herald" serve --listen "127.0.0.1:$port" --jwt-secret "$secret" \
              --publish-key "$key" --history 100000 >/tmp/bench-herald.log 2>&1 & server_pid=$! ;;
    herald-tls) HERALD_LOG=warn "$herald" serve --listen "127.0.0.1:$port" --jwt-secret "$secret" \
              --publish-key "$key" --history 100000 --tls-cert "$tls_dir/cert.pem" \
              --tls-key "$tls_dir/key.pem" >/tmp/bench-herald-tls.log 2>&1 & server_pid=$! ;;
    nchan-tls) PORT=$port CERT="$tls_dir/cert.pem" KEY="$tls_dir/key.pem" setsid "$peers/nchan/run-tls.sh" \
              >/tmp/bench-nchan-tls.log 2>&1 & server_pid=$! ;;
    nchan-h2) # the same peer with HTTP/2 on its TLS listener (ALPN offers h2 and http/1.1)
              nchan_h2=$(mktemp -d); cp -r "$peers/nchan/." "$nchan_h2/"
              sed -i 's/ ssl backlog=/ ssl http2 backlog=/' "$nchan_h2/nginx-tls.conf.in"
              PORT=$port CERT="$tls_dir/cert.pem" KEY="$tls_dir/key.pem" setsid "$nchan_h2/run-tls.sh" \
              >/tmp/bench-nchan-h2.log 2>&1 & server_pid=$! ;;
    express) PORT=$port setsid "$peers/express-seed/run.sh" >/tmp/bench-express.log 2>&1 & server_pid=$! ;;
    *) PORT=$port setsid "$peers/$target/run.sh" >"/tmp/bench-$target.log" 2>&1 & server_pid=$! ;;
  esac
  for _ in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  # The processes that hold the sockets (run.sh execs into the server; nginx forks workers,
  # which share the connections between them: all of them are measured, summed).
  measured_pids=$server_pid
  if [ "$target" = nchan ] || [ "$target" = nchan-tls ] || [ "$target" = nchan-h2 ]; then
    measured_pids=$(pgrep -P "$server_pid" nginx | tr '\n' ' ' || true)
    [ -n "$measured_pids" ] || measured_pids=$server_pid
  fi
}
stop() {
  [ -n "$server_pid" ] || return 0
  kill -TERM -- "-$server_pid" 2>/dev/null || kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  case "$1" in nchan|nchan-tls|nchan-h2) pkill -f "nginx -c /tmp" 2>/dev/null || true;; esac
  server_pid=""
}
nchan_h2=""
trap 'stop herald; stop nchan; rm -rf "$tls_dir" $nchan_h2' EXIT

bench() { # bench TARGET ARGS...: one run, JSON appended to $out (TARGET-tls, TARGET-h2: over TLS)
  local target=$1 kind=${1%-tls}; kind=${kind%-h2}; shift
  if [ "$kind" != "$target" ]; then set -- --tls-ca "$tls_dir/cert.pem" "$@"; fi
  local pid_args="" pid
  for pid in $measured_pids; do pid_args="$pid_args --pid $pid"; done
  HERALD_JWT_SECRET="$secret" HERALD_PUBLISH_KEY="$key" "$generator" bench --json \
    --target "$kind" --url "127.0.0.1:$(port_of "$target")" $pid_args "$@" \
    | sed "s|^{|{\"args\":\"$*\",|" | tee -a "$out" >/dev/null || echo "  ($target $* failed)" >&2
}

for target in $targets; do
  [[ "$parts" == *" plain "* ]] || break
  echo "== $target" >&2
  for n in $idle_sizes; do
    start "$target"; bench "$target" --scenario idle --streams "$n" --duration 3s; stop "$target"
  done
  start "$target"; bench "$target" --scenario broadcast --streams "$streams" --duration "$duration"; stop "$target"
  start "$target"
  for rate in $rates; do
    bench "$target" --scenario per-user --streams "$streams" --rate "$rate" --duration "$duration"
  done
  stop "$target"
  start "$target"; bench "$target" --scenario publish --publishers 8 --duration "$duration"; stop "$target"
  if [ "$target" = herald ]; then
    start "$target"; bench "$target" --scenario publish --publishers 8 --batch 100 --duration "$duration"; stop "$target"
    start "$target"; bench "$target" --scenario reconnect --streams "$streams"; stop "$target"
  fi
  start "$target"; bench "$target" --scenario large --streams "$large_streams" --duration "$duration"; stop "$target"
done

# Encrypted streams: HTTP/1.1 over TLS, Herald and nginx + Nchan with the same certificate;
# then HTTP/2 over TLS: 100 streams per connection, as tabs of one origin share it, and one
# stream per connection (Nchan: the same nginx with `http2` on its listener).
for target in $targets; do
  [[ "$parts" == *" encrypted "* ]] || break
  case "$target" in herald|nchan) ;; *) continue;; esac
  tls="$target-tls"; h2="$target-tls"; [ "$target" = nchan ] && h2=nchan-h2
  echo "== $tls" >&2
  start "$tls"; bench "$tls" --scenario idle --streams "$streams" --duration 3s; stop "$tls"
  start "$tls"; bench "$tls" --scenario broadcast --streams "$streams" --duration "$duration"; stop "$tls"
  start "$tls"; bench "$tls" --scenario per-user --streams "$streams" --rate 2000 --duration "$duration"; stop "$tls"
  echo "== $h2 (HTTP/2)" >&2
  for per in 100 1; do
    start "$h2"; bench "$h2" --scenario idle --streams "$streams" --http2-streams "$per" --duration 3s; stop "$h2"
  done
  start "$h2"; bench "$h2" --scenario broadcast --streams "$streams" --http2-streams 100 --duration "$duration"; stop "$h2"
  start "$h2"; bench "$h2" --scenario per-user --streams "$streams" --rate 2000 --http2-streams 100 --duration "$duration"; stop "$h2"
done

python3 "$root/bench/table.py" "$out"
echo "raw results: $out" >&2
