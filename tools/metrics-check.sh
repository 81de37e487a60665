#!/usr/bin/env bash
# Metrics lint: `promtool check metrics` on /metrics of a busy node.
#
# Starts a node, makes it busy (imports synthetic staff, issues
# credentials, reads the audit log, gets refusals), reads /metrics and
# lints it with promtool (naming conventions: units, `_total` on counters,
# base units, help text). Also requires that the families the busy node
# must have filled in are there with values.
#
# The node serves OpenMetrics 1.0 (prometheus-client), where a counter's
# family is named without `_total` (`# TYPE staffpass_x counter`, sample
# `staffpass_x_total`) and the exposition ends with `# EOF`. Debian's
# promtool (2.42) lints the Prometheus text format 0.0.4 only, where HELP
# and TYPE name the sample. The text is converted for it (counter family
# names get `_total`, `# EOF` and `_created` samples are dropped); nothing
# else is changed, so every name promtool sees is the name Prometheus
# stores.
#
#   tools/metrics-check.sh
#
# Installs promtool (Debian package prometheus) if missing. Runtime after
# the build: a few seconds.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

command -v promtool >/dev/null || need_apt prometheus curl

work="$(mktemp -d)"
chmod 700 "$work"
cleanup() { node_stop; rm -rf "$work"; }
trap cleanup EXIT

node_start "$work"
node_seed
api /metrics -f -o "$work/metrics.om"

python3 - "$work/metrics.om" "$work/metrics.prom" <<'PY'
import re, sys

text = open(sys.argv[1]).read()
if not text.endswith("# EOF\n"):
    sys.exit("/metrics does not end with '# EOF': not an OpenMetrics exposition")
counters = set(re.findall(r"^# TYPE (\S+) counter$", text, re.M))
out = []
for line in text.splitlines():
    if line == "# EOF":
        continue
    m = re.match(r"^# (HELP|TYPE|UNIT) (\S+)(.*)$", line)
    if m:
        kind, name, rest = m.groups()
        if kind == "UNIT":
            continue
        if name in counters:
            name += "_total"
        out.append(f"# {kind} {name}{rest}")
        continue
    name = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", line).group(1)
    if name.endswith("_created"):
        continue
    out.append(line)
open(sys.argv[2], "w").write("\n".join(out) + "\n")

# The busy node must have filled these in.
required = [
    r'^staffpass_api_requests_total\{outcome="2xx"\} [1-9]',
    r'^staffpass_api_requests_total\{outcome="4xx"\} [1-9]',
    r'^staffpass_api_request_seconds_bucket\{.*le="\+Inf".*\} [1-9]',
    r'^staffpass_api_request_seconds_sum\{',
    r'^staffpass_outbox_pending ',
    r'^staffpass_connected_peers ',
]
missing = [r for r in required if not re.search(r, text, re.M)]
if missing:
    sys.exit("missing from /metrics of a busy node:\n  " + "\n  ".join(missing) + "\n--- /metrics:\n" + text)
print(f"/metrics: {len(text.splitlines())} lines, {len(counters)} counter families")
PY

echo "== promtool check metrics"
if ! promtool check metrics <"$work/metrics.prom"; then
    echo "promtool found problems in /metrics (as converted above):" >&2
    cat "$work/metrics.prom" >&2
    exit 1
fi
echo "metrics-check: promtool passed"
