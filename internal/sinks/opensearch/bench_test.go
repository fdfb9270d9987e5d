package opensearch

import (
	"bufio"
	"os"
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/testutil"
)

// BenchmarkBulkEncode measures what a pipeline worker does per document
// for this sink: index name from the event time, id from the position,
// action line and document, on CloudWatch Metric Streams records.
func BenchmarkBulkEncode(b *testing.B) {
	f, err := os.Open("../../../test/testdata/metrics/metric-stream-2024-11-03.ndjson")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var recs []*record.Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		v, err := fastjson.ParseBytes(line)
		if err != nil {
			b.Fatal(err)
		}
		ts := time.UnixMilli(v.GetInt64("timestamp")).UTC()
		recs = append(recs, &record.Record{Source: "metrics", Value: v, Raw: line, Pos: record.Position{Partition: "shardId-000000000003", Offset: int64(len(recs))}, EventTime: ts, Arrival: ts})
	}
	fake := testutil.NewSearchFake(b)
	h := newHarnessB(b, fake)
	w := h.NewWriter()
	var bytes int64
	for _, r := range recs {
		w.Write(r)
	}
	for _, it := range w.Take().(*pending).items {
		bytes += int64(len(it.lines))
	}
	b.SetBytes(bytes / int64(len(recs)))
	b.ResetTimer()
	n := 0
	for b.Loop() {
		w.Write(recs[n%len(recs)])
		n++
		if n%1024 == 0 {
			w.Take()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "docs/s")
}
