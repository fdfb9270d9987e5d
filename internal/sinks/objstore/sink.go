// Package objstore is the object-store sink (type: s3): time-partitioned
// Parquet, NDJSON, CSV or raw-archive objects with Hive-style keys computed
// from each record by Firehose-compatible partition_keys and prefix
// templates.
//
// Records are buffered per partition (the rendered prefix) and cut into an
// object when the partition reaches buffer.max_records or buffer.max_bytes,
// when buffer.interval has passed since its first record, when opening a
// partition beyond max_open_partitions (the oldest is flushed), or when all
// partitions together exceed max_buffered_bytes (the largest is flushed).
// Appends arrive in source order, so the same input cuts into the same
// objects every time; each object is named after the source position of its
// first record, so re-processing rewrites the same names. An object's
// records are acked only after the store has made it durable.
package objstore

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/jq"
	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/sinks"
	"github.com/sluice-data/sluice/internal/template"
)

var _ sinks.Sink = (*Sink)(nil)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("objstore: sink closed")

// Sink is an object-store sink.
type Sink struct {
	name      string
	format    string
	compress  string
	store     Store
	log       *zap.Logger
	keys      []*jq.Expr
	keyNames  []string
	prefix    *template.Template
	errPrefix *template.Template
	layout    *parquetLayout
	catalog   *catalog // nil unless glue is configured
	cfg       config.Buffer
	maxOpen   int
	onLimit   string
	maxBytes  int64
	maxRecs   int
	retryBase time.Duration // first retry backoff; doubles per attempt

	mu       sync.Mutex
	parts    map[string]*partition
	order    []*partition // open order, oldest first; flushed ones are skipped
	buffered int64        // bytes in open partitions
	bufRecs  int          // records in open partitions
	closed   bool

	errMu sync.Mutex // not mu: flush workers must never wait for an appender
	err   error      // first flush failure

	jobs     chan *partition
	inflight sync.WaitGroup
	workers  sync.WaitGroup
	stop     chan struct{}

	stats struct {
		records, errors, objects, bytes atomic.Int64
	}

	droppedExtra prometheus.Counter
	written      prometheus.Counter
	errWritten   prometheus.Counter
	objects      prometheus.Counter
	bytesOut     prometheus.Counter
	flushTime    prometheus.Observer
	bufGauge     prometheus.Gauge
	openGauge    prometheus.Gauge
}

// partition is one open buffer.
type partition struct {
	key     string // kind byte + rendered prefix
	stem    string // from the first record's position
	data    []byte // rows, each prefixed by its uvarint length
	rows    int
	size    int64 // bytes of rows, without length prefixes
	acks    []record.AckFunc
	lastAck *record.AckGroup
	opened  time.Time
	header  []byte
	flushed bool
}

// New builds a sink from its configuration. The store is where objects go.
func New(cfg *config.Sink, store Store, log *zap.Logger) (*Sink, error) {
	s := &Sink{
		name: cfg.Name, format: cfg.Format, compress: cfg.Compression, store: store, log: log,
		cfg: cfg.Buffer, maxOpen: cfg.MaxOpenPartitions, onLimit: cfg.OnPartitionLimit, maxBytes: int64(cfg.MaxBufferedBytes), maxRecs: cfg.MaxBufferedRecs, retryBase: 100 * time.Millisecond,
		parts: map[string]*partition{}, stop: make(chan struct{}),
		droppedExtra: metrics.SinkDroppedKeys.WithLabelValues(cfg.Name),
		written:      metrics.SinkWritten.WithLabelValues(cfg.Name),
		errWritten:   metrics.SinkErrorRecs.WithLabelValues(cfg.Name),
		objects:      metrics.SinkObjects.WithLabelValues(cfg.Name),
		bytesOut:     metrics.SinkBytes.WithLabelValues(cfg.Name),
		flushTime:    metrics.FlushSeconds.WithLabelValues(cfg.Name),
		bufGauge:     metrics.SinkBuffered.WithLabelValues(cfg.Name),
		openGauge:    metrics.SinkOpen.WithLabelValues(cfg.Name),
	}
	if s.compress == "" {
		s.compress = config.DefaultCompression(s.format)
	}
	prefix := cfg.Prefix
	for _, kv := range cfg.PartitionKeys {
		e, err := jq.Compile(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("sink %s: partition key %s: %w", cfg.Name, kv.Key, err)
		}
		s.keys = append(s.keys, e)
		s.keyNames = append(s.keyNames, kv.Key)
		if cfg.Prefix == "" {
			prefix += kv.Key + "=!{partitionKeyFromQuery:" + kv.Key + "}/"
		}
	}
	if prefix == "" && s.format == "raw" {
		prefix = ArchiveLayout
	}
	var err error
	if s.prefix, err = template.Parse(prefix); err != nil {
		return nil, fmt.Errorf("sink %s: prefix: %w", cfg.Name, err)
	}
	if err := s.prefix.Bind(s.keyNames); err != nil {
		return nil, fmt.Errorf("sink %s: prefix: %w", cfg.Name, err)
	}
	if s.errPrefix, err = template.Parse(cfg.ErrorPrefix); err != nil {
		return nil, fmt.Errorf("sink %s: error_prefix: %w", cfg.Name, err)
	}
	if s.format == "parquet" {
		if s.layout, err = newParquetLayout(cfg); err != nil {
			return nil, fmt.Errorf("sink %s: %w", cfg.Name, err)
		}
	}
	if cfg.Glue.Database != "" {
		if s.catalog, err = newCatalog(cfg); err != nil {
			return nil, fmt.Errorf("sink %s: %w", cfg.Name, err)
		}
	}
	workers := cfg.Concurrency
	s.jobs = make(chan *partition)
	for range workers {
		s.workers.Add(1)
		go s.flushWorker()
	}
	go s.ticker()
	return s, nil
}

// ArchiveLayout is the default prefix of a raw-archive sink: Hive-style
// arrival date and hour, which the archive source lists by time range.
const ArchiveLayout = "dt=!{arrival:yyyy-MM-dd}/hour=!{arrival:HH}/"

// Name returns the configured name.
func (s *Sink) Name() string { return s.name }

// ErrorSink returns the sink's own name: failures go under its error_prefix.
func (s *Sink) ErrorSink() string { return s.name }

// Append distributes encoded records to their partitions, cutting objects
// as limits are reached. If it returns an error, ack gets that error: the
// records are not written and the source must not checkpoint past them.
func (s *Sink) Append(ctx context.Context, pp sinks.Pending, ack record.AckFunc) (err error) {
	p := pp.(*pending)
	group := record.NewAckGroup(ack)
	defer func() {
		if err != nil {
			group.Add()(err)
		}
		group.Seal()
		p.data, p.ents = p.data[:0], p.ents[:0]
		pendingPool.Put(p)
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.failed(); err != nil {
		return err
	}
	start := 0
	for i := range p.ents {
		e := &p.ents[i]
		key := p.data[start:e.keyEnd]
		row := p.data[e.keyEnd:e.rowEnd]
		start = int(e.rowEnd)
		part := s.parts[string(key)]
		if part == nil {
			if len(s.parts) >= s.maxOpen {
				if s.onLimit == "error" && key[0] == kindData {
					// The record goes to this sink's error output instead.
					s.appendLimitFailure(e, group)
					continue
				}
				if err := s.flushOldest(ctx); err != nil {
					return err
				}
			}
			part = s.open(string(key), e)
		}
		s.add(part, group, row)
		if part.rows >= s.cfg.MaxRecords || int64(len(part.data)) >= int64(s.cfg.MaxBytes) {
			if err := s.flushLocked(ctx, part); err != nil {
				return err
			}
		}
	}
	for s.buffered > s.maxBytes {
		if err := s.flushLargest(ctx); err != nil {
			return err
		}
	}
	for s.bufRecs > s.maxRecs {
		if err := s.flushOldest(ctx); err != nil {
			return err
		}
	}
	s.bufGauge.Set(float64(s.buffered))
	s.openGauge.Set(float64(len(s.parts)))
	return nil
}

// open starts a partition buffer named after entry e's position.
func (s *Sink) open(key string, e *entry) *partition {
	part := &partition{key: key, stem: e.pos.ObjectStem(e.source), opened: time.Now(), header: e.header}
	s.parts[key] = part
	s.order = append(s.order, part)
	return part
}

// add appends one encoded row to a partition; the partition takes one
// child of the batch's ack group, however many of the batch's rows it gets.
func (s *Sink) add(part *partition, group *record.AckGroup, row []byte) {
	if part.lastAck != group {
		part.acks = append(part.acks, group.Add())
		part.lastAck = group
	}
	part.data = binary.AppendUvarint(part.data, uint64(len(row)))
	part.data = append(part.data, row...)
	part.rows++
	part.size += int64(len(row))
	s.buffered += int64(len(row))
	s.bufRecs++
}

// appendLimitFailure re-encodes a record refused by max_open_partitions as
// an error record. Error partitions do not count against the limit, so the
// failure always has somewhere to go.
func (s *Sink) appendLimitFailure(e *entry, group *record.AckGroup) {
	f := &sinks.Failure{Type: sinks.PartitionLimit, Code: "DynamicPartitioning.PartitionLimitExceeded",
		Message: fmt.Sprintf("more than %d open partitions", s.maxOpen), Source: e.source, Sink: s.name, Pos: e.pos,
		Raw: e.raw, Arrival: e.arrival, Event: e.event}
	w := s.newWriter()
	w.WriteFailure(f)
	ep := w.Take().(*pending)
	ee := &ep.ents[0]
	key := string(ep.data[:ee.keyEnd])
	part := s.parts[key]
	if part == nil {
		part = s.open(key, ee)
	}
	s.add(part, group, ep.data[ee.keyEnd:ee.rowEnd])
	metrics.SinkFailed.WithLabelValues(s.name, sinks.PartitionLimit).Inc()
	metrics.ErrorRecords.WithLabelValues(sinks.PartitionLimit).Inc()
}

func (s *Sink) flushOldest(ctx context.Context) error {
	for len(s.order) > 0 {
		p := s.order[0]
		s.order[0] = nil
		s.order = s.order[1:]
		if !p.flushed {
			return s.flushLocked(ctx, p)
		}
	}
	return nil
}

func (s *Sink) flushLargest(ctx context.Context) error {
	var big *partition
	for _, p := range s.parts {
		if big == nil || len(p.data) > len(big.data) || len(p.data) == len(big.data) && p.key < big.key {
			big = p
		}
	}
	if big == nil {
		return nil
	}
	return s.flushLocked(ctx, big)
}

// flushLocked hands a partition to the flush workers. It blocks, holding
// the lock, while all workers are busy: appends wait, which is the
// backpressure that reaches the source.
func (s *Sink) flushLocked(ctx context.Context, p *partition) error {
	delete(s.parts, p.key)
	p.flushed = true
	s.buffered -= p.size
	s.bufRecs -= p.rows
	s.inflight.Add(1)
	select {
	case s.jobs <- p:
		return nil
	case <-ctx.Done():
		s.inflight.Done()
		for _, a := range p.acks {
			a(ctx.Err())
		}
		return ctx.Err()
	}
}

// ticker flushes partitions older than buffer.interval, so a quiet
// partition never holds acks (and the source's checkpoint) for long.
func (s *Sink) ticker() {
	tick := s.cfg.Interval.D() / 10
	tick = max(min(tick, time.Second), 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.mu.Lock()
			for len(s.order) > 0 && (s.order[0].flushed || now.Sub(s.order[0].opened) >= s.cfg.Interval.D()) {
				p := s.order[0]
				s.order[0] = nil
				s.order = s.order[1:]
				if !p.flushed {
					_ = s.flushLocked(context.Background(), p)
				}
			}
			s.mu.Unlock()
		}
	}
}

// Relieve starts flushing every open partition, oldest first, without
// waiting for the writes. The pipeline calls it when a source has waited at
// its pending cap: a batch's records may sit in any open partition, so
// only flushing them all guarantees the oldest batch completes. It costs
// small objects, and only happens when max_pending is set below what the
// sinks buffer.
func (s *Sink) Relieve(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.order) > 0 {
		if err := s.flushOldest(ctx); err != nil {
			return
		}
	}
}

// Flush writes every open partition and waits until all are durable.
func (s *Sink) Flush(ctx context.Context) error {
	s.mu.Lock()
	for len(s.order) > 0 {
		if err := s.flushOldest(ctx); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	s.bufGauge.Set(0)
	s.openGauge.Set(0)
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.failed()
}

func (s *Sink) failed() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// Close flushes, then stops the workers.
func (s *Sink) Close(ctx context.Context) error {
	err := s.Flush(ctx)
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
		close(s.jobs)
	}
	s.mu.Unlock()
	s.workers.Wait()
	return err
}

func (s *Sink) flushWorker() {
	defer s.workers.Done()
	var pf *parquetFile
	if s.layout != nil {
		pf = s.layout.newFileWriter()
	}
	var buf bytes.Buffer
	for p := range s.jobs {
		start := time.Now()
		key, body, err := s.encode(p, pf, &buf)
		if err == nil {
			err = s.put(key, body)
		}
		if err != nil {
			s.log.Error("object write failed", zap.String("sink", s.name), zap.String("key", key), zap.Error(err))
			s.errMu.Lock()
			if s.err == nil {
				s.err = fmt.Errorf("sink %s: %w", s.name, err)
			}
			s.errMu.Unlock()
		} else {
			s.flushTime.Observe(time.Since(start).Seconds())
			s.objects.Inc()
			s.bytesOut.Add(float64(len(body)))
			s.stats.objects.Add(1)
			s.stats.bytes.Add(int64(len(body)))
			if p.key[0] == kindData {
				s.written.Add(float64(p.rows))
				s.stats.records.Add(int64(p.rows))
				if s.catalog != nil {
					if gerr := s.catalog.register(context.Background(), p.key[1:]); gerr != nil {
						// The object is durable; only its catalog entry is
						// missing, and the next object of the partition
						// tries again.
						metrics.GlueErrors.WithLabelValues(s.name).Inc()
						s.log.Error("glue partition registration failed", zap.String("sink", s.name), zap.Error(gerr))
					}
				}
			} else {
				s.errWritten.Add(float64(p.rows))
				s.stats.errors.Add(int64(p.rows))
			}
			s.log.Debug("object written", zap.String("sink", s.name), zap.String("key", key), zap.Int("records", p.rows), zap.Int("bytes", len(body)))
		}
		for _, a := range p.acks {
			a(err)
		}
		p.data, p.acks = nil, nil
		s.inflight.Done()
	}
}

// put writes with retries: a transient store error should not fail a run.
func (s *Sink) put(key string, body []byte) error {
	var err error
	backoff := s.retryBase
	for attempt := 0; attempt < 6; attempt++ {
		if err = s.store.Put(context.Background(), key, body); err == nil {
			return nil
		}
		time.Sleep(backoff + time.Duration(rand.Int64N(int64(backoff))))
		backoff *= 2
	}
	return err
}

// encode builds an object from a partition and names it.
func (s *Sink) encode(p *partition, pf *parquetFile, buf *bytes.Buffer) (string, []byte, error) {
	prefix := p.key[1:]
	isErr := p.key[0] == kindError
	format := s.format
	if isErr {
		format = "ndjson"
	}
	ext := map[string]string{"parquet": ".parquet", "ndjson": ".ndjson", "csv": ".csv", "raw": ".ndjson"}[format]
	gz := s.compress == "gzip" && format != "parquet"
	if gz {
		ext += ".gz"
	}
	key := prefix + p.stem + ext
	if format == "parquet" {
		body, err := pf.encode(p.data, p.rows)
		return key, body, err
	}
	buf.Reset()
	var w interface {
		Write([]byte) (int, error)
	} = buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(buf)
		w = zw
	}
	if format == "csv" && p.header != nil {
		w.Write(p.header)
		w.Write([]byte{'\n'})
	}
	data := p.data
	for len(data) > 0 {
		l, k := binary.Uvarint(data)
		w.Write(data[k : k+int(l)])
		data = data[k+int(l):]
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return key, nil, err
		}
	}
	return key, buf.Bytes(), nil
}

// Stats reports what has been durably written.
func (s *Sink) Stats() sinks.Stats {
	return sinks.Stats{Records: s.stats.records.Load(), ErrorRecords: s.stats.errors.Load(), Objects: s.stats.objects.Load(), Bytes: s.stats.bytes.Load()}
}

// StoreFor opens the store a sink's URL names.
func StoreFor(cfg *config.Sink) (Store, error) {
	return OpenStore(cfg.URL, S3Options{Region: cfg.Region, Endpoint: cfg.Endpoint, KMSKeyID: cfg.KMSKeyID, StorageClass: cfg.StorageClass})
}

// OpenStore opens the store at url (file: or s3://); o supplies the S3
// settings other than bucket and prefix.
func OpenStore(url string, o S3Options) (Lister, error) {
	scheme, loc, err := config.ParseObjectURL(url)
	if err != nil {
		return nil, err
	}
	switch scheme {
	case "file":
		return NewFileStore(loc)
	case "s3":
		bucket, prefix, _ := strings.Cut(loc, "/")
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		o.Bucket, o.Prefix = bucket, prefix
		return NewS3Store(context.Background(), o)
	}
	return nil, fmt.Errorf("no store for %s", url)
}
