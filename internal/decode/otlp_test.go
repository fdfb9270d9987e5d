package decode

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/record"
)

// otelFixture encodes testdata/cloudwatch_otel.txtpb as one Metric Streams
// opentelemetry1.0 stream record: each message length-prefixed.
func otelFixture(tb testing.TB) []byte {
	tb.Helper()
	text, err := os.ReadFile("testdata/cloudwatch_otel.txtpb")
	if err != nil {
		tb.Fatal(err)
	}
	var out []byte
	for part := range strings.SplitSeq(string(text), "\n---\n") {
		var m metricspb.MetricsData
		if err := prototext.Unmarshal([]byte(part), &m); err != nil {
			tb.Fatal(err)
		}
		b, err := proto.Marshal(&m)
		if err != nil {
			tb.Fatal(err)
		}
		out = protowire.AppendVarint(out, uint64(len(b)))
		out = append(out, b...)
	}
	return out
}

type decoded struct {
	Pos   string
	Event time.Time
	Value any
}

func decodeAll(t *testing.T, format string, data []byte) ([]decoded, []*Error) {
	t.Helper()
	d, err := New("metrics", format, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var recs []decoded
	var errs []*Error
	msg := &record.Message{Data: data, Pos: record.Position{Partition: "req-1", Offset: 3}, Arrival: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	d.Decode(msg, func(r *record.Record) {
		var v any
		if err := json.Unmarshal(r.Value.MarshalTo(nil), &v); err != nil {
			t.Fatalf("%s: record is not JSON: %v", r.Pos, err)
		}
		if !bytes.Equal(r.Value.MarshalTo(nil), r.Raw) {
			t.Errorf("%s: Raw %s differs from Value", r.Pos, r.Raw)
		}
		recs = append(recs, decoded{Pos: r.Pos.String(), Event: r.EventTime, Value: v})
	}, func(e *Error) { errs = append(errs, e) })
	return recs, errs
}

// TestOTLPMatchesJSON: the same data points in CloudWatch's JSON and
// OpenTelemetry 1.0 layouts decode to identical records (fields, event
// time and positions), so routes and sinks do not care which one a
// stream uses.
func TestOTLPMatchesJSON(t *testing.T) {
	jsonData, err := os.ReadFile("testdata/cloudwatch_metric_stream.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	want, errs := decodeAll(t, "metric_stream", jsonData)
	if len(errs) > 0 || len(want) != 4 {
		t.Fatalf("JSON fixture: %d records, errors %v", len(want), errs)
	}
	got, errs := decodeAll(t, "otlp_metrics", otelFixture(t))
	if len(errs) > 0 {
		t.Fatalf("OTel fixture: %v", errs[0])
	}
	if !reflect.DeepEqual(got, want) {
		for i := range max(len(got), len(want)) {
			if i >= len(got) || i >= len(want) || !reflect.DeepEqual(got[i], want[i]) {
				g, _ := json.Marshal(got[min(i, len(got)-1)])
				w, _ := json.Marshal(want[min(i, len(want)-1)])
				t.Errorf("record %d:\n got %s\nwant %s", i, g, w)
			}
		}
	}
}

func TestOTLPMalformed(t *testing.T) {
	good := otelFixture(t)
	gauge, _ := proto.Marshal(&metricspb.MetricsData{ResourceMetrics: []*metricspb.ResourceMetrics{{ScopeMetrics: []*metricspb.ScopeMetrics{{
		Metrics: []*metricspb.Metric{{Name: "g", Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{}}}}}}}}})
	noNames, _ := proto.Marshal(&metricspb.MetricsData{ResourceMetrics: []*metricspb.ResourceMetrics{{ScopeMetrics: []*metricspb.ScopeMetrics{{
		Metrics: []*metricspb.Metric{{Name: "x", Data: &metricspb.Metric_Summary{Summary: &metricspb.Summary{DataPoints: []*metricspb.SummaryDataPoint{{}}}}}}}}}}})
	tests := []struct {
		name string
		give []byte
		want string
	}{
		{"truncated", good[:len(good)-7], "message 1: length"},
		{"length prefix cut", []byte{0xff}, "message 0: bad length prefix"},
		{"not protobuf", append(protowire.AppendVarint(nil, 3), 0xff, 0xff, 0xff), "message 0: proto"},
		{"gauge", append(protowire.AppendVarint(nil, uint64(len(gauge))), gauge...), `metric "g": not CloudWatch's layout`},
		{"no namespace", append(protowire.AppendVarint(nil, uint64(len(noNames))), noNames...), `no "Namespace" and "MetricName"`},
		{"empty", nil, "no data points"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, errs := decodeAll(t, "otlp_metrics", tt.give)
			if len(recs) != 0 || len(errs) != 1 {
				t.Fatalf("%d records, %d errors; want the message whole in the error output", len(recs), len(errs))
			}
			e := errs[0]
			if !strings.Contains(e.Err.Error(), tt.want) || !bytes.Equal(e.Raw, tt.give) || e.Pos.String() != "req-1:3" {
				t.Errorf("error %q at %s with %d bytes; want %q with the message's %d bytes", e.Err, e.Pos, len(e.Raw), tt.want, len(tt.give))
			}
		})
	}
}

func TestCloudWatchUnit(t *testing.T) {
	tests := []struct{ give, want string }{
		{"{Count}", "Count"}, {"By/s", "Bytes/Second"}, {"{Count}/s", "Count/Second"}, {"kbit/s", "Kilobits/Second"},
		{"1", "None"}, {"NoneTranslated", "None"}, {"%", "Percent"}, {"us", "Microseconds"}, {"furlong", "furlong"},
	}
	for _, tt := range tests {
		if got := cloudWatchUnit(tt.give); got != tt.want {
			t.Errorf("cloudWatchUnit(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

// FuzzOTLP: any bytes either decode to JSON records or go to the error
// output whole, with their bytes; never both, never a panic.
func FuzzOTLP(f *testing.F) {
	good := otelFixture(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{0x02, 0x0a, 0x00})
	f.Add(bytes.ReplaceAll(good, []byte("MyTable"), []byte("My\xffable")))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, _ := New("s", "otlp_metrics", "", "")
		recs, fails := 0, 0
		d.Decode(&record.Message{Data: data}, func(r *record.Record) {
			recs++
			if r.Value == nil || r.Value.Type().String() != "object" {
				t.Fatalf("record is not a JSON object: %s", r.Raw)
			}
			if !utf8.Valid(r.Raw) || !json.Valid(r.Raw) {
				t.Fatalf("record is not valid UTF-8 JSON: %q", r.Raw)
			}
			if k := duplicateKey(r.Value); k != "" {
				t.Fatalf("record keeps duplicate key %q", k)
			}
		}, func(e *Error) {
			fails++
			if e.Err == nil {
				t.Fatal("error without a reason")
			}
		})
		if recs+fails == 0 {
			t.Fatal("message produced neither a record nor an error")
		}
	})
}

// TestOTLPInvalidUTF8: a string with invalid UTF-8 (a dimension value, a
// metric or attribute name) gets the policy of every other format: each
// invalid byte becomes U+FFFD, the record is written and counted, and no
// other data point of the message is lost.
func TestOTLPInvalidUTF8(t *testing.T) {
	good := otelFixture(t)
	tests := []struct{ name, old, new, want string }{
		{"dimension value", "MyTable", "My\xffable", "\"TableName\":\"My\uFFFDable\""},
		{"attribute key", "TableName", "Table\xc3ame", "\"Table\uFFFDame\":\"MyTable\""},
		{"metric name", "ConsumedReadCapacityUnits", "ConsumedRead\xed\xa0\x80acityUnits", "\"metric_name\":\"ConsumedRead\uFFFD\uFFFD\uFFFDacityUnits\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.old) != len(tt.new) {
				t.Fatal("the replacement must keep every length prefix")
			}
			data := bytes.ReplaceAll(good, []byte(tt.old), []byte(tt.new))
			source := "otlp-utf8-" + tt.name
			d, _ := New(source, "otlp_metrics", "", "")
			var out []string
			var errs []*Error
			d.Decode(&record.Message{Data: data}, func(r *record.Record) {
				if !utf8.Valid(r.Raw) {
					t.Errorf("record keeps invalid UTF-8: %q", r.Raw)
				}
				// Through encoding/json, so that U+FFFD reads the same
				// whether the record escapes it or not.
				var v any
				if err := json.Unmarshal(r.Value.MarshalTo(nil), &v); err != nil {
					t.Fatal(err)
				}
				b, _ := json.Marshal(v)
				out = append(out, string(b))
			}, func(e *Error) { errs = append(errs, e) })
			if len(errs) > 0 || len(out) != 4 {
				t.Fatalf("%d records, errors %v; want the 4 data points", len(out), errs)
			}
			joined, _ := json.Marshal(out)
			if !strings.Contains(strings.Join(out, "\n"), tt.want) {
				t.Errorf("records %s lack %s", joined, tt.want)
			}
			var m dto.Metric
			metrics.DecodeInvalidUTF8.WithLabelValues(source).Write(&m)
			if n := m.GetCounter().GetValue(); n == 0 {
				t.Errorf("sluice_source_invalid_utf8_total{source=%q} = 0", source)
			}
		})
	}
}

// TestOTLPResourceFallbacks: a resource that leaves out cloud.account.id
// and cloud.region still gives them, from the stream's ARN; one with no
// ARN takes the stream's name from aws.cloudwatch.metric_stream_name (as
// the OpenTelemetry collector writes it). The records equal the fixture's.
func TestOTLPResourceFallbacks(t *testing.T) {
	want, errs := decodeAll(t, "otlp_metrics", otelFixture(t))
	if len(errs) > 0 || len(want) == 0 {
		t.Fatalf("fixture: %d records, errors %v", len(want), errs)
	}
	text, err := os.ReadFile("testdata/cloudwatch_otel.txtpb")
	if err != nil {
		t.Fatal(err)
	}
	account := `    attributes { key: "cloud.account.id" value { string_value: "123456789012" } }` + "\n"
	region := `    attributes { key: "cloud.region" value { string_value: "us-east-1" } }` + "\n"
	arn := `    attributes { key: "aws.exporter.arn" value { string_value: "arn:aws:cloudwatch:us-east-1:123456789012:metric-stream/MyMetricStream" } }` + "\n"
	named := `    attributes { key: "aws.cloudwatch.metric_stream_name" value { string_value: "MyMetricStream" } }` + "\n"
	for _, tt := range []struct{ name, text string }{
		{"ARN alone", strings.NewReplacer(account, "", region, "").Replace(string(text))},
		{"name attribute", strings.NewReplacer(arn, named).Replace(string(text))},
	} {
		if tt.text == string(text) {
			t.Fatalf("%s: the fixture's attributes were not found", tt.name)
		}
		var data []byte
		for part := range strings.SplitSeq(tt.text, "\n---\n") {
			var m metricspb.MetricsData
			if err := prototext.Unmarshal([]byte(part), &m); err != nil {
				t.Fatal(err)
			}
			b, _ := proto.Marshal(&m)
			data = protowire.AppendVarint(data, uint64(len(b)))
			data = append(data, b...)
		}
		got, errs := decodeAll(t, "otlp_metrics", data)
		if len(errs) > 0 || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: records %+v, errors %v; want %+v", tt.name, got, errs, want)
		}
	}
}
