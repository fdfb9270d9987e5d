#!/usr/bin/env bash
# Bench harness: generate N app-log records (default 1,000,000) once, run the
# processor over them into a partitioned Parquet lake, report records/s,
# wall time, CPU time and peak RSS. Usage: test/bench/run.sh [N] [runs]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-1000000}
runs=${2:-3}
data=test/bench/data
mkdir -p "$data"
input="$data/app-logs-$n.ndjson"
[ -s "$input" ] || go run ./test/bench/gen -n "$n" -o "$input"
go build -o "$data/processor" ./cmd/processor
echo "input: $input ($(du -h "$input" | cut -f1), $n records)"
for i in $(seq 1 "$runs"); do
  out=$(mktemp -d)
  start=$(date +%s.%N)
  BENCH_INPUT="$input" BENCH_OUT="$out/" /usr/bin/time -f "%M %U %S" -o "$data/time.txt" \
    "$data/processor" run -c test/bench/bench.yaml > "$data/summary.txt"
  end=$(date +%s.%N)
  read -r rss user sys < "$data/time.txt"
  files=$(find "$out" -name '*.parquet' | wc -l)
  parts=$(find "$out" -name '*.parquet' -printf '%h\n' | sort -u | wc -l)
  size=$(du -sm "$out" | cut -f1)
  awk -v n="$n" -v s="$start" -v e="$end" -v rss="$rss" -v u="$user" -v sy="$sys" -v f="$files" -v p="$parts" -v mb="$size" \
    'BEGIN { t = e - s; printf "run: %.2fs wall, %.0f records/s, cpu %.2fs, peak RSS %.0f MiB, %d objects in %d partitions, %d MiB\n", t, n / t, u + sy, rss / 1024, f, p, mb }'
  rm -rf "$out"
done
