# Sourced by test/run.sh: installs (once) and starts the Kinesis and
# DynamoDB emulators the Kinesis tests need, exports their endpoints, and
# stops them when the shell exits.
if [ -n "${SLUICE_TEST_KINESIS_ENDPOINT:-}" ] && curl -s -o /dev/null "$SLUICE_TEST_KINESIS_ENDPOINT" && \
   [ -n "${SLUICE_TEST_DYNAMODB_ENDPOINT:-}" ] && curl -s -o /dev/null "$SLUICE_TEST_DYNAMODB_ENDPOINT"; then
  return 0 # already running (started by .ci/run)
fi
emu_dir="$(pwd)/test/emulators"
if [ ! -x "$emu_dir/node_modules/.bin/kinesalite" ] || [ ! -x "$emu_dir/node_modules/.bin/dynalite" ]; then
  echo "== installing kinesalite@3.3.3 and dynalite@4.0.0 (npm)"
  mkdir -p "$emu_dir"
  (cd "$emu_dir" && npm install --no-audit --no-fund --loglevel=error --prefix . kinesalite@3.3.3 dynalite@4.0.0 >/dev/null)
fi
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
kin_port=$(free_port)
ddb_port=$(free_port)
"$emu_dir/node_modules/.bin/kinesalite" --port "$kin_port" --shardLimit 1000 --createStreamMs 0 --deleteStreamMs 0 --updateStreamMs 0 >"$emu_dir/kinesalite.log" 2>&1 &
kin_pid=$!
"$emu_dir/node_modules/.bin/dynalite" --port "$ddb_port" --createTableMs 0 --deleteTableMs 0 --updateTableMs 0 >"$emu_dir/dynalite.log" 2>&1 &
ddb_pid=$!
trap 'kill $kin_pid $ddb_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  if curl -s -o /dev/null "http://127.0.0.1:$kin_port/" && curl -s -o /dev/null "http://127.0.0.1:$ddb_port/"; then break; fi
  sleep 0.1
done
export SLUICE_TEST_KINESIS_ENDPOINT="http://127.0.0.1:$kin_port"
export SLUICE_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port"
echo "== kinesalite at $SLUICE_TEST_KINESIS_ENDPOINT, dynalite at $SLUICE_TEST_DYNAMODB_ENDPOINT"
