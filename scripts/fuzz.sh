#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 35 s each; FUZZ_SECONDS=N to change).
# Any crash fails the run and leaves the input in fuzz/artifacts/<target>/; turn it into a
# regression test (a unit test feeding those bytes) before fixing.
#
# cargo fuzz needs nightly-only compiler flags (sanitizers); this machine has one stable
# toolchain, so RUSTC_BOOTSTRAP=1 unlocks them for the fuzz build only.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-35}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
export RUSTC_BOOTSTRAP=1
# Unoptimised (with debug assertions and overflow checks, which catch more), without debug info
# and without AddressSanitizer (the fuzzed code is safe Rust): compiling the hub's dependency
# tree for fuzzing is what costs here, not the seconds of fuzzing. Every target is built in one
# go; `cargo fuzz run` then finds them up to date.
export CARGO_PROFILE_DEV_DEBUG=false
targets=(parser roundtrip publish_body seed_message)
flags=(--fuzz-dir fuzz --dev --sanitizer none)
cargo fuzz build "${flags[@]}"
for target in "${targets[@]}"; do
  echo "==> fuzz $target for ${seconds}s"
  # Fuzz into a scratch corpus seeded from the committed one, so CI runs leave the tree clean.
  scratch="$(mktemp -d)"
  cp -r "fuzz/corpus/$target/." "$scratch/" 2>/dev/null || true
  log="$scratch.log"
  if ! cargo fuzz run "${flags[@]}" "$target" "$scratch" -- \
      -max_total_time="$seconds" -max_len=4096 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz target $target failed: the input is in fuzz/artifacts/$target/"
    exit 1
  fi
  grep -E "^Done [0-9]+ runs" "$log" || tail -3 "$log"
  rm -f "$log"
  rm -rf "$scratch"
done
