#!/usr/bin/env bash
# Installs the deployment tool chain that scripts/check-deploy.sh uses, into its own
# virtualenv (.tools/deploy-venv) so its pins never fight the machine's Python packages:
#   - aws-sam-cli 1.170.0   `sam validate --lint`, `sam build` (rust-cargolambda)
#   - cfn-lint 1.53.3       pinned: a newer release can add rules and fail a green template
#   - cargo-lambda 1.9.2    the builder `sam build` calls for BuildMethod rust-cargolambda
#                           (ships zig from the `ziglang` package for cross-linking)
# Idempotent: does nothing when the venv already has these exact versions.
# Prints the venv's bin directory on the last line of standard output.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.tools/deploy-venv"
pins=(aws-sam-cli==1.170.0 cfn-lint==1.53.3 cargo-lambda==1.9.2)

have_pins() {
  [ -x "$venv/bin/python" ] || return 1
  local frozen
  frozen="$("$venv/bin/python" -m pip freeze 2>/dev/null)" || return 1
  local pin
  for pin in "${pins[@]}"; do
    grep -qix "$pin" <<<"$frozen" || return 1
  done
}

if ! have_pins; then
  echo "installing ${pins[*]} into .tools/deploy-venv" >&2
  mkdir -p "$repo/.tools"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2
fi
echo "$venv/bin"
