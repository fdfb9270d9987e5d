package template

import (
	"testing"
	"time"
)

func TestRender(t *testing.T) {
	at := time.Date(2024, 11, 3, 7, 4, 5, 123e6, time.UTC)
	names := []string{"project_id", "year"}
	keys := [][]byte{[]byte("P-1"), []byte("2024")}
	tests := []struct {
		give, want string
	}{
		{"year=!{partitionKeyFromQuery:year}/p=!{partitionKeyFromQuery:project_id}/", "year=2024/p=P-1/"},
		{"errors/!{error-output-type}/!{timestamp:yyyy/MM/dd}/", "errors/schema-mismatch/2024/11/03/"},
		{"!{firehose:error-output-type}/!{timestamp:yyyy-MM-dd'T'HH:mm:ss.SSS}", "schema-mismatch/2024-11-03T07:04:05.123"},
		{"!{timestamp:yy/M/d/h a}", "24/11/3/7 AM"},
		{"plain/", "plain/"},
	}
	for _, tt := range tests {
		tpl, err := Parse(tt.give)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.give, err)
		}
		if err := tpl.Bind(names); err != nil {
			t.Fatal(err)
		}
		got := tpl.Append(nil, Values{Keys: keys, Time: at, ErrorType: "schema-mismatch"})
		if string(got) != tt.want {
			t.Errorf("%q rendered %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ give, want string }{
		{"!{timestamp:yyyy/QQ}", `timestamp format "yyyy/QQ": unsupported letter 'Q' (use y, M, d, H, h, m, s, S, a)`},
		{"a/!{firehose:random-string}", "!{firehose:random-string} is not supported: object names derive from source positions so that re-processing overwrites"},
		{"!{partitionKeyFromQuery:year", `unterminated !{ in "!{partitionKeyFromQuery:year"`},
		{"!{nope}", "unknown template expression !{nope} (want partitionKeyFromQuery:KEY, timestamp:FORMAT, arrival:FORMAT or error-output-type)"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.give)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%q) = %v, want %q", tt.give, err, tt.want)
		}
	}
}

func TestHiveEscape(t *testing.T) {
	if got := string(HiveEscape(nil, []byte("a/b=c d%"))); got != "a%2Fb%3Dc d%25" {
		t.Errorf("got %q", got)
	}
}

func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"year=!{partitionKeyFromQuery:year}/", "!{timestamp:yyyy/MM/dd'T'HH}", "!{arrival:yy}", "!{", "!{firehose:error-output-type}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		tpl, err := Parse(src)
		if err != nil {
			return
		}
		keys := tpl.Keys()
		if err := tpl.Bind(keys); err != nil {
			t.Fatal(err)
		}
		vals := make([][]byte, len(keys))
		tpl.Append(nil, Values{Keys: vals, Time: time.Unix(1730617200, 0), ErrorType: "processing-failed"})
	})
}

// TestExpressionsParse keeps the documented expressions accepted.
func TestExpressionsParse(t *testing.T) {
	for _, e := range Expressions {
		if _, err := Parse(e.Example); err != nil {
			t.Errorf("%s: %v", e.Example, err)
		}
	}
}
