#!/usr/bin/env bash
# Checks the CloudFormation templates: template.yml (the SAM functions), TapStack.yml (the baseline) and
# OrgStack.yml (the organization stack).
#   - cfn-lint on both (errors and warnings fail)
#   - sam validate --lint on template.yml
#   - checkov on both, and on template.yml as SAM expands it (the function, invoke config, schedule rule and
#     permission SAM generates): any finding fails, and so does a suppression that gives no reason.
# cfn-lint comes from .venv (make venv); sam and checkov from .venv-tools, which this script installs from
# requirements-templates.txt when it is missing or older than that file (see the file for why it is apart).
set -euo pipefail
cd "$(dirname "$0")/.."

export PYTHON="${PYTHON:-python3}"
TOOLS=.venv-tools
TEMPLATES=(template.yml TapStack.yml OrgStack.yml)

if [[ ! -x .venv/bin/cfn-lint ]]; then
    echo "check-templates: .venv/bin/cfn-lint is missing: run 'make venv' first" >&2
    exit 2
fi
if [[ ! -f $TOOLS/.installed || requirements-templates.txt -nt $TOOLS/.installed ]]; then
    echo "check-templates: installing the template tools into $TOOLS"
    scripts/uv.sh venv --quiet --allow-existing "$TOOLS"
    scripts/uv.sh pip install --quiet --python "$TOOLS/bin/python" -r requirements-templates.txt
    touch "$TOOLS/.installed"
fi
# SAM CLI keeps its settings in the project, not in the home directory, and sends no telemetry.
export __SAM_CLI_APP_DIR="$PWD/$TOOLS/sam-config" SAM_CLI_TELEMETRY=0
# The SAM translator needs a region to expand the template; nothing is called in it.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== cfn-lint ${TEMPLATES[*]}"
.venv/bin/cfn-lint --non-zero-exit-code warning -- "${TEMPLATES[@]}"

echo "== sam validate --lint template.yml"
"$TOOLS/bin/sam" validate --lint --template-file template.yml --region "$AWS_DEFAULT_REGION"

echo "== checkov ${TEMPLATES[*]} and template.yml as SAM expands it"
expanded="$work/template.expanded.json"
"$TOOLS/bin/python" - template.yml >"$expanded" <<'PY'
import json
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """The functions use their own roles, so no AWS managed policy names need resolving."""

    def load(self):
        return {}


with open(sys.argv[1]) as f:
    template = yaml_parse(f.read())
# The translator wants the S3 location `sam deploy` puts in place of the local CodeUri.
template["Globals"]["Function"]["CodeUri"] = "s3://artifacts/bootstrap.zip"
json.dump(transform(template, {}, NoManagedPolicies()), sys.stdout, indent=1)
PY

status=0
"$TOOLS/bin/checkov" --config-file .checkov.yaml --output json \
    -f template.yml -f TapStack.yml -f OrgStack.yml -f "$expanded" >"$work/checkov.json" 2>"$work/checkov.err" || status=$?
# checkov exits 1 when a check fails; anything else means it did not run properly.
if [[ $status -ne 0 && $status -ne 1 ]] || [[ ! -s $work/checkov.json ]]; then
    cat "$work/checkov.err" >&2
    echo "check-templates: checkov did not run (exit $status)" >&2
    exit 2
fi
"$TOOLS/bin/python" - "$work/checkov.json" "$expanded" <<'PY'
import json
import sys

report, expanded = sys.argv[1], sys.argv[2]
with open(report) as f:
    runs = json.load(f)
if isinstance(runs, dict):
    runs = [runs]

passed, suppressed, problems = 0, 0, []
for run in runs:
    results = run.get("results", {})
    passed += len(results.get("passed_checks", []))
    for check in results.get("failed_checks", []):
        where = check["file_path"].replace(expanded, "template.yml (as SAM expands it)")
        lines = "-".join(str(n) for n in check.get("file_line_range", []))
        problems.append(f"{check['check_id']} {check['check_name']}: {check['resource']} in {where}:{lines}")
    for check in results.get("skipped_checks", []):
        comment = (check.get("check_result", {}).get("suppress_comment") or "").strip()
        if not comment or comment == "No comment provided":
            problems.append(f"{check['check_id']} suppressed without a reason: {check['resource']}")
        else:
            suppressed += 1

for problem in problems:
    print(f"  {problem}")
print(f"checkov: {passed} checks passed, {suppressed} suppressed with a reason, {len(problems)} problems")
sys.exit(1 if problems else 0)
PY
echo "check-templates: the templates are clean"
