#!/usr/bin/env bash
# Reads the whole lake Sluice wrote with DuckDB (read_parquet over every
# object, with and without hive_partitioning) and compares the row count
# and a checksum of every column, every partition key and every row with
# what INPUT should have produced through CONFIG's Parquet sink (input read
# by DuckDB's read_json). Exit 0 when all agree, 1 on any difference.
# Usage: test/bench/lakecheck.sh LAKE INPUT [CONFIG]
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -lt 2 ]; then
  echo "usage: $0 LAKE INPUT [CONFIG]" >&2
  exit 2
fi
lake=$1 input=$2 conf=${3:-test/bench/bench.yaml}
. test/bench/duckdb-lib.sh
duckdb_install
spec=$(lake_spec "$conf")
node test/bench/duckdb.mjs check "$spec" "$(realpath "$input")" "$(realpath "$lake")"
