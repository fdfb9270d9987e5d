package test

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/testutil"
)

const crashConfig = `
service: {name: crash, http_listen: "", log_level: warn, error_sink: lake, workers: 2}
sources:
  - name: app-logs
    type: file
    format: app_log
    batch_size: 500
    file: {paths: ["${IN}"]}
routes:
  - {name: all, from: [app-logs], to: [lake]}
sinks:
  - name: lake
    type: s3
    url: "file:${OUT}/"
    format: parquet
    partition_keys:
      project_id: .project_id
      day: '.event_timestamp| strftime("%d")'
      hour: '.event_timestamp| strftime("%H")'
    schema:
      - {name: id, type: string}
      - {name: project_id, type: string}
      - {name: event_timestamp, type: int64}
      - {name: message, type: string}
    buffer: {max_records: ${MAX_RECORDS}, interval: ${INTERVAL}}
    concurrency: 4
`

// TestCrashExactlyOnce runs the processor over 200,000 records, kills it
// with SIGKILL at random points several times and restarts it each time
// with different buffer cut points; the file source re-delivers
// everything. Afterwards Apache Arrow reads every Parquet object and each
// record id is in the lake exactly once.
func TestCrashExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: 200,000 records and several processes")
	}
	const n = 200_000
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	writeIdentifiedLogs(t, in, n)
	os.WriteFile(filepath.Join(dir, "crash.yaml"), []byte(crashConfig), 0o644)
	out := filepath.Join(dir, "out")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	kills := 0
	for attempt := 0; ; attempt++ {
		env := append(os.Environ(), "IN="+in, "OUT="+out,
			fmt.Sprintf("MAX_RECORDS=%d", 200+rng.IntN(3000)), fmt.Sprintf("INTERVAL=%dms", 20+rng.IntN(300)))
		cmd := exec.Command(processor, "run", "-c", filepath.Join(dir, "crash.yaml"))
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if attempt < 5 {
			delay := time.Duration(50+rng.IntN(900)) * time.Millisecond
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("run %d: %v\n%s", attempt, err, stderr.String())
				}
				t.Logf("run %d finished before its kill at %v", attempt, delay)
			case <-time.After(delay):
				cmd.Process.Signal(syscall.SIGKILL)
				<-done
				kills++
				t.Logf("run %d killed after %v", attempt, delay)
				continue
			}
		} else if err := cmd.Wait(); err != nil {
			t.Fatalf("final run: %v\n%s", err, stderr.String())
		}
		if !strings.Contains(stdout.String(), ": ok") {
			t.Fatalf("summary:\n%s", stdout.String())
		}
		t.Logf("final run summary:\n%s", stdout.String())
		break
	}
	if kills < 2 {
		t.Logf("only %d runs were killed mid-stream", kills)
	}
	counts, objects := parquetIDs(t, out)
	exactlyOnce(t, counts, n)
	t.Logf("%d kills; %d objects; every one of %d records exactly once", kills, objects, n)
}

// writeIdentifiedLogs writes n app-log lines, each with a unique "id".
func writeIdentifiedLogs(t *testing.T, path string, n int) {
	var buf bytes.Buffer
	if err := testutil.WriteAppLogs(&buf, n); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	i := 0
	for sc.Scan() {
		fmt.Fprintf(w, `{"id":"r%06d",%s`+"\n", i, sc.Bytes()[1:])
		i++
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// parquetIDs has Apache Arrow read every Parquet object under dir and
// counts each value of the id column; any other object is an error.
func parquetIDs(t *testing.T, dir string) (counts map[string]int, objects int) {
	t.Helper()
	counts = map[string]int{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || strings.HasPrefix(info.Name(), ".") {
			return err
		}
		if !strings.HasSuffix(p, ".parquet") {
			return fmt.Errorf("unexpected object %s", p)
		}
		objects++
		pf, err := testutil.ReadParquet(p)
		if err != nil {
			return err
		}
		for _, row := range pf.Rows {
			id, _ := row["id"].(string)
			counts[id]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return counts, objects
}

// exactlyOnce fails unless ids r000000..r(n-1) each appear once and
// nothing else does.
func exactlyOnce(t *testing.T, counts map[string]int, n int) {
	t.Helper()
	bad, known := 0, 0
	for i := range n {
		id := fmt.Sprintf("r%06d", i)
		if c := counts[id]; c != 1 {
			if bad++; bad <= 10 {
				t.Errorf("record %s is in the lake %d times", id, c)
			}
		}
		if counts[id] > 0 {
			known++
		}
	}
	if bad > 0 || len(counts) != known {
		t.Fatalf("%d records not exactly once, %d unknown ids", bad, len(counts)-known)
	}
}
