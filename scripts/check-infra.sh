#!/usr/bin/env bash
# Static checks of the Azure templates in infra/ (no Azure account needed):
#   1. checkov on infra/ (Bicep and ARM, with the custom policies in
#      infra/policies): zero failed checks and zero parse errors required;
#   2. pytest infra/tests: the security properties, parsed from the Bicep,
#      and broken copies that both must reject.
# Needs only Python 3 with venv. Tools go into infra/.venv (git-ignored),
# pinned by infra/requirements.txt; the venv is reused while that file is
# unchanged. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

INFRA=infra
VENV="$INFRA/.venv"
REQS="$INFRA/requirements.txt"
PYTHON="${PYTHON:-python3}"
start=$(date +%s)

fail() {
    echo "check-infra: FAILED: $*" >&2
    exit 1
}

command -v "$PYTHON" >/dev/null 2>&1 || fail "$PYTHON not found; install Python 3"

# --- venv -------------------------------------------------------------------
reqs_hash=$(sha256sum "$REQS" | cut -d' ' -f1)
stamp="$VENV/.requirements.sha256"
if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$reqs_hash" ]]; then
    echo "== reusing $VENV ($REQS unchanged)"
else
    echo "== creating $VENV and installing $REQS"
    rm -rf "$VENV"
    if ! "$PYTHON" -m venv "$VENV" 2>/tmp/check-infra-venv.$$; then
        cat /tmp/check-infra-venv.$$ >&2
        rm -f /tmp/check-infra-venv.$$
        rm -rf "$VENV"
        if ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
            fail "'$PYTHON -m venv' needs ensurepip; on Debian/Ubuntu: apt-get install -y python3-venv"
        fi
        fail "'$PYTHON -m venv $VENV' failed"
    fi
    rm -f /tmp/check-infra-venv.$$
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$REQS" \
        || { rm -rf "$VENV"; fail "pip install -r $REQS"; }
    echo "$reqs_hash" >"$stamp"
fi
setup_done=$(date +%s)

# --- checkov ----------------------------------------------------------------
# Keep these options in step with infra/tests/checkov_run.py.
echo "== checkov (bicep, arm; custom policies in $INFRA/policies)"
report="$VENV/checkov-report.json"
set +e
BC_SKIP_MAPPING=TRUE "$VENV/bin/checkov" \
    --directory "$INFRA" \
    --framework bicep arm \
    --external-checks-dir "$INFRA/policies" \
    --skip-path '(^|/)(\.venv|\.pytest_cache|tests)(/|$)' \
    --skip-download \
    --output json >"$report"
checkov_rc=$?
set -e
checkov_summary=$("$VENV/bin/python" - "$report" <<'EOF'
import json, sys
try:
    data = json.load(open(sys.argv[1]))
except Exception as err:
    print(f"ERROR checkov printed no JSON report: {err}")
    sys.exit(0)
reports = data if isinstance(data, list) else [data]
tot = dict(passed=0, failed=0, skipped=0, parsing_errors=0)
for r in reports:
    for k in tot:
        tot[k] += int(r.get("summary", {}).get(k, 0) or 0)
    res = r.get("results", {})
    for c in res.get("failed_checks", []):
        print(f"  FAILED  {c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}", file=sys.stderr)
    for c in res.get("skipped_checks", []):
        reason = (c.get("check_result") or {}).get("suppress_comment", "").strip()
        print(f"  skipped {c['check_id']} {c['resource']}: {reason}", file=sys.stderr)
print(f"{tot['passed']} {tot['failed']} {tot['skipped']} {tot['parsing_errors']}")
EOF
)
case "$checkov_summary" in ERROR*) fail "$checkov_summary" ;; esac
read -r ck_passed ck_failed ck_skipped ck_parse <<<"$checkov_summary"
echo "checkov: $ck_passed passed, $ck_failed failed, $ck_skipped skipped, $ck_parse parsing errors (exit $checkov_rc)"
[[ "$ck_parse" -eq 0 ]] || fail "checkov could not parse $ck_parse file(s); a file it cannot parse is not checked"
[[ "$ck_failed" -eq 0 && "$checkov_rc" -eq 0 ]] || fail "checkov reported $ck_failed failed check(s)"
[[ "$ck_passed" -gt 0 ]] || fail "checkov ran no check"
checkov_done=$(date +%s)

# --- pytest -----------------------------------------------------------------
echo "== pytest $INFRA/tests"
pytest_log="$VENV/pytest.log"
set +e
"$VENV/bin/python" -m pytest "$INFRA/tests" -q -p no:cacheprovider 2>&1 | tee "$pytest_log"
pytest_rc=${PIPESTATUS[0]}
set -e
pytest_line=$(grep -E '^=*\s*[0-9]+ (passed|failed)|^[0-9]+ (passed|failed)' "$pytest_log" | tail -1 | sed -E 's/^=+ //; s/ =+$//')
[[ "$pytest_rc" -eq 0 ]] || fail "pytest exited $pytest_rc: $pytest_line"
end=$(date +%s)

echo "check-infra: OK in $((end - start))s (setup $((setup_done - start))s, checkov $((checkov_done - setup_done))s, pytest $((end - checkov_done))s): checkov $ck_passed passed, $ck_failed failed, $ck_skipped skipped; pytest $pytest_line"
