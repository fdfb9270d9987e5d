#!/usr/bin/env bash
# The test command (README). Runs every test, unit and integration, against
# the real parts it needs. Kafka (kfake), S3 (gofakes3) and the OpenSearch
# fake run in-process or as helper processes the tests build; Apache Arrow
# reads the Parquet back. Kinesis and DynamoDB are npm's kinesalite and
# dynalite, installed on first use and started here (test/emulators.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
go version
. test/emulators.sh
go test -count=1 ./...
