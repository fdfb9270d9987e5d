package decode

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fastjson"

	"github.com/sluice-data/sluice/internal/jsonx"
	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/record"
)

type result struct {
	pos, event string
	fields     string
	err        string
}

func run(t *testing.T, format, data string) []result {
	t.Helper()
	d, err := New("src", format, "", "")
	if err != nil {
		t.Fatal(err)
	}
	msg := &record.Message{Data: []byte(data), Pos: record.Position{Partition: "p", Offset: 1}, Arrival: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var out []result
	d.Decode(msg, func(r *record.Record) {
		f := ""
		if r.Value != nil {
			f = string(r.Value.GetStringBytes("id"))
		}
		out = append(out, result{pos: r.Pos.String(), event: r.EventTime.Format(time.RFC3339Nano), fields: f})
	}, func(e *Error) {
		out = append(out, result{pos: e.Pos.String(), err: e.Err.Error(), fields: string(e.Raw)})
	})
	return out
}

func TestFormats(t *testing.T) {
	tests := []struct {
		name, format, data string
		want               []result
	}{
		{"app log", "app_log", `{"id":"a","event_timestamp":1730617200}`, []result{{pos: "p:1", event: "2024-11-03T07:00:00Z", fields: "a"}}},
		{"app log ms", "app_log", `{"id":"a","event_timestamp":1730617200123}`, []result{{pos: "p:1", event: "2024-11-03T07:00:00.123Z", fields: "a"}}},
		{"duplicate keys: the last wins, as in jq", "app_log", `{"id":"a","event_timestamp":1,"id":"b","event_timestamp":1730617200}`, []result{{pos: "p:1", event: "2024-11-03T07:00:00Z", fields: "b"}}},
		{"app log no time", "app_log", `{"id":"a"}`, []result{{pos: "p:1", event: "2026-01-01T00:00:00Z", fields: "a"}}},
		{"app log bad time", "app_log", `{"event_timestamp":"later"}`, []result{{pos: "p:1", err: `event time event_timestamp: "later" is neither an epoch nor an RFC 3339 time`, fields: `{"event_timestamp":"later"}`}}},
		{"bad json", "app_log", `{"project_id":`, []result{{pos: "p:1", err: "invalid JSON: cannot parse JSON: cannot parse object: cannot parse object value: cannot parse empty string; unparsed tail: \"\"", fields: `{"project_id":`}}},
		{"not object", "json", `[1]`, []result{{pos: "p:1", err: "not a JSON object (got array)", fields: `[1]`}}},
		{"eventbridge", "eventbridge", `{"id":"e","source":"aws.guardduty","detail-type":"GuardDuty Finding","time":"2024-11-03T10:00:00Z","detail":{}}`, []result{{pos: "p:1", event: "2024-11-03T10:00:00Z", fields: "e"}}},
		{"eventbridge no detail", "eventbridge", `{"source":"x","detail-type":"y"}`, []result{{pos: "p:1", err: `not an EventBridge event: "detail" must be an object`, fields: `{"source":"x","detail-type":"y"}`}}},
		{"metric lines", "metric_stream", "{\"id\":\"m0\",\"metric_name\":\"A\",\"timestamp\":1730617200000}\n\n{\"id\":\"m1\",\"metric_name\":\"B\",\"timestamp\":1730617260000}\nnope\n", []result{
			{pos: "p:1/0", event: "2024-11-03T07:00:00Z", fields: "m0"},
			{pos: "p:1/1", event: "2024-11-03T07:01:00Z", fields: "m1"},
			{pos: "p:1/2", err: "invalid JSON: cannot parse JSON: unexpected value found: \"nope\"; unparsed tail: \"nope\"", fields: "nope"},
		}},
		{"raw", "raw", "anything \x00 at all", []result{{pos: "p:1", event: "2026-01-01T00:00:00Z"}}},
		// RFC 8259 8.1: a parser may ignore a leading byte order mark, as
		// a file saved by a Windows editor starts with one.
		{"byte order mark", "app_log", "\ufeff{\"id\":\"a\",\"event_timestamp\":1730617200}", []result{{pos: "p:1", event: "2024-11-03T07:00:00Z", fields: "a"}}},
		{"byte order mark in each line", "metric_stream", "\ufeff{\"id\":\"m0\",\"metric_name\":\"A\",\"timestamp\":1730617200000}\n\ufeff{\"id\":\"m1\",\"metric_name\":\"B\",\"timestamp\":1730617200000}", []result{
			{pos: "p:1/0", event: "2024-11-03T07:00:00Z", fields: "m0"},
			{pos: "p:1/1", event: "2024-11-03T07:00:00Z", fields: "m1"},
		}},
		{"byte order mark twice", "json", "\ufeff\ufeff{}", []result{{pos: "p:1", err: "invalid JSON: cannot parse JSON: cannot parse number: unexpected char: \"\\xef\"; unparsed tail: \"\\ufeff{}\"", fields: "\ufeff\ufeff{}"}}},
	}
	for _, tt := range tests {
		got := run(t, tt.format, tt.data)
		if len(got) != len(tt.want) {
			t.Errorf("%s: got %d results %+v, want %+v", tt.name, len(got), got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s[%d]: got %+v, want %+v", tt.name, i, got[i], tt.want[i])
			}
		}
	}
}

func TestSamples(t *testing.T) {
	for _, s := range []struct{ file, format string }{
		{"app_log.ndjson", "app_log"},
		{"eventbridge_guardduty.ndjson", "eventbridge"},
		{"eventbridge_securityhub.ndjson", "eventbridge"},
		{"metric_stream.ndjson", "metric_stream"},
	} {
		data, err := os.ReadFile("../../test/testdata/samples/" + s.file)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			for _, r := range run(t, s.format, line) {
				if r.err != "" {
					t.Errorf("%s: %s", s.file, r.err)
				}
			}
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"event_timestamp":1}`, `{"a":1,"a":{"b":1,"b":2}}`, "{\"a\":\"\xff\\ud800\",\"n\":[NaN,1e400]}", `{"a":"q\"\u0007\u007f\udb40\udc01"}`, `{"source":"a","detail-type":"b","detail":{}}`, "{\"metric_name\":\"a\",\"timestamp\":1}\n{}", `[`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		for _, format := range Formats {
			d, _ := New("s", format, "", "")
			n := 0
			d.Decode(&record.Message{Data: []byte(data)}, func(r *record.Record) {
				n++
				if r.Value != nil {
					if k := duplicateKey(r.Value); k != "" {
						t.Fatalf("%s: decoded record keeps duplicate key %q", format, k)
					}
					if bad := jsonx.BadNumber(r.Value); bad != nil {
						t.Fatalf("%s: decoded record keeps non-JSON number %q", format, bad)
					}
					if out := jsonx.AppendValue(nil, r.Value); !utf8.Valid(out) || !json.Valid(out) {
						t.Fatalf("%s: decoded record renders as invalid JSON %q", format, out)
					}
					if s := invalidString(r.Value); s != "" {
						t.Fatalf("%s: decoded record keeps invalid UTF-8 %q", format, s)
					}
				}
			}, func(*Error) { n++ })
			if n == 0 {
				t.Fatalf("%s: message produced neither a record nor an error", format)
			}
		}
	})
}

// invalidString returns a string or key in v that is not valid UTF-8, or "".
func invalidString(v *fastjson.Value) (bad string) {
	switch v.Type() {
	case fastjson.TypeString:
		if b, _ := v.StringBytes(); !utf8.Valid(b) {
			return string(b)
		}
	case fastjson.TypeObject:
		o, _ := v.Object()
		o.Visit(func(k []byte, c *fastjson.Value) {
			if bad == "" && !utf8.Valid(k) {
				bad = string(k)
			}
			if bad == "" {
				bad = invalidString(c)
			}
		})
	case fastjson.TypeArray:
		arr, _ := v.Array()
		for _, c := range arr {
			if bad = invalidString(c); bad != "" {
				return bad
			}
		}
	}
	return bad
}

// duplicateKey returns a key some object in v holds twice, or "".
func duplicateKey(v *fastjson.Value) (dup string) {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		seen := map[string]bool{}
		o.Visit(func(k []byte, c *fastjson.Value) {
			if seen[string(k)] && dup == "" {
				dup = string(k)
			}
			seen[string(k)] = true
			if d := duplicateKey(c); d != "" && dup == "" {
				dup = d
			}
		})
	case fastjson.TypeArray:
		arr, _ := v.Array()
		for _, c := range arr {
			if d := duplicateKey(c); d != "" {
				return d
			}
		}
	}
	return dup
}

func BenchmarkDecodeAppLog(b *testing.B) {
	line := []byte(`{"project_id":"P-HMX-01","plan_ver":"v2024.11.03","event_timestamp":1730617263,"level":"WARN","engine":"mozart-planner","host":"ip-10-0-3-17","message":"capacity overload on line L3 (112%)","run_id":"r-7f3a","duration_ms":63012,"context":{"line":"L3","load_pct":112.4}}`)
	d, _ := New("src", "app_log", "", "")
	msg := &record.Message{Data: line}
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		d.Decode(msg, func(*record.Record) { n++ }, func(*Error) {})
	}
}

// TestLooseValues: tokens fastjson takes but JSON does not are refused as
// invalid JSON in every format; numbers too large for a double are JSON
// and decode (the columns that cannot hold them refuse them); invalid
// UTF-8 and lone surrogate escapes become U+FFFD and are counted, while
// Raw keeps the bytes as they came.
func TestLooseValues(t *testing.T) {
	tests := []struct {
		name, data, wantID, wantErr string
		fixed                       bool
	}{
		{"NaN", `{"id":"a","v":NaN}`, "", `invalid JSON: "NaN" is not a number`, false},
		{"nan", `{"id":"a","v":[1,nan]}`, "", `invalid JSON: "nan" is not a number`, false},
		{"inf", `{"id":"a","v":{"w":-inf}}`, "", `invalid JSON: "-inf" is not a number`, false},
		{"INF", `{"id":"a","v":INF}`, "", `invalid JSON: "INF" is not a number`, false},
		{"Infinity", `{"id":"a","v":Infinity}`, "", `invalid JSON: cannot parse JSON: cannot parse object: missing ',' after object value; unparsed tail: "inity}"`, false},
		{"leading zero", `{"id":"a","v":01}`, "", `invalid JSON: "01" is not a number`, false},
		{"bare fraction", `{"id":"a","v":.5}`, "", `invalid JSON: ".5" is not a number`, false},
		{"trailing dot", `{"id":"a","v":1.}`, "", `invalid JSON: "1." is not a number`, false},
		{"plus", `{"id":"a","v":+1}`, "", `invalid JSON: "+1" is not a number`, false},
		{"1e400 is JSON", `{"id":"a","v":1e400}`, "a", "", false},
		{"invalid UTF-8", "{\"id\":\"a\xffb\"}", "a\uFFFDb", "", true},
		{"invalid UTF-8 key", "{\"id\":\"k\",\"\xc3\":1}", "k", "", true},
		{"lone surrogate", `{"id":"\ud800x"}`, "\uFFFDx", "", true},
		{"surrogate pair", `{"id":"\ud83e\udee8"}`, "\U0001FAE8", "", false},
		{"escaped backslash", `{"id":"\\ud800"}`, `\ud800`, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, format := range []string{"app_log", "json"} {
				d, _ := New("loose-"+tt.name+format, format, "", "")
				var gotID, gotErr, raw string
				d.Decode(&record.Message{Data: []byte(tt.data)}, func(r *record.Record) {
					gotID, raw = string(r.Value.GetStringBytes("id")), string(r.Raw)
				}, func(e *Error) { gotErr, raw = e.Err.Error(), string(e.Raw) })
				if gotID != tt.wantID || gotErr != tt.wantErr {
					t.Errorf("%s: got id %q, error %q; want %q, %q", format, gotID, gotErr, tt.wantID, tt.wantErr)
				}
				if raw != tt.data {
					t.Errorf("%s: raw %q, want the message as it came", format, raw)
				}
				var m dto.Metric
				metrics.DecodeInvalidUTF8.WithLabelValues("loose-" + tt.name + format).Write(&m)
				n := m.GetCounter().GetValue()
				if want := map[bool]float64{true: 1}[tt.fixed]; n != want {
					t.Errorf("%s: %s = %v, want %v", format, "sluice_source_invalid_utf8_total", n, want)
				}
			}
		})
	}
}
