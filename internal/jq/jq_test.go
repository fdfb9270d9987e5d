package jq

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/sluice-data/sluice/internal/jsonx"
)

var records = []string{
	`{"project_id":"P-HMX-01","plan_ver":"v2024.11.03","event_timestamp":1730617200,"level":"INFO"}`,
	`{"project_id":"P-SKS-07","plan_ver":7,"event_timestamp":1730620801.75,"time_utc":"2024-11-03T08:00:01.750Z"}`,
	`{"project_id":null,"event_timestamp":"1730620801","time_utc":"2024-11-03T17:00:01+09:00","n":{"x":{"y":"deep"}}}`,
	`{"event_timestamp":-1,"time_utc":"not a time","plan_ver":1.0,"big":123456789012345678901234567890}`,
	`{"event_timestamp":[2024,10,3,7,0,0,0,0],"project_id":{"a":1},"time_utc":1730617200}`,
	`{"project_id":"MiXeD","detail-type":"GuardDuty Finding","event_timestamp":1e9}`,
	`[1,2,3]`,
	`{"event_timestamp":1730617200,"n":"str"}`,
	`{"event_timestamp":-62135596800}`,
	`{"event_timestamp":-60000000000.5}`,
	`{"event_timestamp":-30000000000}`,
	`{"event_timestamp":1730617200000}`,
	`{"event_timestamp":1704070861}`,
	`{"event_timestamp":1e400,"big":-1.5e400,"plan_ver":1e99999}`,
	`{"event_timestamp":1e400,"big":-1.5e400,"plan_ver":2e308}`,
}

var exprs = []string{
	`.project_id`,
	`.plan_ver`,
	`.event_timestamp| strftime("%Y")`,
	`.event_timestamp|strftime("%Y-%m-%d %H:%M:%S")`,
	`.event_timestamp | strftime("%H")`,
	`.event_timestamp|strftime("%m")`,
	`.event_timestamp|strftime("%d")`,
	`.time_utc | fromdateiso8601 | strftime("%Y")`,
	`.time_utc|fromdate|strftime("%m/%d %H")`,
	`.n.x.y`,
	`."detail-type"`,
	`.project_id | ascii_downcase`,
	`.project_id | ascii_upcase`,
	`.big`,
	`.missing`,
	`.project_id + "-" + (.plan_ver|tostring)`,
}

// TestNativeMatchesGojq runs every expression both ways on every record:
// the native evaluator must produce the same text or fail the same way.
func TestNativeMatchesGojq(t *testing.T) {
	native := 0
	for _, src := range exprs {
		e, err := Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		if e.Native() {
			native++
		}
		slow := &Expr{src: e.src, code: e.code}
		for _, rec := range records {
			v := fastjson.MustParse(rec)
			got, gerr := e.AppendText(nil, v)
			want, werr := slow.AppendText(nil, v)
			if (gerr != nil) != (werr != nil) || string(got) != string(want) {
				t.Errorf("%s on %s: native %q, %v; gojq %q, %v", src, rec, got, gerr, want, werr)
			}
		}
	}
	if native < 10 {
		t.Errorf("only %d expressions compiled natively; the Firehose shapes should", native)
	}
}

// TestAppendTextsMatchesOneByOne: evaluating expressions together (keys
// over one field share its lookup and its time) gives each the text or
// the failure it has alone.
func TestAppendTextsMatchesOneByOne(t *testing.T) {
	var xs []*Expr
	for _, src := range append(exprs, `.event_timestamp | strftime("%d")`, `.time_utc | fromdateiso8601 | strftime("%H")`) {
		e, err := Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		xs = append(xs, e)
	}
	for _, rec := range records {
		checkTexts(t, xs, fastjson.MustParse(rec))
	}
}

// checkTexts compares Env.AppendTexts on xs with AppendText of each.
func checkTexts(t *testing.T, xs []*Expr, v *fastjson.Value) {
	t.Helper()
	env := NewEnv(context.Background(), DefaultLimits)
	for len(xs) > 0 {
		dst := make([][]byte, len(xs))
		for i := range dst {
			dst[i] = []byte("stale")
		}
		bad, err := env.AppendTexts(xs, dst, v)
		for i := range min(bad+1, len(xs)) {
			want, werr := xs[i].AppendText(nil, v)
			switch {
			case i < bad && (werr != nil || string(dst[i]) != string(want)):
				t.Errorf("%s on %s: together %q; alone %q, %v", xs[i].src, v, dst[i], want, werr)
			case i == bad && (werr == nil || err.Error() != werr.Error()):
				t.Errorf("%s on %s: together failed with %v; alone %q, %v", xs[i].src, v, err, want, werr)
			}
		}
		if bad >= len(xs) {
			return
		}
		xs = xs[bad+1:]
	}
}

func TestAppendText(t *testing.T) {
	tests := []struct {
		expr, rec, want, wantErr string
	}{
		{`.event_timestamp| strftime("%Y")`, `{"event_timestamp":1730617200}`, "2024", ""},
		{`.event_timestamp| strftime("%m")`, `{"event_timestamp":1730617200}`, "11", ""},
		{`.event_timestamp| strftime("%H")`, `{"event_timestamp":1730620801}`, "08", ""},
		{`.time_utc | fromdateiso8601 | strftime("%d")`, `{"time_utc":"2024-11-03T23:59:59.999Z"}`, "03", ""},
		{`.time_utc | fromdateiso8601 | strftime("%d")`, `{"time_utc":"2024-11-04T08:59:59.999+09:00"}`, "03", ""},
		{`.project_id`, `{"project_id":"P-1"}`, "P-1", ""},
		{`.project_id`, `{}`, "", "jq .project_id: produced null"},
		{`.a[]`, `{"a":[1,2]}`, "", "jq .a[]: produced 2 values, want exactly one"},
		{`.a`, `{"a":{"b":1}}`, "", "jq .a: produced object, want a string or number"},
		{`.t | fromdateiso8601`, `{"t":"yesterday"}`, "", `jq .t | fromdateiso8601: fromdateiso8601: "yesterday" is not an RFC 3339 time`},
	}
	for _, tt := range tests {
		e, err := Compile(tt.expr)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.AppendText(nil, fastjson.MustParse(tt.rec))
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if string(got) != tt.want || gotErr != tt.wantErr {
			t.Errorf("%s on %s = %q, %q; want %q, %q", tt.expr, tt.rec, got, gotErr, tt.want, tt.wantErr)
		}
	}
}

func TestCompileError(t *testing.T) {
	for _, src := range []string{`.a |`, `strftime(`, `.a | nosuchfunc`} {
		if _, err := Compile(src); err == nil {
			t.Errorf("Compile(%q) succeeded", src)
		}
	}
}

func BenchmarkPartitionKeys(b *testing.B) {
	rec := fastjson.MustParse(records[0])
	for _, mode := range []string{"native", "gojq"} {
		b.Run(mode, func(b *testing.B) {
			e, _ := Compile(`.event_timestamp| strftime("%Y")`)
			if mode == "gojq" {
				e.fast = nil
			}
			env := NewEnv(context.Background(), DefaultLimits)
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = env.AppendText(e, buf[:0], rec)
			}
			_ = fmt.Sprint(len(buf))
		})
	}
}

// FuzzNativeMatchesGojq feeds arbitrary records to every native expression
// and requires gojq's answer.
func FuzzNativeMatchesGojq(f *testing.F) {
	for _, r := range records {
		f.Add(r)
	}
	var compiled []*Expr
	for _, src := range exprs {
		if e, err := Compile(src); err == nil && e.Native() {
			compiled = append(compiled, e)
		}
	}
	f.Fuzz(func(t *testing.T, rec string) {
		v, err := fastjson.Parse(rec)
		if err != nil {
			return
		}
		jsonx.Dedupe(v) // as the decoder does: one value per key, the last
		checkTexts(t, compiled, v)
		for _, e := range compiled {
			slow := &Expr{src: e.src, code: e.code}
			got, gerr := e.AppendText(nil, v)
			want, werr := slow.AppendText(nil, v)
			if (gerr != nil) != (werr != nil) || string(got) != string(want) {
				t.Fatalf("%s on %s: native %q, %v; gojq %q, %v", e.src, rec, got, gerr, want, werr)
			}
		}
	})
}

// TestNumbersBeyondDouble: jq holds numbers as doubles or integers. A
// number no double holds (1e400) reaches gojq as the exact integer it
// denotes, so a transform that does not touch it keeps its value (a
// double column then refuses it, as without the transform); an output
// holding one whose integer would be too long (or Inf computed by jq)
// fails the evaluation. It never becomes null or a bound double.
func TestNumbersBeyondDouble(t *testing.T) {
	tests := []struct{ rec, want, wantErr string }{
		{`{"d":1e400}`, `{"d":1` + strings.Repeat("0", 400) + `,"x":1}`, ""},
		{`{"d":-1.5E+400}`, `{"d":-15` + strings.Repeat("0", 399) + `,"x":1}`, ""},
		{`{"d":1e-400}`, `{"d":0,"x":1}`, ""},
		{`{"d":1e308}`, `{"d":1e+308,"x":1}`, ""},
		{`{"d":[1e99999]}`, "", `jq .x = 1: produced a number that does not fit a double (Inf or NaN)`},
		{`{"d":1.` + strings.Repeat("1", 500) + `e400}`, "", `jq .x = 1: produced a number that does not fit a double (Inf or NaN)`},
	}
	e, err := Compile(`.x = 1`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		outs, err := e.Run(fastjson.MustParse(tt.rec))
		got, gotErr := "", ""
		if err != nil {
			gotErr = err.Error()
		} else {
			var a fastjson.Arena
			got = string(jsonx.FromAny(&a, outs[0]).MarshalTo(nil))
		}
		if got != tt.want || gotErr != tt.wantErr {
			t.Errorf("%.60s = %.80s, %q; want %.80s, %q", tt.rec, got, gotErr, tt.want, tt.wantErr)
		}
	}
}
