#!/usr/bin/env bash
# One scenario against several Herald builds and transports, alternating run by run, so that a
# busy machine's drift hits every variant alike. Prints one line per run.
#
#   bench/alternate.sh                                   # per-user at 2k ev/s: plain, TLS, HTTP/2
#   SCENARIO=broadcast TRANSPORTS=tls BINS="old=/tmp/herald-old new=target/release/herald" bench/alternate.sh
#
# SCENARIO (default per-user), RATE (2000), STREAMS (10000), DURATION (10s), ROUNDS (3),
# TRANSPORTS: any of plain, tls (HTTP/1.1 over TLS), h2 (HTTP/2 over TLS, 100 streams per
# connection); BINS: name=path of each `herald` build (default this tree's release build).
# Every run gets a fresh `herald serve --workers 1`; the load generator is this tree's build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cli="$root/target/release/herald"
bins="${BINS:-this=$cli}"
transports="${TRANSPORTS:-plain tls h2}"
tls_dir=$(mktemp -d)
trap 'rm -rf "$tls_dir"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$tls_dir/key.pem" -out "$tls_dir/cert.pem" -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost" -addext "basicConstraints=critical,CA:FALSE" 2>/dev/null
ulimit -n 20000 2>/dev/null || true

run() { # run NAME BIN TRANSPORT
  local port=$((20000 + RANDOM % 20000)) serve=() client=()
  case "$3" in tls|h2) serve=(--tls-cert "$tls_dir/cert.pem" --tls-key "$tls_dir/key.pem")
                       client=(--tls-ca "$tls_dir/cert.pem");; esac
  if [ "$3" = h2 ]; then client+=(--http2-streams 100); fi
  HERALD_LOG=warn "$2" serve --listen "127.0.0.1:$port" --jwt-secret s --publish-key k \
    --history 100000 --workers 1 "${serve[@]}" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  "$cli" bench --json --target herald --url "127.0.0.1:$port" --jwt-secret s --publish-key k \
    --pid "$pid" --scenario "${SCENARIO:-per-user}" --streams "${STREAMS:-10000}" \
    --rate "${RATE:-2000}" --duration "${DURATION:-10s}" "${client[@]}" |
    python3 -c "import json,sys; r=json.load(sys.stdin); print('$1 $3 ${SCENARIO:-per-user}: %.0f deliveries/s, p50 %.2f ms, p99 %.2f ms, %.2f KiB/stream, lost %d' % (r['deliveries_per_s'], r['latency_p50_us']/1000, r['latency_p99_us']/1000, r['rss_per_stream_bytes']/1024, r['lost']))"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

for _ in $(seq 1 "${ROUNDS:-3}"); do
  for bin in $bins; do
    for transport in $transports; do run "${bin%%=*}" "${bin#*=}" "$transport"; done
  done
done
