package objstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
// failed"), losing the small rows beside it. The columns are otherwise of
// two values, which a dictionary would suit, but a large value keeps its
// column chunk PLAIN: it must not become a dictionary entry.
func TestParquetLargeValuesReadByArrow(t *testing.T) {
	for _, size := range []int{100 << 10, 1 << 20, 4 << 20, 16 << 20} {
		t.Run(strconv.Itoa(size>>10)+"KiB", func(t *testing.T) {
			if testing.Short() && size > 1<<20 {
				t.Skip("-short (the race run): 4 and 16 MiB take seconds")
			}
			s, dir := newSink(t, "    max_value_bytes: 64MiB\n    buffer: {max_bytes: 256MiB}\n"+largeSchema, nil)
			str := bigText(size, "é")
			js := bigText(size-2, "中") // its JSON text, quotes included, is size bytes
			extra := bigText(size, "ü")
			const filler = 600
			var lines []string
			for i := range filler {
				lines = append(lines, fmt.Sprintf(`{"s":"a","j":"x","other":"y","n":%d}`, i%2))
			}
			big := fmt.Sprintf(`{"s":%s,"j":%s,"other":%s,"n":2,"d":1.5,"b":true,"t":1730617200000,"day":"2024-11-03T00:00:00Z"}`, quote(str), quote(js), quote(extra))
			// The large values come twice, so a dictionary of them would
			// be smaller than PLAIN.
			lines = append(lines, `{"s":"a","n":1}`, big, `{"s":"zz","n":3}`, big)
			fails := feed(t, s, nil, lines...)
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
			if len(pf.Rows) != filler+4 {
				t.Fatalf("rows = %d, want %d", len(pf.Rows), filler+4)
			}
			r := pf.Rows[filler+1]
			if r["s"] != str || r["j"] != quote(js) || r["_extra"] != `{"other":`+quote(extra)+`}` {
				t.Errorf("large values do not read back (s %d bytes, j %d, _extra %d)", len(fmt.Sprint(r["s"])), len(fmt.Sprint(r["j"])), len(fmt.Sprint(r["_extra"])))
			}
			if pf.Rows[0]["s"] != "a" || pf.Rows[0]["_extra"] != `{"other":"y"}` || pf.Rows[filler]["s"] != "a" || pf.Rows[filler+2]["s"] != "zz" {
				t.Errorf("small rows: %v, %v, %v", pf.Rows[0], pf.Rows[filler]["s"], pf.Rows[filler+2]["s"])
			}
			if pf.MaxStatBytes > statsTruncate {
				t.Errorf("a statistic of %d bytes, want at most %d", pf.MaxStatBytes, statsTruncate)
			}
			for _, col := range []string{"s", "j", "_extra"} {
				if k := pf.ColumnPageKinds[col]; !slices.Equal(k, plainPages) {
					t.Errorf("column %s: pages %v, want %v", col, k, plainPages)
				}
			}
			if k := pf.ColumnPageKinds["n"]; !slices.Equal(k, dictPages) {
				t.Errorf("column n: pages %v, want %v", k, dictPages)
			}
			values := map[string][]string{"s": {"a", str, "zz"}, "j": {`"x"`, quote(js)}, "_extra": {`{"other":"y"}`, `{"other":` + quote(extra) + `}`}}
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

// TestParquetPagesBounded: a data page holds at most a page's worth of
// values plus one row, however large the values of an object are, so a
// reader never has to take in more than that at once. parquet-go cuts a
// page only after a whole WriteRows call, so when 512 rows went in one
// call, 24 values of 300 KiB made one page of 7 MiB (and 512 values at the
// limit would make one of 512 MiB).
func TestParquetPagesBounded(t *testing.T) {
	const value = 300 << 10
	s, dir := newSink(t, "    compression: none\n"+largeSchema, nil)
	var lines []string
	for i := range 24 {
		lines = append(lines, fmt.Sprintf(`{"s":%q,"j":{"i":%d},"n":%d}`, strings.Repeat(string(rune('a'+i)), value), i, i))
	}
	pf := writeOne(t, s, dir, lines...)
	if len(pf.Rows) != len(lines) {
		t.Fatalf("rows = %d, want %d", len(pf.Rows), len(lines))
	}
	if limit := pageBytes + rowBatchBytes + value + 1<<10; pf.MaxDataPageBytes > limit {
		t.Errorf("a data page of %d bytes, want at most %d (a page, a batch and one value)", pf.MaxDataPageBytes, limit)
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
		{"double", fmt.Sprintf(`{"d":%q}`, strings.Repeat("7", 16<<20)), "column d (double, field d): \"777777777777777777777777777777777777777... does not fit a double"},
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

// TestParquetLooseNumbers: a double column takes JSON numbers that fit a
// float64, as numbers or strings; 1e400 is a mismatch, not +Inf, and
// "NaN", "Infinity" and Go-only syntax are not numbers. Integer strings
// follow JSON's syntax too.
func TestParquetLooseNumbers(t *testing.T) {
	tests := []struct {
		give, want string // want: the value Arrow reads, or the mismatch reason
		ok         bool
	}{
		{`{"d":1.5}`, "1.5", true},
		{`{"d":"2.5e3"}`, "2500", true},
		{`{"d":1e-400}`, "0", true},
		{`{"d":1e400}`, "column d (double, field d): 1e400 does not fit a double", false},
		{`{"d":-1e400}`, "column d (double, field d): -1e400 does not fit a double", false},
		{`{"d":"1e400"}`, `column d (double, field d): "1e400" does not fit a double`, false},
		{`{"d":"NaN"}`, `column d (double, field d): got "NaN", want a number`, false},
		{`{"d":"Infinity"}`, `column d (double, field d): got "Infinity", want a number`, false},
		{`{"d":"-inf"}`, `column d (double, field d): got "-inf", want a number`, false},
		{`{"d":"0x1p3"}`, `column d (double, field d): got "0x1p3", want a number`, false},
		{`{"n":"7"}`, "", true},
		{`{"n":"+7"}`, `column n (int64, field n): got "+7", want an integer`, false},
		{`{"n":"07"}`, `column n (int64, field n): got "07", want an integer`, false},
		{`{"n":1e400}`, "column n (int64, field n): 1e400 is not a 64-bit integer", false},
	}
	for _, tt := range tests {
		s, dir := newSink(t, largeSchema, nil)
		fails := feed(t, s, nil, tt.give)
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !tt.ok {
			if len(fails) != 1 || fails[0].Type != sinks.SchemaMismatch || fails[0].Message != tt.want {
				t.Errorf("%s: failures %+v, want schema-mismatch %q", tt.give, fails, tt.want)
			}
			continue
		}
		if len(fails) != 0 {
			t.Errorf("%s: refused: %s", tt.give, fails[0].Message)
			continue
		}
		pf, err := testutil.ReadParquet(filepath.Join(dir, files(t, dir)[0]))
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(pf.Rows[0]["d"]); tt.want != "" && got != tt.want {
			t.Errorf("%s: d = %s, want %s", tt.give, got, tt.want)
		}
	}
}

// TestOutputIsJSON: strings that were read on the way (here by a
// partition key) are written back as JSON in NDJSON objects, json columns
// and the extra column. fastjson's MarshalTo wrote them with Go escapes
// (\a, \x7f, \U000e0001) that no JSON reader takes.
func TestOutputIsJSON(t *testing.T) {
	line := `{"k":"q\"\u0007\u007f\udb40\udc01","j":{"k":"q\"\u0007\u007f\udb40\udc01"},"o":"q\"\u0007\u007f\udb40\udc01"}`
	for _, format := range []string{"ndjson", "parquet"} {
		body := "    format: ndjson\n    partition_keys: {k: .k, j: .j.k, o: .o}\n"
		if format == "parquet" {
			body = "    partition_keys: {k: .k, j: .j.k, o: .o}\n" + largeSchema
		}
		s, dir := newSink(t, body, nil)
		if fails := feed(t, s, nil, line); len(fails) != 0 {
			t.Fatalf("%s: %s", format, fails[0].Message)
		}
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, files(t, dir)[0])
		var texts []string
		if format == "ndjson" {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			texts = append(texts, strings.TrimSuffix(string(b), "\n"))
		} else {
			pf, err := testutil.ReadParquet(path)
			if err != nil {
				t.Fatal(err)
			}
			texts = append(texts, fmt.Sprint(pf.Rows[0]["j"]), fmt.Sprint(pf.Rows[0]["_extra"]))
		}
		for _, text := range texts {
			var v any
			if err := json.Unmarshal([]byte(text), &v); err != nil {
				t.Errorf("%s: %q is not JSON: %v", format, text, err)
			}
		}
	}
}
