# Sourced by duckdb.sh and lakecheck.sh: installs DuckDB's Node.js client
# (pinned) into test/bench/.duckdb on first use, and prints a sink's
# columns and keys (test/bench/lakespec) for test/bench/duckdb.mjs.
# Nothing here runs from the README's commands or test/run.sh.
duckdb_version=1.5.6-r.1
export DUCKDB_CACHE="$PWD/test/bench/.duckdb"

duckdb_install() {
  local have
  have=$(node -p "require('$DUCKDB_CACHE/node_modules/@duckdb/node-api/package.json').version" 2>/dev/null || true)
  if [ "$have" != "$duckdb_version" ]; then
    echo "installing @duckdb/node-api@$duckdb_version into $DUCKDB_CACHE" >&2
    mkdir -p "$DUCKDB_CACHE"
    npm install --prefix "$DUCKDB_CACHE" --no-save --no-audit --no-fund --loglevel=error \
      "@duckdb/node-api@$duckdb_version" >&2
  fi
}

# lake_spec CONFIG prints the JSON description of CONFIG's Parquet sink.
lake_spec() {
  go run ./test/bench/lakespec -c "$1"
}
