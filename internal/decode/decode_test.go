package decode

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fastjson"

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
	for _, s := range []string{`{"event_timestamp":1}`, `{"a":1,"a":{"b":1,"b":2}}`, `{"source":"a","detail-type":"b","detail":{}}`, "{\"metric_name\":\"a\",\"timestamp\":1}\n{}", `[`} {
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
				}
			}, func(*Error) { n++ })
			if n == 0 {
				t.Fatalf("%s: message produced neither a record nor an error", format)
			}
		}
	})
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
