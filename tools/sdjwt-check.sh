#!/usr/bin/env bash
# SD-JWT VC exports checked by an implementation nobody here wrote.
#
# Inits a node, seeds it, registers a staff member's own key, exports that
# member's credential as an SD-JWT VC (every claim, and two of them) with
# `staffpass-admin credential export`, writes the trust's issuer metadata
# with `staffpass-admin node issuer-metadata`, then runs
# tools/sdjwt_check.py: the SD-JWT reference implementation (PyPI sd-jwt
# 0.10.4) verifies each token with the key the metadata publishes, plus RFC
# 9901's strict rules, the SD-JWT VC claim checks and key binding with the
# staff member's Ed25519 key; tampered tokens (a changed, added or repeated
# disclosure, a wrong typ, expired, another issuer's key) must all fail.
# Then the trust's Token Status List (`staffpass-admin node status-list`):
# the tokens' bit is 0, and 1 once the credential is revoked. Last, the
# SD-JWT VC a home sends in every bundle, as a host exports it after a real
# move (written by the API test), through the same checks.
#
#   tools/sdjwt-check.sh
#
# Installs sd-jwt in a temporary venv. Runtime after the build: ~30 s.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

work="$(mktemp -d)"
chmod 700 "$work"
cleanup() { node_stop; rm -rf "$work"; }
trap cleanup EXIT

need_apt python3-venv
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check 'sd-jwt==0.10.4'
py="$work/venv/bin/python"

node_start "$work"
node_seed
ADMIN_BIN="$(dirname "$NODE_BIN")/staffpass-admin"
adm() { "$ADMIN_BIN" "$@" --data-dir "$NODE_DATA" --node "https://$NODE_API"; }

ref="$(api '/v1/staff?limit=1' -f | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["staff_ref"])')"
"$ADMIN_BIN" key gen --kind staff --out "$work/holder.key" >/dev/null
"$ADMIN_BIN" key gen --kind issuer --out "$work/other-issuer.key" >/dev/null
adm staff set-key "$ref" --staff-key "$work/holder.key" >/dev/null
adm credential export --staff "$ref" --format sd-jwt-vc --out "$work/all.sdjwt"
adm credential export --staff "$ref" --format sd-jwt-vc --claims identity,dbs --out "$work/two.sdjwt"
adm node issuer-metadata --out "$work/issuer-metadata.json"

"$py" tools/sdjwt_check.py --metadata "$work/issuer-metadata.json" --holder-key "$work/holder.key" \
    "$work/all.sdjwt" "$work/two.sdjwt"
"$py" tools/sdjwt_check.py --metadata "$work/issuer-metadata.json" --tamper \
    --other-issuer-key "$work/other-issuer.key" "$work/all.sdjwt"
# Control: the same check with another trust's key as the published one fails.
"$py" - "$work/issuer-metadata.json" "$work/other-issuer.key" <<'PY'
import json, sys
sys.path.insert(0, "tools")
import sdjwt_check as c
meta = json.load(open(sys.argv[1]))
pub = {k: v for k, v in c.key_file_jwk(sys.argv[2], "issuer").items() if k != "d"}
meta["jwks"]["keys"] = [dict(pub, kid=meta["jwks"]["keys"][0]["kid"])]
json.dump(meta, open(sys.argv[1] + ".other", "w"))
PY
if "$py" tools/sdjwt_check.py --metadata "$work/issuer-metadata.json.other" "$work/all.sdjwt" >/dev/null; then
    echo "sdjwt-check: CONTROL FAILED: a token verified against another issuer's key" >&2
    exit 1
fi
# The status list: both tokens' credential is live (bit 0); revoked, its
# bit is 1 in the list the node publishes next.
adm node status-list --out "$work/status.jwt" >/dev/null
"$py" tools/sdjwt_check.py --metadata "$work/issuer-metadata.json" --status-list "$work/status.jwt" \
    "$work/all.sdjwt" "$work/two.sdjwt"
adm credential revoke --staff "$ref" --reason leaving-organisation >/dev/null
adm node status-list --out "$work/status.jwt" >/dev/null
"$py" tools/sdjwt_check.py --metadata "$work/issuer-metadata.json" --status-list "$work/status.jwt" \
    --expect-status invalid "$work/all.sdjwt" "$work/two.sdjwt"
kill -0 "$NODE_PID" || { echo "the node died during the run" >&2; exit 1; }
# The copy a home sends with every bundle, as the host hands it to its HR
# system: a real move between two nodes (the API test writes the host's
# export and the home's issuer metadata), checked the same way.
STAFFPASS_SDJWT_OUT="$work" cargo test -q -p staffpass-tests --test it -- --exact \
    standards::the_host_exports_a_received_passport_as_fhir_and_sd_jwt_vc_over_the_api >/dev/null
test -s "$work/host-copy.sdjwt" || { echo "sdjwt-check: the API test wrote no host copy" >&2; exit 1; }
"$py" tools/sdjwt_check.py --metadata "$work/home-issuer-metadata.json" "$work/host-copy.sdjwt"
"$py" tools/sdjwt_check.py --metadata "$work/home-issuer-metadata.json" --tamper \
    --other-issuer-key "$work/other-issuer.key" "$work/host-copy.sdjwt"
echo "sdjwt-check: every SD-JWT VC verified by the reference implementation and the strict checks; tampering refused"
