#!/usr/bin/env bash
# Bench harness: generate N records (default 1,000,000) of a workload once,
# then, RUNS times (default 3; the README's table uses 5), run the job into
# a partitioned Parquet lake and measure wall time, CPU time (user+system),
# peak RSS, output bytes and objects of:
#
#   sluice  the processor, `run -c CONFIG`, on every core (2 here);
#   floor   test/bench/floor: the same job done bare (JSON decode and
#           parquet-go partitioned write with the sink's encoder options,
#           no routing, acks or fsync), on ONE core (app_logs only);
#   duckdb  test/bench/duckdb.sh INPUT OUTDIR COMPRESSION CONFIG: DuckDB's
#           COPY ... PARTITION_BY on 2 threads, which prints
#           "duckdb: wall=S cpu=S rss_kib=K bytes=B objects=N ..."
#           (app_logs only; "duckdb: not available" without the script or
#           when it fails, e.g. without Node.js).
#
# Each run goes sluice, floor, duckdb, so the three see the same machine
# within a minute. At the end it prints the medians as a Markdown table,
# with the ratios Sluice/floor and Sluice/DuckDB on the medians.
#
# Usage: test/bench/run.sh [N] [RUNS] [app_logs|security|metrics]
# Environment: BENCH_CONFIG (default test/bench/bench.yaml for app_logs),
# BENCH_COMPRESSION (snappy|zstd, default snappy), BENCH_DUCKDB=0 skips
# DuckDB, BENCH_FLOOR=0 skips the floor, BENCH_TMPDIR where the lakes are
# written (default: the system temp dir). Each lake is ~1,500 objects in
# ~1,800 new directories: on a busy ext4 disk creating those costs 1-2 ms
# of kernel CPU each, for every program alike; BENCH_TMPDIR=/dev/shm
# (tmpfs) measures the programs without it.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-1000000}
runs=${2:-3}
workload=${3:-app_logs}
compression=${BENCH_COMPRESSION:-snappy}
export BENCH_COMPRESSION=$compression
case "$workload" in
  app_logs) conf=${BENCH_CONFIG:-test/bench/bench.yaml} ;;
  security) conf=test/bench/security.yaml ;;
  metrics) conf=test/bench/metrics.yaml ;;
  *) echo "unknown workload $workload" >&2; exit 2 ;;
esac
others=yes
[ "$workload" = app_logs ] || others=no
data=test/bench/data
mkdir -p "$data"
input="$data/$workload-$n.ndjson"
if [ "$workload" = app_logs ]; then input="$data/app-logs-$n.ndjson"; fi
[ -s "$input" ] || go run ./test/bench/gen -workload "$workload" -n "$n" -o "$input"
go build -o "$data/processor" ./cmd/processor
floor=no
if [ "$others" = yes ] && [ "${BENCH_FLOOR:-1}" != 0 ]; then
  go build -o "$data/floor" ./test/bench/floor
  floor=yes
fi
duckdb=no
if [ "$others" = yes ] && [ "${BENCH_DUCKDB:-1}" != 0 ] && [ -x test/bench/duckdb.sh ]; then
  duckdb=yes
fi
echo "input: $input ($(du -h "$input" | cut -f1), $n records), $conf, $compression, $runs runs, lakes under ${BENCH_TMPDIR:-${TMPDIR:-/tmp}}"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
tmp=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}

# measure NAME OUT CMD...: runs CMD under /usr/bin/time and appends
# "NAME wall cpu rss_kib bytes objects" to the results.
measure() {
  local name=$1 out=$2
  shift 2
  local timing
  timing=$(mktemp)
  if ! /usr/bin/time -f "%e %U %S %M" -o "$timing" "$@" > "$data/$name.out" 2> "$data/$name.err"; then
    echo "$name failed:" >&2
    tail -5 "$data/$name.err" >&2
    rm -f "$timing"
    exit 1
  fi
  local wall user sys rss
  read -r wall user sys rss < "$timing"
  rm -f "$timing"
  record "$name" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" "$rss" "$out" "user $user + sys $sys"
}

# record NAME WALL CPU RSS_KIB OUTDIR [NOTE]: appends a result and prints it.
record() {
  local bytes objects
  bytes=$(find "$5" -name '*.parquet' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
  objects=$(find "$5" -name '*.parquet' | wc -l)
  echo "$1 $2 $3 $4 $bytes $objects" >> "$results"
  awk -v n="$1" -v w="$2" -v c="$3" -v r="$4" -v b="$bytes" -v o="$objects" -v recs="$n" -v note="${6:-}" \
    'BEGIN { printf "  %-7s wall %6.2f s  cpu %6.2f s (%.2f s per M records%s)  peak RSS %4.0f MiB  %d bytes in %d objects\n", n, w, c, c / recs * 1e6, (note == "" ? "" : "; " note), r / 1024, b, o }'
}

for i in $(seq 1 "$runs"); do
  echo "run $i"
  out=$(mktemp -d -p "$tmp")
  BENCH_INPUT="$input" BENCH_OUT="$out/" measure sluice "$out" "$data/processor" run -c "$conf"
  # The first run's lake is read back whole by DuckDB and checked against
  # the input (test/bench/lakecheck.sh; BENCH_LAKECHECK=0 skips it).
  if [ "$i" = 1 ] && [ "$workload" = app_logs ] && [ "${BENCH_LAKECHECK:-1}" = 1 ]; then
    test/bench/lakecheck.sh "$out" "$input" "$conf"
  fi
  rm -rf "$out"
  if [ "$floor" = yes ]; then
    out=$(mktemp -d -p "$tmp")
    GOMAXPROCS=1 measure floor "$out" "$data/floor" -c "$conf" -i "$input" -o "$out"
    rm -rf "$out"
  fi
  if [ "$duckdb" = yes ]; then
    out=$(mktemp -d -p "$tmp")
    rmdir "$out"
    if line=$(test/bench/duckdb.sh "$(realpath "$input")" "$out" "$compression" "$(realpath "$conf")" 2> "$data/duckdb.err" | grep '^duckdb:'); then
      # duckdb: wall=S cpu=S rss_kib=K bytes=B objects=N ...
      get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< " ${line#duckdb:}"; }
      record duckdb "$(get wall)" "$(get cpu)" "$(get rss_kib)" "$out"
    else
      echo "  duckdb: not available ($(tail -1 "$data/duckdb.err"))"
      duckdb=no
    fi
    rm -rf "$out"
  elif [ "$others" = yes ] && [ "$i" = 1 ]; then
    echo "  duckdb: not available"
  fi
done

# The medians, then the ratios of Sluice's to the floor's and DuckDB's.
echo
echo "medians of $runs runs, $n records ($compression):"
echo
awk -v recs="$n" '
  function median(name, f,    k, i, j, t, a) {
    k = 0
    for (i = 1; i <= rows; i++) if (who[i] == name) a[++k] = val[i, f]
    for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    if (k == 0) return ""
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  { rows++; who[rows] = $1; for (f = 2; f <= 6; f++) val[rows, f] = $f; seen[$1] = 1 }
  END {
    label["sluice"] = "Sluice (2 cores)"; label["floor"] = "floor (1 core)"; label["duckdb"] = "DuckDB (2 threads)"
    print "| | wall | CPU-s | CPU-s per M records | peak RSS | output bytes | objects |"
    print "|---|---|---|---|---|---|---|"
    split("sluice floor duckdb", names, " ")
    for (i = 1; i <= 3; i++) {
      s = names[i]
      if (!seen[s]) continue
      for (f = 2; f <= 6; f++) m[s, f] = median(s, f)
      printf "| %s | %.2f s | %.2f | %.2f | %.0f MiB | %.1f MB | %d |\n", label[s], m[s, 2], m[s, 3], m[s, 3] / recs * 1e6, m[s, 4] / 1024, m[s, 5] / 1e6, m[s, 6]
    }
    for (i = 2; i <= 3; i++) {
      s = names[i]
      if (!seen[s] || !seen["sluice"]) continue
      printf "| Sluice / %s | %.2f× | %.2f× | %.2f× | %.2f× | %.2f× | %.2f× |\n", (s == "floor" ? "floor" : "DuckDB"),
        m["sluice", 2] / m[s, 2], m["sluice", 3] / m[s, 3], m["sluice", 3] / m[s, 3], m["sluice", 4] / m[s, 4],
        m["sluice", 5] / m[s, 5], m["sluice", 6] / m[s, 6]
    }
  }' "$results"
