#!/usr/bin/env bash
# FHIR R4 exports checked by an implementation nobody here wrote.
#
# Inits a node, seeds it, exports a staff member's credential as a FHIR
# Bundle with `staffpass-admin staff export REF --format fhir` (every claim,
# and two of them), then runs tools/fhir_check.py on those and on the
# golden vector (protocol/tests/vectors/fhir-bundle.json, which has the
# host's parts: a received passport's Bundle): PyPI fhir.resources 6.4.0
# (FHIR 4.0.1) parses each, plus the rules it does not check (references
# resolve, periods ordered, ODS codes well formed, nothing shaped like an NI
# number); broken copies (a dangling reference, a reversed period, an NI
# number, a bad ODS code, a bad date, an unknown element) must fail.
#
#   tools/fhir-check.sh
#
# Installs fhir.resources in a temporary venv. Runtime after the build: ~30 s.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

work="$(mktemp -d)"
chmod 700 "$work"
cleanup() { node_stop; rm -rf "$work"; }
trap cleanup EXIT

need_apt python3-venv
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check 'fhir.resources==6.4.0' 'pydantic<2'
py="$work/venv/bin/python"

node_start "$work"
node_seed
ADMIN_BIN="$(dirname "$NODE_BIN")/staffpass-admin"
adm() { "$ADMIN_BIN" "$@" --data-dir "$NODE_DATA" --node "https://$NODE_API"; }

ref="$(api '/v1/staff?limit=1' -f | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["staff_ref"])')"
adm credential issue "$ref" >/dev/null
adm staff export "$ref" --format fhir --out "$work/all.json"
adm staff export "$ref" --format fhir --claims dbs,training:fire-safety --out "$work/two.json"

"$py" tools/fhir_check.py "$work/all.json" "$work/two.json"
"$py" tools/fhir_check.py --tamper protocol/tests/vectors/fhir-bundle.json
# Without the identity claim there is no name or birth date.
"$py" - "$work/two.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
p = next(e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Practitioner")
assert "name" not in p and "birthDate" not in p, "name or birth date exported without the identity claim"
print("ok    no name or birth date without the identity claim")
PY
kill -0 "$NODE_PID" || { echo "the node died during the run" >&2; exit 1; }
echo "fhir-check: every FHIR Bundle valid R4 by fhir.resources and the extra rules; broken copies refused"
