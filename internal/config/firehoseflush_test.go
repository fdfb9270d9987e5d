package config

import (
	"fmt"
	"testing"
)

// TestWarnFirehoseFlush: validate warns, naming file and line, when a sink
// a firehose_http source's records reach flushes only after the source's
// request_timeout, so every request would answer 500 before its records
// are written (Firehose then retries until one finds them written). It is
// a warning, not an error: a deliberately slow sink is how one sees the
// timeout's 500.
func TestWarnFirehoseFlush(t *testing.T) {
	const head = `service: {error_sink: errors}
sources:
  - name: metrics
    type: firehose_http
    format: metric_stream
    firehose_http: {request_timeout: 60s}
routes:
  - {name: r, from: [metrics], to: [lake, search]}
sinks:
  - {name: search, type: opensearch, endpoints: ["http://localhost:9200"], auth: {type: none}, index: metrics, %s}
  - {name: lake, type: s3, url: "file:out/lake/", format: ndjson, %s}
  - {name: errors, type: s3, url: "file:out/errors/", format: ndjson, %s}
`
	tests := []struct {
		name               string
		search, lake, errs string
		want               []string
	}{
		{"under request_timeout", "bulk: {interval: 5s}", "buffer: {interval: 30s}", "buffer: {interval: 59s}", nil},
		{"routed sinks", "bulk: {interval: 60s}", "buffer: {interval: 300s}", "buffer: {interval: 10s}", []string{
			`w.yaml:10: sinks[0].bulk.interval: 1m0s is not under request_timeout 1m0s of firehose_http source "metrics", whose records this sink indexes: a request is answered once its records are indexed, so every request would wait past its timeout and get 500; make the interval shorter`,
			`w.yaml:11: sinks[1].buffer.interval: 5m0s is not under request_timeout 1m0s of firehose_http source "metrics", whose records this sink writes: a request is answered once its records are written, so every request would wait past its timeout and get 500; make the interval shorter`,
		}},
		{"error sink at its default", "bulk: {interval: 5s}", "buffer: {interval: 30s}", "compression: gzip", []string{
			`w.yaml:12: sinks[2].buffer.interval: 1m0s is not under request_timeout 1m0s of firehose_http source "metrics", whose failed records this error sink writes: a request with a failed record would wait past its timeout and get 500 until Firehose's retry finds it written; make the interval shorter`,
		}},
	}
	for _, tt := range tests {
		c, err := Parse("w.yaml", []byte(fmt.Sprintf(head, tt.search, tt.lake, tt.errs)), lookup(nil))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if len(c.Warnings) != len(tt.want) {
			t.Errorf("%s: warnings %v, want %d", tt.name, c.Warnings, len(tt.want))
			continue
		}
		for i, w := range tt.want {
			if got := c.Warnings[i].Error(); got != "warning: "+w {
				t.Errorf("%s: warning\n%s\nwant\n%s", tt.name, got, w)
			}
		}
	}
}
