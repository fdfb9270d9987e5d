// Package hostile drives the built processor over a corpus of hostile
// input: huge values, jq that never ends, partition values that try to
// leave the lake root, unreadable files, a dead sink, many partitions,
// secrets in variables and loose values. Every case checks the same
// things: the process stays up (or exits with a clear error where that is
// the documented behaviour), the summary balances, every Parquet object
// opens in Apache Arrow, nothing is written outside the sinks' roots (the
// whole temp tree is listed), shutdown finishes within shutdown_timeout,
// and peak RSS stays under the case's bound.
package hostile

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluice-data/sluice/internal/testutil"
)

var processor string

func TestMain(m *testing.M) {
	os.Exit(testutil.RunWithBinary(m, "../../cmd/processor", &processor))
}

// hcase is one hostile run. The process runs in work/, a directory three
// levels below the case's temp root, so a key that climbs out of a sink
// lands somewhere the tree listing sees.
type hcase struct {
	name string
	// config is the YAML; sinks write under lake/ (relative to work/).
	config string
	// inputs are files under work/in, by relative path.
	inputs  map[string][]byte
	prepare func(t *testing.T, work string)
	env     []string
	// validate runs `processor validate` instead of `run`.
	validate bool
	// stop, when set, is called once the process has started; it
	// returns when the test should send SIGTERM.
	stop func(t *testing.T, work string)
	// shutdown is the config's shutdown_timeout, checked when stop is set.
	shutdown time.Duration

	wantCode int
	wantOut  []string // each must appear in stdout or stderr
	notOut   []string // none may appear in stdout or stderr (secrets)
	// remoteErrors counts, by type, error records a case's sinks wrote
	// somewhere other than the temp tree (an S3 fake).
	remoteErrors func(t *testing.T) map[string]int
	// maxRSSMiB bounds the process's peak resident memory.
	maxRSSMiB int64
	check     func(t *testing.T, r *result)
}

// result is what a run left behind.
type result struct {
	work           string
	code           int
	stdout, stderr string
	elapsed        time.Duration
	stopElapsed    time.Duration // from SIGTERM to exit
	maxRSSMiB      int64
	// errorsByType is the summary's "errors by type" line.
	errorsByType map[string]int64
	// errorFiles counts error records found on disk by type (the
	// directory named after the type, wherever it is under lake/).
	errorFiles map[string]int
	// parquetRows counts rows per Parquet object directory (relative to
	// lake/).
	parquetRows map[string]int
	objects     int
}

const errorsSink = `
  - name: errors
    type: s3
    url: file:lake/errors/
    format: ndjson
    error_prefix: "!{error-output-type}/"
`

func runCase(t *testing.T, c hcase) *result {
	t.Helper()
	root := t.TempDir()
	work := filepath.Join(root, "a", "b", "work")
	if err := os.MkdirAll(filepath.Join(work, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range c.inputs {
		p := filepath.Join(work, "in", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if c.prepare != nil {
		c.prepare(t, work)
	}
	cfgPath := filepath.Join(work, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(c.config), 0o644); err != nil {
		t.Fatal(err)
	}
	cmdName := "run"
	if c.validate {
		cmdName = "validate"
	}
	cmd := exec.Command(processor, cmdName, "-c", "config.yaml")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), c.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Peak RSS is the process's VmHWM, sampled until it exits: rusage's
	// maxrss would count the test process's own memory, which the child
	// shares until exec.
	var hwm atomic.Int64
	exited, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if kib := vmHWM(cmd.Process.Pid); kib > hwm.Load() {
				hwm.Store(kib)
			}
			select {
			case <-exited:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	done := make(chan error, 1)
	go func() { err := cmd.Wait(); close(exited); <-sampled; done <- err }()
	var stopAt time.Time
	if c.stop != nil {
		stopped := make(chan struct{})
		go func() { c.stop(t, work); close(stopped) }()
		select {
		case <-stopped:
			stopAt = time.Now()
			_ = cmd.Process.Signal(syscall.SIGTERM)
		case err := <-done:
			done <- err
		}
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s: the process did not end within 3 minutes (hung)\nstdout:\n%s\nstderr:\n%s", c.name, out.String(), tail(errb.String()))
	}
	r := &result{work: work, stdout: out.String(), stderr: errb.String(), elapsed: time.Since(start)}
	if !stopAt.IsZero() {
		r.stopElapsed = time.Since(stopAt)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	r.maxRSSMiB = hwm.Load() / 1024
	r.errorsByType = parseErrorsByType(r.stdout)
	checkCommon(t, c, root, r)
	t.Logf("exit %d after %s, peak RSS %d MiB, %d objects, errors %v", r.code, r.elapsed.Round(time.Millisecond), r.maxRSSMiB, r.objects, r.errorsByType)
	if c.check != nil && !t.Failed() {
		c.check(t, r)
	}
	return r
}

// vmHWM reads a process's peak resident set (KiB) from /proc, or 0 once
// it is gone.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

var balanceOK = regexp.MustCompile(`balance: \d+ in .*: ok`)

// checkCommon holds the checks every case gets.
func checkCommon(t *testing.T, c hcase, root string, r *result) {
	t.Helper()
	all := r.stdout + r.stderr
	if r.code != c.wantCode {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, c.wantCode, r.stdout, tail(r.stderr))
	}
	for _, w := range c.wantOut {
		if !strings.Contains(all, w) {
			t.Errorf("output lacks %q\nstdout:\n%s\nstderr:\n%s", w, r.stdout, tail(r.stderr))
		}
	}
	for _, w := range c.notOut {
		if strings.Contains(all, w) {
			t.Errorf("output contains %q, which it must never print", w)
		}
	}
	if !c.validate && c.wantCode == 0 && !balanceOK.MatchString(r.stdout) {
		t.Errorf("summary does not balance:\n%s", r.stdout)
	}
	if c.stop != nil && r.stopElapsed > c.shutdown+2*time.Second {
		t.Errorf("shutdown took %s after SIGTERM; shutdown_timeout is %s", r.stopElapsed, c.shutdown)
	}
	bound := c.maxRSSMiB
	if bound == 0 {
		bound = 400
	}
	if r.maxRSSMiB > bound {
		t.Errorf("peak RSS %d MiB, bound %d MiB", r.maxRSSMiB, bound)
	}
	// Nothing outside the sinks' roots: the whole temp tree may hold only
	// the config, the inputs and what is under lake/.
	r.parquetRows = map[string]int{}
	r.errorFiles = map[string]int{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a symlink loop the case made; listing goes on
		}
		rel, _ := filepath.Rel(filepath.Join(root, "a", "b", "work"), p)
		if !utf8.ValidString(rel) && !strings.HasPrefix(rel, "in"+string(filepath.Separator)) {
			t.Errorf("path %q is not valid UTF-8", rel)
		}
		if d.IsDir() {
			return nil
		}
		switch {
		case rel == "config.yaml", strings.HasPrefix(rel, "in"+string(filepath.Separator)):
			return nil
		case strings.HasPrefix(rel, "lake"+string(filepath.Separator)):
		default:
			t.Errorf("file written outside the sink roots: %s", p)
			return nil
		}
		inLake := strings.TrimPrefix(rel, "lake"+string(filepath.Separator))
		switch {
		case strings.HasSuffix(p, ".parquet"):
			r.objects++
			pf, err := testutil.ReadParquet(p)
			if err != nil {
				t.Errorf("Parquet object %s does not open in Arrow: %v", inLake, err)
				return nil
			}
			r.parquetRows[filepath.Dir(inLake)] += len(pf.Rows)
		case errorType(inLake) != "":
			r.errorFiles[errorType(inLake)] += countLines(t, p)
		default:
			r.objects++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.remoteErrors != nil {
		for typ, n := range c.remoteErrors(t) {
			r.errorFiles[typ] += n
		}
	}
	if !c.validate && c.wantCode == 0 {
		for typ, n := range r.errorsByType {
			if r.errorFiles[typ] != int(n) {
				t.Errorf("summary says %d %s error records; the error output holds %d", n, typ, r.errorFiles[typ])
			}
		}
		for typ, n := range r.errorFiles {
			if r.errorsByType[typ] != int64(n) {
				t.Errorf("the error output holds %d %s records; the summary says %d", n, typ, r.errorsByType[typ])
			}
		}
	}
}

// errorType is the error output type a path is filed under (a directory
// named after it, as the cases' error_prefix and the default put it), or
// "" for a data object.
func errorType(rel string) string {
	for _, seg := range strings.Split(filepath.Dir(rel), string(filepath.Separator)) {
		switch seg {
		case "processing-failed", "schema-mismatch", "sink-rejected", "partition-limit":
			return seg
		}
	}
	return ""
}

func countLines(t *testing.T, p string) int {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rd io.Reader = f
	if strings.HasSuffix(p, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		rd = zr
	}
	sc := bufio.NewScanner(rd)
	sc.Buffer(nil, 64<<20)
	n := 0
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Errorf("%s: error record is not JSON: %v", p, err)
		}
		if e["errorMessage"] == nil || e["errorMessage"] == "" {
			t.Errorf("%s: error record without a reason: %.200s", p, sc.Text())
		}
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return n
}

var errorsLine = regexp.MustCompile(`(?m)^errors by type: (.*)$`)

func parseErrorsByType(stdout string) map[string]int64 {
	m := map[string]int64{}
	sub := errorsLine.FindStringSubmatch(stdout)
	if sub == nil || sub[1] == "none" {
		return m
	}
	for _, part := range strings.Split(sub[1], ", ") {
		f := strings.Fields(part)
		if len(f) != 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		m[f[0]] = n
	}
	return m
}

// summaryCount reads a number from the summary table: the row named row,
// the column headed col.
func summaryCount(t *testing.T, stdout, row, col string) int64 {
	t.Helper()
	var header []string
	for _, l := range strings.Split(stdout, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if f[0] == "source" || f[0] == "route" || f[0] == "sink" {
			header = f
			continue
		}
		if f[0] != row || header == nil {
			continue
		}
		for i, h := range header {
			if h == col && i < len(f) {
				n, err := strconv.ParseInt(f[i], 10, 64)
				if err != nil {
					t.Fatalf("summary %s/%s: %q", row, col, f[i])
				}
				return n
			}
		}
	}
	t.Fatalf("summary has no %s/%s:\n%s", row, col, stdout)
	return 0
}

func ndjson(lines ...string) []byte { return []byte(strings.Join(lines, "\n") + "\n") }

func totalRows(r *result) int {
	n := 0
	for dir, rows := range r.parquetRows {
		if !strings.HasPrefix(dir, "errors") {
			n += rows
		}
	}
	return n
}

func gz(data []byte) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	zw.Close()
	return b.Bytes()
}

func fmtInt(n int) string { return fmt.Sprint(n) }
