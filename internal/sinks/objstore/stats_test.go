package objstore

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
)

func TestTruncateBounds(t *testing.T) {
	tests := []struct {
		give, wantMin, wantMax string
		noMax                  bool
	}{
		{give: "abc", wantMin: "abc", wantMax: "abc"},
		{give: "abcdefgh", wantMin: "abcd", wantMax: "abce"},
		{give: "ab\u00e9\u00e9", wantMin: "ab\u00e9", wantMax: "ab\u00ea"},             // 2-byte runes: cut at 3 bytes, not 4
		{give: "ab\u007f\u007f\u007f", wantMin: "ab\u007f\u007f", wantMax: "ab\u0080"}, // U+0080 takes 2 bytes: grow the one before
		{give: "abc\U0010FFFFz", wantMin: "abc", wantMax: "abd"},                       // the largest code point cannot grow
		{give: "a\uD7FFb", wantMin: "a\uD7FF", wantMax: "a\uE000"},                     // surrogates are skipped
		{give: "\U0010FFFF\U0010FFFF", wantMin: "\U0010FFFF", noMax: true},
		{give: "\xff\xff\xff\xff\xff", wantMin: "\xff\xff\xff\xff", noMax: true},
		{give: "a\xff\xff\xff\xff", wantMin: "a\xff\xff\xff", wantMax: "b"},
	}
	for _, tt := range tests {
		v := []byte(tt.give)
		if got := truncateMin(v, 4); string(got) != tt.wantMin {
			t.Errorf("truncateMin(%q) = %q, want %q", tt.give, got, tt.wantMin)
		}
		got, ok := truncateMax(v, 4)
		if ok == tt.noMax || (ok && string(got) != tt.wantMax) {
			t.Errorf("truncateMax(%q) = %q, %v; want %q, %v", tt.give, got, ok, tt.wantMax, !tt.noMax)
		}
		if ok && (len(got) > 4 || bytes.Compare(got, v) < 0 || (utf8.Valid(v) && !utf8.Valid(got))) {
			t.Errorf("truncateMax(%q) = %q is not a short upper bound", tt.give, got)
		}
	}
}

// TestFooterRewriteKeepsShortStats: where no statistic is over the limit,
// the rewritten footer is byte for byte what parquet-go wrote.
func TestFooterRewriteKeepsShortStats(t *testing.T) {
	schema := parquet.NewSchema("t", parquet.Group{"s": parquet.Optional(parquet.String()), "n": parquet.Int(64)})
	write := func(rewrite bool) []byte {
		var out bytes.Buffer
		fw := &footerWriter{w: &out}
		pw := parquet.NewWriter(fw, schema)
		for i := range 100 {
			row := parquet.Row{parquet.Int64Value(int64(i)).Level(0, 0, 0), parquet.ByteArrayValue([]byte(strings.Repeat("x", i))).Level(0, 1, 1)}
			if _, err := pw.WriteRows([]parquet.Row{row}); err != nil {
				t.Fatal(err)
			}
		}
		if err := pw.Flush(); err != nil {
			t.Fatal(err)
		}
		if rewrite {
			fw.hold()
		}
		if err := pw.Close(); err != nil {
			t.Fatal(err)
		}
		if rewrite {
			if err := fw.finish(statsTruncate * 2); err != nil {
				t.Fatal(err)
			}
		}
		return out.Bytes()
	}
	if a, b := write(false), write(true); !bytes.Equal(a, b) {
		t.Errorf("rewritten file differs: %d bytes, parquet-go wrote %d", len(b), len(a))
	}
}
