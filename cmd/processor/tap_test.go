package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTapEndToEnd runs the service on a FIFO that a writer keeps feeding
// with records for two routes, and taps one route with --limit 5: exactly
// five lines of that route, then exit 0.
func TestTapEndToEnd(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "in.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfgFile := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`service: {http_listen: %q, tap: true, error_sink: out, log_level: error}
sources: [{name: in, type: file, format: json, batch_size: 4, batch_linger: 10ms, file: {paths: [%q]}}]
routes:
  - {name: x, from: [in], match: {k: [x]}, transforms: [{set: {tapped: true}}], to: [out]}
  - {name: y, from: [in], match: {k: [y]}, to: [out]}
sinks: [{name: out, type: s3, url: "file:%s/out/", format: ndjson}]
`, addr, fifo, dir)), 0o644)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ran := make(chan error, 1)
	go func() {
		var out, errb bytes.Buffer
		ran <- run(ctx, []string{"run", "-c", cfgFile}, &out, &errb)
	}()
	stop := make(chan struct{})
	wrote := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0) // waits for the source to open it
		if err != nil {
			wrote <- err
			return
		}
		defer f.Close()
		for n := 0; ; n++ {
			select {
			case <-stop:
				wrote <- nil
				return
			default:
			}
			k := []string{"x", "y"}[n%2]
			if _, err := fmt.Fprintf(f, `{"k":%q,"n":%d}`+"\n", k, n); err != nil {
				wrote <- err
				return
			}
			time.Sleep(time.Millisecond) // a steady trickle, not a flood of files
		}
	}()
	waitHealthy(t, "http://"+addr+"/healthz", ran)

	var out, errb bytes.Buffer
	if err := run(ctx, []string{"tap", "-c", cfgFile, "--route", "x", "--limit", "5"}, &out, &errb); err != nil {
		t.Fatalf("tap: %v\n%s", err, errb.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("tap printed %d lines, want 5:\n%s", len(lines), out.String())
	}
	for _, l := range lines {
		var v struct {
			Route    string
			Sinks    []string
			Source   string
			Position string
			Record   struct {
				K      string
				Tapped bool
			}
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if v.Route != "x" || strings.Join(v.Sinks, ",") != "out" || v.Source != "in" || !strings.HasPrefix(v.Position, fifo+":") ||
			v.Record.K != "x" || !v.Record.Tapped {
			t.Errorf("line %s is not a record of route x after its transforms", l)
		}
	}

	errb.Reset()
	err = run(ctx, []string{"tap", "--url", "http://" + addr, "--sink", "nope"}, &out, &errb)
	if code := exitCode(err); code != 1 || !strings.Contains(err.Error(), `tap: sink "nope": unknown name (sinks: [out])`) || !strings.Contains(err.Error(), "404") {
		t.Errorf("tap of an unknown sink: exit %d, %v", code, err)
	}

	close(stop)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if err := <-ran; err != nil {
		t.Fatalf("run: %v", err)
	}
}

// waitHealthy waits until url answers 200, or fails if the service ended.
func waitHealthy(t *testing.T, url string, ran <-chan error) {
	t.Helper()
	for {
		select {
		case err := <-ran:
			t.Fatalf("service ended before it was healthy: %v", err)
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCopyTapReportsDrops: the service's drop counts go to stderr, not
// stdout, and do not count towards --limit.
func TestCopyTapReportsDrops(t *testing.T) {
	body := `{"route":"r","n":1}` + "\n" + `{"dropped":3}` + "\n" + `{"route":"r","n":2}` + "\n" + `{"dropped":7}` + "\n"
	var out, errb bytes.Buffer
	if err := copyTap(t.Context(), strings.NewReader(body), 2, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if want := `{"route":"r","n":1}` + "\n" + `{"route":"r","n":2}` + "\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
	want := "tap: 3 records dropped so far: this reader is slower than the pipeline\n" +
		"tap: 7 records dropped in all: this reader was slower than the pipeline (the pipeline was not slowed)\n"
	if errb.String() != want {
		t.Errorf("stderr %q, want %q", errb.String(), want)
	}
}

func TestTapUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"tap", "-h"}, 0, "usage: processor tap"},
		{[]string{"tap", "--help"}, 0, "-limit N"},
		{[]string{"tap", "-c", "x.yaml"}, 2, "give exactly one of --route NAME and --sink NAME"},
		{[]string{"tap", "--route", "a", "--sink", "b"}, 2, "give exactly one of --route NAME and --sink NAME"},
		{[]string{"tap", "--nope"}, 2, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(t.Context(), tt.args, &out, &errb)
			if code := exitCode(err); code != tt.code || !strings.Contains(out.String()+errb.String(), tt.want) {
				t.Errorf("exit %d, output %q; want exit %d with %q", code, out.String()+errb.String(), tt.code, tt.want)
			}
		})
	}
}
