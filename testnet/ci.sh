#!/usr/bin/env bash
# The testnet's CI hook (called from .ci/run): the scenarios as local
# processes always; in docker too when a docker engine answers.
# Runtime after the build: ~40 s local scenarios, ~30 s torture; docker adds the static release
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

if docker info >/dev/null 2>&1; then
    echo "== testnet: docker scenarios"
    testnet docker scenario all
else
    echo "== testnet: docker scenarios SKIPPED: \`docker info\` does not answer (no docker engine here)"
fi
