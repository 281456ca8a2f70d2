#!/usr/bin/env bash
# Runs every test Herald has, installing what they need on a fresh Debian machine with cargo.
# This is the README's test command and what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
# Each step says how long the run has taken so far and the disk left (CI must stay well under its
# time limit, and its disk is smaller than this machine's).
step() { echo "==> [$((SECONDS / 60))m$((SECONDS % 60))s, $(df -h --output=avail . | tail -1 | tr -d " ") free] $*"; }

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
command -v chromium >/dev/null || need_apt+=(chromium)
# Multi-node tests (crates/herald/tests/redis_*.rs) start their own redis-server.
command -v redis-server >/dev/null || need_apt+=(redis-server)
# The Redis Cluster tests join their servers with redis-cli --cluster create.
command -v redis-cli >/dev/null || need_apt+=(redis-tools)
# The documented proxy settings run for real (crates/herald/tests/proxies.rs).
[ -x /usr/sbin/nginx ] || need_apt+=(nginx)
[ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
# Real HTTP clients in the Rust tests (tests/refusals.rs: Python http.client, Node fetch).
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy 2>/dev/null || true

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test (unit, property, integration over real sockets, 30 s soak)"
cargo test --workspace --quiet

step "fuzzing: each cargo-fuzz target for a bounded time"
FUZZ_SECONDS="${FUZZ_SECONDS:-35}" bash scripts/fuzz.sh

step "JS packages (clients/js: client, React hooks, server SDK): build, type tests, unit tests, browser e2e"
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
# The session-hook browser test runs examples/express-session (express, express-session from npm).
(cd examples/express-session && npm ci --no-audit --no-fund --loglevel=error)
(
  cd clients/js
  npm ci --no-audit --no-fund --loglevel=error
  HERALD_BIN="$PWD/../../target/release/herald" CHROMIUM_PATH=/usr/bin/chromium npm test
)

step "Python server SDK and docs/openapi.yaml (scripts/test-sdk.sh)"
# A virtual environment (python3-venv installed if missing), ruff, mypy --strict, pytest against
# the release hub, then Schemathesis checking the OpenAPI document against a live hub.
HERALD_BIN="$PWD/target/release/herald" bash scripts/test-sdk.sh

step "browser tests of the developer console (headless Chromium)"
(cd tests/browser && npm ci --no-audit --no-fund --silent && HERALD_BIN="$PWD/../../target/release/herald" npm test)

step "behavioural tests again, every server on the Redis broker"
# The same subscribe/publish/resume/... tests, with HERALD_TEST_REDIS making each test server
# run with --redis (its own key prefix) on a private redis-server reached over a Unix socket.
redis_dir=$(mktemp -d)
redis-server --port 0 --unixsocket "$redis_dir/redis.sock" --save "" --appendonly no \
  --dir "$redis_dir" >/dev/null &
redis_pid=$!
trap 'kill "$redis_pid" 2>/dev/null || true; rm -rf "$redis_dir"' EXIT
for _ in $(seq 100); do [ -S "$redis_dir/redis.sock" ] && break; sleep 0.1; done
# --workspace, as in the first cargo test: the same feature set, so the test binaries are reused
# rather than built a second time.
HERALD_TEST_REDIS="redis+unix://$redis_dir/redis.sock" cargo test --workspace --quiet \
  --test subscribe --test publish --test resume --test ops --test lifecycle --test limits \
  --test http2 --test hostile --test client --test cli --test large_resume --test resume_loop \
  --test protocol_rules --test refusals --test slow_clients --test retained \
  --test idempotency --test presence --test webhooks --test session_hook
step "all tests passed"
