package objstore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"strconv"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/sluice-data/sluice/internal/testutil"
)

// benchSchema is test/bench/bench.yaml's sink: the seed's columns, the
// rest of each app log in _extra.
const benchSchema = `    format: parquet
    schema:
      - {name: project_id, type: string}
      - {name: plan_ver, type: string}
      - {name: event_timestamp, type: int64}
      - {name: level, type: string}
      - {name: message, type: string}
`

// appLogRows returns n buffered rows (as a sink's buffer holds them) of
// the bench's app logs, all of one project and plan version, as one lake
// partition gets them, and the length of the longest.
func appLogRows(tb testing.TB, l *parquetLayout, n int) (data []byte, maxRow int) {
	tb.Helper()
	var buf bytes.Buffer
	if err := testutil.WriteAppLogs(&buf, n); err != nil {
		tb.Fatal(err)
	}
	var row []byte
	var p fastjson.Parser
	var a fastjson.Arena
	project, version := a.NewString("P-003"), a.NewString("v2024.11.4")
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		v, err := p.ParseBytes(sc.Bytes())
		if err != nil {
			tb.Fatal(err)
		}
		v.Set("project_id", project)
		v.Set("plan_ver", version)
		if row, _, err = l.encodeRow(row[:0], v); err != nil {
			tb.Fatal(err)
		}
		data = binary.AppendUvarint(data, uint64(len(row)))
		data = append(data, row...)
		maxRow = max(maxRow, len(row))
	}
	return data, maxRow
}

// BenchmarkParquetEncode measures a flush worker turning buffered rows
// into one Parquet object (Snappy) for the bench's columns: objects of
// the bench's average size (about 700 rows) and of 64 Ki rows. cpu-ns/record
// counts every thread of the process (GC included) and is the number to
// compare on a shared machine.
func BenchmarkParquetEncode(b *testing.B) {
	for _, rows := range []int{700, 65536} {
		b.Run(strconv.Itoa(rows), func(b *testing.B) {
			s, _ := newSink(b, benchSchema, &blockingStore{release: make(chan struct{})})
			data, maxRow := appLogRows(b, s.layout, rows)
			pf := s.layout.newFileWriter()
			out := countingWriter{w: io.Discard}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				out.n = 0
				pf.maxRow = maxRow // as the sink's buffer tells it
				if err := pf.encodeTo(&out, data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N*rows), "cpu-ns/record")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/record")
			b.ReportMetric(float64(out.n)/float64(rows), "out-B/record")
		})
	}
}
