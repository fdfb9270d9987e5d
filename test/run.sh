#!/usr/bin/env bash
# The test command (README). Runs every test, unit and integration, against
# the real parts it needs. This build's tests need no external emulator:
# the file store, the built binary and Apache Arrow's Parquet reader all run
# in-process. Later sources and sinks add their emulators here.
set -euo pipefail
cd "$(dirname "$0")/.."
go version
go test -count=1 ./...
