package test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/testutil"
)

// TestStdinHeldOpenSIGTERM feeds 1,500 lines into the processor's stdin
// through a pipe that stays open. All of them are read (the partial batch
// after the first 1,024 goes on after batch_linger), and SIGTERM ends the
// run with exit 0, every line written and counted, although the writer
// never closed the pipe.
func TestStdinHeldOpenSIGTERM(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := filepath.Join(dir, "stdin.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
service: {http_listen: "%s", error_sink: errors, shutdown_timeout: 5s}
sources:
  - {name: in, type: file, format: json, file: {paths: ["-"]}}
routes:
  - {name: all, from: [in], to: [out]}
sinks:
  - {name: out, type: s3, url: "file:%s/out/", format: ndjson}
  - {name: errors, type: s3, url: "file:%s/errors/", format: ndjson}
`, addr, dir, dir)), 0o644)
	cmd := exec.Command(processor, "run", "-c", cfg)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	for i := range 1500 {
		fmt.Fprintf(stdin, `{"n":%d}`+"\n", i)
	}
	// Wait until the processor has read every line (its /metrics says so);
	// the pipe stays open.
	read := regexp.MustCompile(`sluice_source_messages_total\{source="in"\} (\d+)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if m := read.FindSubmatch(b); m != nil {
				fmt.Sscan(string(m[1]), &n)
			}
		}
		if n == 1500 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the processor read %d of 1500 lines from a pipe held open\n%s", n, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s\n%s", err, out.String(), stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit 30 s after SIGTERM with stdin held open\n%s", stderr.String())
	}
	if !regexp.MustCompile(`(?m)^in\s+1500\s+1500\s`).MatchString(out.String()) || !strings.Contains(out.String(), ": ok") {
		t.Errorf("summary:\n%s", out.String())
	}
	lines := 0
	filepath.Walk(filepath.Join(dir, "out"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			lines += bytes.Count(b, []byte("\n"))
		}
		return nil
	})
	if lines != 1500 {
		t.Errorf("the sink holds %d lines, want 1500", lines)
	}
}

// TestGlobMatchingNothing: validate warns (and still says OK, since the
// files may exist where the service runs); run stops with an error that
// names the source and the glob.
func TestGlobMatchingNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(`
service: {http_listen: "", error_sink: out}
sources:
  - {name: logs, type: file, format: json, file: {paths: ["nowhere/*.ndjson"]}}
routes:
  - {name: all, from: [logs], to: [out]}
sinks:
  - {name: out, type: s3, url: "file:out/", format: ndjson}
`), 0o644)
	out, errs, code := runProcessor(t, dir, "validate", "-c", cfg)
	warn := `warning: ` + cfg + `:4: sources[0].file.paths[0]: "nowhere/*.ndjson" matches no file here`
	if code != 0 || strings.TrimSpace(out) != "OK" || !strings.Contains(errs, warn) {
		t.Errorf("validate: exit %d, stdout %q, stderr %q; want OK and %q", code, out, errs, warn)
	}
	_, errs, code = runProcessor(t, dir, "run", "-c", cfg)
	if want := `source logs: no file matches "nowhere/*.ndjson"`; code != 1 || !strings.Contains(errs, want) {
		t.Errorf("run: exit %d, stderr %q; want 1 and %q", code, errs, want)
	}
}

// TestSIGHUPKeepsRunning: SIGHUP's default action would end the process
// with nothing flushed; a run reloads instead. An invalid configuration is
// rejected with the file:line text validate prints, the run goes on with
// the one it has, and SIGTERM then stops it cleanly with every line
// written.
func TestSIGHUPKeepsRunning(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "in.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	cfg := filepath.Join(dir, "c.yaml")
	text := `
service: {http_listen: "", error_sink: out, log_level: info}
sources:
  - {name: logs, type: file, format: json, batch_linger: 50ms, file: {paths: ["` + fifo + `"]}}
routes:
  - {name: all, from: [logs], to: [out]}
sinks:
  - {name: out, type: s3, url: "file:` + dir + `/out/", format: ndjson, buffer: {interval: 100ms}}
`
	os.WriteFile(cfg, []byte(text), 0o644)
	cmd := exec.Command(processor, "run", "-c", cfg)
	var stdout bytes.Buffer
	var stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fmt.Fprintln(w, `{"a":1}`)
	sum := sha256.Sum256([]byte(text))
	hash := hex.EncodeToString(sum[:])[:12]
	waitFor(t, func() bool { return strings.Contains(stderr.String(), "pipeline starting") })
	if !strings.Contains(stderr.String(), `"hash":"`+hash+`"`) {
		t.Errorf("pipeline starting does not log the config hash %s:\n%s", hash, stderr.String())
	}
	os.WriteFile(cfg, []byte(strings.Replace(text, "to: [out]", "to: [uot]", 1)), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	want := cfg + `:6: routes[0].to[0]: unknown sink \"uot\"`
	waitFor(t, func() bool {
		return strings.Contains(stderr.String(), "configuration rejected") && strings.Contains(stderr.String(), want)
	})
	fmt.Fprintln(w, `{"a":2}`)
	// Still running: the second line is read and written after SIGHUP.
	waitFor(t, func() bool {
		for rel := range testutil.TreeHashes(filepath.Join(dir, "out")) {
			if b, _ := os.ReadFile(filepath.Join(dir, "out", rel)); strings.Contains(string(b), `"a":2`) {
				return true
			}
		}
		return false
	})
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGHUP then SIGTERM: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	if !regexp.MustCompile(`logs\s+2\s+2`).MatchString(stdout.String()) {
		t.Errorf("summary does not count both lines:\n%s", stdout.String())
	}
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 20 s")
}

// lockedBuffer is a bytes.Buffer a child process writes while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
