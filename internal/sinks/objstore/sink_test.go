package objstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"github.com/valyala/fastjson"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/blob"
	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/jsonx"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/sinks"
	"github.com/sluice-data/sluice/internal/testutil"
)

// newSink builds a sink from a YAML sink body, writing to store (or a
// file store in a temp dir when nil).
// newSink builds a sink for the test; opts adjust it before its
// background work starts (after that its fields belong to Run).
func newSink(t testing.TB, body string, store blob.Lister, opts ...func(*Sink)) (*Sink, string) {
	t.Helper()
	dir := t.TempDir()
	url := "    url: 'file:" + dir + "/'\n"
	if strings.Contains(body, "    url: ") {
		url = ""
	}
	route := "routes: [{name: r, from: [src], to: [s]}]\n"
	if strings.Contains(body, "format: csv") {
		route = "routes: [{name: r, from: [src], to: [s], transforms: [{json_to_csv: {columns: [a]}}]}]\n"
	}
	y := "service: {error_sink: s}\nsources: [{name: src, type: file, file: {paths: [x]}}]\n" + route +
		"sinks:\n  - name: s\n    type: s3\n" + url + body
	cfg, err := config.Parse("sink.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	st, err := StoresFor(&cfg.Sinks[0])
	if err != nil {
		t.Fatal(err)
	}
	if store != nil {
		if st.Errors == st.Data {
			st.Errors = store
		}
		st.Data = store
	}
	s, err := New(&cfg.Sinks[0], st, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	s.backoff.Base, s.backoff.MaxElapsed = time.Millisecond, 100*time.Millisecond
	for _, o := range opts {
		o(s)
	}
	startSink(t, s)
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, dir
}

// startSink runs s's background work for the test, and after the test
// (and its Close) waits until Run has returned.
func startSink(t testing.TB, s *Sink) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

// feed writes JSON lines as records at positions file:1.. and appends
// them as one batch, returning the failures.
func feed(t *testing.T, s *Sink, ack record.AckFunc, lines ...string) []*sinks.Failure {
	t.Helper()
	w := s.NewWriter()
	var fails []*sinks.Failure
	for i, l := range lines {
		var p fastjson.Parser
		v, err := p.Parse(l)
		if err != nil {
			t.Fatal(err)
		}
		rec := &record.Record{Source: "src", Value: v, Raw: []byte(l), Pos: record.Position{Partition: "f", Offset: int64(i + 1)},
			EventTime: time.Date(2024, 11, 3, 7, 0, 0, 0, time.UTC), Arrival: time.Date(2024, 11, 3, 8, 0, 0, 0, time.UTC)}
		if f := w.Write(rec); f != nil {
			fails = append(fails, f)
			w.WriteFailure(f)
		}
	}
	if p := w.Take(); p != nil {
		if err := s.Append(context.Background(), p, ack); err != nil {
			t.Fatal(err)
		}
	} else if ack != nil {
		ack(nil)
	}
	return fails
}

// writeOne feeds lines that must all be taken, flushes, and reads back the
// one object they make.
func writeOne(t *testing.T, s *Sink, dir string, lines ...string) *testutil.ParquetFile {
	t.Helper()
	if fails := feed(t, s, nil, lines...); len(fails) != 0 {
		t.Fatalf("failures: %s", fails[0].Message)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	pf, err := testutil.ReadParquet(filepath.Join(dir, files(t, dir)[0]))
	if err != nil {
		t.Fatal(err)
	}
	return pf
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	return testutil.Files(t, dir)
}

const typedSchema = `    format: parquet
    partition_keys:
      project_id: .project_id
      hour: '.ts | strftime("%H")'
    schema:
      - {name: project_id, type: string}
      - {name: n, type: int64}
      - {name: d, type: double}
      - {name: b, type: bool}
      - {name: t, column: t_ms, type: timestamp_ms}
      - {name: t, column: t_us, type: timestamp_us}
      - {name: t, column: day, type: date}
      - {name: j, type: json}
      - {name: Severity.Label, column: severity, type: string}
`

func TestParquetReadBackByArrow(t *testing.T) {
	s, dir := newSink(t, typedSchema, nil)
	fails := feed(t, s, nil,
		`{"project_id":"P-1","ts":1730617200,"n":42,"d":1.5,"b":true,"t":"2024-11-03T07:00:00.123Z","j":{"a":[1,2]},"Severity":{"Label":"HIGH","Normalized":70},"other":"x"}`,
		`{"project_id":"P-1","ts":1730617201,"n":"7","d":2,"b":"false","t":1730617200456,"Severity":{"Label":"LOW"}}`,
		`{"project_id":"P-1","ts":1730617202}`,
	)
	if len(fails) != 0 {
		t.Fatalf("failures: %+v", fails[0])
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := files(t, dir)
	want := []string{"project_id=P-1/hour=07/src+f+000000000001-000000000003.parquet"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("files = %v, want %v", got, want)
	}
	pf, err := testutil.ReadParquet(filepath.Join(dir, got[0]))
	if err != nil {
		t.Fatal(err)
	}
	wantCols := "project_id utf8, n int64, d float64, b bool, t_ms timestamp[ms, tz=UTC], t_us timestamp[us, tz=UTC], day date32, j utf8, severity utf8, _extra utf8"
	if c := strings.Join(pf.Columns, ", "); c != wantCols {
		t.Errorf("columns:\n%s\nwant\n%s", c, wantCols)
	}
	if pf.Codec != "snappy" {
		t.Errorf("codec = %s", pf.Codec)
	}
	// Version 1 data pages, PLAIN or dictionary-encoded (RLE_DICTIONARY
	// with a PLAIN dictionary page, as DuckDB writes), RLE levels: what
	// every reader takes. Three rows are too few for a dictionary to pay;
	// TestParquetDictionary has low-cardinality columns get one.
	for _, k := range pf.PageKinds {
		if k != "DATA_PAGE/PLAIN" && k != "DATA_PAGE/RLE_DICTIONARY" && k != "DICTIONARY_PAGE/PLAIN" {
			t.Errorf("a %s page, want version 1 data pages, PLAIN or RLE_DICTIONARY, and PLAIN dictionary pages", k)
		}
	}
	if lt := strings.Join(pf.LogicalTypes, ","); !strings.Contains(lt, "Timestamp(isAdjustedToUTC=true, timeUnit=milliseconds") {
		t.Errorf("logical types = %s", lt)
	}
	if len(pf.Rows) != 3 {
		t.Fatalf("rows = %d", len(pf.Rows))
	}
	r0, _ := json.Marshal(pf.Rows[0])
	r1, _ := json.Marshal(pf.Rows[1])
	r2, _ := json.Marshal(pf.Rows[2])
	wantRows := []string{
		`{"_extra":"{\"ts\":1730617200,\"Severity\":{\"Normalized\":70},\"other\":\"x\"}","b":true,"d":1.5,"day":"2024-11-03","j":"{\"a\":[1,2]}","n":42,"project_id":"P-1","severity":"HIGH","t_ms":"2024-11-03T07:00:00.123Z","t_us":"2024-11-03T07:00:00.123Z"}`,
		`{"_extra":"{\"ts\":1730617201}","b":false,"d":2,"day":"2024-11-03","j":null,"n":7,"project_id":"P-1","severity":"LOW","t_ms":"2024-11-03T07:00:00.456Z","t_us":"2024-11-03T07:00:00.456Z"}`,
		`{"_extra":"{\"ts\":1730617202}","b":null,"d":null,"day":null,"j":null,"n":null,"project_id":"P-1","severity":null,"t_ms":null,"t_us":null}`,
	}
	for i, got := range []string{string(r0), string(r1), string(r2)} {
		if got != wantRows[i] {
			t.Errorf("row %d:\n%s\nwant\n%s", i, got, wantRows[i])
		}
	}
}

// TestEveryParquetFileNamesItsColumns writes several files through one
// flush worker: each must carry path_in_schema for every column chunk, not
// just the first (a reused parquet-go Writer blanked them; Athena then
// fails the file with HIVE_CANNOT_OPEN_SPLIT).
func TestEveryParquetFileNamesItsColumns(t *testing.T) {
	s, dir := newSink(t, "    concurrency: 1\n    buffer: {max_records: 2}\n"+typedSchema, nil)
	feed(t, s, nil,
		`{"project_id":"P-1","ts":1730617200,"n":1}`, `{"project_id":"P-1","ts":1730617200,"n":2}`,
		`{"project_id":"P-2","ts":1730617200,"n":3}`, `{"project_id":"P-2","ts":1730617200,"n":4}`,
		`{"project_id":"P-3","ts":1730617200,"n":5}`)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := files(t, dir)
	if len(got) != 3 {
		t.Fatalf("files = %v, want 3", got)
	}
	rows := 0
	for _, f := range got {
		pf, err := testutil.ReadParquet(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		rows += len(pf.Rows)
	}
	if rows != 5 {
		t.Errorf("%d rows, want 5", rows)
	}
}

// TestParquetPagesIndexed writes one object of many pages per column; the
// reader checks that its offset index locates every page.
func TestParquetPagesIndexed(t *testing.T) {
	s, dir := newSink(t, typedSchema, nil)
	lines := make([]string, 30000)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"project_id":"P-1","ts":1730617200,"n":%d,"j":{"text":"%0100d"}}`, i, i)
	}
	feed(t, s, nil, lines...)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := files(t, dir)
	if len(got) != 1 {
		t.Fatalf("files = %v", got)
	}
	pf, err := testutil.ReadParquet(filepath.Join(dir, got[0]))
	if err != nil {
		t.Fatal(err)
	}
	if len(pf.Rows) != len(lines) || pf.Pages < 2 {
		t.Errorf("%d rows in %d pages of the largest column, want %d rows in several pages", len(pf.Rows), pf.Pages, len(lines))
	}
}

func TestSinkFailuresGoToErrorPrefix(t *testing.T) {
	s, dir := newSink(t, typedSchema+"    error_prefix: 'errors/!{error-output-type}/!{timestamp:yyyy/MM/dd}/'\n", nil)
	fails := feed(t, s, nil,
		`{"project_id":"P-1","ts":1730617200,"n":1.5}`,
		`{"ts":1730617200}`,
		`{"project_id":"P-1","ts":"not a number"}`,
		`{"project_id":"P-1","ts":1730617200,"b":"maybe"}`,
	)
	if len(fails) != 4 {
		t.Fatalf("failures = %d", len(fails))
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(files(t, dir), "\n")
	want := "errors/processing-failed/2024/11/03/src+f+000000000002-000000000003.ndjson\nerrors/schema-mismatch/2024/11/03/src+f+000000000001-000000000004.ndjson"
	if got != want {
		t.Fatalf("files:\n%s\nwant\n%s", got, want)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "errors/schema-mismatch/2024/11/03/src+f+000000000001-000000000004.ndjson"))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 {
		t.Fatalf("schema-mismatch lines = %d", len(lines))
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	wantRec := map[string]any{"attemptsMade": 1.0, "arrivalTimestamp": 1730620800000.0, "errorCode": "DataFormatConversion.InvalidSchema",
		"errorMessage": "column n (int64, field n): 1.5 is not a 64-bit integer", "errorOutputType": "schema-mismatch",
		"rawData": "eyJwcm9qZWN0X2lkIjoiUC0xIiwidHMiOjE3MzA2MTcyMDAsIm4iOjEuNX0=", "source": "src", "sourcePartition": "f", "sourcePosition": "f:1", "sink": "s"}
	for k, v := range wantRec {
		if rec[k] != v {
			t.Errorf("%s = %v, want %v", k, rec[k], v)
		}
	}
	data, _ = os.ReadFile(filepath.Join(dir, "errors/processing-failed/2024/11/03/src+f+000000000002-000000000003.ndjson"))
	if !strings.Contains(string(data), `"errorMessage":"partition key project_id: jq .project_id: produced null"`) ||
		!strings.Contains(string(data), `strftime(\"%H\") cannot be applied to: string (\"not a number\")`) {
		t.Errorf("processing-failed records:\n%s", data)
	}
}

// blockingStore holds every Put until released.
type blockingStore struct {
	mu      sync.Mutex
	release chan struct{}
	puts    []string
	fail    error
}

func (b *blockingStore) Put(_ context.Context, key string, _ blob.Body) error {
	<-b.release
	b.mu.Lock()
	defer b.mu.Unlock()
	b.puts = append(b.puts, key)
	return b.fail
}

func (b *blockingStore) Location() string { return "mem" }

func (b *blockingStore) List(context.Context, string) ([]string, error) { return nil, nil }

func (b *blockingStore) Get(context.Context, string) ([]byte, error) {
	return nil, errors.New("not found")
}

func TestAckOnlyAfterDurableWrite(t *testing.T) {
	store := &blockingStore{release: make(chan struct{})}
	s, _ := newSink(t, "    format: ndjson\n", store)
	acked := make(chan error, 1)
	feed(t, s, func(err error) { acked <- err }, `{"a":1}`, `{"a":2}`)
	done := make(chan error)
	go func() { done <- s.Flush(context.Background()) }()
	select {
	case err := <-acked:
		t.Fatalf("acked (%v) before the store finished", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(store.release)
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestStoreFailureFailsAck(t *testing.T) {
	store := &blockingStore{release: make(chan struct{}), fail: errors.New("disk full")}
	close(store.release)
	s, _ := newSink(t, "    format: ndjson\n", store)
	acked := make(chan error, 1)
	feed(t, s, func(err error) { acked <- err }, `{"a":1}`)
	err := s.Flush(context.Background())
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Flush = %v", err)
	}
	if err := <-acked; err == nil {
		t.Fatal("ack succeeded though the write failed")
	}
	// Retried until retry.max_elapsed (100 ms here, from 1 ms backoff).
	if want := fmt.Sprintf("%d attempts in", len(store.puts)); len(store.puts) < 3 || !strings.Contains(err.Error(), want) {
		t.Errorf("%d attempts; Flush = %v", len(store.puts), err)
	}
}

// flakyStore fails its first n Puts.
type flakyStore struct {
	*memStore
	n, calls atomic.Int32
}

func (f *flakyStore) Put(ctx context.Context, key string, body blob.Body) error {
	if f.calls.Add(1) <= f.n.Load() {
		return errors.New("503 SlowDown")
	}
	return f.memStore.Put(ctx, key, body)
}

// TestOutageShorterThanMaxElapsed: a store that fails many times in a row
// (far more than a fixed attempt count would allow) costs no failure while
// retry.max_elapsed lasts; the ack waits for the write.
func TestOutageShorterThanMaxElapsed(t *testing.T) {
	store := &flakyStore{memStore: newMemStore()}
	store.n.Store(25)
	s, _ := newSink(t, "    format: ndjson\n", store, func(s *Sink) {
		s.backoff.Base, s.backoff.Max, s.backoff.MaxElapsed = time.Millisecond, 2*time.Millisecond, time.Minute
	})
	acked := make(chan error, 1)
	feed(t, s, func(err error) { acked <- err }, `{"a":1}`)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	if got := store.calls.Load(); got != 26 {
		t.Errorf("%d puts, want 25 failures and one success", got)
	}
}

// TestCloseGivesUp: closed with a done context while a write is being
// retried (a long outage, max_elapsed far off), the sink stops retrying at
// once and the ack gets the error, so nothing is checkpointed.
func TestCloseGivesUp(t *testing.T) {
	store := &flakyStore{memStore: newMemStore()}
	store.n.Store(1 << 30)
	s, _ := newSink(t, "    format: ndjson\n", store, func(s *Sink) { s.backoff.MaxElapsed = 10 * time.Minute })
	acked := make(chan error, 1)
	feed(t, s, func(err error) { acked <- err }, `{"a":1}`)
	s.Relieve(context.Background())
	for store.calls.Load() < 2 { // retrying
		time.Sleep(5 * time.Millisecond)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	closed := make(chan error, 1)
	go func() { closed <- s.Close(done) }()
	for _, c := range []chan error{acked, closed} {
		select {
		case err := <-c:
			if err == nil {
				t.Error("success reported for a write that never happened")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not stop the retries")
		}
	}
	if len(store.objs) != 0 {
		t.Errorf("objects written: %v", store.objs)
	}
}

func TestCuts(t *testing.T) {
	tests := []struct {
		name, body string
		lines      []string
		want       []string
	}{
		{"max_records", "    format: ndjson\n    buffer: {max_records: 2}\n",
			[]string{`{"a":1}`, `{"a":2}`, `{"a":3}`},
			[]string{"src+f+000000000001-000000000002.ndjson", "src+f+000000000003-000000000003.ndjson"}},
		{"max_open_partitions spills least recently used", "    format: ndjson\n    partition_keys: {k: .k}\n    max_open_partitions: 2\n",
			[]string{`{"k":"a"}`, `{"k":"b"}`, `{"k":"c"}`, `{"k":"a"}`},
			[]string{"k=a/src+f+000000000001-000000000004.ndjson", "k=b/src+f+000000000002-000000000002.ndjson", "k=c/src+f+000000000003-000000000003.ndjson"}},
		{"max_open_partitions without spill flushes oldest", "    format: ndjson\n    partition_keys: {k: .k}\n    max_open_partitions: 2\n    max_spill_bytes: 0\n",
			[]string{`{"k":"a"}`, `{"k":"b"}`, `{"k":"c"}`, `{"k":"a"}`},
			[]string{"k=a/src+f+000000000001-000000000001.ndjson", "k=a/src+f+000000000004-000000000004.ndjson", "k=b/src+f+000000000002-000000000002.ndjson", "k=c/src+f+000000000003-000000000003.ndjson"}},
		{"unusable spill_dir flushes oldest", "    format: ndjson\n    partition_keys: {k: .k}\n    max_open_partitions: 2\n    spill_dir: /nonexistent/sluice-spill\n",
			[]string{`{"k":"a"}`, `{"k":"b"}`, `{"k":"c"}`, `{"k":"a"}`},
			[]string{"k=a/src+f+000000000001-000000000001.ndjson", "k=a/src+f+000000000004-000000000004.ndjson", "k=b/src+f+000000000002-000000000002.ndjson", "k=c/src+f+000000000003-000000000003.ndjson"}},
		{"full spill flushes the most spilled", "    format: ndjson\n    partition_keys: {k: .k}\n    max_open_partitions: 1\n    max_spill_bytes: 500\n",
			[]string{`{"k":"a","pad":"` + strings.Repeat("x", 300) + `"}`, `{"k":"b","pad":"` + strings.Repeat("x", 300) + `"}`, `{"k":"c","pad":"` + strings.Repeat("x", 300) + `"}`, `{"k":"a"}`},
			[]string{"k=a/src+f+000000000001-000000000001.ndjson", "k=a/src+f+000000000004-000000000004.ndjson", "k=b/src+f+000000000002-000000000002.ndjson", "k=c/src+f+000000000003-000000000003.ndjson"}},
		{"max_spill_records flushes the most spilled", "    format: ndjson\n    partition_keys: {k: .k}\n    max_open_partitions: 1\n    max_spill_records: 2\n",
			[]string{`{"k":"a"}`, `{"k":"a"}`, `{"k":"b"}`, `{"k":"c"}`, `{"k":"c"}`, `{"k":"b"}`},
			[]string{"k=a/src+f+000000000001-000000000002.ndjson", "k=b/src+f+000000000003-000000000003.ndjson", "k=b/src+f+000000000006-000000000006.ndjson", "k=c/src+f+000000000004-000000000005.ndjson"}},
		{"max_buffered_records spills", "    format: ndjson\n    partition_keys: {k: .k}\n    max_buffered_records: 2\n",
			[]string{`{"k":"a"}`, `{"k":"b"}`, `{"k":"b"}`, `{"k":"a"}`},
			[]string{"k=a/src+f+000000000001-000000000004.ndjson", "k=b/src+f+000000000002-000000000003.ndjson"}},
		{"max_buffered_records without spill flushes oldest", "    format: ndjson\n    partition_keys: {k: .k}\n    max_buffered_records: 2\n    max_spill_bytes: 0\n",
			[]string{`{"k":"a"}`, `{"k":"b"}`, `{"k":"b"}`, `{"k":"b"}`},
			[]string{"k=a/src+f+000000000001-000000000001.ndjson", "k=b/src+f+000000000002-000000000004.ndjson"}},
		{"partition-limit error", "    format: ndjson\n    partition_keys: {k: .k}\n    max_open_partitions: 1\n    on_partition_limit: error\n",
			[]string{`{"k":"a"}`, `{"k":"b"}`},
			[]string{"k=a/src+f+000000000001-000000000001.ndjson", "(errors) partition-limit/2024/11/03/src+f+000000000002-000000000002.ndjson"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := newSink(t, tt.body, nil)
			feed(t, s, nil, tt.lines...)
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := files(t, dir)
			for _, f := range files(t, dir+"-errors") {
				got = append(got, "(errors) "+f)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("files:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestIntervalFlushWithoutCall(t *testing.T) {
	s, dir := newSink(t, "    format: ndjson\n    partition_keys: {k: .k}\n    buffer: {interval: 50ms}\n", nil)
	acked := make(chan error, 1)
	feed(t, s, func(err error) { acked <- err }, `{"k":"a/b"}`)
	select {
	case err := <-acked:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no flush after the interval")
	}
	if got := files(t, dir); len(got) != 1 || got[0] != "k=a%2Fb/src+f+000000000001-000000000001.ndjson" {
		t.Errorf("files = %v", got)
	}
}

func TestCSVAndGzip(t *testing.T) {
	s, dir := newSink(t, "    format: csv\n    compression: gzip\n", nil)
	w := s.NewWriter()
	rec := &record.Record{Source: "src", Value: fastjson.MustParse(`{}`), Pos: record.Position{Partition: "f", Offset: 1}, CSV: []byte(`a,"b,c"`), CSVHeader: []byte("x,y")}
	if f := w.Write(rec); f != nil {
		t.Fatal(f.Message)
	}
	if err := s.Append(context.Background(), w.Take(), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := files(t, dir)
	if len(got) != 1 || got[0] != "src+f+000000000001-000000000001.csv.gz" {
		t.Fatalf("files = %v", got)
	}
	text, err := testutil.ReadGzip(filepath.Join(dir, got[0]))
	if err != nil {
		t.Fatal(err)
	}
	if text != "x,y\na,\"b,c\"\n" {
		t.Errorf("csv = %q", text)
	}
}

// BenchmarkWriterParquet measures the per-record work a pipeline worker
// does for a Parquet sink with the seed's six partition keys: keys,
// prefix and row encoding (the ordered Append and the flush are not in it).
func BenchmarkWriterParquet(b *testing.B) {
	s, _ := newSink(b, `    format: parquet
    partition_keys:
      project_id: .project_id
      plan_ver: .plan_ver
      year: '.event_timestamp| strftime("%Y")'
      month: '.event_timestamp| strftime("%m")'
      day: '.event_timestamp| strftime("%d")'
      hour: '.event_timestamp| strftime("%H")'
    schema:
      - {name: project_id, type: string}
      - {name: plan_ver, type: string}
      - {name: event_timestamp, type: int64}
      - {name: level, type: string}
      - {name: message, type: string}
`, &blockingStore{release: make(chan struct{})})
	line := `{"project_id":"P-HMX-01","plan_ver":"v2024.11.03","event_timestamp":1730617263,"level":"WARN","engine":"mozart-planner","host":"ip-10-0-3-17","message":"capacity overload on line L3 (112%)","run_id":"r-7f3a","duration_ms":63012,"context":{"line":"L3","load_pct":112.4}}`
	rec := &record.Record{Source: "src", Value: fastjson.MustParse(line), Pos: record.Position{Partition: "f", Offset: 1}}
	w := s.NewWriter()
	b.ReportAllocs()
	i := 0
	cpu := cpuTime()
	for b.Loop() {
		if f := w.Write(rec); f != nil {
			b.Fatal(f.Message)
		}
		if i++; i%1024 == 0 {
			p := w.Take().(*pending)
			p.data, p.ents = p.data[:0], p.ents[:0]
			pendingPool.Put(p)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// TestAppendErrorFailsAck: once a flush has failed, Append refuses new
// records, and their ack carries the error instead of reporting delivery.
func TestAppendErrorFailsAck(t *testing.T) {
	store := &blockingStore{release: make(chan struct{}), fail: errors.New("disk full")}
	close(store.release)
	s, _ := newSink(t, "    format: ndjson\n", store)
	feed(t, s, nil, `{"a":1}`)
	s.Flush(context.Background())
	w := s.NewWriter()
	w.Write(&record.Record{Source: "src", Value: fastjson.MustParse(`{"a":2}`), Pos: record.Position{Partition: "f", Offset: 2}})
	acked := make(chan error, 1)
	if err := s.Append(context.Background(), w.Take(), func(err error) { acked <- err }); err == nil {
		t.Fatal("Append accepted records after a failed flush")
	}
	if err := <-acked; err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("ack = %v, want the flush error", err)
	}
}

// FuzzParquetRows: any JSON record the decoder lets through either encodes
// to a row that decodes back into one value per column (no non-finite
// double, no invalid UTF-8) and makes a file Arrow reads, or is refused as
// a schema mismatch.
func FuzzParquetRows(f *testing.F) {
	f.Add(`{"project_id":"P-1","n":42,"d":1.5,"b":true,"t":"2024-11-03T07:00:00.123Z","j":{"a":[1]},"Severity":{"Label":"HIGH","x":1},"z":null}`)
	f.Add(`{"n":"7","d":"2","b":"false","t":1730617200456}`)
	f.Add(`{"Severity":"flat","t":-1}`)
	f.Add(`{"d":1e400,"n":"NaN","j":"q\"\u0007\u007f\udb40\udc01"}`)
	f.Add(`{"d":"-Infinity","x":"\ud800"}`)
	s, _ := newSink(f, typedSchema, &blockingStore{release: make(chan struct{})})
	pf := s.layout.newFileWriter()
	f.Fuzz(func(t *testing.T, rec string) {
		text, _ := jsonx.ValidText(nil, []byte(rec)) // as the decoder does
		v, err := fastjson.ParseBytes(text)
		if err != nil || jsonx.BadNumber(v) != nil {
			return
		}
		row, _, err := s.layout.encodeRow(nil, v)
		if err != nil {
			if _, ok := err.(*mismatchError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		got, err := pf.decodeRow(nil, row)
		if err != nil {
			t.Fatalf("row does not decode: %v", err)
		}
		if len(got) != len(s.layout.cols)+1 {
			t.Fatalf("%d values for %d columns", len(got), len(s.layout.cols)+1)
		}
		for _, pv := range got {
			if pv.Kind() == parquet.Double && (math.IsInf(pv.Double(), 0) || math.IsNaN(pv.Double())) {
				t.Fatalf("non-finite double %v from %s", pv.Double(), rec)
			}
			if pv.Kind() == parquet.ByteArray && !utf8.Valid(pv.ByteArray()) {
				t.Fatalf("invalid UTF-8 %q from %s", pv.ByteArray(), rec)
			}
		}
		var obj bytes.Buffer
		if err := pf.encodeTo(&obj, append(binary.AppendUvarint(nil, uint64(len(row))), row...)); err != nil {
			t.Fatal(err)
		}
		if r, err := testutil.ReadParquetBytes("fuzz", obj.Bytes()); err != nil || len(r.Rows) != 1 {
			t.Fatalf("Arrow: %v", err)
		}
	})
}

// TestMemoryHeldUnderCap: rows in open buffers plus rows of objects being
// written stay under max_buffered_bytes; an append past it waits for a
// write to finish.
func TestMemoryHeldUnderCap(t *testing.T) {
	store := &blockingStore{release: make(chan struct{})}
	s, _ := newSink(t, "    format: ndjson\n    partition_keys: {k: .k}\n    max_buffered_bytes: 4KiB\n    concurrency: 16\n    max_spill_bytes: 0\n", store)
	var once sync.Once
	release := func() { once.Do(func() { close(store.release) }) }
	t.Cleanup(release) // before the sink's Close, which would wait for the writes
	big := `{"k":"%d","pad":"` + strings.Repeat("x", 900) + `"}`
	appended := make(chan int, 100)
	go func() {
		for i := range 20 {
			feed(t, s, nil, fmt.Sprintf(big, i))
			appended <- i
		}
		close(appended)
	}()
	time.Sleep(100 * time.Millisecond)
	if n := len(appended); n >= 20 {
		t.Fatalf("all %d appends went through with every write blocked", n)
	}
	if held := s.flying.Load(); held > 4096+2048 {
		t.Errorf("%d bytes held by blocked writes, cap 4 KiB", held)
	}
	release()
	for range appended {
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(store.puts) != 20 {
		t.Errorf("puts = %d, want 20", len(store.puts))
	}
}

// TestPartitionKeyOverJQLimit: a partition key whose jq never ends, never
// stops producing or grows without bound fails its record to the error
// output as Firehose fails a key it cannot extract, naming the bound; the
// other records are written.
func TestPartitionKeyOverJQLimit(t *testing.T) {
	tests := []struct {
		key, limit string
	}{
		{`until(.n == 0; .n -= 1)`, "evaluation exceeded 100ms (service.jq.timeout)"},
		{`repeat(.)`, "evaluation produced more than 1000 outputs (service.jq.max_outputs)"},
		{`[range(1e9)] | length`, "evaluation exceeded 100ms (service.jq.timeout)"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			// The good records (ok) never reach the hostile part.
			key := "if .ok then .p else " + tt.key + " end"
			s, dir := newSink(t, "    format: ndjson\n    partition_keys: {p: '"+key+"'}\n", nil)
			var fails []*sinks.Failure
			testutil.Bounded(tt.key, func() {
				fails = feed(t, s, nil, `{"ok":true,"p":"a"}`, `{"n":-1}`, `{"ok":true,"p":"b"}`)
			})
			if len(fails) != 1 || fails[0].Pos.Offset != 2 || fails[0].Type != sinks.ProcessingFailed ||
				fails[0].Code != "DynamicPartitioning.MetadataExtractionFailed" || !strings.HasSuffix(fails[0].Message, tt.limit) {
				t.Fatalf("failures = %+v", fails)
			}
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := strings.Join(append(files(t, dir), files(t, dir+"-errors")...), "\n")
			if !strings.Contains(got, "p=a/") || !strings.Contains(got, "p=b/") || !strings.Contains(got, "processing-failed") {
				t.Errorf("files:\n%s", got)
			}
		})
	}
}

// TestDateColumnTakesCalendarDates: a date column reads "2024-01-02" as
// that day, like Athena's and DuckDB's DATE literals, besides epochs and
// RFC 3339 times; anything else is a schema mismatch.
func TestDateColumnTakesCalendarDates(t *testing.T) {
	s, dir := newSink(t, "    format: parquet\n    schema:\n      - {name: d, type: date}\n", nil)
	fails := feed(t, s, nil, `{"d":"2024-01-02"}`, `{"d":"1969-12-31"}`, `{"d":"2024-13-01"}`, `{"d":"tomorrow"}`)
	if len(fails) != 2 || fails[0].Type != sinks.SchemaMismatch || fails[1].Type != sinks.SchemaMismatch {
		t.Fatalf("failures = %+v, want the two bad dates as schema-mismatch", fails)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := files(t, dir)
	pf, err := testutil.ReadParquet(filepath.Join(dir, got[0]))
	if err != nil {
		t.Fatal(err)
	}
	if len(pf.Rows) != 2 || pf.Rows[0]["d"] != "2024-01-02" || pf.Rows[1]["d"] != "1969-12-31" {
		t.Errorf("rows = %v", pf.Rows)
	}
}
