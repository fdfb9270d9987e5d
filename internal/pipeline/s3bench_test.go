package pipeline

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/sluice-data/sluice/internal/testutil"
)

var benchRuns atomic.Int64

// BenchmarkStores runs the bench workload (testutil.WriteAppLogs, seed's
// six keys) into the file store and into S3 (gofakes3 in-process), to
// compare the two backends on the same pipeline.
func BenchmarkStores(b *testing.B) {
	const n = 200000
	dir := b.TempDir()
	var buf bytes.Buffer
	if err := testutil.WriteAppLogs(&buf, n); err != nil {
		b.Fatal(err)
	}
	in := filepath.Join(dir, "in.ndjson")
	os.WriteFile(in, buf.Bytes(), 0o644)
	b.Setenv("AWS_ACCESS_KEY_ID", "test")
	b.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	b.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	backend := s3mem.New()
	backend.CreateBucket("lake")
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()
	for _, store := range []struct{ name, url string }{
		{"file", "file:" + filepath.Join(dir, "out") + "/%d/"},
		{"s3", "s3://lake/app/%d/\n    endpoint: " + srv.URL},
	} {
		b.Run(store.name, func(b *testing.B) {
			b.SetBytes(int64(buf.Len()))
			for b.Loop() {
				// A fresh prefix each time: a second run into the same one
				// would find every record written and skip it.
				run := benchRuns.Add(1)
				runYAML(b, fmt.Sprintf(`
service: {http_listen: "", error_sink: lake}
sources: [{name: app, type: file, format: app_log, file: {paths: ["%s"]}}]
routes: [{name: r, from: [app], to: [lake]}]
sinks:
  - name: lake
    type: s3
    url: %s
    format: parquet
`+seedKeys+`
      - {name: event_timestamp, type: int64}
      - {name: level, type: string}
      - {name: message, type: string}
`, in, fmt.Sprintf(store.url, run)))
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
