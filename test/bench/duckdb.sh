#!/usr/bin/env bash
# DuckDB writes the bench's lake: the same input, rows, columns and
# partitions as the Parquet sink of CONFIG (default test/bench/bench.yaml),
# with COPY (SELECT …, strftime(…) AS year, …) TO OUTDIR (FORMAT parquet,
# COMPRESSION …, PARTITION_BY (…)) on DUCKDB_THREADS threads (default 2).
# Prints one line:
#   duckdb: wall=S cpu=S rss_kib=K bytes=B objects=N compression=C
# wall, CPU (user+system) and peak RSS are /usr/bin/time's, for the whole
# node process; bytes sum the .parquet objects.
# Usage: test/bench/duckdb.sh INPUT OUTDIR [snappy|zstd] [CONFIG]
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -lt 2 ]; then
  echo "usage: $0 INPUT OUTDIR [snappy|zstd] [CONFIG]" >&2
  exit 2
fi
input=$1 out=$2 compression=${3:-snappy} conf=${4:-test/bench/bench.yaml}
case "$compression" in snappy|zstd) ;; *) echo "compression: snappy or zstd" >&2; exit 2 ;; esac
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
  echo "$out is not empty" >&2
  exit 2
fi
. test/bench/duckdb-lib.sh
duckdb_install
spec=$(lake_spec "$conf")
timing=$(mktemp)
trap 'rm -f "$timing"' EXIT
/usr/bin/time -f "%e %U %S %M" -o "$timing" \
  node test/bench/duckdb.mjs copy "$spec" "$(realpath "$input")" "$(realpath -m "$out")" "$compression"
read -r wall user sys rss < "$timing"
bytes=$(find "$out" -name '*.parquet' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
objects=$(find "$out" -name '*.parquet' | wc -l)
awk -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v b="$bytes" -v o="$objects" -v c="$compression" \
  'BEGIN { printf "duckdb: wall=%.2f cpu=%.2f rss_kib=%d bytes=%d objects=%d compression=%s\n", w, u + s, r, b, o, c }'
