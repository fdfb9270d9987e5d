package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-data/sluice/internal/testutil"
)

// BenchmarkBenchWorkload runs `processor run -c test/bench/bench.yaml`
// in-process, the harness's job (test/bench/run.sh), so that
// `go test -bench BenchWorkload -cpuprofile cpu.prof -memprofile mem.prof`
// profiles exactly what the harness measures. SLUICE_BENCH_INPUT names an
// existing input (test/bench/data/app-logs-N.ndjson); without it 200,000
// records are generated.
func BenchmarkBenchWorkload(b *testing.B) {
	dir := b.TempDir()
	in := os.Getenv("SLUICE_BENCH_INPUT")
	if in == "" {
		in = filepath.Join(dir, "in.ndjson")
		f, err := os.Create(in)
		if err != nil {
			b.Fatal(err)
		}
		if err := testutil.WriteAppLogs(f, 200000); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	st, err := os.Stat(in)
	if err != nil {
		b.Fatal(err)
	}
	b.Setenv("BENCH_INPUT", in)
	b.SetBytes(st.Size())
	b.ReportAllocs()
	run := 0
	for b.Loop() {
		// A fresh output each time: a second run into the same one would
		// find every record durable and skip it.
		run++
		out := filepath.Join(dir, "out", string(rune('a'+run%26)), "")
		os.RemoveAll(out)
		b.Setenv("BENCH_OUT", out+"/")
		if err := runMain(b, []string{"run", "-c", "../../test/bench/bench.yaml"}); err != nil {
			b.Fatal(err)
		}
	}
}

func runMain(b *testing.B, args []string) error {
	b.Helper()
	return run(context.Background(), args, io.Discard, io.Discard)
}
