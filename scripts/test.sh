#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs (Java 17, DynamoDB
# Local 2.6.1, the aws CLI), then runs every test of the workspace. The store's
# conformance suite runs against the embedded SQLite backend and against DynamoDB Local,
# which the tests start themselves on a free port and stop afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-test-deps.sh
# Deploy checks first (a lint finding fails in seconds): sam validate --lint, cfn-lint
# 1.53.3, sam build of every function (scripts/check-deploy.sh).
bash scripts/check-deploy.sh
# Debug info doubles build time and disk for the AWS SDK crates; tests don't need it.
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-0}"
# The behaviour suite also runs under injected faults (store faults before and after the
# write, lost, duplicated and late tasks) on SQLite and DynamoDB Local, drawn from this
# seed; a failure names it, and the same seed replays the same faults.
export WF_FAULT_SEED="${WF_FAULT_SEED:-11}"
started=$(date +%s)
cargo test --workspace --locked "$@"
# The serverless flow end to end on this machine: start-run, SQS (moto), execute-step and
# runs-api under cargo lambda watch, against DynamoDB Local. Fails unless the run completes.
bash scripts/local-flow.sh demo
echo "test suite wall time: $(( $(date +%s) - started ))s"
