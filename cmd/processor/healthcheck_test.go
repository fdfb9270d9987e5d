package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgFile, []byte(`service: {http_listen: ":`+port+`", error_sink: lake}
sources: [{name: s, type: file, file: {paths: [x]}}]
routes: [{name: r, from: [s], to: [lake]}]
sinks: [{name: lake, type: s3, url: "file:out/", format: ndjson}]
`), 0o644)

	tests := []struct {
		name   string
		status int
		args   []string
		want   int
	}{
		{name: "200", status: http.StatusOK, args: []string{"--url", srv.URL + "/healthz"}, want: 0},
		{name: "503", status: http.StatusServiceUnavailable, args: []string{"--url", srv.URL + "/healthz"}, want: 1},
		{name: "404", status: http.StatusOK, args: []string{"--url", srv.URL + "/other"}, want: 1},
		{name: "refused", status: http.StatusOK, args: []string{"--url", closed.URL + "/healthz"}, want: 1},
		{name: "port from config", status: http.StatusOK, args: []string{"-c", cfgFile}, want: 0},
		{name: "bad flag", status: http.StatusOK, args: []string{"--nope"}, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status = tt.status
			var out, errb bytes.Buffer
			err := run(context.Background(), append([]string{"healthcheck"}, tt.args...), &out, &errb)
			if got := exitCode(err); got != tt.want {
				t.Errorf("exit %d (%v), want %d", got, err, tt.want)
			}
		})
	}
}

// TestHelpExitsZero: the image's default command is `help`; a container
// started without arguments must exit 0.
func TestHelpExitsZero(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"help"}, &out, &errb); err != nil {
		t.Fatalf("help: %v", err)
	}
	for _, cmd := range []string{"healthcheck", "iam-policy", "s3://bucket/key"} {
		if !bytes.Contains(out.Bytes(), []byte(cmd)) {
			t.Errorf("help does not mention %q:\n%s", cmd, out.String())
		}
	}
}
