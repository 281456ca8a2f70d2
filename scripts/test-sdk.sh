#!/usr/bin/env bash
# The Python server SDK (clients/python: ruff, mypy --strict, pytest against a real hub) and the
# API description (docs/openapi.yaml, checked by Schemathesis against a live hub).
# scripts/test-all.sh runs it after building the hub; alone:
#   HERALD_BIN=target/release/herald bash scripts/test-sdk.sh
# SDK_VENV (default .venv-test, git-ignored) is the virtual environment; it is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

HERALD_BIN="$(realpath "${HERALD_BIN:-target/release/herald}")"
export HERALD_BIN
[ -x "$HERALD_BIN" ] || { echo "test-sdk: no hub binary at $HERALD_BIN (cargo build --release -p herald)" >&2; exit 1; }
venv="${SDK_VENV:-$PWD/.venv-test}"

# Debian's python3 leaves venv's pip bootstrap (ensurepip) to the python3-venv package.
if ! command -v python3 >/dev/null; then
  echo "==> installing python3 python3-venv"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
fi
if [ ! -x "$venv/bin/pip" ]; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    echo "==> installing python3-venv"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/pip" install --quiet --disable-pip-version-check -e 'clients/python[test]' \
  'schemathesis>=4.0,<5' 'openapi-spec-validator>=0.7,<1' \
  'sseclient-py>=1.8,<2' 'requests>=2.31,<3' 'urllib3>=2,<3'

echo "==> Python SDK (clients/python): ruff, mypy --strict, pytest against a real hub"
(
  cd clients/python
  "$venv/bin/ruff" check .
  "$venv/bin/ruff" format --check .
  "$venv/bin/mypy" --strict src tests
  "$venv/bin/pytest" -q -p no:cacheprovider
)

echo "==> Python SSE clients (sseclient-py over requests and urllib3) on a cleartext stream"
"$venv/bin/ruff" check tests/python
"$venv/bin/pytest" -q -p no:cacheprovider tests/python

echo "==> docs/openapi.yaml: valid OpenAPI 3.1, then Schemathesis against live hubs"
"$venv/bin/openapi-spec-validator" docs/openapi.yaml
work=$(mktemp -d)
hub_pid=""
trap '[ -z "$hub_pid" ] || kill "$hub_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
key="schemathesis-publish-key"

# Starts a hub on a free port with the given extra flags; sets hub_pid and hub_url.
start_hub() {
  : >"$work/hub.out"
  "$HERALD_BIN" serve --listen 127.0.0.1:0 --jwt-secret schemathesis-secret --publish-key "$key" \
    "$@" </dev/null >"$work/hub.out" 2>"$work/hub.err" &
  hub_pid=$!
  hub_url=""
  for _ in $(seq 150); do
    hub_url=$(sed -n 's/^herald listening on \(http:\/\/[^ ]*\).*/\1/p' "$work/hub.out")
    [ -n "$hub_url" ] && return 0
    kill -0 "$hub_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "herald did not start:" >&2
  cat "$work/hub.out" "$work/hub.err" >&2
  return 1
}

stop_hub() {
  if ! kill -0 "$hub_pid" 2>/dev/null; then
    echo "the hub died during the Schemathesis run:" >&2
    cat "$work/hub.err" >&2
    return 1
  fi
  kill "$hub_pid"
  wait "$hub_pid" 2>/dev/null || true
  hub_pid=""
}

# Schemathesis with the five checks, a fixed seed and bounded examples: the same run of well
# under a minute every time, and a failure reproduces with the same seed. $1: the credential.
schemathesis() {
  local credential=$1
  shift
  "$venv/bin/schemathesis" run docs/openapi.yaml \
    --url "$hub_url" \
    --header "Authorization: Bearer $credential" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --seed "${SCHEMATHESIS_SEED:-18}" \
    --workers 2 \
    --request-timeout 10 \
    --no-color \
    "$@"
}

start_hub --console
# Every operation but the stream (a 200 never ends), with the publish key.
schemathesis "$key" --exclude-path /events --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-80}"
# The stream's refusals (bad query, 401 with WWW-Authenticate): a token that is not one.
schemathesis not-a-token --include-path /events --max-examples 20 --warnings off
stop_hub

# With the console off its routes answer 404 not_found.
start_hub --console false
schemathesis "$key" --include-path-regex '^/console' --max-examples 10 --warnings off
stop_hub
