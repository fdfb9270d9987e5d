package objstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/internal/sinks"
	"github.com/sluice-data/sluice/internal/testutil"
)

const largeSchema = `    format: parquet
    schema:
      - {name: s, type: string}
      - {name: j, type: json}
      - {name: n, type: int64}
      - {name: d, type: double}
      - {name: b, type: bool}
      - {name: t, type: timestamp_ms}
      - {name: day, type: date}
`

// bigText is n bytes of valid, mostly multi-byte UTF-8 that ends with the
// largest code point, so statistics truncation has to cut on a rune
// boundary and cannot grow the last code point.
func bigText(n int, fill string) string {
	s := strings.Repeat(fill, (n-4)/len(fill))
	s += strings.Repeat("a", n-4-len(s))
	return s + "\U0010FFFF"
}

// quote renders s as a JSON string (strconv.Quote would write \U escapes,
// which JSON does not have).
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestParquetLargeValuesReadByArrow: values from 100 KiB to 16 MiB in
// every byte-array column (string, json, the extra column) are written
// and the object reads back in Arrow with every row; statistics stay
// short and still bound the values. Before statistics were bounded, Arrow
// failed every object with a 1 MiB string ("deserializing page header
// failed"), losing the small rows beside it.
func TestParquetLargeValuesReadByArrow(t *testing.T) {
	for _, size := range []int{100 << 10, 1 << 20, 4 << 20, 16 << 20} {
		t.Run(strconv.Itoa(size>>10)+"KiB", func(t *testing.T) {
			s, dir := newSink(t, "    max_value_bytes: 64MiB\n"+largeSchema, nil)
			str := bigText(size, "é")
			js := bigText(size-2, "中") // its JSON text, quotes included, is size bytes
			extra := bigText(size, "ü")
			fails := feed(t, s, nil,
				`{"s":"a","n":1}`,
				fmt.Sprintf(`{"s":%s,"j":%s,"other":%s,"n":2,"d":1.5,"b":true,"t":1730617200000,"day":"2024-11-03T00:00:00Z"}`, quote(str), quote(js), quote(extra)),
				`{"s":"zz","n":3}`)
			if len(fails) != 0 {
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
			if len(pf.Rows) != 3 {
				t.Fatalf("rows = %d, want 3", len(pf.Rows))
			}
			r := pf.Rows[1]
			if r["s"] != str || r["j"] != quote(js) || r["_extra"] != `{"other":`+quote(extra)+`}` {
				t.Errorf("large values do not read back (s %d bytes, j %d, _extra %d)", len(fmt.Sprint(r["s"])), len(fmt.Sprint(r["j"])), len(fmt.Sprint(r["_extra"])))
			}
			if pf.Rows[0]["s"] != "a" || pf.Rows[2]["s"] != "zz" {
				t.Errorf("small rows: %v, %v", pf.Rows[0]["s"], pf.Rows[2]["s"])
			}
			if pf.MaxStatBytes > statsTruncate {
				t.Errorf("a statistic of %d bytes, want at most %d", pf.MaxStatBytes, statsTruncate)
			}
			values := map[string][]string{"s": {"a", str, "zz"}, "j": {quote(js)}, "_extra": {`{"other":` + quote(extra) + `}`}}
			for _, cs := range pf.Stats {
				vs := values[cs.Column]
				if vs == nil {
					continue
				}
				if !cs.HasMinMax {
					// Each value has a short upper bound: none may be dropped.
					t.Errorf("column %s: no min and max", cs.Column)
				}
				for _, v := range vs {
					if bytes.Compare(cs.Min, []byte(v)) > 0 || bytes.Compare(cs.Max, []byte(v)) < 0 {
						t.Errorf("column %s: [%q, %q] does not bound a value of %d bytes", cs.Column, cs.Min, cs.Max, len(v))
					}
				}
			}
		})
	}
}

// TestParquetValueLimit: a value over max_value_bytes (default 1 MiB) goes
// to the error output as schema-mismatch with a reason naming the column,
// its size and the limit; one of exactly the limit is written. A large
// value where a number, bool or time belongs is a mismatch whose reason
// stays short.
func TestParquetValueLimit(t *testing.T) {
	const limit = 1 << 20
	tests := []struct {
		name, give, want string
	}{
		{"string at the limit", fmt.Sprintf(`{"s":%q}`, strings.Repeat("x", limit)), ""},
		{"string over", fmt.Sprintf(`{"s":%q}`, strings.Repeat("x", limit+1)), "column s (string, field s): value of 1048577 bytes is over max_value_bytes (1048576)"},
		{"json over", fmt.Sprintf(`{"j":[%q]}`, strings.Repeat("x", limit)), "column j (json, field j): value of 1048580 bytes is over max_value_bytes (1048576)"},
		{"extra over", fmt.Sprintf(`{"o":%q}`, strings.Repeat("x", limit)), "column _extra (json, fields outside the schema): value of 1048584 bytes is over max_value_bytes (1048576)"},
		{"int64", fmt.Sprintf(`{"n":%q}`, strings.Repeat("7", 16<<20)), "column n (int64, field n): got \"777777777777777777777777777777777777777..., want an integer"},
		{"int64 number", fmt.Sprintf(`{"n":%s}`, strings.Repeat("7", 16<<20)), "column n (int64, field n): 7777777777777777777777777777777777777777"},
		{"double", fmt.Sprintf(`{"d":%q}`, strings.Repeat("7", 16<<20)), "column d (double, field d): got \"777777777777777777777777777777777777777..., want a number"},
		{"bool", fmt.Sprintf(`{"b":%q}`, strings.Repeat("7", 16<<20)), "column b (bool, field b): got \"777777777777777777777777777777777777777"},
		{"timestamp", fmt.Sprintf(`{"t":%q}`, strings.Repeat("x", 16<<20)), "column t (timestamp_ms, field t): \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
		{"date", fmt.Sprintf(`{"day":%q}`, strings.Repeat("x", 16<<20)), "column day (date, field day): \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := newSink(t, largeSchema, nil)
			fails := feed(t, s, nil, tt.give)
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if len(fails) != 0 {
					t.Fatalf("refused: %s", fails[0].Message)
				}
				pf, err := testutil.ReadParquet(filepath.Join(dir, files(t, dir)[0]))
				if err != nil {
					t.Fatal(err)
				}
				if len(pf.Rows) != 1 {
					t.Fatalf("rows = %d", len(pf.Rows))
				}
				return
			}
			if len(fails) != 1 {
				t.Fatalf("%d failures, want 1", len(fails))
			}
			f := fails[0]
			if f.Type != sinks.SchemaMismatch || !strings.HasPrefix(f.Message, tt.want) {
				t.Errorf("got %s %.200q, want %s starting %q", f.Type, f.Message, sinks.SchemaMismatch, tt.want)
			}
			if len(f.Message) > 600 {
				t.Errorf("reason of %d bytes", len(f.Message))
			}
		})
	}
}
