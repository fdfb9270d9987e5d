package firehose

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/record"
)

const key1, key2 = "k1-secret-abcdef", "k2-secret-123456"

// harness runs a source on 127.0.0.1:0 with a stand-in pipeline: every
// batch read goes to got, and is acked with what ack returns (nil: at
// once; a channel: when the test sends on it).
type harness struct {
	t      *testing.T
	src    *Source
	url    string
	cancel context.CancelFunc
	logs   *observer.ObservedLogs

	mu      sync.Mutex
	batches []record.Batch
	ackWith func(b record.Batch) <-chan error // nil channel: ack nil at once
	read    sync.WaitGroup
}

func newHarness(t *testing.T, change func(*config.Source)) *harness {
	t.Helper()
	cfg := &config.Source{Name: "metrics", Type: "firehose_http", MaxPending: 1000000, Firehose: config.FirehoseHTTP{
		Listen: "127.0.0.1:0", Path: "/firehose", AccessKeys: []string{key1, key2}, MaxBody: 64 << 20,
		RequestTimeout: config.Duration(5 * time.Second), DedupWindow: config.Duration(2 * time.Hour), DedupMaxIDs: 1000,
	}}
	if change != nil {
		change(cfg)
	}
	core, logs := observer.New(zap.DebugLevel)
	src, err := New(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, src: src, cancel: cancel, logs: logs}
	h.read.Add(1)
	go func() {
		defer h.read.Done()
		for {
			b, ack, err := src.ReadBatch(ctx)
			if err != nil {
				return
			}
			h.mu.Lock()
			h.batches = append(h.batches, b)
			f := h.ackWith
			h.mu.Unlock()
			var ch <-chan error
			if f != nil {
				ch = f(b)
			}
			if ch == nil {
				ack(nil)
				continue
			}
			go func() { ack(<-ch) }()
		}
	}()
	h.url = "http://" + src.Addr().String() + cfg.Firehose.Path
	t.Cleanup(func() {
		cancel()
		h.read.Wait()
		ctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = src.Close(ctx)
		for _, e := range logs.All() {
			for _, k := range []string{key1, key2, "wrong-key"} {
				if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), k) {
					t.Errorf("an access key was logged: %s %v", e.Message, e.ContextMap())
				}
			}
		}
	})
	return h
}

func (h *harness) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.batches)
}

type reply struct {
	status int
	body   response
}

func body(id string, records ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"requestId":%q,"timestamp":1730617200000,"records":[`, id)
	for i, r := range records {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"data":%q}`, base64.StdEncoding.EncodeToString([]byte(r)))
	}
	b.WriteString("]}")
	return []byte(b.String())
}

func (h *harness) post(id, key string, data []byte, hdr ...string) reply {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Amz-Firehose-Protocol-Version", "1.0")
	if id != "" {
		req.Header.Set("X-Amz-Firehose-Request-Id", id)
	}
	if key != "" {
		req.Header.Set("X-Amz-Firehose-Access-Key", key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	var r reply
	r.status = resp.StatusCode
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &r.body); err != nil {
		h.t.Fatalf("response %d is not JSON: %q", resp.StatusCode, raw)
	}
	if resp.Header.Get("Content-Encoding") != "" {
		h.t.Errorf("response is encoded: %s", resp.Header.Get("Content-Encoding"))
	}
	if id != "" && r.body.RequestID != id {
		h.t.Errorf("response requestId %q, want %q", r.body.RequestID, id)
	}
	return r
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

func TestDeliveryGzipMultiRecord(t *testing.T) {
	h := newHarness(t, nil)
	r := h.post("req-a", key1, gz(body("req-a", "one", "two", "three")), "Content-Encoding", "gzip",
		"X-Amz-Firehose-Source-Arn", "arn:aws:firehose:us-east-1:123456789012:deliverystream/metrics",
		"X-Amz-Firehose-Common-Attributes", `{"commonAttributes":{"env":"prod","team":"infra"}}`)
	if r.status != 200 || r.body.ErrorMessage != "" {
		t.Fatalf("got %d %q", r.status, r.body.ErrorMessage)
	}
	if h.count() != 1 {
		t.Fatalf("%d batches, want 1", h.count())
	}
	b := h.batches[0]
	if len(b.Messages) != 3 || b.Source != "metrics" {
		t.Fatalf("batch %+v", b)
	}
	for i, m := range b.Messages {
		want := record.Position{Partition: "req-a", Offset: int64(i)}
		if m.Pos != want || string(m.Data) != []string{"one", "two", "three"}[i] {
			t.Errorf("message %d: %+v %q", i, m.Pos, m.Data)
		}
		if m.Meta.Topic != "arn:aws:firehose:us-east-1:123456789012:deliverystream/metrics" || string(m.Meta.Key) != "req-a" ||
			len(m.Meta.Headers) != 2 || m.Meta.Headers[0].Key != "env" || string(m.Meta.Headers[1].Value) != "infra" {
			t.Errorf("message %d meta %+v", i, m.Meta)
		}
	}
}

func TestStatuses(t *testing.T) {
	tests := []struct {
		name   string
		key    string
		data   []byte
		hdr    []string
		status int
		msg    string
	}{
		{"no key", "", body("r1", "x"), nil, 401, "missing X-Amz-Firehose-Access-Key"},
		{"wrong key", "wrong-key", body("r1", "x"), nil, 403, "access key not accepted"},
		{"malformed JSON", key1, []byte(`{"requestId":"r1","records":[`), nil, 400, "body:"},
		{"bad base64", key1, []byte(`{"requestId":"r1","records":[{"data":"@@@"}]}`), nil, 400, "illegal base64"},
		{"no records", key1, body("r1"), nil, 400, "records: 0"},
		{"record without data", key1, []byte(`{"requestId":"r1","records":[{"data":"eA=="},{}]}`), nil, 400, "record 1: no data"},
		{"record data null", key1, []byte(`{"requestId":"r1","records":[{"data":null}]}`), nil, 400, "record 0: no data"},
		{"record null", key1, []byte(`{"requestId":"r1","records":[null]}`), nil, 400, "record 0: no data"},
		{"bad gzip", key1, []byte("not gzip"), []string{"Content-Encoding", "gzip"}, 400, "gzip body"},
		{"unknown encoding", key1, body("r1", "x"), []string{"Content-Encoding", "br"}, 400, `content encoding "br"`},
		{"body too large", key1, body("r1", strings.Repeat("x", 2<<20)), nil, 413, "exceeds max_body"},
		{"gzip bomb", key1, gz(body("r1", strings.Repeat("x", 2<<20))), []string{"Content-Encoding", "gzip"}, 413, "exceeds max_body"},
		{"truncated gzip", key1, gzCut(body("r1", "x")), []string{"Content-Encoding", "gzip"}, 400, "body: unexpected EOF"},
		{"trailing data", key1, append(body("r1", "x"), `{}`...), nil, 400, "data after the JSON object"},
		{"ids differ", key1, body("other", "x"), nil, 400, "differs"},
	}
	h := newHarness(t, func(c *config.Source) { c.Firehose.MaxBody = 1 << 20 })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.post("r1", tt.key, tt.data, tt.hdr...)
			if r.status != tt.status || !strings.Contains(r.body.ErrorMessage, tt.msg) {
				t.Errorf("got %d %q, want %d %q", r.status, r.body.ErrorMessage, tt.status, tt.msg)
			}
		})
	}
	if h.count() != 0 {
		t.Errorf("%d batches handed on from refused requests", h.count())
	}
}

// gzCut is b gzipped with the end of its trailer cut off: the JSON
// inflates whole, the gzip stream does not end.
func gzCut(b []byte) []byte {
	z := gz(b)
	return z[:len(z)-4]
}

// TestWrongPathIsJSON: a stream sent to another path gets a 404 in
// Firehose's answer shape, which Firehose's error log shows.
func TestWrongPathIsJSON(t *testing.T) {
	h := newHarness(t, nil)
	base := h.url
	h.url = strings.TrimSuffix(base, "/firehose") + "/elsewhere"
	r := h.post("r9", key1, body("r9", "x"))
	if r.status != http.StatusNotFound || !strings.Contains(r.body.ErrorMessage, "/firehose") {
		t.Errorf("got %d %q, want 404 naming the endpoint's path", r.status, r.body.ErrorMessage)
	}
	if h.count() != 0 {
		t.Errorf("%d batches handed on from a wrong path", h.count())
	}
}

func TestRecordTooLarge(t *testing.T) {
	h := newHarness(t, nil)
	r := h.post("big", key1, body("big", "x", strings.Repeat("y", maxRecordSize+1)))
	if r.status != 413 || h.count() != 0 {
		t.Errorf("got %d %q with %d batches; want 413 and nothing accepted", r.status, r.body.ErrorMessage, h.count())
	}
}

// TestProtocolLimits: 1 to 10,000 records of at most 1,024,000 bytes
// each are a delivery; one more record is 400, one more byte 413.
func TestProtocolLimits(t *testing.T) {
	many := func(n int) []string {
		recs := make([]string, n)
		for i := range recs {
			recs[i] = "r"
		}
		return recs
	}
	tests := []struct {
		name    string
		records []string
		status  int
		batches int // handed to the pipeline
	}{
		{"10,000 records", many(maxRecords), 200, 1},
		{"10,001 records", many(maxRecords + 1), 400, 0},
		{"a record of 1,024,000 bytes", []string{strings.Repeat("y", maxRecordSize)}, 200, 1},
		{"a record of 1,024,001 bytes", []string{strings.Repeat("y", maxRecordSize+1)}, 413, 0},
	}
	h := newHarness(t, nil)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("limit-%d", i)
			before := h.count()
			r := h.post(id, key1, body(id, tt.records...))
			if r.status != tt.status {
				t.Errorf("got %d %q, want %d", r.status, r.body.ErrorMessage, tt.status)
			}
			if got := h.count() - before; got != tt.batches {
				t.Errorf("%d batches handed on, want %d", got, tt.batches)
			}
		})
	}
}

func TestNoKeysRefusesAll(t *testing.T) {
	h := newHarness(t, func(c *config.Source) { c.Firehose.AccessKeys = nil })
	if r := h.post("r", key1, body("r", "x")); r.status != 403 {
		t.Errorf("got %d, want 403", r.status)
	}
}

// TestKeyRotation: both configured keys are accepted while a rotation is
// under way.
func TestKeyRotation(t *testing.T) {
	h := newHarness(t, nil)
	for i, k := range []string{key1, key2} {
		id := fmt.Sprintf("rot-%d", i)
		if r := h.post(id, k, body(id, "x")); r.status != 200 {
			t.Errorf("key %d: got %d %q", i, r.status, r.body.ErrorMessage)
		}
	}
}

func TestSinkFailureIs500(t *testing.T) {
	h := newHarness(t, nil)
	h.ackWith = func(record.Batch) <-chan error {
		ch := make(chan error, 1)
		ch <- errors.New("put object: access denied")
		return ch
	}
	r := h.post("fail", key1, body("fail", "x"))
	if r.status != 500 || !strings.Contains(r.body.ErrorMessage, "access denied") {
		t.Fatalf("got %d %q", r.status, r.body.ErrorMessage)
	}
	// Firehose's retry is processed again, not answered from memory.
	h.mu.Lock()
	h.ackWith = nil
	h.mu.Unlock()
	if r := h.post("fail", key1, body("fail", "x")); r.status != 200 || h.count() != 2 {
		t.Errorf("retry: got %d with %d batches, want 200 and a second attempt", r.status, h.count())
	}
}

// TestRetries: a retry while the first attempt is in flight waits for its
// outcome (also after the first attempt's request_timeout), and a retry
// after success is answered 200 from memory; the records are handed on
// once.
func TestRetries(t *testing.T) {
	h := newHarness(t, func(c *config.Source) { c.Firehose.RequestTimeout = config.Duration(300 * time.Millisecond) })
	release := make(chan error)
	h.ackWith = func(record.Batch) <-chan error { return release }
	first := h.post("dup", key1, body("dup", "a", "b"))
	if first.status != 500 || !strings.Contains(first.body.ErrorMessage, "request_timeout") {
		t.Fatalf("first attempt: got %d %q, want 500 after request_timeout", first.status, first.body.ErrorMessage)
	}
	var wg sync.WaitGroup
	var second reply
	wg.Add(1)
	go func() { defer wg.Done(); second = h.post("dup", key1, body("dup", "a", "b")) }()
	time.Sleep(100 * time.Millisecond) // let the retry join the attempt in flight
	release <- nil
	wg.Wait()
	if second.status != 200 {
		t.Errorf("retry during processing: got %d %q", second.status, second.body.ErrorMessage)
	}
	if third := h.post("dup", key1, body("dup", "a", "b")); third.status != 200 {
		t.Errorf("retry after success: got %d", third.status)
	}
	if h.count() != 1 {
		t.Errorf("%d batches, want the records handed on once", h.count())
	}
}

func TestBackpressure(t *testing.T) {
	h := newHarness(t, func(c *config.Source) { c.MaxPending = 3 })
	var relieved atomic.Int32
	h.src.OnWait(func() { relieved.Add(1) })
	release := make(chan error, 1)
	h.ackWith = func(record.Batch) <-chan error { return release }
	done := make(chan reply)
	go func() { done <- h.post("p1", key1, body("p1", "a", "b")) }()
	for h.count() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	r := h.post("p2", key1, body("p2", "c", "d"))
	if r.status != 503 || !strings.Contains(r.body.ErrorMessage, "max_pending") {
		t.Errorf("at max_pending: got %d %q", r.status, r.body.ErrorMessage)
	}
	release <- nil
	if r := <-done; r.status != 200 {
		t.Errorf("first: %d", r.status)
	}
	h.mu.Lock()
	h.ackWith = nil
	h.mu.Unlock()
	if r := h.post("p2", key1, body("p2", "c", "d")); r.status != 200 {
		t.Errorf("after the ack: %d %q", r.status, r.body.ErrorMessage)
	}
	for deadline := time.Now().Add(time.Second); relieved.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if relieved.Load() == 0 {
		t.Error("the pipeline was not asked to flush")
	}
}

// TestShutdownMidRequest: once reading stops, new requests get 503 and
// a request already handed on is answered when the final flush acks it.
func TestShutdownMidRequest(t *testing.T) {
	h := newHarness(t, nil)
	release := make(chan error)
	h.ackWith = func(record.Batch) <-chan error { return release }
	done := make(chan reply)
	go func() { done <- h.post("mid", key1, body("mid", "a")) }()
	for h.count() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	h.cancel() // the pipeline stops reading
	h.read.Wait()
	if r := h.post("late", key1, body("late", "b")); r.status != 503 {
		t.Errorf("after shutdown began: got %d, want 503", r.status)
	}
	closed := make(chan error)
	go func() { closed <- h.src.Close(context.Background()) }()
	release <- nil // the final flush made it durable
	if r := <-done; r.status != 200 {
		t.Errorf("in-flight request: got %d %q, want 200", r.status, r.body.ErrorMessage)
	}
	if err := <-closed; err != nil {
		t.Errorf("close: %v", err)
	}
}

// TestShutdownGivesUp: requests never acked within Close's deadline get
// 500, so Firehose retries them elsewhere.
func TestShutdownGivesUp(t *testing.T) {
	h := newHarness(t, nil)
	h.ackWith = func(record.Batch) <-chan error { return make(chan error) }
	done := make(chan reply)
	go func() { done <- h.post("stuck", key1, body("stuck", "a")) }()
	for h.count() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_ = h.src.Close(ctx)
	if r := <-done; r.status != 500 || !strings.Contains(r.body.ErrorMessage, "shutting down") {
		t.Errorf("got %d %q, want 500", r.status, r.body.ErrorMessage)
	}
}

func TestLargeBody(t *testing.T) {
	if testing.Short() {
		t.Skip("60 MiB body")
	}
	h := newHarness(t, nil)
	rec := strings.Repeat("m", 900000)
	n := 53 // 48 MB decoded, 61 MiB as base64 JSON
	recs := make([]string, n)
	for i := range recs {
		recs[i] = rec
	}
	data := body("huge", recs...)
	if len(data) < 60<<20 {
		t.Fatalf("body %d bytes, want at least 60 MiB", len(data))
	}
	if r := h.post("huge", key1, data); r.status != 200 || len(h.batches[0].Messages) != n {
		t.Errorf("got %d %q", r.status, r.body.ErrorMessage)
	}
}

func TestHealthCheck(t *testing.T) {
	h := newHarness(t, nil)
	get := func() int {
		resp, err := http.Get(h.url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get(); s != 200 {
		t.Errorf("GET while accepting: %d", s)
	}
	h.cancel()
	h.read.Wait()
	if s := get(); s != 503 {
		t.Errorf("GET while shutting down: %d", s)
	}
}

func TestDedupMemoryIsBounded(t *testing.T) {
	s := &Source{cfg: config.FirehoseHTTP{DedupWindow: config.Duration(time.Hour), DedupMaxIDs: 3}, done: map[string]time.Time{}}
	for i := range 5 {
		s.remember(fmt.Sprint(i))
	}
	if len(s.done) != 3 || len(s.order) != 3 || s.succeeded("1") || !s.succeeded("4") {
		t.Errorf("done %v order %v", s.done, s.order)
	}
	s.done["4"] = time.Now().Add(-2 * time.Hour)
	if s.succeeded("4") {
		t.Error("an id older than dedup_window still counts")
	}
}

// TestUpdateRotatesKeys: a change of access keys alone is taken in place
// (the listener stays, so no delivery is refused), and requests are
// checked against the new keys from then on; any other change is not.
func TestUpdateRotatesKeys(t *testing.T) {
	h := newHarness(t, nil)
	cfg := h.src.opened
	if r := h.post("r1", key1, body("r1", "x")); r.status != 200 {
		t.Fatalf("key1 before the rotation: %d %s", r.status, r.body.ErrorMessage)
	}
	next := cfg
	next.Firehose.AccessKeys = []string{key2, "key-3"}
	if !h.src.CanUpdate(&next) {
		t.Fatal("a change of access keys alone cannot be taken in place")
	}
	other := next
	other.Firehose.MaxBody = 1 << 20
	if h.src.CanUpdate(&other) {
		t.Error("a change of max_body was taken in place")
	}
	h.src.Update(&next)
	if r := h.post("r2", key1, body("r2", "x")); r.status != 403 {
		t.Errorf("key1 after it was rotated out: %d, want 403", r.status)
	}
	if r := h.post("r3", "key-3", body("r3", "x")); r.status != 200 {
		t.Errorf("key-3 after it was rotated in: %d %s", r.status, r.body.ErrorMessage)
	}
	if !h.src.CanUpdate(&cfg) {
		t.Error("rotating back cannot be taken in place")
	}
}

// TestPendingRecordsMetric: the records of requests handed to the pipeline
// and not yet acked are sluice_source_pending_records, the metric that
// CloudWatch (PendingRecords) scales and alarms on when the source has no
// Kafka or Kinesis lag; it is there, at 0, before the first request.
func TestPendingRecordsMetric(t *testing.T) {
	h := newHarness(t, func(c *config.Source) { c.Name = "pending-metric" })
	pending := func() float64 { return promtest.ToFloat64(metrics.SourcePending.WithLabelValues("pending-metric")) }
	if n := promtest.CollectAndCount(metrics.SourcePending, "sluice_source_pending_records"); n == 0 {
		t.Fatal("no sluice_source_pending_records series before the first request")
	}
	release := make(chan error)
	h.ackWith = func(record.Batch) <-chan error { return release }
	done := make(chan reply)
	go func() { done <- h.post("pm", key1, body("pm", "a", "b", "c")) }()
	for h.count() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if got := pending(); got != 3 {
		t.Errorf("pending while in flight: %v, want 3", got)
	}
	release <- nil
	if r := <-done; r.status != 200 {
		t.Fatalf("got %d", r.status)
	}
	if got := pending(); got != 0 {
		t.Errorf("pending after the ack: %v, want 0", got)
	}
}
