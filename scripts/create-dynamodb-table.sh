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
#
# Idempotent: if the table exists it says so, makes sure TTL is on, and exits 0.
set -euo pipefail

region="${AWS_REGION:-ap-southeast-2}"
table="${AWS_DYNAMODB_TABLE_NAME:-workflow_executions}"
endpoint="${AWS_ENDPOINT_URL_DYNAMODB:-${AWS_ENDPOINT_URL:-}}"
protection="${DELETION_PROTECTION:-true}"

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

if aws_ddb describe-table --table-name "$table" >/dev/null 2>&1; then
  echo "table $table already exists in $region${endpoint:+ at $endpoint}"
  enable_ttl
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
     "Projection": {"ProjectionType": "ALL"}},
    {"IndexName": "GSI2",
     "KeySchema": [{"AttributeName": "GSI2PK", "KeyType": "HASH"},
                   {"AttributeName": "GSI2SK", "KeyType": "RANGE"}],
     "Projection": {"ProjectionType": "ALL"}}
  ]' \
  --billing-mode PAY_PER_REQUEST \
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
echo "table $table is ready"
