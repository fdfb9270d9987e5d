package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/testutil"
)

// jqConfig has a jq transform and a jq partition key that loop, or never
// stop producing, on poisoned records only.
const jqConfig = `
service:
  http_listen: ""
  error_sink: errors
  shutdown_timeout: %s
  jq: {timeout: %s}
sources:
  - name: app
    type: file
    format: json
    batch_size: 16
    file: {paths: ["%[3]s/in/*.ndjson"]}
routes:
  - name: lake
    from: [app]
    transforms:
      - jq: 'if .poison == "transform" then until(.n == 0; .n -= 1) else . end'
    to: [lake]
sinks:
  - name: lake
    type: s3
    url: file:%[3]s/out/lake/
    format: ndjson
    partition_keys:
      p: 'if .poison == "key" then repeat(.) elif .poison == "keyloop" then until(.n == 0; .n -= 1) | tostring else .p end'
  - name: errors
    type: s3
    url: file:%[3]s/out/errors/
    format: ndjson
`

func runJQPipeline(t *testing.T, ctx context.Context, dir, shutdown, timeout string, lines []string) (Summary, error) {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "in"), 0o755)
	os.WriteFile(filepath.Join(dir, "in", "a.ndjson"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	cfg, err := config.Parse("p.yaml", []byte(fmt.Sprintf(jqConfig, shutdown, timeout, dir)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	var sum Summary
	testutil.Bounded("pipeline run", func() {
		err = p.Run(ctx)
		sum = p.Summary()
	})
	return sum, err
}

// readLines reads the NDJSON objects under root.
func readLines(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for rel := range testutil.TreeHashes(root) {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Split(strings.TrimSpace(string(b)), "\n")...)
	}
	return out
}

// TestPoisonedJQRecords: one record loops forever in a jq transform,
// another makes a partition key produce without end. Each goes to the
// error output naming the bound it passed; every other record is written.
func TestPoisonedJQRecords(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for i := range 200 {
		rec := map[string]any{"i": i, "p": fmt.Sprint("k", i%3)}
		switch i {
		case 50:
			rec["poison"], rec["n"] = "transform", -1
		case 120:
			rec["poison"] = "key"
		}
		b, _ := json.Marshal(rec)
		lines = append(lines, string(b))
	}
	sum, err := runJQPipeline(t, context.Background(), dir, "10s", "100ms", lines)
	if err != nil {
		t.Fatal(err)
	}
	if in, out := sum.Balance(); in != out {
		t.Fatalf("balance %d != %d: %+v", in, out, sum)
	}
	written := readLines(t, filepath.Join(dir, "out", "lake"))
	if len(written) != 198 {
		t.Errorf("lake rows = %d, want 198", len(written))
	}
	for _, l := range written {
		if strings.Contains(l, "poison") {
			t.Errorf("poisoned record written: %s", l)
		}
	}
	// A transform's failure goes to the route's error sink, a partition
	// key's to the lake's own error location, beside it.
	errs := append(readLines(t, filepath.Join(dir, "out", "errors")), readLines(t, filepath.Join(dir, "out", "lake-errors"))...)
	want := map[string]string{
		"Sluice.JQLimitExceeded":                       "evaluation exceeded 100ms (service.jq.timeout)",
		"DynamicPartitioning.MetadataExtractionFailed": "evaluation produced more than 1000 outputs (service.jq.max_outputs)",
	}
	if len(errs) != 2 {
		t.Fatalf("error records:\n%s", strings.Join(errs, "\n"))
	}
	for _, l := range errs {
		var er map[string]any
		if err := json.Unmarshal([]byte(l), &er); err != nil {
			t.Fatal(err)
		}
		code, _ := er["errorCode"].(string)
		msg, _ := er["errorMessage"].(string)
		if w, ok := want[code]; !ok || !strings.HasSuffix(msg, w) || er["errorOutputType"] != "processing-failed" {
			t.Errorf("error record %s", l)
		}
	}
}

// TestShutdownStopsJQ: with a jq timeout far longer than shutdown_timeout,
// a looping record must not hold up shutdown; it is neither written nor
// sent to the error output, and the run says why it stopped.
func TestShutdownStopsJQ(t *testing.T) {
	dir := t.TempDir()
	lines := []string{`{"p":"a"}`, `{"poison":"transform","n":-1}`, `{"p":"b"}`}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := runJQPipeline(t, ctx, dir, "200ms", "1h", lines)
	if err == nil || !strings.Contains(err.Error(), "shutdown_timeout") {
		t.Fatalf("err = %v, want the shutdown_timeout", err)
	}
	if errs := append(readLines(t, filepath.Join(dir, "out", "errors")), readLines(t, filepath.Join(dir, "out", "lake-errors"))...); len(errs) != 0 {
		t.Errorf("error records for a canceled evaluation:\n%s", strings.Join(errs, "\n"))
	}
}

// TestShutdownStopsJQKey: a partition key looping at shutdown is canceled
// like a transform. The records of the abandoned batch are read again on
// the next run, so the sink must not count them as refused: the summary
// once said "refused 3" with no error record anywhere.
func TestShutdownStopsJQKey(t *testing.T) {
	dir := t.TempDir()
	lines := []string{`{"p":"a"}`, `{"poison":"keyloop","n":-1}`, `{"p":"b"}`, `{"p":"c"}`}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	sum, err := runJQPipeline(t, ctx, dir, "200ms", "1h", lines)
	if err == nil || !strings.Contains(err.Error(), "shutdown_timeout") {
		t.Fatalf("err = %v, want the shutdown_timeout", err)
	}
	for _, sk := range sum.Sinks {
		if sk.Failed != 0 {
			t.Errorf("sink %s: %d refused, want 0 (the batch is read again)", sk.Name, sk.Failed)
		}
	}
	if errs := append(readLines(t, filepath.Join(dir, "out", "errors")), readLines(t, filepath.Join(dir, "out", "lake-errors"))...); len(errs) != 0 {
		t.Errorf("error records for a canceled evaluation:\n%s", strings.Join(errs, "\n"))
	}
}
