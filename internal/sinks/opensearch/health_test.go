package opensearch

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fastjson"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/sinks"
	"github.com/sluice-data/sluice/internal/template"
	fake "github.com/sluice-data/sluice/internal/testutil"
)

// clock is a settable time for the health tracker.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestFailingSinkWarns: a cluster that answers every bulk request 503
// makes the sink log a warning naming the endpoint (without the password
// in its URL) and the error at once, and again each time the interval
// passes while it still fails; sluice_sink_failing is 1 and Health reports
// it. When the cluster answers again, the sink says it recovered and the
// gauge drops to 0.
func TestFailingSinkWarns(t *testing.T) {
	srv := fake.NewSearchFake(t)
	var down sync.Map
	down.Store("down", true)
	srv.Request = func(r *http.Request, body []byte, n int) (int, bool) {
		if v, _ := down.Load("down"); v.(bool) {
			return 503, false
		}
		return 0, false
	}
	endpoint := strings.Replace(srv.Server.URL, "http://", "http://user:s3cret@", 1)
	y := fmt.Sprintf(`
service: {name: t}
sources: [{name: src, type: file, error_sink: errs, file: {paths: [x]}}]
routes: [{name: r, from: [src], to: [health-search]}]
sinks:
  - {name: health-search, type: opensearch, endpoints: [%q], index: logs, error_sink: errs, bulk: {interval: 20ms}, retry: {max_elapsed: 1h}}
  - {name: errs, type: s3, url: "file:%s/", format: ndjson}
`, endpoint, t.TempDir())
	cfg, err := config.Parse("search.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	s, err := New(&cfg.Sinks[0], "errs", zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.health.Now = clk.Now
	s.backoff.Base, s.backoff.Max = time.Millisecond, 5*time.Millisecond
	startSink(t, s)
	h := &harness{s: s, fake: srv}
	acked := h.feed(t, 1, `{"a":1}`)
	s.Relieve(context.Background())

	warnings := func() []observer.LoggedEntry {
		return logs.FilterLevelExact(zapcore.WarnLevel).FilterMessageSnippet("sink failing").AllUntimed()
	}
	waitUntil(t, "the first warning", func() bool { return len(warnings()) == 1 })
	w := warnings()[0].ContextMap()
	if w["sink"] != "health-search" || w["endpoint"] != srv.Server.URL || !strings.Contains(w["error"].(string), "503") {
		t.Errorf("warning fields: %v", w)
	}
	if g := failingGauge(t, "health-search"); g != 1 {
		t.Errorf("sluice_sink_failing = %v, want 1", g)
	}
	if hs, failing := s.Health(); !failing || hs.Endpoint != srv.Server.URL || hs.Failures < 1 {
		t.Errorf("Health() = %+v, %v", hs, failing)
	}
	// Retries go on; no second warning until the interval has passed.
	waitUntil(t, "more failed attempts", func() bool { hs, _ := s.Health(); return hs.Failures >= 3 })
	if n := len(warnings()); n != 1 {
		t.Errorf("%d warnings before the interval passed, want 1", n)
	}
	clk.Add(sinks.WarnEvery)
	waitUntil(t, "the repeated warning", func() bool { return len(warnings()) == 2 })

	down.Store("down", false)
	if err := wait(t, acked, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if g := failingGauge(t, "health-search"); g != 0 {
		t.Errorf("sluice_sink_failing = %v after recovery, want 0", g)
	}
	if logs.FilterMessage("sink recovered").Len() != 1 {
		t.Errorf("no 'sink recovered' line")
	}
	for _, e := range logs.AllUntimed() {
		for k, v := range e.ContextMap() {
			if strings.Contains(fmt.Sprint(v), "s3cret") {
				t.Errorf("log %q field %s carries the password: %v", e.Message, k, v)
			}
		}
	}
	s.Close(context.Background())
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// failingGauge reads sluice_sink_failing{sink} from the registry.
func failingGauge(t *testing.T, sink string) float64 {
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sluice_sink_failing" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "sink" && l.GetValue() == sink {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no sluice_sink_failing{sink=%q}", sink)
	return 0
}

// TestIllegalRenderedIndexFailsTheRecord: an index name that renders
// illegal (validation saw only a sample) fails the record with the reason,
// and nothing is sent to OpenSearch for it.
func TestIllegalRenderedIndexFailsTheRecord(t *testing.T) {
	srv := fake.NewSearchFake(t)
	h := newHarness(t, srv, "")
	var err error
	if h.s.index, err = template.Parse("logs-*-!{timestamp:yyyy}"); err != nil {
		t.Fatal(err)
	}
	w := h.s.NewWriter()
	var p fastjson.Parser
	v, _ := p.Parse(`{"a":1}`)
	f := w.Write(&record.Record{Source: "src", Value: v, Raw: []byte(`{"a":1}`), Pos: record.Position{Partition: "p", Offset: 1}, EventTime: day})
	if f == nil || f.Type != sinks.ProcessingFailed || f.Code != "OpenSearch.InvalidIndexName" || !strings.Contains(f.Message, `index "logs-*-2024": an index name cannot contain "*"`) {
		t.Fatalf("failure = %+v", f)
	}
	if pend := w.Take(); pend != nil {
		t.Errorf("%d documents encoded for an illegal index", pend.Len())
	}
}
