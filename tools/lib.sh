# Shared by the checks in tools/ (sourced, not run): install a tool,
# start a throw-away node, wait for it, call its API, stop it.
#
#   need_apt PKG...         apt-get install what is missing (sudo if not root)
#   node_start DIR [ORG]    init a node in DIR/node on free ports and start it;
#                           sets NODE_PID, NODE_API (host:port), NODE_DATA, NODE_LOG
#   node_stop               stop it (SIGTERM, then wait)
#   api PATH [curl args]    curl the node's API with the admin certificate
#   node_seed               import synthetic staff, issue credentials, grant and
#                           withdraw a consent, read the audit: every counter moves
#
# Every wait polls against a deadline; nothing sleeps for a fixed time to
# hope something is ready.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

need_apt() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing ${missing[*]}"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The debug binaries of the workspace (built once by the CI's test step).
bins() {
    cargo build --quiet -p staffpass-node -p staffpass-admin -p staffpass-testnet
    local target
    target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
    NODE_BIN="$target/debug/staffpass-node"
    TESTNET_BIN="$target/debug/staffpass-testnet"
}

# Polls COMMAND every 0.1 s until it succeeds or SECONDS pass.
wait_until() {
    local seconds="$1"; shift
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then return 1; fi
        sleep 0.1
    done
}

node_start() {
    local dir="$1" org="${2:-RJZ}"
    bins
    NODE_DATA="$dir/node"
    NODE_LOG="$dir/node.log"
    # Port 0 for both listeners: the kernel picks free ports, and the node
    # logs the API's real address once it is ready.
    "$NODE_BIN" init --org "$org" --data-dir "$NODE_DATA" \
        --listen /ip4/127.0.0.1/tcp/0 --api-listen 127.0.0.1:0 >/dev/null
    # The node reads STAFFPASS_* as config: pass none of CI's environment on.
    env -u STAFFPASS_CONFIG RUST_LOG=info "$NODE_BIN" run --config "$NODE_DATA/node.toml" --log-format json \
        >"$NODE_LOG" 2>&1 &
    NODE_PID=$!
    if ! wait_until 60 node_ready_line; then
        echo "the node did not become ready within 60 s; its log:" >&2
        cat "$NODE_LOG" >&2
        return 1
    fi
    NODE_API="$(node_ready_line)"
    wait_until 30 api /readyz -f
    echo "node $org ready: API https://$NODE_API (pid $NODE_PID, data $NODE_DATA)"
}

# Prints the API address from the node's "node ready" log line; fails until there is one.
node_ready_line() {
    kill -0 "$NODE_PID" 2>/dev/null || { echo "the node exited" >&2; return 2; }
    python3 - "$NODE_LOG" <<'PY'
import json, sys
for line in open(sys.argv[1], errors="replace"):
    try:
        ev = json.loads(line)
    except ValueError:
        continue
    if ev.get("fields", {}).get("message") == "node ready":
        print(ev["fields"]["api"])
        sys.exit(0)
sys.exit(1)
PY
}

node_stop() {
    [ -n "${NODE_PID:-}" ] || return 0
    if kill -0 "$NODE_PID" 2>/dev/null; then
        kill -TERM "$NODE_PID"
        wait "$NODE_PID" 2>/dev/null || true
    fi
    NODE_PID=""
}

api() {
    local path="$1"; shift
    curl -sS --cacert "$NODE_DATA/tls/ca.pem" --cert "$NODE_DATA/tls/admin.pem" --key "$NODE_DATA/tls/admin.key" \
        "$@" "https://$NODE_API$path"
}

node_seed() {
    local csv="$NODE_DATA/../staff.csv"
    "$TESTNET_BIN" data --seed 7 --rows 20 --out "$csv" >/dev/null
    api /v1/staff/import -f -H 'content-type: text/csv' --data-binary "@$csv" >/dev/null
    local refs
    refs="$(api '/v1/staff?limit=5' -f | python3 -c 'import json,sys; print(" ".join(s["staff_ref"] for s in json.load(sys.stdin)))')"
    for r in $refs; do
        api "/v1/staff/$r/credentials" -f -X POST >/dev/null
    done
    # Refused requests count too (a 404 and a 422).
    api /v1/staff/st-nobody -o /dev/null || true
    api /v1/consents -o /dev/null -H 'content-type: application/json' -d '{}' || true
    api /v1/audit -f -o /dev/null
    api /v1/audit/verify -f -o /dev/null
    api /v1/status -f -o /dev/null
}
