#!/usr/bin/env bash
# Bench harness: generate N records (default 1,000,000) of a workload once,
# run the processor over them into a partitioned Parquet lake, report
# records/s, wall time, CPU time (and records per CPU-second) and peak RSS.
# For app_logs, the first run's lake is then read back whole by DuckDB and
# checked against the input (test/bench/lakecheck.sh; BENCH_LAKECHECK=0
# skips it).
# Usage: test/bench/run.sh [N] [runs] [app_logs|security|metrics]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-1000000}
runs=${2:-3}
workload=${3:-app_logs}
case "$workload" in
  app_logs) conf=test/bench/bench.yaml ;;
  security) conf=test/bench/security.yaml ;;
  metrics) conf=test/bench/metrics.yaml ;;
  *) echo "unknown workload $workload" >&2; exit 2 ;;
esac
data=test/bench/data
mkdir -p "$data"
input="$data/$workload-$n.ndjson"
if [ "$workload" = app_logs ]; then input="$data/app-logs-$n.ndjson"; fi
[ -s "$input" ] || go run ./test/bench/gen -workload "$workload" -n "$n" -o "$input"
go build -o "$data/processor" ./cmd/processor
echo "input: $input ($(du -h "$input" | cut -f1), $n records)"
for i in $(seq 1 "$runs"); do
  out=$(mktemp -d)
  start=$(date +%s.%N)
  BENCH_INPUT="$input" BENCH_OUT="$out/" /usr/bin/time -f "%M %U %S" -o "$data/time.txt" \
    "$data/processor" run -c "$conf" > "$data/summary.txt"
  end=$(date +%s.%N)
  read -r rss user sys < "$data/time.txt"
  files=$(find "$out" -name '*.parquet' | wc -l)
  parts=$(find "$out" -name '*.parquet' -printf '%h\n' | sort -u | wc -l)
  size=$(du -sm "$out" | cut -f1)
  awk -v n="$n" -v s="$start" -v e="$end" -v rss="$rss" -v u="$user" -v sy="$sys" -v f="$files" -v p="$parts" -v mb="$size" \
    'BEGIN { t = e - s; printf "run: %.2fs wall, %.0f records/s, cpu %.2fs (%.0f records per CPU-second), peak RSS %.0f MiB, %d objects in %d partitions, %d MiB\n", t, n / t, u + sy, n / (u + sy), rss / 1024, f, p, mb }'
  if [ "$i" = 1 ] && [ "$workload" = app_logs ] && [ "${BENCH_LAKECHECK:-1}" = 1 ]; then
    test/bench/lakecheck.sh "$out" "$input" "$conf"
  fi
  rm -rf "$out"
done
