package jsonx

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

func TestValidNumber(t *testing.T) {
	tests := []struct {
		give string
		want bool
	}{
		{"0", true}, {"-0", true}, {"7", true}, {"-12", true}, {"1.5", true}, {"1e400", true}, {"1E+2", true}, {"2.5e-3", true},
		{"", false}, {"-", false}, {"01", false}, {"+1", false}, {".5", false}, {"1.", false}, {"1e", false}, {"1e+", false},
		{"NaN", false}, {"nan", false}, {"inf", false}, {"-inf", false}, {"Infinity", false}, {"0x10", false}, {"1_000", false}, {" 1", false},
	}
	for _, tt := range tests {
		if got := ValidNumber([]byte(tt.give)); got != tt.want {
			t.Errorf("ValidNumber(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

func TestFiniteFloat(t *testing.T) {
	tests := []struct {
		give    string
		want    float64
		wantErr bool
	}{
		{"1.5", 1.5, false}, {"1e-400", 0, false}, {"1e400", 0, true}, {"-1e400", 0, true}, {"NaN", 0, true}, {"inf", 0, true},
	}
	for _, tt := range tests {
		got, err := FiniteFloat([]byte(tt.give))
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("FiniteFloat(%q) = %v, %v", tt.give, got, err)
		}
	}
}

func TestValidText(t *testing.T) {
	tests := []struct {
		give, want string
		fixed      bool
	}{
		{`{"a":"é"}`, `{"a":"é"}`, false},
		{"{\"a\":\"x\xffy\"}", "{\"a\":\"x\uFFFDy\"}", true},
		{"{\"\xc3\":\"\xe2\x82\"}", "{\"\uFFFD\":\"\uFFFD\uFFFD\"}", true}, // each invalid byte, as gojq does
		{`{"a":"\ud800x"}`, `{"a":"\ufffdx"}`, true},
		{`{"a":"x\udc00"}`, `{"a":"x\ufffd"}`, true},
		{`{"a":"\ud83e\udee8"}`, `{"a":"\ud83e\udee8"}`, false},            // a pair
		{`{"a":"\ud83e\ud83e\udee8"}`, `{"a":"\ufffd\ud83e\udee8"}`, true}, // lone high, then a pair
		{`{"a":"\\ud800"}`, `{"a":"\\ud800"}`, false},                      // an escaped backslash, then text
		{`{"a":"\u00e9\"\\"}`, `{"a":"\u00e9\"\\"}`, false},
		{`{"a":"\ud800`, `{"a":"\ufffd`, true},
		{`\`, `\`, false},
	}
	for _, tt := range tests {
		got, fixed := ValidText(nil, []byte(tt.give))
		if string(got) != tt.want || fixed != tt.fixed {
			t.Errorf("ValidText(%q) = %q, %v; want %q, %v", tt.give, got, fixed, tt.want, tt.fixed)
		}
	}
}

// TestAppendValue: strings fastjson has unescaped are written back as
// JSON; fastjson's MarshalTo writes \a, \x7f and \U000e0001 there.
func TestAppendValue(t *testing.T) {
	v := fastjson.MustParse(`{"a":"q\"\u0007\u007f\udb40\udc01 \ud83e\udee8","k\n":[1e400,true,null,{"x":"\u00e9"}]}`)
	v.Get("a").StringBytes()
	got := AppendValue(nil, v)
	want := "{\"a\":\"q\\\"\\u0007\u007f\U000e0001 \U0001fae8\",\"k\\u000a\":[1e400,true,null,{\"x\":\"é\"}]}"
	if string(got) != want {
		t.Errorf("AppendValue = %s, want %s", got, want)
	}
	if !json.Valid(got) {
		t.Errorf("AppendValue wrote invalid JSON %s", got)
	}
}

// FuzzAppendValue: whatever text the decoder accepts, after ValidText and
// the number check, AppendValue writes valid UTF-8 JSON that means what
// encoding/json reads from the same text (modulo duplicate keys, which
// Dedupe settles, and U+FFFD for invalid UTF-8, which both replace).
func FuzzAppendValue(f *testing.F) {
	for _, s := range []string{`{"a":"q\"\u0007\u007f\udb40\udc01"}`, "{\"a\":\"\xff\"}", `[1,2.5e3,"\ud800"]`, `{"a":NaN}`, `{"a":{"b":[{}]}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		text, _ := ValidText(nil, []byte(s))
		if !utf8.Valid(text) {
			t.Fatalf("ValidText left invalid UTF-8: %q", text)
		}
		v, err := fastjson.ParseBytes(text)
		if err != nil || BadNumber(v) != nil {
			return
		}
		Dedupe(v)
		got := AppendValue(nil, v)
		if !json.Valid(got) || !utf8.Valid(got) {
			t.Fatalf("AppendValue(%q) = %q, not valid JSON", s, got)
		}
		var want, have any
		dw := json.NewDecoder(bytes.NewReader(text))
		dw.UseNumber()
		if dw.Decode(&want) != nil {
			return // fastjson is laxer than encoding/json in ways not checked here
		}
		dh := json.NewDecoder(bytes.NewReader(got))
		dh.UseNumber()
		if err := dh.Decode(&have); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(want, have) {
			t.Fatalf("AppendValue(%q) = %q, which means something else", s, got)
		}
	})
}

func BenchmarkAppendValue(b *testing.B) {
	line := `{"project_id":"P-HMX-01","plan_ver":"v2024.11.03","event_timestamp":1730617263,"level":"WARN","engine":"mozart-planner","host":"ip-10-0-3-17","message":"capacity overload on line L3 (112%)","run_id":"r-7f3a","duration_ms":63012,"context":{"line":"L3","load_pct":112.4}}`
	v := fastjson.MustParse(line)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	var dst []byte
	for b.Loop() {
		dst = AppendValue(dst[:0], v)
	}
}

func BenchmarkMarshalTo(b *testing.B) {
	line := `{"project_id":"P-HMX-01","plan_ver":"v2024.11.03","event_timestamp":1730617263,"level":"WARN","engine":"mozart-planner","host":"ip-10-0-3-17","message":"capacity overload on line L3 (112%)","run_id":"r-7f3a","duration_ms":63012,"context":{"line":"L3","load_pct":112.4}}`
	v := fastjson.MustParse(line)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	var dst []byte
	for b.Loop() {
		dst = v.MarshalTo(dst[:0])
	}
}
