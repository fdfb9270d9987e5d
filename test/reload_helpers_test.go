package test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/testutil"
)

// The helpers of the reload end-to-end tests: a processor running in the
// background whose JSON log and /metrics the test reads, configuration
// files replaced the way editors and ConfigMaps replace them, and the
// lake read back row by row with Apache Arrow.

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// configHash is how the processor names a configuration document in its
// log and in sluice_config_info: the first 12 hex digits of the SHA-256
// of its bytes, before ${VAR} expansion.
func configHash(doc string) string {
	h := sha256.Sum256([]byte(doc))
	return hex.EncodeToString(h[:])[:12]
}

// replaceFile writes data to a temporary file beside path and renames it
// over path, as editors and mounted ConfigMaps do: the file watch must see
// the rename, not a write.
func replaceFile(t *testing.T, path, data string) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(25 * time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
	}
}

// service is a processor running `run -c` in the background.
type service struct {
	name   string
	cmd    *exec.Cmd
	stdout lockedBuffer
	stderr lockedBuffer
	http   string // host:port of its HTTP listener
	done   chan struct{}
	err    error // the exit, once done is closed
}

// startService starts the processor on cfgPath with env added to the
// test's environment. When the test fails, the tail of its log is shown;
// a service still running at the end is killed.
func startService(t *testing.T, name, cfgPath, httpAddr string, env ...string) *service {
	t.Helper()
	s := &service{name: name, http: httpAddr, done: make(chan struct{})}
	s.cmd = exec.Command(processor, "run", "-c", cfgPath)
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			lines := strings.Split(strings.TrimSpace(s.stderr.String()), "\n")
			t.Logf("%s: last log lines:\n%s\nstdout:\n%s", name, strings.Join(lines[max(0, len(lines)-60):], "\n"), s.stdout.String())
		}
	})
	return s
}

// logs returns the processor's JSON log lines, decoded; lines that are
// not JSON are left out.
func (s *service) logs() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.stderr.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// countLogs counts the log lines whose message starts with one of msgs.
func (s *service) countLogs(msgs ...string) int {
	n := 0
	for _, l := range s.logs() {
		m, _ := l["msg"].(string)
		for _, want := range msgs {
			if strings.HasPrefix(m, want) {
				n++
				break
			}
		}
	}
	return n
}

// waitLog waits up to 30 s for a log line for which match holds, and
// returns it; what names the line in a failure. The process ending first
// fails the test.
func (s *service) waitLog(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(25 * time.Millisecond) {
		for _, l := range s.logs() {
			if match(l) {
				return l
			}
		}
		select {
		case <-s.done:
			t.Fatalf("%s ended (%v) before it logged %s", s.name, s.err, what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no log line %s within 30 s", s.name, what)
		}
	}
}

// logged matches the log lines with message msg.
func logged(msg string) func(map[string]any) bool {
	return func(l map[string]any) bool { return l["msg"] == msg }
}

// waitReloaded waits for the log line that says the document doc (which
// the test calls what) runs, and returns it.
func (s *service) waitReloaded(t *testing.T, what, doc string) map[string]any {
	t.Helper()
	h := configHash(doc)
	return s.waitLog(t, fmt.Sprintf("configuration reloaded (%s, hash %s)", what, h), func(l map[string]any) bool {
		return l["msg"] == "configuration reloaded" && l["hash"] == h
	})
}

// metrics returns the /metrics text; "" when it cannot be read.
func (s *service) metrics() string {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.http + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metric returns the value of one series, spelled as /metrics spells it
// (`sluice_config_reloads_total{result="rejected"}`), and whether it is
// there.
func (s *service) metric(series string) (float64, bool) {
	return metricIn(s.metrics(), series)
}

func metricIn(text, series string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// series lists the series of metric name in text, as `name{labels}`.
func series(text, name string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			out = append(out, line)
		}
	}
	return out
}

// stop sends SIGTERM and waits up to 60 s for exit 0.
func (s *service) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if s.err != nil {
			t.Fatalf("%s: exit after SIGTERM: %v", s.name, s.err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: no exit 60 s after SIGTERM", s.name)
	}
	if !strings.Contains(s.stdout.String(), ": ok") {
		t.Errorf("%s: the summary does not balance:\n%s", s.name, s.stdout.String())
	}
}

// ready reports whether /readyz answers 200.
func (s *service) ready() bool {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.http + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// readiness polls /readyz until stop is called, and says how often it was
// not 200 and what the first such answer was.
func (s *service) readiness() (stop func() (bad, polls int, first string)) {
	quit := make(chan struct{})
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		badN   int
		pollN  int
		reason string
	)
	c := http.Client{Timeout: 5 * time.Second}
	wg.Go(func() {
		for {
			select {
			case <-quit:
				return
			case <-time.After(25 * time.Millisecond):
			}
			resp, err := c.Get("http://" + s.http + "/readyz")
			why := ""
			if err != nil {
				why = err.Error()
			} else {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					why = fmt.Sprintf("%d %s", resp.StatusCode, b)
				}
			}
			mu.Lock()
			pollN++
			if why != "" {
				if badN++; reason == "" {
					reason = why
				}
			}
			mu.Unlock()
		}
	})
	return func() (int, int, string) {
		close(quit)
		wg.Wait()
		return badN, pollN, reason
	}
}

// lakeRow is one row of a Parquet object, with the object's path
// relative to the sink's directory.
type lakeRow struct {
	rel string
	row map[string]any
}

// str and num read a column of the row as Arrow renders it to JSON.
func (r lakeRow) str(col string) string {
	s, _ := r.row[col].(string)
	return s
}

func (r lakeRow) num(col string) (int64, bool) {
	n, ok := r.row[col].(json.Number)
	if !ok {
		return 0, false
	}
	v, err := n.Int64()
	return v, err == nil
}

// lakeRows has Apache Arrow read every object under dir; anything that is
// not Parquet fails the test. A missing dir has no rows.
func lakeRows(t *testing.T, dir string) []lakeRow {
	t.Helper()
	var rows []lakeRow
	for rel := range testutil.TreeHashes(dir) {
		if !strings.HasSuffix(rel, ".parquet") {
			t.Errorf("%s: unexpected object %s", dir, rel)
			continue
		}
		pf, err := testutil.ReadParquet(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range pf.Rows {
			rows = append(rows, lakeRow{rel: rel, row: r})
		}
	}
	return rows
}

// noErrorOutput fails the test for any object under out outside the
// named sink directories: error records of a sink go beside it (lake →
// lake-errors) or to the error sink, and none are expected.
func noErrorOutput(t *testing.T, out string, sinkDirs ...string) {
	t.Helper()
	for rel := range testutil.TreeHashes(out) {
		top := strings.Split(filepath.ToSlash(rel), "/")[0]
		known := false
		for _, d := range sinkDirs {
			known = known || top == d
		}
		if !known {
			b, _ := os.ReadFile(filepath.Join(out, rel))
			t.Errorf("unexpected object %s: %.300s", rel, b)
		}
	}
}

// capped reports the first few of many similar failures and counts the
// rest, so that one broken invariant does not bury the others.
type capped struct {
	t    *testing.T
	what string
	n    int
}

func (c *capped) errorf(format string, args ...any) {
	c.t.Helper()
	if c.n++; c.n <= 10 {
		c.t.Errorf(format, args...)
	}
}

// done reports how many failures there were in all.
func (c *capped) done() {
	c.t.Helper()
	if c.n > 10 {
		c.t.Errorf("%s: %d failures in all, the first 10 shown", c.what, c.n)
	}
}
