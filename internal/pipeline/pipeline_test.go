package pipeline

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/sinks/objstore"
	"github.com/sluice-data/sluice/internal/testutil"
)

// seedKeys is the seed's Firehose dynamic partitioning (verbatim jq) and
// the first schema columns, for configs built with fmt.Sprintf.
const seedKeys = `    partition_keys:
      project_id: .project_id
      plan_ver: .plan_ver
      year: '.event_timestamp| strftime("%%Y")'
      month: '.event_timestamp| strftime("%%m")'
      day: '.event_timestamp| strftime("%%d")'
      hour: '.event_timestamp| strftime("%%H")'
    schema:
      - {name: project_id, type: string}
      - {name: plan_ver, type: string}`

const pipelineConfig = `
service:
  http_listen: ""
  error_sink: errors
  shutdown_timeout: 10s
sources:
  - name: app
    type: file
    format: app_log
    batch_size: 64
    max_pending: %d
    file: {paths: ["%s/in/*.ndjson"]}
routes:
  - name: lake
    from: [app]
    transforms:
      - epoch_to_utc: {field: event_timestamp, target: time_utc}
    to: [lake]
  - name: errors-only
    from: [app]
    match: {level: [ERROR]}
    transforms:
      - json_to_csv: {columns: [project_id, message], header: true}
    to: [alerts]
sinks:
  - name: lake
    type: s3
    url: file:%s/out/lake/
    format: parquet
` + seedKeys + `
      - {name: event_timestamp, type: int64}
      - {name: time_utc, type: timestamp_ms}
      - {name: level, type: string}
      - {name: message, type: string}
    max_buffered_records: %d
  - name: alerts
    type: s3
    url: file:%s/out/alerts/
    format: csv
  - name: errors
    type: s3
    url: file:%s/out/errors/
    format: ndjson
`

type input struct {
	lines    []string
	want     map[string]int // partition dir -> rows
	wantTime map[string]bool
	bad      []string
}

// makeInput writes n app-log lines (plus malformed ones) and computes, by
// its own means, how many rows each Hive partition must hold.
func makeInput(t testing.TB, dir string, n int) *input {
	in := &input{want: map[string]int{}, wantTime: map[string]bool{}}
	base := int64(1730592000)
	for i := 0; i < n; i++ {
		ts := base + int64(i*37)
		if i%5 == 3 {
			ts = ts*1000 + int64(i%1000) // milliseconds, auto-detected for event time
		}
		rec := map[string]any{"project_id": fmt.Sprintf("P-%d", i%7), "plan_ver": fmt.Sprintf("v%d", i%2), "event_timestamp": ts,
			"level": []string{"INFO", "WARN", "ERROR"}[i%3], "message": fmt.Sprintf("message %d, \"quoted\"", i), "n": i}
		b, _ := json.Marshal(rec)
		in.lines = append(in.lines, string(b))
		// strftime in the partition keys reads the raw number as seconds,
		// milliseconds included, exactly as Firehose's jq would.
		tm := time.Unix(ts, 0).UTC()
		part := fmt.Sprintf("project_id=%s/plan_ver=%s/year=%04d/month=%02d/day=%02d/hour=%02d", rec["project_id"], rec["plan_ver"], tm.Year(), tm.Month(), tm.Day(), tm.Hour())
		in.want[part]++
		if i == n/2 {
			in.lines = append(in.lines, `{"project_id":"P-1","plan_ver":"v1","event_timestamp":17306`)
			in.bad = append(in.bad, in.lines[len(in.lines)-1])
		}
	}
	os.MkdirAll(filepath.Join(dir, "in"), 0o755)
	half := len(in.lines) / 2
	os.WriteFile(filepath.Join(dir, "in", "a.ndjson"), []byte(strings.Join(in.lines[:half], "\n")+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "in", "b.ndjson"), []byte(strings.Join(in.lines[half:], "\n")), 0o644)
	return in
}

func runPipeline(t testing.TB, dir string, maxPending, maxBuffered int, ctx context.Context) (Summary, error) {
	y := fmt.Sprintf(pipelineConfig, maxPending, dir, dir, maxBuffered, dir, dir)
	cfg, err := config.Parse("p.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(ctx)
	return p.Summary(), err
}

func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	in := makeInput(t, dir, 3000)
	sum, err := runPipeline(t, dir, 100000, 200000, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if i, o := sum.Balance(); i != o {
		t.Fatalf("balance %d != %d: %+v", i, o, sum)
	}
	if got := sum.Sources[0].Records; got != int64(len(in.lines)) {
		t.Fatalf("records in = %d, want %d", got, len(in.lines))
	}
	// Rows per partition, read back by Arrow.
	got := map[string]int{}
	lake := filepath.Join(dir, "out", "lake")
	for rel := range testutil.TreeHashes(lake) {
		pf, err := testutil.ReadParquet(filepath.Join(lake, rel))
		if err != nil {
			t.Fatal(err)
		}
		got[filepath.Dir(rel)] += len(pf.Rows)
		for _, r := range pf.Rows {
			ts, _ := r["event_timestamp"].(json.Number).Int64()
			ms := ts * 1000
			if ts > 1e11 {
				ms = ts
			}
			got, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r["time_utc"]))
			if err != nil || got.UnixMilli() != ms {
				t.Fatalf("time_utc %v, want %d ms (event_timestamp %d)", r["time_utc"], ms, ts)
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(in.want) {
		t.Errorf("rows per partition:\n%v\nwant\n%v", got, in.want)
	}
	// The malformed line is in the error output with its bytes and reason.
	var errLines []string
	for rel := range testutil.TreeHashes(filepath.Join(dir, "out", "errors")) {
		b, _ := os.ReadFile(filepath.Join(dir, "out", "errors", rel))
		errLines = append(errLines, strings.Split(strings.TrimSpace(string(b)), "\n")...)
	}
	if len(errLines) != 1 {
		t.Fatalf("error records = %d", len(errLines))
	}
	var er map[string]any
	json.Unmarshal([]byte(errLines[0]), &er)
	raw, _ := base64.StdEncoding.DecodeString(er["rawData"].(string))
	if string(raw) != in.bad[0] || er["errorOutputType"] != "processing-failed" || !strings.Contains(er["errorMessage"].(string), "invalid JSON") {
		t.Errorf("error record = %v", er)
	}
	// CSV alerts parse and count.
	if sum.Routes[1].Out != 1000 {
		t.Errorf("alerts out = %d", sum.Routes[1].Out)
	}
}

func TestRerunIsIdentical(t *testing.T) {
	dir := t.TempDir()
	makeInput(t, dir, 2000)
	// A small buffer forces many cuts, which must fall in the same places.
	if _, err := runPipeline(t, dir, 100000, 700, context.Background()); err != nil {
		t.Fatal(err)
	}
	first := testutil.TreeHashes(filepath.Join(dir, "out"))
	os.RemoveAll(filepath.Join(dir, "out"))
	if _, err := runPipeline(t, dir, 100000, 700, context.Background()); err != nil {
		t.Fatal(err)
	}
	second := testutil.TreeHashes(filepath.Join(dir, "out"))
	if len(first) < 50 {
		t.Fatalf("only %d objects; the test wants many cuts", len(first))
	}
	if fmt.Sprint(first) != fmt.Sprint(second) {
		var a, b []string
		for k, v := range first {
			a = append(a, k+" "+v)
		}
		for k, v := range second {
			b = append(b, k+" "+v)
		}
		sort.Strings(a)
		sort.Strings(b)
		t.Errorf("re-run differs:\n%s\n---\n%s", strings.Join(a[:5], "\n"), strings.Join(b[:5], "\n"))
	}
}

// TestCapBelowBuffers: the pending cap is far below what the sink would
// buffer; the run must still finish (the sink is asked to flush early).
func TestCapBelowBuffers(t *testing.T) {
	dir := t.TempDir()
	in := makeInput(t, dir, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sum, err := runPipeline(t, dir, 100, 1000000, ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sinks[0].Written != int64(len(in.lines)-1) {
		t.Errorf("written = %d", sum.Sinks[0].Written)
	}
}

// TestShutdownFlushesWhatWasRead cancels mid-run: reading stops, and every
// record read is written before Run returns.
func TestShutdownFlushesWhatWasRead(t *testing.T) {
	dir := t.TempDir()
	makeInput(t, dir, 50000)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	sum, err := runPipeline(t, dir, 1000000, 1000000, ctx)
	if err != nil {
		t.Fatal(err)
	}
	in, out := sum.Balance()
	if in != out {
		t.Fatalf("balance %d != %d", in, out)
	}
	read := sum.Sources[0].Records
	if read == 0 || read >= 50001 {
		t.Skipf("cancel landed outside the run (read %d); nothing to check", read)
	}
	rows := 0
	lake := filepath.Join(dir, "out", "lake")
	for rel := range testutil.TreeHashes(lake) {
		pf, err := testutil.ReadParquet(filepath.Join(lake, rel))
		if err != nil {
			t.Fatal(err)
		}
		rows += len(pf.Rows)
	}
	if int64(rows) != sum.Sinks[0].Written || int64(rows)+sum.Sources[0].DecodeFailed != read {
		t.Errorf("read %d, lake has %d rows, summary says %d written", read, rows, sum.Sinks[0].Written)
	}
}

// BenchmarkFileToPartitionedParquet runs the bench harness's workload
// (testutil.WriteAppLogs: ~480 B records, seed's six Firehose keys) through
// the whole pipeline, file to partitioned Parquet on disk.
func BenchmarkFileToPartitionedParquet(b *testing.B) {
	const n = 200000
	dir := b.TempDir()
	os.MkdirAll(filepath.Join(dir, "in"), 0o755)
	var buf bytes.Buffer
	if err := testutil.WriteAppLogs(&buf, n); err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "in", "a.ndjson"), buf.Bytes(), 0o644)
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		os.RemoveAll(filepath.Join(dir, "out"))
		if _, err := runPipeline(b, dir, 1000000, 200000, context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// TestMetricsBalance checks the accounting identity from the Prometheus
// counters alone, as an operator would: records in = written + filtered +
// unmatched + error records (this config fans out to two sinks only for
// ERROR records, which the identity accounts for through route counters).
func TestMetricsBalance(t *testing.T) {
	read := func() map[string]float64 {
		mfs, err := metrics.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if m.GetCounter() != nil {
					out[mf.GetName()] += m.GetCounter().GetValue()
				}
			}
		}
		return out
	}
	before := read()
	dir := t.TempDir()
	in := makeInput(t, dir, 1500)
	if _, err := runPipeline(t, dir, 100000, 200000, context.Background()); err != nil {
		t.Fatal(err)
	}
	after := read()
	d := func(name string) float64 { return after["sluice_"+name] - before["sluice_"+name] }
	if got := d("source_records_total"); got != float64(len(in.lines)) {
		t.Fatalf("source_records_total grew by %v, want %d", got, len(in.lines))
	}
	// Each record matched by k routes is counted k times from routing on.
	fanout := d("route_matched_total") - (d("source_records_total") - d("source_unmatched_total") - d("source_decode_failed_total"))
	in2 := d("source_records_total") + fanout
	out := d("sink_written_total") + d("route_filtered_total") + d("source_unmatched_total") + d("sink_error_records_written_total")
	if in2 != out {
		t.Errorf("metrics: %v in (with fan-out) != %v accounted", in2, out)
	}
}

func runYAML(t testing.TB, y string, opts ...Option) Summary {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, zap.NewNop(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p.Summary()
}

// TestFanOutKeepsRoutesApart: a record taking two routes into one sink is
// written twice, the second route sees the record as decoded (not as the
// first route left it), and the two copies get distinct positions.
func TestFanOutKeepsRoutesApart(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.ndjson"), []byte(`{"id":"a","items":[1,2]}`+"\n"+`{"id":"b","items":[]}`+"\n"), 0o644)
	sum := runYAML(t, fmt.Sprintf(`
service: {http_listen: "", error_sink: out}
sources: [{name: s, type: file, format: json, file: {paths: ["%s/in.ndjson"]}}]
routes:
  - name: first
    from: [s]
    transforms: [{set: {route: first}}, {drop: [id]}]
    to: [out]
  - name: second
    from: [s]
    transforms: [{explode: items}]
    to: [out]
sinks:
  - {name: out, type: s3, url: "file:%s/out/", format: ndjson, buffer: {max_records: 1}}
`, dir, dir))
	if in, out := sum.Balance(); in != out {
		t.Fatalf("balance %d != %d", in, out)
	}
	got := testutil.TreeHashes(filepath.Join(dir, "out"))
	var names []string
	for k := range got {
		names = append(names, k)
	}
	sort.Strings(names)
	id := objstore.StreamID("s", filepath.Join(dir, "in.ndjson"))
	want := []string{ // route first, then the two records route second exploded
		id + "+000000000001-000000000001.ndjson", id + "+000000000001.1-000000000001.1.ndjson", id + "+000000000001.2-000000000001.2.ndjson",
		id + "+000000000002-000000000002.ndjson",
	}
	if strings.Join(names, "\n") != strings.Join(want, "\n") {
		t.Fatalf("objects:\n%s\nwant\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
	b, _ := os.ReadFile(filepath.Join(dir, "out", want[1]))
	if string(b) != `{"value":1,"event":{"id":"a"}}`+"\n" {
		t.Errorf("second route saw %s", b)
	}
	// Record b: explode of an empty array is filtered.
	if sum.Routes[1].Filtered != 1 || sum.Routes[1].Out != 2 {
		t.Errorf("second route = %+v", sum.Routes[1])
	}
}

// TestArchiveReplayMatchesLivePass: a live pass writes the lake and the raw
// archive; replaying the archive's time range through the same route
// writes a second lake with the same object names and bytes.
func TestArchiveReplayMatchesLivePass(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "in"), 0o755)
	var buf bytes.Buffer
	if err := testutil.WriteAppLogs(&buf, 5000); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "in", "app.ndjson")
	os.WriteFile(in, buf.Bytes(), 0o644)
	mtime := time.Date(2024, 11, 3, 9, 30, 0, 0, time.UTC)
	os.Chtimes(in, mtime, mtime)
	lake := `
  - name: lake
    type: s3
    url: file:%s/
    format: parquet
    partition_keys:
      project_id: .project_id
      hour: '.event_timestamp| strftime("%%H")'
    schema:
      - {name: project_id, type: string}
      - {name: event_timestamp, type: int64}
      - {name: message, type: string}
    max_buffered_records: 1500
`
	live := runYAML(t, fmt.Sprintf(`
service: {http_listen: "", error_sink: lake}
sources: [{name: app, type: file, format: app_log, batch_size: 100, file: {paths: ["%s"]}}]
routes:
  - {name: to-lake, from: [app], to: [lake]}
  - {name: to-archive, from: [app], to: [archive]}
sinks:`+lake+`
  - {name: archive, type: s3, url: "file:%s/archive/", format: raw}
`, in, filepath.Join(dir, "live"), dir))
	if live.Sinks[1].Written != 5000 {
		t.Fatalf("archived %d records", live.Sinks[1].Written)
	}
	archived := testutil.TreeHashes(filepath.Join(dir, "archive"))
	for k := range archived {
		if !strings.HasPrefix(k, "dt=2024-11-03/hour=09/") || !strings.HasSuffix(k, ".ndjson.gz") {
			t.Errorf("archive object %s is not under its arrival hour", k)
		}
	}
	replay := runYAML(t, fmt.Sprintf(`
service: {http_listen: "", error_sink: lake}
sources:
  - name: replayed
    type: archive
    format: app_log
    batch_size: 100
    archive: {url: "file:%s/archive/", from: "2024-11-03T09:00:00Z", to: "2024-11-03T10:00:00Z"}
routes:
  - {name: to-lake, from: [replayed], to: [lake]}
sinks:`+lake, dir, filepath.Join(dir, "replay")))
	if replay.Sources[0].Records != 5000 {
		t.Fatalf("replayed %d records", replay.Sources[0].Records)
	}
	a, b := testutil.TreeHashes(filepath.Join(dir, "live")), testutil.TreeHashes(filepath.Join(dir, "replay"))
	if len(a) < 20 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("replay wrote %d objects, live %d; names or bytes differ", len(b), len(a))
	}
	// A range that misses the arrival hour replays nothing.
	empty := runYAML(t, fmt.Sprintf(`
service: {http_listen: "", error_sink: lake}
sources:
  - {name: replayed, type: archive, format: app_log, archive: {url: "file:%s/archive/", from: "2024-11-03T10:00:00Z", to: "2024-11-03T12:00:00Z"}}
routes:
  - {name: to-lake, from: [replayed], to: [lake]}
sinks:`+lake, dir, filepath.Join(dir, "none")))
	if empty.Sources[0].Records != 0 {
		t.Errorf("out-of-range replay read %d records", empty.Sources[0].Records)
	}
}

// TestOpenSearchReplayIdempotent runs the same input twice into an
// OpenSearch sink (the fake): ids derive from positions, so the second pass
// overwrites every document and the count stays the same; a rejected
// document lands in the error sink and the run balances.
func TestOpenSearchReplayIdempotent(t *testing.T) {
	dir := t.TempDir()
	var in strings.Builder
	for i := range 500 {
		if i == 250 {
			in.WriteString(`{"n":"not a number","time":"2024-11-03T07:00:00Z"}` + "\n")
			continue
		}
		fmt.Fprintf(&in, `{"n":%d,"time":"2024-11-0%dT07:00:00Z"}`+"\n", i, 1+i%3)
	}
	os.WriteFile(filepath.Join(dir, "in.ndjson"), []byte(in.String()), 0o644)
	fake := testutil.NewSearchFake(t)
	fake.Item = func(index, id string, doc []byte, attempt int) int {
		if strings.Contains(string(doc), "not a number") {
			return 400
		}
		return 0
	}
	y := fmt.Sprintf(`
service: {http_listen: "", error_sink: errs}
sources: [{name: s, type: file, format: json, event_time: {field: time}, file: {paths: ["%s/in.ndjson"]}}]
routes: [{name: r, from: [s], to: [search]}]
sinks:
  - {name: search, type: opensearch, endpoints: ["%s"], index: "logs-!{timestamp:yyyy.MM.dd}", bulk: {max_docs: 64}}
  - {name: errs, type: s3, url: "file:%s/errs/", format: ndjson}
`, dir, fake.Server.URL, dir)
	for pass := 1; pass <= 2; pass++ {
		sum := runYAML(t, y)
		if in, out := sum.Balance(); in != out {
			t.Fatalf("pass %d: balance %d != %d", pass, in, out)
		}
		if fake.Docs() != 499 {
			t.Fatalf("pass %d: %d documents, want 499", pass, fake.Docs())
		}
		if got := fake.Indices(); got["logs-2024.11.01"] != 167 || len(got) != 3 {
			t.Errorf("pass %d: indices %v", pass, got)
		}
	}
	for id, n := range fake.AllAttempts() {
		if n != 2 {
			t.Errorf("%s delivered %d times over two passes", id, n)
		}
	}
	errs := 0
	filepath.Walk(filepath.Join(dir, "errs"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(p)
			errs += strings.Count(string(b), `"errorCode":"OpenSearch.mapper_parsing_exception"`)
		}
		return nil
	})
	if errs != 2 { // once per pass: the error output is at least once for rejected documents
		t.Errorf("%d error records for the rejected document, want 2", errs)
	}
}
