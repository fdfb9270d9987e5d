package opensearch

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/valyala/fastjson"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/record"
)

// TestCaptureSendsNothing: a capturing sink renders index names, ids and
// documents as the real one does, acks at once, and makes no request, not
// even the index template PUT a real sink makes at start.
func TestCaptureSendsNothing(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(200)
	}))
	defer srv.Close()
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "tmpl.json")
	if err := os.WriteFile(tmpl, []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	y := fmt.Sprintf(`
service: {name: t}
sources: [{name: src, type: file, error_sink: errs, file: {paths: [x]}}]
routes: [{name: r, from: [src], to: [search]}]
sinks:
  - name: search
    type: opensearch
    endpoints: [%q]
    index: "logs-!{timestamp:yyyy.MM.dd}"
    id: .Id
    index_template: {name: logs, file: %q}
    error_sink: errs
  - name: errs
    type: s3
    url: "file:%s/"
    format: ndjson
`, srv.URL, tmpl, dir)
	cfg, err := config.Parse("search.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewCapture(&cfg.Sinks[0], "errs", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	w := s.NewWriter()
	var p fastjson.Parser
	for i, d := range []string{`{"Id":"a","n":1}`, `{"Id":"b","n":2}`, `{"n":3}`} {
		v, err := p.Parse(d)
		if err != nil {
			t.Fatal(err)
		}
		rec := &record.Record{Source: "src", Value: v, Raw: []byte(d), Pos: record.Position{Partition: "p", Offset: int64(i)}, EventTime: day, Arrival: day}
		f := w.Write(rec)
		if i < 2 && f != nil {
			t.Fatalf("Write %d: %s", i, f.Message)
		}
		if i == 2 && (f == nil || f.Code != "OpenSearch.IdExtractionFailed") {
			t.Fatalf("Write of a document without Id = %+v, want IdExtractionFailed", f)
		}
	}
	acked := make(chan error, 1)
	if err := s.Append(context.Background(), w.Take(), func(err error) { acked <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-acked; err != nil {
		t.Fatalf("ack: %v", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	docs, err := s.Documents()
	if err != nil {
		t.Fatal(err)
	}
	want := []Document{{"logs-2024.11.03", "a", []byte(`{"Id":"a","n":1}`)}, {"logs-2024.11.03", "b", []byte(`{"Id":"b","n":2}`)}}
	if len(docs) != len(want) {
		t.Fatalf("got %d documents, want %d", len(docs), len(want))
	}
	for i := range want {
		if docs[i].Index != want[i].Index || docs[i].ID != want[i].ID || string(docs[i].Source) != string(want[i].Source) {
			t.Errorf("document %d = %s %s %s, want %s %s %s", i, docs[i].Index, docs[i].ID, docs[i].Source, want[i].Index, want[i].ID, want[i].Source)
		}
	}
	if got := s.Stats().Records; got != 2 {
		t.Errorf("Stats().Records = %d, want 2", got)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests reached the server, want none", n)
	}
}
