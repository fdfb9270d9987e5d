package opensearch

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fastjson"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/lifecycle"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/sinks"
	"github.com/sluice-data/sluice/internal/sinks/objstore"
	"github.com/sluice-data/sluice/internal/testutil"
)

// harness is an OpenSearch sink against a fake, with a file error sink.
type harness struct {
	s    *Sink
	errs *objstore.Sink
	dir  string // the error sink's root
	fake *testutil.SearchFake
}

// newHarnessB is newHarness for benchmarks: the sink alone.
func newHarnessB(b *testing.B, fake *testutil.SearchFake) *Sink {
	return newHarnessTB(b, fake, "").s
}

// newHarness builds the sink from a YAML body added to the search sink.
func newHarness(t *testing.T, fake *testutil.SearchFake, body string) *harness {
	return newHarnessTB(t, fake, body)
}

func newHarnessTB(t testing.TB, fake *testutil.SearchFake, body string) *harness {
	t.Helper()
	dir := t.TempDir()
	y := fmt.Sprintf(`
service: {name: t}
sources: [{name: src, type: file, error_sink: errs, file: {paths: [x]}}]
routes: [{name: r, from: [src], to: [search]}]
sinks:
  - name: search
    type: opensearch
    endpoints: [%q]
    index: "logs-!{timestamp:yyyy.MM.dd}"
    error_sink: errs
%s
  - name: errs
    type: s3
    url: "file:%s/"
    format: ndjson
    buffer: {interval: 50ms}
`, fake.Server.URL, body, dir)
	cfg, err := config.Parse("search.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	stores, err := objstore.StoresFor(&cfg.Sinks[1])
	if err != nil {
		t.Fatal(err)
	}
	errs, err := objstore.New(&cfg.Sinks[1], stores, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(&cfg.Sinks[0], "errs", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	s.SetErrorSink(errs)
	s.backoff.Base = 10 * time.Millisecond
	s.backoff.Max = 200 * time.Millisecond
	startSink(t, errs)
	startSink(t, s)
	t.Cleanup(func() {
		s.Close(context.Background())
		errs.Close(context.Background())
	})
	return &harness{s: s, errs: errs, dir: dir, fake: fake}
}

// startSink runs r's background work for the test, and after the test
// (and the Close it registered after this) waits until Run has returned.
func startSink(t testing.TB, r lifecycle.Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

var day = time.Date(2024, 11, 3, 7, 0, 0, 0, time.UTC)

// feed appends docs as one batch at offsets from, from+1, ...; the
// returned channel gets the batch's ack.
func (h *harness) feed(t *testing.T, from int, docs ...string) <-chan error {
	t.Helper()
	w := h.s.NewWriter()
	for i, d := range docs {
		var p fastjson.Parser
		v, err := p.Parse(d)
		if err != nil {
			t.Fatal(err)
		}
		rec := &record.Record{Source: "src", Value: v, Raw: []byte(d), Pos: record.Position{Partition: "p", Offset: int64(from + i)}, EventTime: day, Arrival: day}
		if f := w.Write(rec); f != nil {
			t.Fatalf("Write: %s", f.Message)
		}
	}
	acked := make(chan error, 1)
	if err := h.s.Append(context.Background(), w.Take(), func(err error) { acked <- err }); err != nil {
		t.Fatal(err)
	}
	return acked
}

// errorRecords reads the error sink's NDJSON records.
func (h *harness) errorRecords(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	filepath.Walk(h.dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || strings.HasPrefix(info.Name(), ".") {
			return nil
		}
		f, _ := os.Open(p)
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			out = append(out, m)
		}
		return nil
	})
	return out
}

func docs(n int, f func(i int) string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func wait(t *testing.T, acked <-chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-acked:
		return err
	case <-time.After(within):
		t.Fatalf("no ack within %v", within)
		return nil
	}
}

// TestPartialFailuresRetryOnlyFailed: items answered 429 or 503 are sent
// again, and only they; items that succeeded are never resent.
func TestPartialFailuresRetryOnlyFailed(t *testing.T) {
	fake := testutil.NewSearchFake(t)
	fake.Item = func(index, id string, doc []byte, attempt int) int {
		switch {
		case strings.Contains(string(doc), `"flaky":"503"`) && attempt <= 2:
			return 503
		case strings.Contains(string(doc), `"flaky":"429"`) && attempt <= 3:
			return 429
		}
		return 0
	}
	h := newHarness(t, fake, "")
	acked := h.feed(t, 1, docs(100, func(i int) string {
		switch i % 10 {
		case 3:
			return fmt.Sprintf(`{"n":%d,"flaky":"503"}`, i)
		case 7:
			return fmt.Sprintf(`{"n":%d,"flaky":"429"}`, i)
		}
		return fmt.Sprintf(`{"n":%d}`, i)
	})...)
	if err := h.s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, acked, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if fake.Docs() != 100 {
		t.Fatalf("indexed %d documents, want 100", fake.Docs())
	}
	for id, n := range fake.AllAttempts() {
		want := 1
		var off int
		fmt.Sscanf(id[strings.LastIndexByte(id, ':')+1:], "%d", &off)
		switch (off - 1) % 10 {
		case 3:
			want = 3
		case 7:
			want = 4
		}
		if n != want {
			t.Errorf("%s delivered %d times, want %d", id, n, want)
		}
	}
	if got := h.s.stats.retried.Load(); got != 10*2+10*3 {
		t.Errorf("retried = %d, want 50", got)
	}
	if recs := h.errorRecords(t); len(recs) != 0 {
		t.Errorf("error records: %v", recs)
	}
}

// TestMappingErrorsGoToErrorSink: items answered 400 go to the error sink
// with OpenSearch's reason; the ack waits until they are durable there.
func TestMappingErrorsGoToErrorSink(t *testing.T) {
	fake := testutil.NewSearchFake(t)
	fake.Item = func(index, id string, doc []byte, attempt int) int {
		if strings.Contains(string(doc), `"value":"abc"`) {
			return 400
		}
		return 0
	}
	h := newHarness(t, fake, "")
	acked := h.feed(t, 1, `{"value":1}`, `{"value":"abc"}`, `{"value":3}`, `{"value":"abc","x":1}`)
	if err := h.s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, acked, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if fake.Docs() != 2 {
		t.Errorf("indexed %d, want 2", fake.Docs())
	}
	recs := h.errorRecords(t)
	if len(recs) != 2 {
		t.Fatalf("error records = %d, want 2: %v", len(recs), recs)
	}
	for _, r := range recs {
		if r["errorCode"] != "OpenSearch.mapper_parsing_exception" || r["errorOutputType"] != "sink-rejected" || r["sink"] != "search" ||
			!strings.Contains(r["errorMessage"].(string), "failed to parse field [value]") || !strings.Contains(r["errorMessage"].(string), "For input string") {
			t.Errorf("error record: %v", r)
		}
		if pos := r["sourcePosition"]; pos != "p:2" && pos != "p:4" {
			t.Errorf("sourcePosition = %v", pos)
		}
	}
	if h.s.stats.retried.Load() != 0 {
		t.Errorf("4xx items were retried")
	}
}

// TestRequestTooLargeSplits: a 413 splits the request in halves until the
// parts fit; a document too large alone goes to the error sink.
func TestRequestTooLargeSplits(t *testing.T) {
	fake := testutil.NewSearchFake(t)
	fake.MaxBody = 3000
	h := newHarness(t, fake, "    bulk: {max_docs: 16}")
	pad := strings.Repeat("x", 400)
	in := docs(16, func(i int) string { return fmt.Sprintf(`{"n":%d,"pad":%q}`, i, pad) })
	in[5] = `{"n":5,"pad":"` + strings.Repeat("y", 4000) + `"}`
	acked := h.feed(t, 1, in...)
	if err := h.s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, acked, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if fake.Docs() != 15 {
		t.Errorf("indexed %d, want 15", fake.Docs())
	}
	recs := h.errorRecords(t)
	if len(recs) != 1 || recs[0]["errorCode"] != "OpenSearch.DocumentTooLarge" || recs[0]["sourcePosition"] != "p:6" {
		t.Errorf("error records: %v", recs)
	}
	if fake.Requests() < 8 {
		t.Errorf("%d requests: the 413s were not split", fake.Requests())
	}
}

// TestConnectionDropsAndWholeRequestErrors: dropped connections and
// whole-request 503/429 retry the request; nothing is lost or duplicated,
// and the ack waits.
func TestConnectionDropsAndWholeRequestErrors(t *testing.T) {
	fake := testutil.NewSearchFake(t)
	fake.Request = func(r *http.Request, body []byte, n int) (int, bool) {
		switch n {
		case 1:
			return 0, true
		case 2:
			return 503, false
		case 3:
			return 429, false
		}
		return 0, false
	}
	h := newHarness(t, fake, "")
	acked := h.feed(t, 1, docs(50, func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) })...)
	if err := h.s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, acked, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if fake.Docs() != 50 || fake.Requests() != 4 {
		t.Errorf("docs %d, requests %d; want 50, 4", fake.Docs(), fake.Requests())
	}
}

// TestRetriesExhausted: an item still answered 503 after retry.max_elapsed
// goes to the error sink with the last answer.
func TestRetriesExhausted(t *testing.T) {
	fake := testutil.NewSearchFake(t)
	fake.Item = func(index, id string, doc []byte, attempt int) int {
		if strings.Contains(string(doc), "doomed") {
			return 503
		}
		return 0
	}
	h := newHarness(t, fake, "    retry: {max_elapsed: 300ms}")
	acked := h.feed(t, 1, `{"a":1}`, `{"doomed":true}`)
	h.s.Flush(context.Background())
	if err := wait(t, acked, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	recs := h.errorRecords(t)
	if len(recs) != 1 || recs[0]["errorCode"] != "OpenSearch.RetriesExhausted" || !strings.Contains(recs[0]["errorMessage"].(string), "503 unavailable_shards_exception") {
		t.Errorf("error records: %v", recs)
	}
}

// TestCloseGivesUp: a pipeline out of time closes the sink with a done
// context in the middle of a 429 storm. The retries stop at once, the
// batch is not acked (so the source does not checkpoint it), and nothing
// is filed in the error sink as failed.
func TestCloseGivesUp(t *testing.T) {
	fake := testutil.NewSearchFake(t)
	fake.Item = func(index, id string, doc []byte, attempt int) int { return 429 }
	h := newHarness(t, fake, "    retry: {max_elapsed: 10m}")
	acked := h.feed(t, 1, `{"a":1}`, `{"a":2}`)
	h.s.Relieve(context.Background())
	for fake.Requests() < 2 { // retrying
		time.Sleep(5 * time.Millisecond)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	closed := make(chan error, 1)
	go func() { closed <- h.s.Close(done) }()
	if err := wait(t, acked, 10*time.Second); !errors.Is(err, errAborted) {
		t.Fatalf("ack = %v, want errAborted", err)
	}
	if err := wait(t, closed, 10*time.Second); err == nil {
		t.Error("Close with a done context reported success")
	}
	h.errs.Flush(context.Background())
	if recs := h.errorRecords(t); len(recs) != 0 {
		t.Errorf("%d error records for documents that were never given up on", len(recs))
	}
}

// TestStorm429 is the 60 s storm of the issue: every request and every
// item is refused with 429 for a minute. The acks are held all along,
// nothing goes to the error sink, and when the storm ends every document
// is indexed once.
func TestStorm429(t *testing.T) {
	if testing.Short() {
		t.Skip("a 60 s storm")
	}
	fake := testutil.NewSearchFake(t)
	var stormEnd atomic.Int64
	stormEnd.Store(time.Now().Add(60 * time.Second).UnixNano())
	storming := func() bool { return time.Now().UnixNano() < stormEnd.Load() }
	fake.Request = func(r *http.Request, body []byte, n int) (int, bool) {
		if storming() && n%2 == 0 {
			return 429, false
		}
		return 0, false
	}
	fake.Item = func(index, id string, doc []byte, attempt int) int {
		if storming() {
			return 429
		}
		return 0
	}
	h := newHarness(t, fake, "    bulk: {max_docs: 500, concurrency: 2}")
	h.s.backoff.Max = 5 * time.Second
	// Appends block once bulk.concurrency requests are stuck in the
	// storm (backpressure), so the feeding runs on its own.
	var mu sync.Mutex
	var acks []<-chan error
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		for b := range 10 {
			a := h.feed(t, b*1000+1, docs(1000, func(i int) string { return fmt.Sprintf(`{"b":%d,"n":%d}`, b, i) })...)
			mu.Lock()
			acks = append(acks, a)
			mu.Unlock()
		}
		h.s.Flush(context.Background())
	}()
	time.Sleep(55 * time.Second)
	mu.Lock()
	if len(acks) == 0 {
		t.Fatal("nothing was appended")
	}
	for i, a := range acks {
		select {
		case err := <-a:
			t.Fatalf("batch %d acked (%v) during the storm", i, err)
		default:
		}
	}
	t.Logf("%d of 10 batches appended during the storm, none acked", len(acks))
	mu.Unlock()
	<-fed
	for i, a := range acks {
		if err := wait(t, a, 30*time.Second); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	if fake.Docs() != 10000 {
		t.Errorf("indexed %d, want 10000", fake.Docs())
	}
	if recs := h.errorRecords(t); len(recs) != 0 {
		t.Errorf("%d error records", len(recs))
	}
	t.Logf("%d bulk requests, %d item retries", fake.Requests(), h.s.stats.retried.Load())
}

// TestBootstrapAndPipeline: the index template and ingest pipeline are
// PUT at start, and bulk requests name the pipeline.
func TestBootstrapAndPipeline(t *testing.T) {
	fake := testutil.NewSearchFake(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tpl.json"), []byte(`{"index_patterns":["logs-*"],"template":{"settings":{"number_of_shards":1}}}`), 0o644)
	os.WriteFile(filepath.Join(dir, "pipe.json"), []byte(`{"processors":[{"set":{"field":"ingested","value":true}}]}`), 0o644)
	h := newHarness(t, fake, fmt.Sprintf("    index_template: {name: logs, file: %q}\n    ingest_pipeline: {name: enrich, file: %q}", filepath.Join(dir, "tpl.json"), filepath.Join(dir, "pipe.json")))
	if !strings.Contains(string(fake.Put("/_index_template/logs")), "logs-*") || !strings.Contains(string(fake.Put("/_ingest/pipeline/enrich")), "ingested") {
		t.Fatal("template or pipeline not applied")
	}
	acked := h.feed(t, 1, `{"a":1}`)
	h.s.Flush(context.Background())
	if err := wait(t, acked, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if p := fake.Params(); len(p) != 1 || p[0] != "pipeline=enrich" {
		t.Errorf("bulk params = %v", p)
	}
}

// TestIDsAndIndexNames: default ids from positions, or from jq; index
// names from the event time.
func TestIDsAndIndexNames(t *testing.T) {
	fake := testutil.NewSearchFake(t)
	h := newHarness(t, fake, "")
	acked := h.feed(t, 7, `{"Id":"f-1"}`)
	h.s.Flush(context.Background())
	wait(t, acked, 5*time.Second)
	if fake.Doc("logs-2024.11.03", "src:p:7") == nil {
		t.Errorf("indices: %v", fake.Indices())
	}
	fake2 := testutil.NewSearchFake(t)
	h2 := newHarness(t, fake2, `    id: ".Id"`)
	acked = h2.feed(t, 7, `{"Id":"f-1"}`)
	h2.s.Flush(context.Background())
	wait(t, acked, 5*time.Second)
	if fake2.Doc("logs-2024.11.03", "f-1") == nil {
		t.Errorf("jq id not used: %v", fake2.AllAttempts())
	}
	// A record whose id expression yields nothing fails before sending.
	w := h2.s.NewWriter()
	var p fastjson.Parser
	v, _ := p.Parse(`{"other":1}`)
	if f := w.Write(&record.Record{Source: "src", Value: v, Pos: record.Position{Partition: "p", Offset: 9}, EventTime: day}); f == nil || f.Code != "OpenSearch.IdExtractionFailed" {
		t.Errorf("failure = %+v", f)
	}
}

// TestNoResendAfterSuccessUnderConcurrency runs many batches through
// concurrent requests with random item failures: every document is indexed
// exactly once successfully and the acks all fire.
func TestNoResendAfterSuccessUnderConcurrency(t *testing.T) {
	fake := testutil.NewSearchFake(t)
	var mu sync.Mutex
	succeeded := map[string]int{}
	fake.Item = func(index, id string, doc []byte, attempt int) int {
		if (len(id)+attempt)%3 == 0 && attempt < 4 {
			return 503
		}
		mu.Lock()
		succeeded[id]++
		mu.Unlock()
		return 0
	}
	h := newHarness(t, fake, "    bulk: {max_docs: 37, concurrency: 4}")
	var acks []<-chan error
	for b := range 20 {
		acks = append(acks, h.feed(t, b*100+1, docs(100, func(i int) string { return fmt.Sprintf(`{"b":%d,"i":%d}`, b, i) })...))
	}
	h.s.Flush(context.Background())
	for _, a := range acks {
		if err := wait(t, a, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if len(succeeded) != 2000 {
		t.Errorf("%d documents indexed, want 2000", len(succeeded))
	}
	for id, n := range succeeded {
		if n != 1 {
			t.Errorf("%s indexed %d times", id, n)
		}
	}
}

// TestIDOverJQLimit: an id whose jq never ends, never stops producing or
// grows without bound fails its document before sending, naming the
// bound; the writer goes on with the next document.
func TestIDOverJQLimit(t *testing.T) {
	tests := []struct {
		id, limit string
	}{
		{`until(.n == 0; .n -= 1)`, "evaluation exceeded 100ms (service.jq.timeout)"},
		{`repeat(.)`, "evaluation produced more than 1000 outputs (service.jq.max_outputs)"},
		{`[range(1e9)] | length`, "evaluation exceeded 100ms (service.jq.timeout)"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			fake := testutil.NewSearchFake(t)
			h := newHarness(t, fake, "    id: 'if .ok then .Id else "+tt.id+" end'")
			w := h.s.NewWriter()
			var fails []*sinks.Failure
			testutil.Bounded(tt.id, func() {
				for i, doc := range []string{`{"n":-1}`, `{"ok":true,"Id":"f-2"}`} {
					v := fastjson.MustParse(doc)
					if f := w.Write(&record.Record{Source: "src", Value: v, Pos: record.Position{Partition: "p", Offset: int64(i + 1)}, EventTime: day}); f != nil {
						fails = append(fails, f)
					}
				}
			})
			if len(fails) != 1 || fails[0].Pos.Offset != 1 || fails[0].Type != sinks.ProcessingFailed ||
				fails[0].Code != "OpenSearch.IdExtractionFailed" || !strings.HasSuffix(fails[0].Message, tt.limit) {
				t.Fatalf("failures = %+v", fails)
			}
			if p := w.Take(); p == nil || p.Len() != 1 {
				t.Errorf("pending = %v, want the good document", p)
			}
		})
	}
}
