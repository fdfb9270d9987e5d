#!/usr/bin/env bash
# Memory bench for S3 output: writes about 1 GiB of objects through the S3
# transfer manager (multipart) to a fake S3 in its own process, and reports
# the processor's peak RSS. Usage: test/bench/s3mem.sh [N records] [max_bytes]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-2300000}
maxbytes=${2:-64MiB}
data=test/bench/data
mkdir -p "$data"
input="$data/app-logs-$n.ndjson"
[ -s "$input" ] || go run ./test/bench/gen -n "$n" -o "$input"
go build -o "$data/processor" ./cmd/processor
go build -o "$data/fakes3" ./test/bench/fakes3
store=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
"$data/fakes3" -dir "$store" -addr "127.0.0.1:$port" -bucket lake 2>"$data/fakes3.log" &
fake=$!
trap 'kill $fake 2>/dev/null; rm -rf "$store"' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
cat > "$data/s3mem.yaml" <<YAML
service: {name: s3mem, http_listen: "", log_level: warn, error_sink: lake}
sources:
  - {name: app-logs, type: file, format: app_log, file: {paths: ["$input"]}}
routes:
  - {name: all, from: [app-logs], to: [lake]}
sinks:
  - name: lake
    type: s3
    url: s3://lake/logs/
    endpoint: http://127.0.0.1:$port
    region: us-east-1
    format: ndjson
    buffer: {max_bytes: $maxbytes}
YAML
start=$(date +%s.%N)
AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench /usr/bin/time -f "%M %U %S" -o "$data/time.txt" \
  "$data/processor" run -c "$data/s3mem.yaml" > "$data/summary.txt"
end=$(date +%s.%N)
read -r rss user sys < "$data/time.txt"
bytes=$(awk '$1 == "lake" { print $7 }' "$data/summary.txt")
objects=$(awk '$1 == "lake" { print $6 }' "$data/summary.txt")
awk -v n="$n" -v s="$start" -v e="$end" -v rss="$rss" -v b="$bytes" -v o="$objects" -v mb="$maxbytes" \
  'BEGIN { t = e - s; printf "s3 (max_bytes %s): %.2fs, %.0f records/s, %.2f GiB in %d objects, peak RSS %.0f MiB\n", mb, t, n / t, b / 1073741824, o, rss / 1024 }'
