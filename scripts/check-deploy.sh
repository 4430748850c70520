#!/usr/bin/env bash
# Deployment checks, run by scripts/test.sh (and so by CI), on template.yaml and on each
# combination of options in scripts/template-variants.py (default, provisioned, replicas,
# a created key, a given key with replicas, backups and access logs, everything):
#   1. sam validate --lint      the SAM transform and SAM CLI's own cfn-lint pass
#   2. cfn-lint 1.53.3          no errors, no warnings, and no informational findings either
#   3. checkov 3.2.533          0 failed checks on each combination and on its SAM-expanded
#                               template; a check that does not fit is skipped in the
#                               resource's Metadata with its reason (the README lists them)
#   4. sam build                every function builds with BuildMethod rust-cargolambda and
#                               yields an x86-64 Linux `bootstrap`
# A missing tool, a finding or a failed build fails the run: nothing is skipped. checkov
# comes from scripts/install-test-deps.sh (.tools/checkov-venv).
#
# The build is for x86_64 (`--parameter-overrides Architecture=x86_64`): the template's
# default is arm64, whose Rust target cannot be installed offline here. By default it is a
# debug build (SAM_BUILD_MODE=debug: the same `cargo lambda build`, without `--release`),
# because the release profile (fat LTO, one codegen unit) takes far longer than CI's budget
# on two cores; WF_SAM_BUILD_MODE=release builds exactly what `sam build` ships.
#
# Environment:
#   WF_SAM_BUILD_MODE   debug (default) or release
#   WF_SAM_BUILD_DIR    where sam build puts its artifacts (default target/sam-build)
#   WF_SAM_BUILD_CLEAN  1: once checked, remove cargo lambda's intermediate build for the
#                       Lambda target (about 1 GB; the artifacts stay). .ci/run sets it:
#                       CI's disk is shared, and the test build comes after this one.
#   AWS_DEFAULT_REGION  default us-east-1 (only for the SAM/cfn-lint region checks)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

bin="$(bash scripts/install-deploy-deps.sh | tail -n 1)"
export PATH="$bin:$PATH"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export SAM_CLI_TELEMETRY=0
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-0}"
mode="${WF_SAM_BUILD_MODE:-debug}"
case "$mode" in
  debug | release) ;;
  *)
    echo "check-deploy: WF_SAM_BUILD_MODE must be debug or release, got '$mode'" >&2
    exit 1
    ;;
esac

fail() {
  echo "check-deploy: $*" >&2
  exit 1
}

for tool in sam cfn-lint cargo-lambda cargo; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed (scripts/install-deploy-deps.sh)"
done
[ "$(cfn-lint --version)" = "cfn-lint 1.53.3" ] || fail "cfn-lint must be 1.53.3, found '$(cfn-lint --version)'"
checkov="$repo/.tools/checkov-venv/bin/checkov"
[ -x "$checkov" ] || fail "checkov is not installed (scripts/install-test-deps.sh)"
[ "$("$checkov" --version)" = "3.2.533" ] || fail "checkov must be 3.2.533, found '$("$checkov" --version)'"

started=$(date +%s)
echo "== sam validate --lint"
sam validate --lint --template template.yaml

echo "== cfn-lint $(cfn-lint --version | cut -d' ' -f2) (errors, warnings, informational)"
# Exit status is a bit mask: 2 errors, 4 warnings, 8 informational; any of them fails.
cfn-lint --include-checks I -- template.yaml
echo "cfn-lint: no findings"

variants_dir="$repo/target/template-variants"
rm -rf "$variants_dir"
mkdir -p "$variants_dir"
for variant in $("$bin/python" scripts/template-variants.py list); do
  file="$variants_dir/$variant.json"
  "$bin/python" scripts/template-variants.py write "$variant" "$file"
  "$bin/python" scripts/template-variants.py expand "$file" "$variants_dir/$variant.expanded.json"
  echo "== $variant: sam validate --lint, cfn-lint"
  sam validate --lint --template "$file" >/dev/null
  cfn-lint --include-checks I -- "$file"
done

echo "== checkov $("$checkov" --version) on every combination and its SAM-expanded template"
# Offline: no platform lookups, no download of external checks.
BC_SKIP_MAPPING=TRUE "$checkov" --directory "$variants_dir" --framework cloudformation \
  --skip-download --compact --output json >"$variants_dir/checkov.json" 2>"$variants_dir/checkov.log" || true
"$bin/python" - "$variants_dir/checkov.json" <<'PY'
import json, os, sys
report = json.load(open(sys.argv[1]))
reports = report if isinstance(report, list) else [report]
files, failed, skipped = {}, [], 0
for r in reports:
    if r.get("summary", {}).get("parsing_errors"):
        sys.exit(f"checkov could not parse: {r['results'].get('parsing_errors')}")
    for check in r.get("results", {}).get("passed_checks", []):
        files.setdefault(check["file_path"], [0, 0])[0] += 1
    for check in r.get("results", {}).get("skipped_checks", []):
        files.setdefault(check["file_path"], [0, 0])[1] += 1
        skipped += 1
    failed += r.get("results", {}).get("failed_checks", [])
for path, (passed, skips) in sorted(files.items()):
    print(f"checkov {os.path.basename(path)}: {passed} passed, 0 failed, {skips} skipped")
if failed:
    for check in failed:
        print(f"checkov FAILED {check['check_id']} {check['resource']} ({check['file_path']})")
    sys.exit(f"checkov: {len(failed)} failed checks")
if len(files) < 2:
    sys.exit("checkov scanned no template")
PY
lint_done=$(date +%s)

echo "== sam build ($mode, x86_64, rust-cargolambda)"
build_dir="${WF_SAM_BUILD_DIR:-$repo/target/sam-build}"
rm -rf "$build_dir"
# The workspace's own target dir: the functions share every compiled dependency, and
# whatever the test build already compiled for the host (build scripts, proc macros).
if [ "$mode" = debug ]; then
  export SAM_BUILD_MODE=debug
else
  unset SAM_BUILD_MODE
fi
sam build --beta-features --no-cached \
  --template-file template.yaml \
  --build-dir "$build_dir" \
  --parameter-overrides Architecture=x86_64
build_done=$(date +%s)

# Every function of the template has its bootstrap, an x86-64 ELF executable.
functions=$("$bin/python" - template.yaml <<'PY'
import sys
from cfnlint.decode import cfn_yaml
for name, resource in cfn_yaml.load(sys.argv[1])["Resources"].items():
    if resource.get("Type") == "AWS::Serverless::Function":
        print(name)
PY
)
[ -n "$functions" ] || fail "no AWS::Serverless::Function in template.yaml"
for id in $functions; do
  artifact="$build_dir/$id/bootstrap"
  [ -x "$artifact" ] || fail "sam build left no executable $artifact"
  # ELF magic, 64-bit class, machine 0x3e (x86-64) at offset 18.
  header="$(od -An -tx1 -N20 "$artifact" | tr -d ' \n')"
  [ "${header:0:10}" = "7f454c4602" ] || fail "$artifact is not a 64-bit ELF file"
  [ "${header:36:4}" = "3e00" ] || fail "$artifact is not built for x86-64"
  echo "built $id: $(du -h "$artifact" | cut -f1) $artifact"
done
if [ "${WF_SAM_BUILD_CLEAN:-0}" = 1 ]; then
  rm -rf "$repo/target/x86_64-unknown-linux-gnu" "$repo/target/lambda"
fi
echo "deploy checks: lint $((lint_done - started))s, sam build $((build_done - lint_done))s"
