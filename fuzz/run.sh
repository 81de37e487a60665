#!/usr/bin/env bash
# Fuzzes staffpass's decoders with cargo-fuzz (libFuzzer).
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]
#
# Builds every target once, then runs each TARGET (default: all of
# `cargo fuzz list`) for SECONDS (default 60) from its committed seeds
# (fuzz/seeds/<target>/) and what earlier runs found (fuzz/corpus/<target>/,
# not committed). Fails if any target crashes; the crashing input is left in
# fuzz/artifacts/<target>/ and the log in fuzz/logs/<target>.log.
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs
# cargo-fuzz if it is missing. Built without a sanitizer (the code is safe
# Rust; what is looked for is panics, overflows and runaway allocations):
# set FUZZ_SANITIZER=address for AddressSanitizer. Extra libFuzzer flags
# go in FUZZ_ARGS (e.g. FUZZ_ARGS="-runs=10000000" for a fixed count).
set -euo pipefail
cd "$(dirname "$0")"

secs="${1:-60}"
shift || true
if ! [[ "$secs" =~ ^[0-9]+$ ]]; then
  echo "usage: bash fuzz/run.sh [SECONDS] [TARGET...]" >&2
  exit 2
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: needs a nightly toolchain (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

build_flags=(--sanitizer "${FUZZ_SANITIZER:-none}")
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

started=$SECONDS
echo "fuzz: building ${#targets[@]} target(s)"
cargo +nightly fuzz build "${build_flags[@]}"
echo "fuzz: built in $((SECONDS - started)) s"

mkdir -p logs
failed=()
read -r -a extra <<<"${FUZZ_ARGS:-}"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  dirs=("corpus/$t")
  if [ -d "seeds/$t" ]; then dirs+=("seeds/$t"); fi
  log="logs/$t.log"
  echo "-- $t (${secs} s)"
  if cargo +nightly fuzz run "${build_flags[@]}" "$t" "${dirs[@]}" -- \
    -max_total_time="$secs" -print_final_stats=1 "${extra[@]}" >"$log" 2>&1; then
    # The last status line: executions, coverage (cov: edges, ft: features).
    status="$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)"
    echo "   ok: ${status:-no status line}"
  else
    echo "   CRASH or error in $t; the end of $log:" >&2
    tail -n 40 "$log" >&2
    failed+=("$t")
  fi
done

echo "fuzz: ${#targets[@]} target(s) in $((SECONDS - started)) s"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
