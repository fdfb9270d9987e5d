// Package firehose is the firehose_http source: an Amazon Data Firehose
// "HTTP endpoint" destination (protocol v1.0). Firehose POSTs
// {"requestId", "timestamp", "records": [{"data": base64}]}; the source
// hands each request to the pipeline as one batch and answers 200 only
// when the batch is acked, that is when every record of the request is
// durably handled (written, in the error output, filtered or unmatched).
// Any other answer makes Firehose retry the request, with the same id.
//
// # Positions
//
// A record's position is Partition = request id, Offset = its index in the
// request (Sub names the objects a record decodes into). Both the
// OpenSearch document id and the object-store names derive from it, so a
// retry writes the same ids and the same stream ranges whichever task it
// reaches: OpenSearch is exactly once, and the object store's recovery
// (which lists a lake partition's ranges once per run) skips a retry's
// records that an earlier attempt made durable. The cost is one stream per
// request: each request cuts its own object in every lake partition it
// touches.
//
// # Retries
//
// A retry of a request still in flight in this process waits for the first
// attempt's outcome instead of handing the records over twice; a retry of
// a request that succeeded within dedup_window gets 200 without a write.
//
// # Lifecycle
//
// New binds nothing and starts nothing. The HTTP server starts on the
// first ReadBatch and stops accepting (503) once a ReadBatch's context is
// done, which is the pipeline's signal to stop reading; Close waits for the
// requests still in flight (their acks come from the pipeline's final
// flush) until its context ends.
package firehose

import (
	"compress/gzip"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/sources"
)

var _ sources.Source = (*Source)(nil)

// Protocol limits (Firehose developer guide, "HTTP endpoint delivery
// request and response specifications").
const (
	maxRecords    = 10000
	maxRecordSize = 1024000
)

// ErrShutdown is the outcome of requests the source gave up on because it
// is shutting down before their records were durably handled.
var ErrShutdown = errors.New("shutting down before the records were durably handled")

// Source is a Firehose HTTP endpoint.
type Source struct {
	name    string
	cfg     config.FirehoseHTTP
	maxPend int64
	keys    atomic.Pointer[[][]byte] // accepted access keys; Update swaps them
	opened  config.Source            // the settings it was opened with
	log     *zap.Logger
	onWait  func()

	batches chan *call // handler -> ReadBatch, unbuffered
	pending atomic.Int64
	gauge   prometheus.Gauge // pending, as sluice_source_pending_records
	waiting atomic.Bool      // onWait is running

	startOnce sync.Once
	startErr  error
	srv       *http.Server
	ln        net.Listener
	served    chan struct{} // closed when Serve returned
	addr      atomic.Value  // net.Addr once listening
	ready     chan struct{} // closed once listening (or failed)

	stopping chan struct{} // closed: answer 503 to new requests
	stopOnce sync.Once
	hard     chan struct{} // closed: give up on requests still waiting
	hardOnce sync.Once

	mu       sync.Mutex
	inflight map[string]*call
	done     map[string]time.Time // request id -> when it succeeded
	order    []string             // done ids, oldest first
}

// call is one request's records on their way through the pipeline.
type call struct {
	id    string
	batch record.Batch
	n     int64
	out   chan struct{} // closed when err is set
	err   error
}

// New returns the source for cfg. It starts nothing.
func New(cfg *config.Source, log *zap.Logger) (*Source, error) {
	if log == nil {
		log = zap.NewNop()
	}
	s := &Source{
		name: cfg.Name, cfg: cfg.Firehose, maxPend: int64(cfg.MaxPending), log: log.With(zap.String("source", cfg.Name)),
		batches: make(chan *call), stopping: make(chan struct{}), hard: make(chan struct{}), served: make(chan struct{}),
		ready: make(chan struct{}), inflight: map[string]*call{}, done: map[string]time.Time{},
		// There from the start, at 0: CloudWatch's PendingRecords (EMF) is
		// what the scaling policy and the no-progress alarm read for a
		// source without Kafka or Kinesis lag.
		gauge: metrics.SourcePending.WithLabelValues(cfg.Name),
	}
	s.setKeys(cfg.Firehose.AccessKeys)
	s.opened = *cfg
	if s.maxPend <= 0 {
		s.maxPend = 1 << 62
	}
	if (s.cfg.TLS.CertFile == "") != (s.cfg.TLS.KeyFile == "") {
		return nil, errors.New("firehose_http.tls: set both cert_file and key_file, or neither")
	}
	return s, nil
}

// OnWait sets a function called when a request is refused because the
// source is at max_pending: the pipeline flushes its oldest buffers.
func (s *Source) OnWait(f func()) { s.onWait = f }

// Addr returns the address the endpoint listens on, waiting until it does;
// nil if it could not listen.
func (s *Source) Addr() net.Addr {
	<-s.ready
	a, _ := s.addr.Load().(net.Addr)
	return a
}

// start listens and serves; called once, from the first ReadBatch.
func (s *Source) start() error {
	defer close(s.ready)
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		close(s.served)
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	s.addr.Store(ln.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc(s.cfg.Path, s.handle)
	if s.cfg.Path != "/" {
		// Every answer is Firehose's JSON, also for a stream configured
		// with the wrong URL: its error log then shows why.
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			s.answer(w, r.Header.Get("X-Amz-Firehose-Request-Id"), http.StatusNotFound, fmt.Sprintf("no Firehose endpoint at %s; it is at %s", r.URL.Path, s.cfg.Path))
		})
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second, ErrorLog: zap.NewStdLog(s.log)}
	go func() {
		defer close(s.served)
		var err error
		if s.cfg.TLS.CertFile != "" {
			err = s.srv.ServeTLS(ln, s.cfg.TLS.CertFile, s.cfg.TLS.KeyFile)
		} else {
			err = s.srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("firehose endpoint stopped", zap.Error(err))
		}
	}()
	s.log.Info("firehose endpoint listening", zap.Stringer("addr", ln.Addr()), zap.String("path", s.cfg.Path))
	return nil
}

// ReadBatch returns the next request's records; the ack answers it.
// When ctx is done the source stops accepting requests.
func (s *Source) ReadBatch(ctx context.Context) (record.Batch, record.AckFunc, error) {
	s.startOnce.Do(func() { s.startErr = s.start() })
	if s.startErr != nil {
		return record.Batch{}, nil, s.startErr
	}
	select {
	case c := <-s.batches:
		return c.batch, func(err error) { s.finish(c, err) }, nil
	case <-ctx.Done():
		s.stop()
		return record.Batch{}, nil, ctx.Err()
	}
}

func (s *Source) stop() { s.stopOnce.Do(func() { close(s.stopping) }) }

// Close stops accepting requests and waits, until ctx ends, for those in
// flight to be answered; then it gives up on the rest (500) and closes the
// server.
func (s *Source) Close(ctx context.Context) error {
	s.stop()
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		// Out of time: the requests still waiting answer 500 now (Firehose
		// retries them, on another task), then the connections close.
		s.hardOnce.Do(func() { close(s.hard) })
		grace, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.srv.Shutdown(grace)
		cancel()
		_ = s.srv.Close()
	}
	<-s.served
	return err
}

// finish records a call's outcome: success is remembered for dedup_window.
func (s *Source) finish(c *call, err error) {
	s.pending.Add(-c.n)
	s.gauge.Sub(float64(c.n))
	s.mu.Lock()
	delete(s.inflight, c.id)
	if err == nil {
		s.remember(c.id)
	}
	s.mu.Unlock()
	c.err = err
	close(c.out)
}

// remember adds id to the ids that succeeded, forgetting the oldest past
// dedup_window or dedup_max_ids. s.mu is held.
func (s *Source) remember(id string) {
	now := time.Now()
	if _, ok := s.done[id]; !ok {
		s.order = append(s.order, id)
	}
	s.done[id] = now
	drop := 0
	for drop < len(s.order) {
		old := s.order[drop]
		if len(s.order)-drop <= s.cfg.DedupMaxIDs && now.Sub(s.done[old]) <= s.cfg.DedupWindow.D() {
			break
		}
		delete(s.done, old)
		drop++
	}
	if drop > 0 {
		s.order = append(s.order[:0], s.order[drop:]...)
	}
}

// succeeded reports whether id succeeded within dedup_window. s.mu is held.
func (s *Source) succeeded(id string) bool {
	t, ok := s.done[id]
	return ok && time.Since(t) <= s.cfg.DedupWindow.D()
}

// response is the body of every answer.
type response struct {
	RequestID    string `json:"requestId"`
	Timestamp    int64  `json:"timestamp"`
	ErrorMessage string `json:"errorMessage,omitempty"`
}

func (s *Source) answer(w http.ResponseWriter, id string, status int, msg string) {
	b, _ := json.Marshal(response{RequestID: id, Timestamp: time.Now().UnixMilli(), ErrorMessage: msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
	if status != http.StatusOK {
		s.log.Info("firehose request refused", zap.String("request_id", id), zap.Int("status", status), zap.String("reason", msg))
	}
}

func (s *Source) accepting() bool {
	select {
	case <-s.stopping:
		return false
	default:
		return true
	}
}

func (s *Source) setKeys(keys []string) {
	bs := make([][]byte, 0, len(keys))
	for _, k := range keys {
		bs = append(bs, []byte(k))
	}
	s.keys.Store(&bs)
}

// CanUpdate reports whether cfg differs from the source's settings in its
// access keys only, which Update applies without closing the listener:
// rotating a key drops no connection and refuses no delivery.
func (s *Source) CanUpdate(cfg *config.Source) bool {
	a, b := s.opened, *cfg
	a.Firehose.AccessKeys, b.Firehose.AccessKeys = nil, nil
	return config.Same(a, b)
}

// Update takes cfg's access keys; requests from then on are checked
// against them.
func (s *Source) Update(cfg *config.Source) {
	s.setKeys(cfg.Firehose.AccessKeys)
	s.opened = *cfg
	s.log.Info("firehose access keys updated", zap.Int("keys", len(cfg.Firehose.AccessKeys)))
}

// authorized compares key with every configured key in constant time.
func (s *Source) authorized(key string) bool {
	ok := 0
	for _, k := range *s.keys.Load() {
		ok |= subtle.ConstantTimeCompare([]byte(key), k)
	}
	return ok == 1
}

// request is a Firehose delivery.
type request struct {
	RequestID string `json:"requestId"`
	Timestamp int64  `json:"timestamp"`
	Records   []struct {
		Data *[]byte `json:"data"` // base64 in JSON; nil when absent or null
	} `json:"records"`
}

func (s *Source) handle(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Amz-Firehose-Request-Id")
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		// Load balancer health check: healthy while accepting.
		if s.accepting() {
			s.answer(w, id, http.StatusOK, "")
		} else {
			s.answer(w, id, http.StatusServiceUnavailable, "shutting down")
		}
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, GET")
		s.answer(w, id, http.StatusMethodNotAllowed, "use POST")
		return
	}
	if !s.accepting() {
		s.answer(w, id, http.StatusServiceUnavailable, "shutting down")
		return
	}
	key := r.Header.Get("X-Amz-Firehose-Access-Key")
	if key == "" {
		s.answer(w, id, http.StatusUnauthorized, "missing X-Amz-Firehose-Access-Key")
		return
	}
	if !s.authorized(key) {
		s.answer(w, id, http.StatusForbidden, "access key not accepted")
		return
	}
	deadline := time.Now().Add(s.cfg.RequestTimeout.D())
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()

	req, status, err := s.readRequest(w, r)
	if req != nil && id == "" {
		id = req.RequestID
	}
	if err != nil {
		s.answer(w, id, status, err.Error())
		return
	}
	if id == "" {
		s.answer(w, id, http.StatusBadRequest, "no request id in X-Amz-Firehose-Request-Id or the body")
		return
	}
	if req.RequestID != "" && req.RequestID != id {
		s.answer(w, id, http.StatusBadRequest, "requestId in the body differs from X-Amz-Firehose-Request-Id")
		return
	}
	status, msg := s.deliver(ctx, id, r, req)
	s.answer(w, id, status, msg)
}

// readRequest reads and checks the body: 413 when too large, 400 when not
// a valid delivery.
func (s *Source) readRequest(w http.ResponseWriter, r *http.Request) (*request, int, error) {
	limit := int64(s.cfg.MaxBody)
	if r.ContentLength > limit {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body of %d bytes exceeds max_body %d", r.ContentLength, limit)
	}
	var body io.Reader = http.MaxBytesReader(w, r.Body, limit)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, bodyStatus(err), fmt.Errorf("gzip body: %w", err)
		}
		defer zr.Close()
		// The decoded body is bounded too: a small gzip bomb gets 413.
		body = &limited{r: zr, n: limit}
	default:
		return nil, http.StatusBadRequest, fmt.Errorf("content encoding %q is not supported (gzip or none)", enc)
	}
	var req request
	dec := json.NewDecoder(body)
	if err := dec.Decode(&req); err != nil {
		return nil, bodyStatus(err), fmt.Errorf("body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			// A truncated or corrupt gzip stream, or a body cut short,
			// after a complete object: say what it was.
			return &req, bodyStatus(err), fmt.Errorf("body: %w", err)
		}
		return &req, http.StatusBadRequest, errors.New("body: data after the JSON object")
	}
	if n := len(req.Records); n < 1 || n > maxRecords {
		return &req, http.StatusBadRequest, fmt.Errorf("records: %d, want 1 to %d", n, maxRecords)
	}
	for i, rec := range req.Records {
		if rec.Data == nil {
			// Firehose always sends data (an empty record is ""): a
			// record without it is a malformed delivery, not an empty
			// record.
			return &req, http.StatusBadRequest, fmt.Errorf("record %d: no data", i)
		}
		if len(*rec.Data) > maxRecordSize {
			return &req, http.StatusRequestEntityTooLarge, fmt.Errorf("record %d: %d bytes exceeds %d", i, len(*rec.Data), maxRecordSize)
		}
	}
	return &req, 0, nil
}

var errDecodedTooLarge = errors.New("decoded body exceeds max_body")

func bodyStatus(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || errors.Is(err, errDecodedTooLarge) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// limited is io.LimitReader that says so when the limit is passed.
type limited struct {
	r io.Reader
	n int64
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n <= 0 {
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			return 0, errDecodedTooLarge
		}
		return l.r.Read(p)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// deliver hands the request's records to the pipeline, or joins the
// attempt already in flight, and waits for the outcome.
func (s *Source) deliver(ctx context.Context, id string, r *http.Request, req *request) (int, string) {
	for {
		s.mu.Lock()
		if s.succeeded(id) {
			s.mu.Unlock()
			return http.StatusOK, ""
		}
		if c, ok := s.inflight[id]; ok {
			s.mu.Unlock()
			// A retry while the first attempt is in flight: wait for its
			// outcome rather than write twice.
			select {
			case <-c.out:
				if c.err == nil {
					return http.StatusOK, ""
				}
				continue // it failed: this attempt tries again
			case <-ctx.Done():
				return s.timeout(ctx)
			case <-s.hard:
				return http.StatusInternalServerError, ErrShutdown.Error()
			}
		}
		n := int64(len(req.Records))
		if p := s.pending.Load(); p > 0 && p+n > s.maxPend {
			s.mu.Unlock()
			s.relieve()
			return http.StatusServiceUnavailable, fmt.Sprintf("%d records pending, at max_pending %d; retry later", p, s.maxPend)
		}
		c := &call{id: id, n: n, out: make(chan struct{}), batch: s.batch(id, r, req)}
		s.inflight[id] = c
		s.pending.Add(n)
		s.gauge.Add(float64(n))
		s.mu.Unlock()
		return s.await(ctx, c)
	}
}

func (s *Source) relieve() {
	if s.onWait == nil || !s.waiting.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.waiting.Store(false)
		s.onWait()
	}()
}

// await hands c to ReadBatch and waits for its ack.
func (s *Source) await(ctx context.Context, c *call) (int, string) {
	select {
	case s.batches <- c:
	case <-s.stopping:
		s.finish(c, ErrShutdown)
		return http.StatusServiceUnavailable, "shutting down"
	case <-ctx.Done():
		s.finish(c, ctx.Err())
		return s.timeout(ctx)
	}
	// From here the records are the pipeline's: the call stays in flight
	// until its ack, even if this answer gives up, so that a retry waits
	// for it instead of writing the records twice.
	select {
	case <-c.out:
		if c.err != nil {
			return http.StatusInternalServerError, c.err.Error()
		}
		return http.StatusOK, ""
	case <-ctx.Done():
		return s.timeout(ctx)
	case <-s.hard:
		return http.StatusInternalServerError, ErrShutdown.Error()
	}
}

func (s *Source) timeout(ctx context.Context) (int, string) {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return http.StatusInternalServerError, fmt.Sprintf("records not durably handled within request_timeout %s", s.cfg.RequestTimeout.D())
	}
	return http.StatusInternalServerError, "request cancelled"
}

// batch makes the request's records into messages at positions
// requestId/index, with Firehose's metadata.
func (s *Source) batch(id string, r *http.Request, req *request) record.Batch {
	now := time.Now().UTC()
	ts := now
	if req.Timestamp > 0 {
		ts = time.UnixMilli(req.Timestamp).UTC()
	}
	var headers []record.Header
	if ca := r.Header.Get("X-Amz-Firehose-Common-Attributes"); ca != "" {
		var attrs struct {
			CommonAttributes map[string]string `json:"commonAttributes"`
		}
		if err := json.Unmarshal([]byte(ca), &attrs); err == nil {
			for _, k := range slices.Sorted(maps.Keys(attrs.CommonAttributes)) {
				headers = append(headers, record.Header{Key: k, Value: []byte(attrs.CommonAttributes[k])})
			}
		}
	}
	arn := r.Header.Get("X-Amz-Firehose-Source-Arn")
	msgs := make([]record.Message, len(req.Records))
	for i, rec := range req.Records {
		msgs[i] = record.Message{
			Data:    *rec.Data,
			Pos:     record.Position{Partition: id, Offset: int64(i)},
			Arrival: now,
			Meta:    &record.Meta{Topic: arn, Offset: int64(i), Timestamp: ts, Key: []byte(id), Headers: headers},
		}
	}
	return record.Batch{Source: s.name, Messages: msgs}
}
