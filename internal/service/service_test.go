package service

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/sinks"
	"github.com/sluice-data/sluice/internal/tap"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	var ready atomic.Bool
	s, err := Listen("127.0.0.1:0", ready.Load, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	base := "http://" + s.Addr()
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := get(t, base+"/readyz"); code != 503 {
		t.Errorf("/readyz before ready = %d, want 503", code)
	}
	ready.Store(true)
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz when ready = %d", code)
	}
	// Vector metrics appear once they have a labelled child.
	metrics.SourcePending.WithLabelValues("test-source").Set(3)
	metrics.FlushSeconds.WithLabelValues("test-sink").Observe(0.01)
	code, body := get(t, base+"/metrics")
	for _, name := range []string{"sluice_sink_flush_seconds", `sluice_source_pending_records{source="test-source"} 3`, "go_goroutines", "process_resident_memory_bytes"} {
		if code != 200 || !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s (status %d)", name, code)
		}
	}
}

// TestReadyzListsFailingSinks: a failing sink leaves /readyz at 200 (the
// process serves its other sources) and shows in its JSON detail.
func TestReadyzListsFailingSinks(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	failing := func() []sinks.SinkHealth {
		return []sinks.SinkHealth{{Sink: "search", Endpoint: "http://127.0.0.1:9", Error: "connection refused", Since: since, Failures: 7}}
	}
	s, err := Listen("127.0.0.1:0", func() bool { return true }, zap.NewNop(), WithFailingSinks(failing))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	code, body := get(t, "http://"+s.Addr()+"/readyz")
	want := `{"status":"ready","failing_sinks":[{"sink":"search","endpoint":"http://127.0.0.1:9","error":"connection refused","since":"2026-01-02T03:04:05Z","failures":7}]}` + "\n"
	if code != 200 || body != want {
		t.Errorf("/readyz = %d %s\nwant 200 %s", code, body, want)
	}
}

// TestTapEndpoint: /tap is 403 with a message unless WithTap; with it,
// unknown names are 404 and a known route streams.
func TestTapEndpoint(t *testing.T) {
	off, err := Listen("127.0.0.1:0", func() bool { return true }, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close(t.Context())
	hub := tap.NewHub([]string{"r"}, []string{"lake"})
	on, err := Listen("127.0.0.1:0", func() bool { return true }, zap.NewNop(), WithTap(hub))
	if err != nil {
		t.Fatal(err)
	}
	defer on.Close(t.Context())
	tests := []struct {
		name, url string
		code      int
		body      string
	}{
		{"off", "http://" + off.Addr() + "/tap?route=r", 403, "tap is off: set service.tap: true in the configuration to serve /tap\n"},
		{"unknown route", "http://" + on.Addr() + "/tap?route=x", 404, "tap: route \"x\": unknown name (routes: [r])\n"},
		{"unknown sink", "http://" + on.Addr() + "/tap?sink=x", 404, "tap: sink \"x\": unknown name (sinks: [lake])\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := get(t, tt.url); code != tt.code || body != tt.body {
				t.Errorf("GET = %d %q, want %d %q", code, body, tt.code, tt.body)
			}
		})
	}
}

// TestCloseEndsTapStreams: an open /tap stream does not hold Close until
// its context expires.
func TestCloseEndsTapStreams(t *testing.T) {
	hub := tap.NewHub([]string{"r"}, []string{"lake"})
	s, err := Listen("127.0.0.1:0", func() bool { return true }, zap.NewNop(), WithTap(hub))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + s.Addr() + "/tap?route=r")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close with a tap open: %v", err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("stream did not end cleanly: %v", err)
	}
	if hub.Active() {
		t.Error("the stream's subscription outlived the server")
	}
}
