package objstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
	"github.com/valyala/fastjson"

	"github.com/sluice-data/sluice/internal/testutil"
)

var (
	dictPages  = []string{"DATA_PAGE/RLE_DICTIONARY", "DICTIONARY_PAGE/PLAIN"}
	plainPages = []string{"DATA_PAGE/PLAIN"}
	// fellBack is a chunk whose dictionary grew past its bound.
	fellBack = []string{"DATA_PAGE/PLAIN", "DATA_PAGE/RLE_DICTIONARY", "DICTIONARY_PAGE/PLAIN"}
)

// TestParquetDictionary: in an object of 3,000 records, low-cardinality
// columns (a constant project, four severities, ten integers, a repeated
// extra field) get a dictionary page and RLE_DICTIONARY data pages; columns
// of distinct values (times, doubles, JSON) stay PLAIN, and so do booleans.
// Arrow reads every row back, and every column chunk carries its null count
// and min and max.
func TestParquetDictionary(t *testing.T) {
	s, dir := newSink(t, typedSchema, nil)
	labels := []string{"LOW", "MEDIUM", "HIGH", "CRITICAL"}
	lines := make([]string, 3000)
	for i := range lines {
		sev := fmt.Sprintf(`,"Severity":{"Label":%q}`, labels[i%4])
		if i%10 == 9 {
			sev = "" // 300 nulls
		}
		lines[i] = fmt.Sprintf(`{"project_id":"P-1","ts":1730617200,"n":%d,"d":%d.5,"b":%t,"t":%d,"j":{"i":%d}%s}`,
			i%10, i, i%3 == 0, 1730617200000+int64(i), i, sev)
	}
	if fails := feed(t, s, nil, lines...); len(fails) != 0 {
		t.Fatalf("failures: %s", fails[0].Message)
	}
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
	want := map[string][]string{
		"project_id": dictPages, "severity": dictPages, "n": dictPages, "_extra": dictPages,
		"d": plainPages, "b": plainPages, "t_ms": plainPages, "t_us": plainPages, "day": dictPages, "j": plainPages,
	}
	for col, kinds := range want {
		if g := pf.ColumnPageKinds[col]; !slices.Equal(g, kinds) {
			t.Errorf("column %s: pages %v, want %v", col, g, kinds)
		}
	}
	if len(pf.Rows) != len(lines) {
		t.Fatalf("rows = %d", len(pf.Rows))
	}
	for _, i := range []int{0, 9, 1234, 2999} {
		r := pf.Rows[i]
		wantSev := any(labels[i%4])
		if i%10 == 9 {
			wantSev = nil
		}
		if r["project_id"] != "P-1" || fmt.Sprint(r["n"]) != fmt.Sprint(i%10) || r["severity"] != wantSev ||
			r["j"] != fmt.Sprintf(`{"i":%d}`, i) || r["_extra"] != `{"ts":1730617200}` {
			t.Errorf("row %d = %v", i, r)
		}
	}
	for _, cs := range pf.Stats {
		if !cs.HasNullCount || !cs.HasMinMax {
			t.Errorf("column %s: null count %v, min and max %v", cs.Column, cs.HasNullCount, cs.HasMinMax)
		}
	}
	for _, cs := range pf.Stats {
		if cs.Column == "severity" && (cs.NullCount != 300 || string(cs.Min) != "CRITICAL" || string(cs.Max) != "MEDIUM") {
			t.Errorf("severity: %d nulls in [%s, %s], want 300 in [CRITICAL, MEDIUM]", cs.NullCount, cs.Min, cs.Max)
		}
	}
}

// TestParquetDictionaryFallback: a column that starts with two values and
// then gets 2.4 MiB of distinct ones keeps a dictionary for its first pages
// and falls back to PLAIN once the dictionary passes its 1 MiB bound, as
// parquet-mr does: the dictionary page stays near the bound instead of
// holding every value.
func TestParquetDictionaryFallback(t *testing.T) {
	s, dir := newSink(t, typedSchema, nil)
	var lines []string
	for i := range 5000 {
		lines = append(lines, fmt.Sprintf(`{"project_id":"P-1","ts":1730617200,"Severity":{"Label":%q}}`, []string{"LOW", "HIGH"}[i%2]))
	}
	for i := range 300 {
		lines = append(lines, fmt.Sprintf(`{"project_id":"P-1","ts":1730617200,"Severity":{"Label":"%08d%s"}}`, i, strings.Repeat("é", 4096)))
	}
	pf := writeOne(t, s, dir, lines...)
	if g := pf.ColumnPageKinds["severity"]; !slices.Equal(g, fellBack) {
		t.Errorf("severity: pages %v, want %v", g, fellBack)
	}
	if g := pf.ColumnPageKinds["project_id"]; !slices.Equal(g, dictPages) {
		t.Errorf("project_id: pages %v, want %v", g, dictPages)
	}
	if limit := dictMaxBytes + dictCheckBytes + dictMaxValue + 4<<10; pf.MaxDictionaryBytes > limit || pf.MaxDictionaryBytes < dictMaxBytes {
		t.Errorf("dictionary page of %d bytes, want between %d and %d", pf.MaxDictionaryBytes, dictMaxBytes, limit)
	}
	if len(pf.Rows) != len(lines) || pf.Rows[4999]["severity"] != "HIGH" || !strings.HasPrefix(fmt.Sprint(pf.Rows[5299]["severity"]), "00000299é") {
		t.Errorf("%d rows; row 4999 %v, row 5299 %.20v", len(pf.Rows), pf.Rows[4999]["severity"], pf.Rows[5299]["severity"])
	}
}

// encodeObject encodes lines as one object through l, with row groups cut
// after rowGroup bytes of rows, and reads it back with Arrow.
func encodeObject(t *testing.T, l *parquetLayout, rowGroup int, lines []string) ([]byte, *testutil.ParquetFile) {
	t.Helper()
	var data, row []byte
	var p fastjson.Parser
	for _, line := range lines {
		v, err := p.Parse(line)
		if err != nil {
			t.Fatal(err)
		}
		if row, _, err = l.encodeRow(row[:0], v); err != nil {
			t.Fatal(err)
		}
		data = binary.AppendUvarint(data, uint64(len(row)))
		data = append(data, row...)
	}
	f := l.newFileWriter()
	f.rowGroupBytes = rowGroup
	var obj bytes.Buffer
	if err := f.encodeTo(&obj, data); err != nil {
		t.Fatal(err)
	}
	pf, err := testutil.ReadParquetBytes("object", obj.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return obj.Bytes(), pf
}

// TestParquetDictionaryRowGroups: an object of several row groups whose
// dictionary columns turn all null halfway: each row group's chunk has its
// own dictionary (or none where it holds no value), and every row reads
// back.
func TestParquetDictionaryRowGroups(t *testing.T) {
	s, _ := newSink(t, typedSchema, &blockingStore{release: make(chan struct{})})
	lines := make([]string, 4000)
	for i := range lines {
		if i < 2000 {
			lines[i] = fmt.Sprintf(`{"project_id":"P-%d","n":%d}`, i%3, i%7)
		} else {
			lines[i] = fmt.Sprintf(`{"d":%d}`, i)
		}
	}
	_, pf := encodeObject(t, s.layout, 16<<10, lines)
	groups := 0
	for _, cs := range pf.Stats {
		groups = max(groups, cs.RowGroup+1)
	}
	if groups < 4 {
		t.Errorf("%d row groups, want several", groups)
	}
	if g := pf.ColumnPageKinds["project_id"]; !slices.Equal(g, dictPages) {
		t.Errorf("project_id: pages %v, want %v", g, dictPages)
	}
	if len(pf.Rows) != len(lines) {
		t.Fatalf("rows = %d", len(pf.Rows))
	}
	for _, i := range []int{0, 1999, 2000, 3999} {
		r := pf.Rows[i]
		var want string
		if i < 2000 {
			want = fmt.Sprintf("P-%d %d <nil>", i%3, i%7)
		} else {
			want = fmt.Sprintf("<nil> <nil> %d", i)
		}
		if got := fmt.Sprint(r["project_id"], " ", r["n"], " ", r["d"]); got != want {
			t.Errorf("row %d: %s, want %s", i, got, want)
		}
	}
}

// TestReadBackChecksDictionaryMetadata: the read-back refuses an object
// whose footer misplaces or misnames its dictionary pages, as Trino, Spark
// and parquet-mr would misread it.
func TestReadBackChecksDictionaryMetadata(t *testing.T) {
	s, _ := newSink(t, typedSchema, &blockingStore{release: make(chan struct{})})
	lines := make([]string, 500)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"project_id":"P-1","n":%d}`, i)
	}
	obj, pf := encodeObject(t, s.layout, rowGroupInput, lines)
	if g := pf.ColumnPageKinds["project_id"]; !slices.Equal(g, dictPages) {
		t.Fatalf("project_id: pages %v, want %v", g, dictPages)
	}
	tests := []struct {
		name string
		edit func(*format.ColumnMetaData)
		want string
	}{
		{"no dictionary offset", func(m *format.ColumnMetaData) { m.DictionaryPageOffset = 0 }, ""},
		{"dictionary offset at the data", func(m *format.ColumnMetaData) { m.DictionaryPageOffset = m.DataPageOffset }, ""},
		{"encodings without RLE_DICTIONARY", func(m *format.ColumnMetaData) { m.Encoding = []format.Encoding{format.Plain, format.RLE} }, "chunk encodings"},
		{"encoding stats of PLAIN pages", func(m *format.ColumnMetaData) {
			m.EncodingStats = []format.PageEncodingStats{{PageType: format.DataPage, Encoding: format.Plain, Count: 1}}
		}, "encoding stats"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := rewriteFooter(t, obj, func(md *format.FileMetaData) { tt.edit(&md.RowGroups[0].Columns[0].MetaData) })
			_, err := testutil.ReadParquetBytes("object", bad)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("read back: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// rewriteFooter returns obj with its footer metadata changed by edit.
func rewriteFooter(t *testing.T, obj []byte, edit func(*format.FileMetaData)) []byte {
	t.Helper()
	n := int(binary.LittleEndian.Uint32(obj[len(obj)-8:]))
	start := len(obj) - 8 - n
	var md format.FileMetaData
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), obj[start:len(obj)-8], &md); err != nil {
		t.Fatal(err)
	}
	edit(&md)
	footer, err := thrift.Marshal(new(thrift.CompactProtocol), &md)
	if err != nil {
		t.Fatal(err)
	}
	out := append(slices.Clip(obj[:start]), footer...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(footer)))
	return append(out, "PAR1"...)
}
