package emf

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/metrics"
)

// lines parses EMF output and checks each line's structure: every
// declared metric has a numeric value, every dimension a string value.
func lines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, raw := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("not JSON: %s", raw)
		}
		aws := doc["_aws"].(map[string]any)
		if _, ok := aws["Timestamp"].(float64); !ok {
			t.Errorf("no Timestamp: %s", raw)
		}
		for _, d := range aws["CloudWatchMetrics"].([]any) {
			d := d.(map[string]any)
			if d["Namespace"] != Namespace {
				t.Errorf("namespace %v", d["Namespace"])
			}
			for _, set := range d["Dimensions"].([]any) {
				for _, dim := range set.([]any) {
					if _, ok := doc[dim.(string)].(string); !ok {
						t.Errorf("dimension %v has no value: %s", dim, raw)
					}
				}
			}
			for _, m := range d["Metrics"].([]any) {
				if _, ok := doc[m.(map[string]any)["Name"].(string)].(float64); !ok {
					t.Errorf("metric %v has no value: %s", m, raw)
				}
			}
		}
		out = append(out, doc)
	}
	return out
}

func find(docs []map[string]any, key, val string) map[string]any {
	for _, d := range docs {
		if d[key] == val {
			return d
		}
	}
	return nil
}

func TestEmit(t *testing.T) {
	metrics.SourceRecords.WithLabelValues("emf-kafka").Add(10)
	metrics.KafkaLag.WithLabelValues("emf-kafka", "t/0").Set(3)
	metrics.KafkaLag.WithLabelValues("emf-kafka", "t/1").Set(4)
	metrics.SourceRecords.WithLabelValues("emf-kinesis").Add(1)
	metrics.KinesisBehind.WithLabelValues("emf-kinesis", "shard-0").Set(100)
	metrics.KinesisBehind.WithLabelValues("emf-kinesis", "shard-1").Set(250)
	metrics.SinkWritten.WithLabelValues("emf-lake").Add(7)
	metrics.SinkStoreRetries.WithLabelValues("emf-lake").Add(1)
	metrics.ErrorRecords.WithLabelValues("emf-type").Add(2)
	metrics.FlushSeconds.WithLabelValues("emf-lake").Observe(0.5)
	metrics.FlushSeconds.WithLabelValues("emf-lake").Observe(1.5)

	var buf bytes.Buffer
	e := New(metrics.Registry, &buf, "svc")
	if err := e.Emit(time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	docs := lines(t, buf.Bytes())
	tests := []struct {
		key, val, metric string
		want             float64
	}{
		{"Source", "emf-kafka", "RecordsIn", 10},
		{"Source", "emf-kafka", "KafkaConsumerLag", 7},
		{"Source", "emf-kinesis", "MillisBehindLatest", 250},
		{"Sink", "emf-lake", "RecordsOut", 7},
		{"Sink", "emf-lake", "StoreRetries", 1},
		{"Sink", "emf-lake", "FlushSeconds", 1},
		{"Type", "emf-type", "ErrorRecords", 2},
	}
	for _, tt := range tests {
		d := find(docs, tt.key, tt.val)
		if d == nil || d[tt.metric] != tt.want || d["Service"] != "svc" {
			t.Errorf("%s=%s %s: line %v, want %v", tt.key, tt.val, tt.metric, d, tt.want)
		}
	}

	// The next interval publishes the increase, not the total.
	metrics.SourceRecords.WithLabelValues("emf-kafka").Add(5)
	buf.Reset()
	if err := e.Emit(time.Unix(1700000060, 0)); err != nil {
		t.Fatal(err)
	}
	docs = lines(t, buf.Bytes())
	if d := find(docs, "Source", "emf-kafka"); d == nil || d["RecordsIn"] != 5.0 || d["KafkaConsumerLag"] != 7.0 {
		t.Errorf("second interval: %v, want RecordsIn 5, lag 7", d)
	}
	if d := find(docs, "Type", "emf-type"); d == nil || d["ErrorRecords"] != 0.0 {
		t.Errorf("second interval errors: %v, want 0", d)
	}
}
