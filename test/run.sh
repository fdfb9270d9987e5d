#!/usr/bin/env bash
# The test command (README). Runs every test, unit and integration, against
# the real parts it needs. Kafka (kfake), S3 (gofakes3) and the OpenSearch
# fake run in-process or as helper processes the tests build; Apache Arrow
# reads the Parquet back. The Kinesis issue adds the npm emulators here.
set -euo pipefail
cd "$(dirname "$0")/.."
go version
go test -count=1 ./...
