#!/usr/bin/env bash
# Runs every test Herald has, installing what they need on a fresh Debian machine with cargo.
# This is the README's test command and what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
command -v chromium >/dev/null || need_apt+=(chromium)
# Multi-node tests (crates/herald/tests/redis_*.rs) start their own redis-server.
command -v redis-server >/dev/null || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy 2>/dev/null || true

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "==> cargo test (unit, property, integration over real sockets, 30 s soak)"
cargo test --workspace --quiet

echo "==> fuzzing: each cargo-fuzz target for a bounded time"
FUZZ_SECONDS="${FUZZ_SECONDS:-45}" bash scripts/fuzz.sh

echo "==> JS client and React hooks (clients/js): build, type tests, unit tests, browser e2e"
# Node and npm (the Debian packages if the machine has none), headless Chromium for the
# browser tests (Debian's chromium, driven by playwright-core; no browser download).
need_js=()
command -v node >/dev/null || need_js+=(nodejs)
command -v npm >/dev/null || need_js+=(npm)
[ -x /usr/bin/chromium ] || need_js+=(chromium)
# Redis for the Redis-mode browser test (a private redis-server on a free port).
command -v redis-server >/dev/null || need_js+=(redis-server)
if [ ${#need_js[@]} -gt 0 ]; then
  echo "==> installing ${need_js[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_js[@]}" >/dev/null
fi
# The e2e tests start the real hub binary.
cargo build --release -p herald --quiet
(
  cd clients/js
  npm ci --no-audit --no-fund --loglevel=error
  HERALD_BIN="$PWD/../../target/release/herald" CHROMIUM_PATH=/usr/bin/chromium npm test
)

echo "==> browser tests of the developer console (headless Chromium)"
cargo build -p herald --quiet
(cd tests/browser && npm ci --no-audit --no-fund --silent && npm test)

echo "==> behavioural tests again, every server on the Redis broker"
# The same subscribe/publish/resume/... tests, with HERALD_TEST_REDIS making each test server
# run with --redis (its own key prefix) on a private redis-server reached over a Unix socket.
redis_dir=$(mktemp -d)
redis-server --port 0 --unixsocket "$redis_dir/redis.sock" --save "" --appendonly no \
  --dir "$redis_dir" >/dev/null &
redis_pid=$!
trap 'kill "$redis_pid" 2>/dev/null || true; rm -rf "$redis_dir"' EXIT
for _ in $(seq 100); do [ -S "$redis_dir/redis.sock" ] && break; sleep 0.1; done
HERALD_TEST_REDIS="redis+unix://$redis_dir/redis.sock" cargo test -p herald --quiet \
  --test subscribe --test publish --test resume --test ops --test lifecycle --test limits \
  --test http2 --test hostile --test client --test cli
