#!/usr/bin/env bash
# The testnet's CI hook (called from .ci/run): the scenarios as local
# processes always; in docker too when a docker engine answers.
# Runtime after the build: ~40 s local scenarios, ~30 s torture, ~2.2 min soak; docker adds the static release
# build of staffpass-node (a few minutes on 2 cores, once) and ~1 min.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p staffpass-node -p staffpass-admin -p staffpass-testnet
# Through cargo, so the binaries are found wherever the target dir is.
testnet() { cargo run --quiet -p staffpass-testnet -- "$@"; }

echo "== testnet: local scenarios"
testnet scenario all --no-build

echo "== testnet: crash torture (10 SIGKILLs under load; the 100-kill run is in BENCHMARKS.md)"
testnet torture --kills 10 --no-build

echo "== testnet: soak (2 minutes at 5 operations/s; the 60-minute run is in BENCHMARKS.md)"
# Its CSV and plot stay in target/ci-soak for a look after a failure.
testnet soak --minutes 2 --rate 5 --out target/ci-soak --no-build

if docker info >/dev/null 2>&1; then
    echo "== testnet: docker scenarios"
    testnet docker scenario all
else
    echo "== testnet: docker scenarios SKIPPED: \`docker info\` does not answer (no docker engine here)"
fi
