#!/usr/bin/env bash
# Creates the workflow table: the seed's single-table design, plus a stream and PITR.
#
#   PK/SK strings, PAY_PER_REQUEST, deletion protection, GSI1 (GSI1PK/GSI1SK) and
#   GSI2 (GSI2PK/GSI2SK) with projection ALL, TTL on `ttl`,
#   plus stream NEW_AND_OLD_IMAGES (for stream-archiver) and point-in-time recovery.
#
# Environment:
#   AWS_REGION                default ap-southeast-2 (as the seed's script)
#   AWS_DYNAMODB_TABLE_NAME   default workflow_executions
#   AWS_ENDPOINT_URL_DYNAMODB or AWS_ENDPOINT_URL
#                             endpoint override, e.g. http://127.0.0.1:8000 for DynamoDB Local
#   DELETION_PROTECTION       true (default) or false, e.g. for throwaway test tables
#   CAPACITY_MODE             ON_DEMAND (default: the seed's PAY_PER_REQUEST) or PROVISIONED
#   READ_CAPACITY, WRITE_CAPACITY
#                             with PROVISIONED, the table's and each GSI's read and write
#                             capacity units (default 5 each); auto scaling is the
#                             template's (CapacityMode), not this script's
#   REPLICA_REGIONS           other regions, comma separated (e.g. eu-west-1,us-west-2):
#                             the table becomes a global table (version 2019.11.21) with a
#                             replica in each, as the seed's create-global-table does
#
# Idempotent: if the table exists it says so, makes sure TTL is on, and exits 0.
set -euo pipefail

region="${AWS_REGION:-ap-southeast-2}"
table="${AWS_DYNAMODB_TABLE_NAME:-workflow_executions}"
endpoint="${AWS_ENDPOINT_URL_DYNAMODB:-${AWS_ENDPOINT_URL:-}}"
protection="${DELETION_PROTECTION:-true}"
capacity_mode="${CAPACITY_MODE:-ON_DEMAND}"
read_capacity="${READ_CAPACITY:-5}"
write_capacity="${WRITE_CAPACITY:-5}"
replica_regions="${REPLICA_REGIONS:-}"

case "$capacity_mode" in
  ON_DEMAND)
    billing=(--billing-mode PAY_PER_REQUEST)
    index_throughput=""
    ;;
  PROVISIONED)
    for value in "$read_capacity" "$write_capacity"; do
      [[ "$value" =~ ^[1-9][0-9]*$ ]] || {
        echo "error: READ_CAPACITY and WRITE_CAPACITY must be positive integers, got '$value'" >&2
        exit 2
      }
    done
    billing=(--billing-mode PROVISIONED
      --provisioned-throughput "ReadCapacityUnits=$read_capacity,WriteCapacityUnits=$write_capacity")
    index_throughput=", \"ProvisionedThroughput\": {\"ReadCapacityUnits\": $read_capacity, \"WriteCapacityUnits\": $write_capacity}"
    ;;
  *)
    echo "error: CAPACITY_MODE must be ON_DEMAND or PROVISIONED, got '$capacity_mode'" >&2
    exit 2
    ;;
esac
if [ -n "$replica_regions" ] && [ "$capacity_mode" = PROVISIONED ]; then
  # A provisioned global table needs write auto scaling on every replica: the template's job.
  echo "error: REPLICA_REGIONS needs CAPACITY_MODE=ON_DEMAND here (deploy template.yaml for provisioned replicas)" >&2
  exit 2
fi

aws_ddb() {
  # The v1 CLI ignores AWS_ENDPOINT_URL; pass the override explicitly.
  if [ -n "$endpoint" ]; then
    aws dynamodb --region "$region" --endpoint-url "$endpoint" "$@"
  else
    aws dynamodb --region "$region" "$@"
  fi
}

enable_ttl() {
  status="$(aws_ddb describe-time-to-live --table-name "$table" \
    --query 'TimeToLiveDescription.TimeToLiveStatus' --output text 2>/dev/null || true)"
  if [ "$status" = "ENABLED" ] || [ "$status" = "ENABLING" ]; then
    echo "TTL on attribute ttl: already $status"
  else
    aws_ddb update-time-to-live --table-name "$table" \
      --time-to-live-specification "Enabled=true,AttributeName=ttl" >/dev/null
    echo "TTL on attribute ttl: enabled"
  fi
}

# Replicas last: a global table needs the stream on, and each replica copies the table's
# settings (keys, GSIs, stream, TTL, encryption) when it is created.
add_replicas() {
  [ -n "$replica_regions" ] || return 0
  local replica
  IFS=',' read -r -a regions <<<"$replica_regions"
  for replica in "${regions[@]}"; do
    if [ "$(aws_ddb describe-table --table-name "$table" \
      --query "Table.Replicas[?RegionName=='$replica'].RegionName | [0]" --output text)" = "$replica" ]; then
      echo "replica in $replica: already there"
      continue
    fi
    echo "adding a replica in $replica"
    aws_ddb update-table --table-name "$table" \
      --replica-updates "[{\"Create\": {\"RegionName\": \"$replica\"}}]" >/dev/null
    aws_ddb wait table-exists --table-name "$table"
  done
}

if aws_ddb describe-table --table-name "$table" >/dev/null 2>&1; then
  echo "table $table already exists in $region${endpoint:+ at $endpoint}"
  enable_ttl
  add_replicas
  exit 0
fi

if [ "$protection" = "true" ]; then
  protection_flag="--deletion-protection-enabled"
else
  protection_flag="--no-deletion-protection-enabled"
fi

echo "creating table $table in $region${endpoint:+ at $endpoint}"
aws_ddb create-table \
  --table-name "$table" \
  --attribute-definitions \
    AttributeName=PK,AttributeType=S \
    AttributeName=SK,AttributeType=S \
    AttributeName=GSI1PK,AttributeType=S \
    AttributeName=GSI1SK,AttributeType=S \
    AttributeName=GSI2PK,AttributeType=S \
    AttributeName=GSI2SK,AttributeType=S \
  --key-schema \
    AttributeName=PK,KeyType=HASH \
    AttributeName=SK,KeyType=RANGE \
  --global-secondary-indexes '[
    {"IndexName": "GSI1",
     "KeySchema": [{"AttributeName": "GSI1PK", "KeyType": "HASH"},
                   {"AttributeName": "GSI1SK", "KeyType": "RANGE"}],
     "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["type", "runId", "workflowId", "workflowVersion", "status", "totalSteps", "completedSteps", "createdAt", "startedAt", "completedAt", "updatedAt", "resourceId", "tags", "idempotencyKey", "retentionDays", "version", "ttl"]}'"$index_throughput"'},
    {"IndexName": "GSI2",
     "KeySchema": [{"AttributeName": "GSI2PK", "KeyType": "HASH"},
                   {"AttributeName": "GSI2SK", "KeyType": "RANGE"}],
     "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["type", "runId", "workflowId", "workflowVersion", "status", "totalSteps", "completedSteps", "createdAt", "startedAt", "completedAt", "updatedAt", "resourceId", "tags", "idempotencyKey", "retentionDays", "version", "ttl"]}'"$index_throughput"'}
  ]' \
  "${billing[@]}" \
  --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES \
  --tags Key=Project,Value=wf-runner \
  "$protection_flag" >/dev/null

echo "waiting for $table to become ACTIVE"
aws_ddb wait table-exists --table-name "$table"
enable_ttl

if aws_ddb update-continuous-backups --table-name "$table" \
  --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true >/dev/null 2>&1; then
  echo "point-in-time recovery: enabled"
elif [ -n "$endpoint" ]; then
  echo "warning: point-in-time recovery is not supported by the endpoint $endpoint; skipped"
else
  echo "error: could not enable point-in-time recovery on $table" >&2
  exit 1
fi

add_replicas
echo "table $table is ready"
