package service

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/sinks"
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
