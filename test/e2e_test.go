// Package test holds end-to-end tests of the built processor binary.
package test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/testutil"
)

var processor string

func TestMain(m *testing.M) {
	os.Exit(testutil.RunWithBinary(m, "../cmd/processor", &processor))
}

func repoRoot(t *testing.T) string {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// workdir is a temp dir where test/ and configs/ point into the repo, so
// the local default writes its ./out there.
func workdir(t *testing.T) string {
	dir := t.TempDir()
	for _, d := range []string{"test", "configs"} {
		if err := os.Symlink(filepath.Join(repoRoot(t), d), filepath.Join(dir, d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(repoRoot(t), "internal/athena/testdata/seed.yaml"), filepath.Join(dir, "internal-athena-seed.yaml")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func runProcessor(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(processor, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		contains string
	}{
		{nil, 2, "usage: processor"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"run"}, 2, "-c FILE is required"},
		{[]string{"run", "-c", "x.yaml", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"validate", "-c", "configs/local.yaml", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"validate", "-c", "configs/local.yaml"}, 0, "OK"},
		{[]string{"validate", "-c", "no-such.yaml"}, 1, "no such file"},
		{[]string{"version"}, 0, "sluice "},
		{[]string{"athena-ddl", "-c", "configs/local.yaml"}, 2, "--sink NAME is required"},
		{[]string{"athena-ddl", "-c", "internal-athena-seed.yaml", "--sink", "app-lake", "--injected", "project_id,plan_ver"}, 0, "'storage.location.template'='s3://mozart-lake/app-logs/project_id=${project_id_path}"},
		{[]string{"athena-ddl", "-c", "internal-athena-seed.yaml", "--sink", "app-lake"}, 0, "or --injected project_id,plan_ver"},
		{[]string{"athena-ddl", "-c", "internal-athena-seed.yaml", "--sink", "app-lake", "--injected", "project_id", "--enum", "plan_ver=v1,v2", "--years", "2019-2030"}, 0, "'projection.year.range'='2019,2030'"},
		{[]string{"athena-ddl", "-c", "internal-athena-seed.yaml", "--sink", "app-lake", "--years", "2019"}, 2, "--years: years \"2019\": want FIRST-LAST"},
		{[]string{"athena-ddl", "-c", "configs/local.yaml", "--sink", "app-lake", "--injected", "project_id,plan_ver"}, 0, "LOCATION 's3://YOUR-BUCKET/app-logs/'"},
	}
	dir := workdir(t)
	for _, tt := range tests {
		out, errs, code := runProcessor(t, dir, tt.args...)
		if code != tt.code || !strings.Contains(out+errs, tt.contains) {
			t.Errorf("processor %v: exit %d, output %q; want exit %d containing %q", tt.args, code, out+errs, tt.code, tt.contains)
		}
	}
}

func TestValidateNamesFileLineKey(t *testing.T) {
	dir := workdir(t)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("service: {error_sink: lake}\nsources:\n  - {name: a, type: file, file: {paths: [x]}}\nroutes:\n  - {name: r, from: [a], to: [laek]}\nsinks:\n  - {name: lake, type: s3, url: 'file:o/', format: ndjson, bufer: {}}\n"), 0o644)
	_, errs, code := runProcessor(t, dir, "validate", "-c", bad)
	want := bad + `:7: sinks[0].bufer: unknown key "bufer" (did you mean "buffer"?)`
	if code != 1 || !strings.Contains(errs, want) {
		t.Errorf("exit %d, stderr:\n%s\nwant %s", code, errs, want)
	}
}

type appLog struct {
	ProjectID      string          `json:"project_id"`
	PlanVer        *string         `json:"plan_ver"`
	EventTimestamp json.RawMessage `json:"event_timestamp"`
}

// expectedAppPartitions reads the local default's app logs with
// encoding/json and computes rows per Hive partition the way the seed's
// Firehose keys do.
func expectedAppPartitions(t *testing.T) map[string]int {
	want := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(repoRoot(t), "test/testdata/app_logs/*"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = fh
		if strings.HasSuffix(f, ".gz") {
			if r, err = gzip.NewReader(fh); err != nil {
				t.Fatal(err)
			}
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l appLog
			if json.Unmarshal(sc.Bytes(), &l) != nil || l.PlanVer == nil {
				continue
			}
			var ts float64
			if json.Unmarshal(l.EventTimestamp, &ts) != nil {
				continue // strings fail strftime, as in jq
			}
			tm := time.Unix(int64(ts), 0).UTC()
			pid := strings.NewReplacer("/", "%2F", "=", "%3D").Replace(l.ProjectID)
			key := fmt.Sprintf("project_id=%s/plan_ver=%s/year=%d/month=%02d/day=%02d/hour=%02d", pid, *l.PlanVer, tm.Year(), tm.Month(), tm.Day(), tm.Hour())
			want[key]++
		}
		fh.Close()
	}
	return want
}

// TestLocalDefault runs the README's first command and checks the lake.
func TestLocalDefault(t *testing.T) {
	dir := workdir(t)
	stdout, stderr, code := runProcessor(t, dir, "run", "-c", "configs/local.yaml")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !regexp.MustCompile(`balance: \d+ in .*: ok`).MatchString(stdout) {
		t.Fatalf("summary has no balanced accounting:\n%s", stdout)
	}
	// A table location holds Parquet only: DuckDB's
	// read_parquet('out/lake/app-logs/**') fails on anything else.
	for _, table := range []string{"out/lake/app-logs", "out/lake/security", "out/lake/metrics"} {
		for rel := range testutil.TreeHashes(filepath.Join(dir, table)) {
			if !strings.HasSuffix(rel, ".parquet") {
				t.Errorf("%s holds %s, not Parquet", table, rel)
			}
		}
	}
	lake := filepath.Join(dir, "out/lake/app-logs")
	got := map[string]int{}
	for rel := range testutil.TreeHashes(lake) {
		pf, err := testutil.ReadParquet(filepath.Join(lake, rel))
		if err != nil {
			t.Fatal(err)
		}
		got[filepath.Dir(rel)] += len(pf.Rows)
		for _, r := range pf.Rows {
			ts, _ := r["event_timestamp"].(json.Number).Int64()
			want := ts * 1000
			if ts > 1e11 {
				want = ts
			}
			tu, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r["time_utc"]))
			if err != nil || tu.UnixMilli() != want || tu.Location() != time.UTC {
				t.Fatalf("%s: time_utc %v for event_timestamp %d", rel, r["time_utc"], ts)
			}
		}
	}
	want := expectedAppPartitions(t)
	if len(want) < 100 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rows per partition differ (%d partitions written, %d expected)", len(got), len(want))
	}
	// Security findings: only HIGH and CRITICAL, all in Parquet.
	for rel := range testutil.TreeHashes(filepath.Join(dir, "out/lake/security")) {
		if !strings.HasSuffix(rel, ".parquet") {
			continue
		}
		pf, err := testutil.ReadParquet(filepath.Join(dir, "out/lake/security", rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range pf.Rows {
			// One spelling per level: the routes write the canonical label.
			if s := r["severity"]; s != "HIGH" && s != "CRITICAL" {
				t.Errorf("severity %v in the HIGH+ lake", s)
			}
		}
	}
	// CSV outputs parse as RFC 4180 with a constant column count, and
	// their headers are plain names (owner_team, not owner.team).
	for _, d := range []string{"out/csv/metrics", "out/csv/app-alerts"} {
		for rel := range testutil.TreeHashes(filepath.Join(dir, d)) {
			if h := checkCSV(t, filepath.Join(dir, d, rel)); strings.Contains(strings.Join(h, ","), ".") {
				t.Errorf("%s: header %v has a dotted name", rel, h)
			}
		}
	}
	// The malformed lines are in the error output with their reason.
	errs := 0
	for rel := range testutil.TreeHashes(filepath.Join(dir, "out/errors")) {
		b, _ := os.ReadFile(filepath.Join(dir, "out/errors", rel))
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var e map[string]any
			if err := json.Unmarshal([]byte(l), &e); err != nil || e["rawData"] == "" || e["errorMessage"] == "" {
				t.Errorf("bad error record %q", l)
			}
			errs++
		}
	}
	if errs < 5 {
		t.Errorf("only %d error records", errs)
	}
	// The same command again leaves the same objects, byte for byte.
	first := testutil.TreeHashes(filepath.Join(dir, "out"))
	if _, _, code := runProcessor(t, dir, "run", "-c", "configs/local.yaml"); code != 0 {
		t.Fatal("second run failed")
	}
	if second := testutil.TreeHashes(filepath.Join(dir, "out")); fmt.Sprint(first) != fmt.Sprint(second) {
		t.Errorf("second run changed the output (%d vs %d objects)", len(first), len(second))
	}
}

// TestSIGTERMFlushes stops a run midway: exit 0, and every record read is
// in the lake or the error output.
func TestSIGTERMFlushes(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "in.ndjson")
	gen := exec.Command("go", "run", "./bench/gen", "-n", "400000", "-o", input)
	gen.Stderr = os.Stderr
	if err := gen.Run(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(processor, "run", "-c", filepath.Join(repoRoot(t), "test/bench/bench.yaml"))
	cmd.Env = append(os.Environ(), "BENCH_INPUT="+input, "BENCH_OUT="+filepath.Join(dir, "out")+"/")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, out.String())
	}
	m := regexp.MustCompile(`app-logs\s+(\d+)\s+(\d+)`).FindStringSubmatch(out.String())
	if m == nil || !strings.Contains(out.String(), ": ok") {
		t.Fatalf("summary:\n%s", out.String())
	}
	var read int
	fmt.Sscan(m[2], &read)
	rows := 0
	for rel := range testutil.TreeHashes(filepath.Join(dir, "out")) {
		pf, err := testutil.ReadParquet(filepath.Join(dir, "out", rel))
		if err != nil {
			t.Fatal(err)
		}
		rows += len(pf.Rows)
	}
	if rows != read {
		t.Errorf("read %d records before SIGTERM, lake holds %d", read, rows)
	}
	if read == 400000 {
		t.Logf("the run finished before the signal; nothing was cut short")
	}
}

func checkCSV(t *testing.T, path string) (header []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csvReadAll(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for i, r := range recs {
		if len(r) != len(recs[0]) {
			t.Fatalf("%s row %d: %d fields, header has %d", path, i, len(r), len(recs[0]))
		}
	}
	if len(recs) == 0 {
		return nil
	}
	return recs[0]
}
