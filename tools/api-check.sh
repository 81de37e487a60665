#!/usr/bin/env bash
# API property testing: schemathesis against a live node.
#
# Inits a node on free ports in a temp dir, seeds it with synthetic staff,
# then runs schemathesis over every operation of api/openapi.json (all
# phases, stateful links included) with the node's admin client
# certificate, checking every response: no 5xx, every response (errors
# included) matches its documented schema and content type, every refused
# request has the one error shape (the document gives every operation
# ErrorBody as its default response), undocumented methods are refused,
# and so on: every check schemathesis has, set in tools/schemathesis.toml
# (`[checks] enabled = true`; not `--checks all` on the command line, which
# would override the file's per-operation settings).
#
#   tools/api-check.sh [--max-examples N] [--seed N]
#
# One worker: with two, hypothesis (inside schemathesis) parses lambda
# sources with `ast` from two threads at once, which CPython 3.11 can fail
# with "AST constructor recursion depth mismatch" (a Runtime Error of the
# tool, not a finding; seen once in CI, 2026-12-02).
#
# Installs schemathesis in a temporary venv (pip); SCHEMATHESIS=/path/to/it
# uses one already installed. Runtime after the build: about 1-2 minutes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

max_examples=25
seed=7
while [ $# -gt 0 ]; do
    case "$1" in
        --max-examples) max_examples="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        *) echo "usage: $0 [--max-examples N] [--seed N]" >&2; exit 2 ;;
    esac
done

work="$(mktemp -d)"
chmod 700 "$work"
cleanup() { node_stop; rm -rf "$work"; }
trap cleanup EXIT

st="${SCHEMATHESIS:-}"
if [ -z "$st" ]; then
    need_apt python3-venv
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4,<5'
    st="$work/venv/bin/schemathesis"
fi
"$st" --version

node_start "$work"
node_seed

# The seeded records are reached through the document's links (a listed
# staff reference, an issued credential, a granted consent) in the
# stateful phase; generated ids mostly hit unknown records (404).
tls=(--request-cert "$NODE_DATA/tls/admin.pem" --request-cert-key "$NODE_DATA/tls/admin.key"
     --tls-verify "$NODE_DATA/tls/ca.pem")

set +e
# From the temp dir: schemathesis keeps a cache in ./.schemathesis.
(cd "$work" && "$st" --config-file "$ROOT/tools/schemathesis.toml" run "$ROOT/api/openapi.json" \
    --url "https://$NODE_API" \
    "${tls[@]}" \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$max_examples" \
    --seed "$seed" \
    --workers 1 \
    --request-timeout 30 \
    --suppress-health-check too_slow,filter_too_much \
    --report junit --report-dir "$work/report" \
    --output-truncate false)
status=$?
set -e
if [ "$status" -ne 0 ]; then
    echo "schemathesis found failures (exit $status); node log tail:" >&2
    tail -n 30 "$NODE_LOG" >&2
    exit "$status"
fi
# The node must still be up: nothing schemathesis sent may stop it.
kill -0 "$NODE_PID" || { echo "the node died during the run" >&2; exit 1; }
echo "api-check: schemathesis passed"
