// Package opensearch is the OpenSearch sink (type: opensearch): bulk
// indexing through the official client (opensearch-go v4) with per-item
// handling of the bulk response.
//
// Records are encoded by each pipeline worker into bulk items (action line
// and document), appended in pipeline order to the current bulk request,
// and sent when it reaches bulk.max_docs or bulk.max_bytes, or bulk.interval
// after its first item; bulk.concurrency requests are in flight at most,
// and Append waits beyond that (backpressure).
//
// A request's response is read item by item:
//   - 2xx: indexed. 409 (version conflict on our own _id): the document is
//     there already, which for an idempotent write is success.
//   - 429 and 5xx: only those items are sent again, with exponential backoff
//     and jitter, until retry.max_elapsed since their first attempt; then
//     they go to the error sink as sink-rejected with the last reason.
//   - other 4xx (mapping errors, bad documents): to the error sink at once,
//     with OpenSearch's error type and reason.
//
// A connection error or a whole-request 429/5xx (or 401/403, as
// credentials rotate) retries the request; a 413 splits it in halves, and
// a single document too large goes to the error sink. Items that succeeded
// are never sent again. A request's acks fire only when every item is
// indexed or durably in the error sink.
//
// Document ids come from the id jq expression or, by default, from the
// record's source position (source, partition, offset and sub-position), so
// re-processing and replays overwrite documents instead of duplicating them.
package opensearch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opensearch-project/opensearch-go/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/jq"
	"github.com/sluice-data/sluice/internal/jsonx"
	"github.com/sluice-data/sluice/internal/lifecycle"
	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/retry"
	"github.com/sluice-data/sluice/internal/sinks"
	"github.com/sluice-data/sluice/internal/template"
)

var (
	_ sinks.Sink           = (*Sink)(nil)
	_ sinks.HealthReporter = (*Sink)(nil)
)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("opensearch: sink closed")

// Sink is an OpenSearch sink.
type Sink struct {
	name     string
	cfg      *config.Sink
	errName  string
	client   *opensearch.Client
	index    *template.Template
	id       *jq.Expr // nil: ids from source positions
	pipeline string
	log      *zap.Logger

	maxDocs    int
	maxBytes   int
	interval   time.Duration
	maxElapsed time.Duration // per item, since its first attempt
	// backoff paces a request's retries: from 100 ms, doubling up to 20 s.
	// Its own MaxElapsed is unset: maxElapsed bounds each item instead.
	backoff retry.Policy

	errSink  sinks.Sink
	errMu    sync.Mutex // orders failures into the error sink's stream
	errSeq   int64
	errRunID string

	mu     sync.Mutex
	cur    *request
	closed bool // no more appends; the senders stop

	reqs     chan *request
	inflight sync.WaitGroup
	bg       sinks.Background // the senders, the ticker and the warner
	stop     chan struct{}
	// abortCtx ends when Close is called with a done context: requests
	// stop retrying and their acks get errAborted.
	abortCtx context.Context
	abort    context.CancelFunc

	failMu sync.Mutex
	err    error // first failure to hand rejected documents to the error sink

	stats struct{ indexed, retried, rejected atomic.Int64 }
	// captured, when not nil, keeps the documents Append is given instead
	// of sending them (NewCapture).
	captured *capture
	// health tracks requests that get nowhere, for the repeated warning,
	// sluice_sink_failing and /readyz.
	health *sinks.Health

	mIndexed  prometheus.Counter
	mRetried  prometheus.Counter
	mFailed   prometheus.Counter
	mLatency  prometheus.Observer
	mSize     prometheus.Observer
	mInflight prometheus.Gauge
}

// request is one bulk request being filled or sent.
type request struct {
	items   []*item
	size    int
	acks    []record.AckFunc
	lastAck *record.AckGroup
	opened  time.Time
}

// item is one document: its bulk lines and what an error record needs.
type item struct {
	lines    []byte // action line and document, each ending in \n
	source   string
	pos      record.Position
	raw      []byte
	arrival  time.Time
	event    time.Time
	first    time.Time // first attempt; zero until sent
	attempts int
	last     string // the last retryable answer, for the error record
}

// New builds a sink from its configuration and connects the client. The
// error sink is attached with SetErrorSink before the first Append.
func New(cfg *config.Sink, errorSink string, log *zap.Logger) (*Sink, error) {
	client, err := newClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("sink %s: %w", cfg.Name, err)
	}
	return newSink(cfg, errorSink, client, log)
}

func newSink(cfg *config.Sink, errorSink string, client *opensearch.Client, log *zap.Logger) (*Sink, error) {
	s := &Sink{
		name: cfg.Name, cfg: cfg, errName: errorSink, client: client, log: log,
		pipeline: cfg.IngestPipeline.Name,
		maxDocs:  cfg.Bulk.MaxDocs, maxBytes: int(cfg.Bulk.MaxBytes), interval: cfg.Bulk.Interval.D(),
		maxElapsed: cfg.Retry.MaxElapsed.D(), backoff: retry.Policy{Base: 100 * time.Millisecond, Max: 20 * time.Second},
		errRunID: time.Now().UTC().Format("20060102T150405.000000000Z"),
		reqs:     make(chan *request), stop: make(chan struct{}),
		mIndexed:  metrics.SearchIndexed.WithLabelValues(cfg.Name),
		mRetried:  metrics.SearchRetried.WithLabelValues(cfg.Name),
		mFailed:   metrics.SearchFailed.WithLabelValues(cfg.Name),
		mLatency:  metrics.SearchBulkSeconds.WithLabelValues(cfg.Name),
		mSize:     metrics.SearchBulkBytes.WithLabelValues(cfg.Name),
		mInflight: metrics.SearchInflight.WithLabelValues(cfg.Name),
	}
	s.abortCtx, s.abort = context.WithCancel(context.Background())
	s.health = sinks.NewHealth(cfg.Name, log)
	var err error
	if s.index, err = template.Parse(cfg.Index); err != nil {
		return nil, fmt.Errorf("sink %s: index: %w", cfg.Name, err)
	}
	if cfg.ID != "" {
		if s.id, err = jq.Compile(cfg.ID); err != nil {
			return nil, fmt.Errorf("sink %s: id: %w", cfg.Name, err)
		}
	}
	workers := cfg.Bulk.Concurrency
	if client == nil {
		// NewCapture: nothing to bootstrap, nobody to send to.
		s.captured, workers = &capture{}, 0
	} else if err := s.bootstrap(context.Background()); err != nil {
		return nil, fmt.Errorf("sink %s: %w", cfg.Name, err)
	}
	s.bg = sinks.Background{Name: s.name, Workers: workers, Worker: s.sender, Tick: s.ticker,
		Health: s.health, Stopping: s.stop, GiveUp: func() { s.abort(); s.shutdown() }}
	return s, nil
}

var _ lifecycle.Runner = (*Sink)(nil)

// Run does the sink's background work until Close (or ctx ends, which
// gives up as Close on a done context does): the senders that deliver bulk
// requests (bulk.concurrency of them), the ticker that sends a request
// older than bulk.interval, and the warning about a failing endpoint.
// Appends and flushes need it running. A failure is not returned here but
// from the next Append or Flush.
func (s *Sink) Run(ctx context.Context) error { return s.bg.Run(ctx) }

// shutdown stops appends, the ticker and, once the requests already handed
// over are done, the senders.
func (s *Sink) shutdown() {
	s.bg.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.stop)
		close(s.reqs)
	}
}

var (
	_ sinks.Sink          = (*Sink)(nil)
	_ sinks.ErrorSinkUser = (*Sink)(nil)
)

// SetErrorSink attaches the sink rejected documents go to.
func (s *Sink) SetErrorSink(es sinks.Sink) { s.errSink = es }

// Name returns the configured name.
func (s *Sink) Name() string { return s.name }

// ErrorSink names the sink that takes records this sink fails.
func (s *Sink) ErrorSink() string { return s.errName }

// Append adds encoded documents to the current bulk request, sending it
// when it is full. It blocks while bulk.concurrency requests are in flight.
func (s *Sink) Append(ctx context.Context, pp sinks.Pending, ack record.AckFunc) (err error) {
	p := pp.(*pending)
	group := record.NewAckGroup(ack)
	defer func() {
		group.SealWith(err)
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.failed(); err != nil {
		return err
	}
	if s.captured != nil {
		s.captured.add(p.items)
		s.stats.indexed.Add(int64(len(p.items)))
		return nil
	}
	for _, it := range p.items {
		if s.cur == nil {
			s.cur = &request{opened: time.Now()}
		}
		r := s.cur
		if r.lastAck != group {
			r.acks = append(r.acks, group.Add())
			r.lastAck = group
		}
		r.items = append(r.items, it)
		r.size += len(it.lines)
		if len(r.items) >= s.maxDocs || r.size >= s.maxBytes {
			if err := s.sendLocked(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// sendLocked hands the current request to a sender, waiting for one.
func (s *Sink) sendLocked(ctx context.Context) error {
	r := s.cur
	if r == nil {
		return nil
	}
	s.cur = nil
	if s.closed {
		// Run gave up (its context ended): no sender takes the request.
		for _, a := range r.acks {
			a(ErrClosed)
		}
		return ErrClosed
	}
	s.inflight.Add(1)
	select {
	case s.reqs <- r:
		return nil
	case <-ctx.Done():
		s.inflight.Done()
		for _, a := range r.acks {
			a(ctx.Err())
		}
		return ctx.Err()
	}
}

func (s *Sink) ticker(ctx context.Context) {
	t := time.NewTicker(max(min(s.interval/10, time.Second), 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			if s.cur != nil && now.Sub(s.cur.opened) >= s.interval {
				_ = s.sendLocked(context.Background())
			}
			s.mu.Unlock()
		}
	}
}

// Relieve sends the current request at once: a source waits at its cap.
func (s *Sink) Relieve(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.sendLocked(ctx)
}

// Flush sends what is buffered and waits until every request is done:
// each document indexed or handed to the error sink. The error sink's own
// flush makes those durable, so the pipeline flushes it after this one.
func (s *Sink) Flush(ctx context.Context) error {
	s.mu.Lock()
	err := s.sendLocked(ctx)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := sinks.Wait(ctx, &s.inflight); err != nil {
		return err
	}
	return s.failed()
}

// Close flushes and stops the senders, which ends Run. With ctx done,
// requests still retrying give up first, unacknowledged.
func (s *Sink) Close(ctx context.Context) error {
	err := s.Flush(ctx)
	if ctx.Err() != nil {
		s.abort()
	}
	s.shutdown()
	s.bg.Wait()
	s.abort() // releases the context
	return err
}

// Health reports whether the sink's last bulk request got nowhere.
func (s *Sink) Health() (sinks.SinkHealth, bool) { return s.health.Health() }

// errAborted fails the acks of documents not indexed when Close gave up.
var errAborted = errors.New("opensearch: sink closed while documents were being retried")

// Stats reports documents indexed. Rejected documents are counted by the
// error sink that wrote them.
func (s *Sink) Stats() sinks.Stats {
	return sinks.Stats{Records: s.stats.indexed.Load(), Refused: s.stats.rejected.Load()}
}

func (s *Sink) failed() error {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	return s.err
}

func (s *Sink) fail(err error) {
	s.failMu.Lock()
	if s.err == nil {
		s.err = fmt.Errorf("sink %s: %w", s.name, err)
	}
	s.failMu.Unlock()
}

func (s *Sink) sender() {
	for r := range s.reqs {
		s.mInflight.Inc()
		failures, err := s.deliver(r.items)
		s.mInflight.Dec()
		ackAll := func(err error) {
			for _, a := range r.acks {
				a(err)
			}
		}
		if err != nil {
			// Given up before every document was indexed or failed for
			// good: none of the request is acked, so it is read again.
			ackAll(err)
		} else if len(failures) == 0 {
			ackAll(nil)
		} else {
			// The acks fire once the error sink has the failures durably;
			// the request itself is done when they are handed over.
			s.reject(failures, ackAll)
		}
		s.inflight.Done()
	}
}

// deliver sends items until each is indexed or has failed for good, and
// returns the failures; or errAborted if Close gave up first.
func (s *Sink) deliver(items []*item) ([]*sinks.Failure, error) {
	var failures []*sinks.Failure
	pending := items
	b := s.backoff.Start()
	for len(pending) > 0 {
		if s.abortCtx.Err() != nil {
			return nil, errAborted
		}
		now := time.Now()
		for _, it := range pending {
			if it.first.IsZero() {
				it.first = now
			}
			it.attempts++
		}
		out := s.send(pending)
		failures = append(failures, out.failed...)
		for _, sub := range out.split {
			f, err := s.deliver(sub)
			if err != nil {
				return nil, err
			}
			failures = append(failures, f...)
		}
		if len(out.retry) == 0 {
			break
		}
		// Retry only what asked for it, until max_elapsed.
		pending = pending[:0:0]
		for _, it := range out.retry {
			if time.Since(it.first) >= s.maxElapsed {
				failures = append(failures, s.failure(it, "OpenSearch.RetriesExhausted",
					fmt.Sprintf("not indexed after %d attempts over %s; last answer: %s", it.attempts, time.Since(it.first).Round(time.Millisecond), it.last)))
				continue
			}
			pending = append(pending, it)
		}
		if len(pending) == 0 {
			break
		}
		s.stats.retried.Add(int64(len(pending)))
		s.mRetried.Add(float64(len(pending)))
		if err := b.Wait(s.abortCtx); err != nil {
			return nil, errAborted
		}
	}
	return failures, nil
}

// reject hands failures to the error sink, in a stream of this sink's own
// (FiledSource), and calls done once they are durable there.
func (s *Sink) reject(failures []*sinks.Failure, done func(error)) {
	s.stats.rejected.Add(int64(len(failures)))
	s.mFailed.Add(float64(len(failures)))
	for _, f := range failures {
		metrics.SinkFailed.WithLabelValues(s.name, f.Type).Inc()
	}
	if s.errSink == nil {
		err := fmt.Errorf("%d documents rejected and no error sink attached", len(failures))
		s.fail(err)
		done(err)
		return
	}
	s.errMu.Lock()
	defer s.errMu.Unlock()
	w := s.errSink.NewWriter()
	for _, f := range failures {
		s.errSeq++
		f.FiledSource = s.name
		f.FiledPos = record.Position{Partition: "rejected-" + s.errRunID, Offset: s.errSeq}
		w.WriteFailure(f)
	}
	if err := s.errSink.Append(context.Background(), w.Take(), done); err != nil {
		s.fail(fmt.Errorf("error sink %s: %w", s.errSink.Name(), err))
	}
}

func (s *Sink) failure(it *item, code, msg string) *sinks.Failure {
	return &sinks.Failure{Type: sinks.SinkRejected, Code: code, Message: msg, Source: it.source, Sink: s.name,
		Pos: it.pos, Raw: it.raw, Arrival: it.arrival, Event: it.event}
}

// docID renders the default document id: source, partition, offset (or
// token) and sub-position, stable across runs. Ids longer than OpenSearch's
// 512 bytes are replaced by their SHA-256.
func docID(dst []byte, source string, p record.Position) []byte {
	start := len(dst)
	dst = append(dst, source...)
	dst = append(dst, ':')
	dst = append(dst, p.Partition...)
	dst = append(dst, ':')
	if p.Token != "" {
		dst = append(dst, p.Token...)
	} else {
		dst = strconv.AppendInt(dst, p.Offset, 10)
	}
	dst = append(dst, p.Sub...)
	if len(dst)-start > 512 {
		sum := sha256.Sum256(dst[start:])
		dst = hex.AppendEncode(dst[:start], sum[:])
	}
	return dst
}

// appendAction renders a bulk action line.
func appendAction(dst, index, id []byte) []byte {
	dst = append(dst, `{"index":{"_index":`...)
	dst = jsonx.AppendString(dst, index)
	dst = append(dst, `,"_id":`...)
	dst = jsonx.AppendString(dst, id)
	return append(dst, "}}\n"...)
}
