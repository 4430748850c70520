#!/usr/bin/env bash
# On-demand backups and restores of the workflow table (the seed's "Backup and Recovery").
# Scheduled backups are the template's AWS Backup plan (Backups=true); PITR is always on.
#
#   backup-table.sh create                    on-demand backup named <table>-<UTC date-time>
#   backup-table.sh list                      the table's backups: name, status, date, ARN
#   backup-table.sh restore BACKUP_ARN NEW    restore a backup into a new table NEW
#   backup-table.sh restore-pitr NEW [TIME]   restore the table as of TIME (ISO 8601, e.g.
#                                             2026-01-31T12:00:00Z; default the latest
#                                             restorable time) into a new table NEW
#
# A restore always makes a new table (DynamoDB cannot restore in place). It has no stream,
# TTL, PITR, auto scaling, tags or deletion protection of its own: the README's operations
# section says how to point a stack at it or copy data back.
#
# Environment (as scripts/create-dynamodb-table.sh):
#   AWS_REGION                default ap-southeast-2
#   AWS_DYNAMODB_TABLE_NAME   default workflow_executions
#   AWS_ENDPOINT_URL_DYNAMODB or AWS_ENDPOINT_URL   endpoint override (an emulator)
set -euo pipefail

region="${AWS_REGION:-ap-southeast-2}"
table="${AWS_DYNAMODB_TABLE_NAME:-workflow_executions}"
endpoint="${AWS_ENDPOINT_URL_DYNAMODB:-${AWS_ENDPOINT_URL:-}}"

usage() {
  sed -n '4,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

aws_ddb() {
  # The v1 CLI ignores AWS_ENDPOINT_URL; pass the override explicitly.
  if [ -n "$endpoint" ]; then
    aws dynamodb --region "$region" --endpoint-url "$endpoint" "$@"
  else
    aws dynamodb --region "$region" "$@"
  fi
}

wait_active() {
  echo "waiting for $1 to become ACTIVE"
  aws_ddb wait table-exists --table-name "$1"
  echo "table $1 is ready"
}

command="${1:-}"
[ -n "$command" ] || usage
shift
case "$command" in
  create)
    [ $# -eq 0 ] || usage
    name="$table-$(date -u +%Y-%m-%d-%H%M%S)"
    arn="$(aws_ddb create-backup --table-name "$table" --backup-name "$name" \
      --query 'BackupDetails.BackupArn' --output text)"
    echo "backup $name of $table: $arn"
    ;;
  list)
    [ $# -eq 0 ] || usage
    aws_ddb list-backups --table-name "$table" \
      --query 'BackupSummaries[].[BackupName, BackupStatus, BackupCreationDateTime, BackupArn]' \
      --output text
    ;;
  restore)
    [ $# -eq 2 ] || usage
    aws_ddb restore-table-from-backup --target-table-name "$2" --backup-arn "$1" >/dev/null
    echo "restoring backup $1 into $2"
    wait_active "$2"
    ;;
  restore-pitr)
    { [ $# -eq 1 ] || [ $# -eq 2 ]; } || usage
    if [ $# -eq 2 ]; then
      when=(--restore-date-time "$2")
    else
      when=(--use-latest-restorable-time)
    fi
    aws_ddb restore-table-to-point-in-time --source-table-name "$table" \
      --target-table-name "$1" "${when[@]}" >/dev/null
    echo "restoring $table as of ${2:-the latest restorable time} into $1"
    wait_active "$1"
    ;;
  *)
    usage
    ;;
esac
