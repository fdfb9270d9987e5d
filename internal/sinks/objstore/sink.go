package objstore

import (
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-data/sluice/internal/archivefmt"
	"github.com/sluice-data/sluice/internal/blob"
	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/jq"
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
var ErrClosed = errors.New("objstore: sink closed")

// Sink is an object-store sink.
type Sink struct {
	name       string
	format     string
	compress   string
	store      blob.Lister // data objects, under the url
	errStore   blob.Lister // error records, under the error location's url
	log        *zap.Logger
	keys       []*jq.Expr
	keyNames   []string
	prefix     *template.Template
	errPrefix  *template.Template
	layout     *parquetLayout
	catalog    *catalog // nil unless glue is configured
	cfg        config.Buffer
	maxOpen    int
	onLimit    string
	maxBytes   int64
	maxRecs    int
	spill      *spill // nil when spilling is off
	maxSpilled int    // max_spill_records
	smallBytes int64  // small_object_bytes
	// backoff paces retries of a store call: from 100 ms, doubling up to
	// 30 s, for retry.max_elapsed (0: no retries).
	backoff retry.Policy

	// abortCtx ends when Close is called with a done context: writes
	// stop retrying, and their acks get the error.
	abortCtx context.Context
	abort    context.CancelFunc

	mu        sync.Mutex
	lake      map[string]*lakePart // by kind byte + rendered prefix
	order     []*buffer            // open order, oldest first; flushed ones are skipped
	buffered  int64                // bytes of rows in memory in open buffers
	bufRecs   int                  // records in memory in open buffers
	spilled   int                  // records in the spill
	spillLen  int64                // bytes in the spill
	spillOff  bool                 // the spill failed: buffers are flushed instead
	openParts int                  // lake partitions with an open buffer
	memParts  int                  // lake partitions with rows in memory
	lru       lakePart             // sentinel of the list of lake partitions with rows in memory, most recently used first
	calls     uint64               // Append calls, to tell a message's records from a re-delivery
	added     int64                // rows appended to buffers so far, the clock of idleLRU
	evicted   time.Time            // last scan for idle lake partitions
	closed    bool                 // no more appends; the workers stop

	errMu sync.Mutex // not mu: flush workers must never wait for an appender
	err   error      // first flush failure

	health   *sinks.Health // store calls that fail, for the warning, sluice_sink_failing and /readyz
	endpoint string        // the sink's URL (and S3 endpoint), for the warning

	jobs     chan *buffer
	lim      *limiter // how many workers write at once
	inflight sync.WaitGroup
	// flying is the memory of objects handed to the workers and not yet
	// written: their buffers' capacity and, as they are encoded, their
	// encoded bytes, which a store may hold until the write ends (an S3
	// PUT sends its body at once). With the open buffers it is held under
	// max_buffered_bytes. freed wakes an append waiting for it to drop.
	flying atomic.Int64
	freed  chan struct{}
	bg     sinks.Background // the flush workers, the ticker and the warner
	stop   chan struct{}

	stats struct {
		records, errors, objects, bytes, skipped, small, refused atomic.Int64
		typesMu                                                  sync.Mutex
		errTypes                                                 map[string]int64 // durable error records by type
	}
	smallWarned atomic.Int64 // unix nanos of the last small-object warning
	smallSince  atomic.Int64 // small objects since that warning

	droppedExtra prometheus.Counter
	written      prometheus.Counter
	errWritten   prometheus.Counter
	objects      prometheus.Counter
	bytesOut     prometheus.Counter
	flushTime    prometheus.Observer
	bufGauge     prometheus.Gauge
	openGauge    prometheus.Gauge
	skippedCtr   prometheus.Counter
	lists        prometheus.Counter
	retries      prometheus.Counter
	smallObjects prometheus.Counter
	writing      prometheus.Gauge
}

// lakePart is what the sink knows about one lake partition (or error
// output prefix) in this run.
type lakePart struct {
	key string // kind byte + rendered prefix
	// durable holds, per stream id, the ranges of the objects that were in
	// the prefix when it was listed.
	durable  map[string][]span
	streams  map[streamKey]*stream
	last     *stream      // the most recently used stream, a fast path
	open     int          // streams with an open buffer
	inflight atomic.Int32 // objects being written
	touched  time.Time
	memRows  int       // rows in memory in open buffers
	lastAdd  int64     // Sink.added when it last got a row
	prev     *lakePart // the LRU list, while memRows > 0
	next     *lakePart
}

type streamKey struct{ source, partition string }

// stream is one source partition's records for one lake partition.
type stream struct {
	key  streamKey
	lp   *lakePart
	id   string  // stream id, in object names
	buf  *buffer // open buffer, or nil
	skip []span  // durable ranges ahead of the stream's place
	last seq     // place of the last record appended
	call uint64  // Append call that appended it
	used bool    // last and call are set
}

// buffer is one open object: records of one stream.
type buffer struct {
	st          *stream
	first, last seq
	data        []byte // rows in memory, each prefixed by its uvarint length
	rows        int
	size        int64 // bytes of rows, without length prefixes
	memRows     int   // rows in data
	memSize     int64 // bytes of rows in data, without length prefixes
	maxRow      int   // the longest row added, spilled ones included
	spill       []extent
	spillLen    int64 // bytes in the spill, with length prefixes
	fly         int64 // memory charged to flying while it is written
	acks        []record.AckFunc
	lastAck     *record.AckGroup
	opened      time.Time
	header      []byte
	flushed     bool
	errTypes    map[string]int64 // error records by error output type
}

// Stores are where a sink's objects go: Data is rooted at its url, Errors
// at the url of its error location (config.Sink.ErrorLocation), which is
// the same store when error_prefix is set.
type Stores struct {
	Data, Errors blob.Lister
}

// New builds a sink from its configuration. st.Errors may be nil when the
// error location is the sink's url.
func New(cfg *config.Sink, st Stores, log *zap.Logger) (*Sink, error) {
	errURL, errPrefix := cfg.ErrorLocation()
	if st.Errors == nil {
		if errURL != cfg.URL {
			return nil, fmt.Errorf("sink %s: no store given for its error location %s", cfg.Name, errURL)
		}
		st.Errors = st.Data
	}
	s := &Sink{
		name: cfg.Name, format: cfg.Format, compress: cfg.Compression, store: st.Data, errStore: st.Errors, log: log,
		cfg: cfg.Buffer, maxOpen: cfg.MaxOpenPartitions, onLimit: cfg.OnPartitionLimit, maxBytes: int64(cfg.MaxBufferedBytes), maxRecs: cfg.MaxBufferedRecs, backoff: retry.Policy{Base: 100 * time.Millisecond, Max: 30 * time.Second, MaxElapsed: cfg.Retry.MaxElapsed.D()},
		lake: map[string]*lakePart{}, stop: make(chan struct{}), freed: make(chan struct{}, 1),
		droppedExtra: metrics.SinkDroppedKeys.WithLabelValues(cfg.Name),
		written:      metrics.SinkWritten.WithLabelValues(cfg.Name),
		errWritten:   metrics.SinkErrorRecs.WithLabelValues(cfg.Name),
		objects:      metrics.SinkObjects.WithLabelValues(cfg.Name),
		bytesOut:     metrics.SinkBytes.WithLabelValues(cfg.Name),
		flushTime:    metrics.FlushSeconds.WithLabelValues(cfg.Name),
		bufGauge:     metrics.SinkBuffered.WithLabelValues(cfg.Name),
		openGauge:    metrics.SinkOpen.WithLabelValues(cfg.Name),
		skippedCtr:   metrics.SinkSkipped.WithLabelValues(cfg.Name),
		lists:        metrics.SinkRecoveryLists.WithLabelValues(cfg.Name),
		retries:      metrics.SinkStoreRetries.WithLabelValues(cfg.Name),
		smallObjects: metrics.SinkSmallObjects.WithLabelValues(cfg.Name),
		maxSpilled:   cfg.MaxSpillRecs, smallBytes: int64(cfg.SmallObjectBytes),
	}
	s.lru.next, s.lru.prev = &s.lru, &s.lru
	if cfg.MaxSpillBytes > 0 && cfg.MaxSpillRecs > 0 {
		s.spill = newSpill(cfg.SpillDir, int64(cfg.MaxSpillBytes), metrics.SinkSpillBytes.WithLabelValues(cfg.Name))
	}
	s.abortCtx, s.abort = context.WithCancel(context.Background())
	s.health, s.endpoint = sinks.NewHealth(cfg.Name, log), cfg.URL
	if cfg.Endpoint != "" {
		s.endpoint += " via " + sinks.Redact(cfg.Endpoint)
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
		prefix = archivefmt.Layout
	}
	var err error
	if s.prefix, err = template.Parse(prefix); err != nil {
		return nil, fmt.Errorf("sink %s: prefix: %w", cfg.Name, err)
	}
	if err := s.prefix.Bind(s.keyNames); err != nil {
		return nil, fmt.Errorf("sink %s: prefix: %w", cfg.Name, err)
	}
	if s.errPrefix, err = template.Parse(errPrefix); err != nil {
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
	s.jobs = make(chan *buffer)
	limitGauge := metrics.SinkWriteLimit.WithLabelValues(cfg.Name)
	s.lim = newLimiter(cfg.Concurrency, runtime.GOMAXPROCS(0), func() bool { return s.flying.Load() < s.maxBytes },
		func(n int) { limitGauge.Set(float64(n)) })
	s.writing = metrics.SinkWriting.WithLabelValues(cfg.Name)
	// One worker per slot the limiter may grant; those without one wait.
	s.bg = sinks.Background{Name: s.name, Workers: cfg.Concurrency, Worker: s.flushWorker, Tick: s.ticker,
		Health: s.health, Stopping: s.stop, GiveUp: func() { s.abort(); s.shutdown() }}
	return s, nil
}

var _ lifecycle.Runner = (*Sink)(nil)

// Run does the sink's background work until Close (or ctx ends, which
// gives up as Close on a done context does): the flush workers that write
// objects, the ticker that flushes buffers older than buffer.interval, and
// the warning about a failing store. Appends and flushes need it running.
// A failed write is not returned here but from the next Append or Flush,
// where the pipeline learns which records it holds back.
func (s *Sink) Run(ctx context.Context) error { return s.bg.Run(ctx) }

// shutdown stops appends, the ticker and, once the jobs already handed
// over are written, the workers.
func (s *Sink) shutdown() {
	s.bg.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.stop)
		close(s.jobs)
	}
}

// Name returns the configured name.
func (s *Sink) Name() string { return s.name }

// ErrorSink returns the sink's own name: failures go under its error_prefix.
func (s *Sink) ErrorSink() string { return s.name }

// Append distributes encoded records to their streams, skipping those a
// durable object already holds and cutting objects as limits are reached.
// If it returns an error, ack gets that error: the records are not written
// and the source must not checkpoint past them.
func (s *Sink) Append(ctx context.Context, pp sinks.Pending, ack record.AckFunc) (err error) {
	p := pp.(*pending)
	group := record.NewAckGroup(ack)
	defer func() {
		group.SealWith(err)
		p.data, p.ents = p.data[:0], p.ents[:0]
		pendingPool.Put(p)
	}()
	if err := s.preload(ctx, p); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.failed(); err != nil {
		return err
	}
	s.calls++
	now := time.Now()
	start := 0
	for i := range p.ents {
		e := &p.ents[i]
		key := p.data[start:e.keyEnd]
		row := p.data[e.keyEnd:e.rowEnd]
		start = int(e.rowEnd)
		if err := s.appendEntry(ctx, now, e, key, row, group); err != nil {
			return err
		}
	}
	if err := s.holdMemory(ctx); err != nil {
		return err
	}
	for s.bufRecs > s.maxRecs {
		if ok, err := s.spillLRU(ctx); err != nil {
			return err
		} else if ok {
			continue
		}
		if err := s.flushOldest(ctx); err != nil {
			return err
		}
	}
	s.bufGauge.Set(float64(s.buffered))
	s.openGauge.Set(float64(s.openParts))
	return nil
}

// holdMemory keeps the rows held in memory by open buffers and by objects
// being written under max_buffered_bytes: while the open ones alone exceed
// half of it, it spills the least recently used lake partition (or, if it
// cannot, flushes the largest buffer), then waits for writes to finish. The
// wait is the backpressure that bounds memory however large the output.
func (s *Sink) holdMemory(ctx context.Context) error {
	for s.buffered+s.flying.Load() > s.maxBytes {
		if s.buffered > s.maxBytes/2 || s.flying.Load() == 0 {
			if ok, err := s.spillLRU(ctx); err != nil {
				return err
			} else if ok {
				continue
			}
			if err := s.flushLargest(ctx); err != nil {
				return err
			}
			continue
		}
		select {
		case <-s.freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// preload lists, in parallel and without holding the lock, the lake
// partitions of p that this run has not seen yet.
func (s *Sink) preload(ctx context.Context, p *pending) error {
	var missing []string
	s.mu.Lock()
	start := 0
	for i := range p.ents {
		key := p.data[start:p.ents[i].keyEnd]
		start = int(p.ents[i].rowEnd)
		if s.lake[string(key)] == nil && !slices.Contains(missing, string(key)) {
			missing = append(missing, string(key))
		}
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	found := make([]map[string][]span, len(missing))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, key := range missing {
		g.Go(func() (err error) {
			found[i], err = s.listDurable(gctx, key)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	s.mu.Lock()
	for i, key := range missing {
		if s.lake[key] == nil {
			s.lake[key] = &lakePart{key: key, durable: found[i], streams: map[streamKey]*stream{}}
		}
	}
	s.mu.Unlock()
	return nil
}

// lakePartLocked returns the state of a lake partition, listing it now if
// preload did not (an error record, or one forgotten meanwhile).
func (s *Sink) lakePartLocked(ctx context.Context, key []byte) (*lakePart, error) {
	if lp := s.lake[string(key)]; lp != nil {
		return lp, nil
	}
	durable, err := s.listDurable(ctx, string(key))
	if err != nil {
		return nil, err
	}
	lp := &lakePart{key: string(key), durable: durable, streams: map[streamKey]*stream{}}
	s.lake[lp.key] = lp
	return lp, nil
}

func (lp *lakePart) stream(e *entry) *stream {
	if st := lp.last; st != nil && st.key.partition == e.pos.Partition && st.key.source == e.source {
		return st
	}
	k := streamKey{e.source, e.pos.Partition}
	st := lp.streams[k]
	if st == nil {
		st = &stream{key: k, lp: lp, id: StreamID(e.source, e.pos.Partition)}
		st.skip = slices.Clone(lp.durable[st.id])
		lp.streams[k] = st
	}
	lp.last = st
	return st
}

// appendEntry places one encoded record.
func (s *Sink) appendEntry(ctx context.Context, now time.Time, e *entry, key, row []byte, group *record.AckGroup) error {
	lp, err := s.lakePartLocked(ctx, key)
	if err != nil {
		return err
	}
	lp.touched = now
	st := lp.stream(e)
	q := seqOf(e.pos)
	if st.used {
		switch c := cmpMsg(q, st.last); {
		case c == 0 && st.call == s.calls:
			q.k = st.last.k + 1
		case c <= 0:
			if err := s.redeliveredLocked(ctx, st); err != nil {
				return err
			}
		}
	}
	st.last, st.call, st.used = q, s.calls, true
	for len(st.skip) > 0 && cmpSeq(st.skip[0].last, q) < 0 {
		st.skip = st.skip[1:]
	}
	if len(st.skip) > 0 && cmpSeq(st.skip[0].first, q) <= 0 {
		// A durable object holds this record already.
		s.stats.skipped.Add(1)
		s.skippedCtr.Inc()
		return nil
	}
	if s.spill != nil && s.onLimit == "flush_oldest" {
		// max_open_partitions bounds the lake partitions with rows in
		// memory; the others wait in the spill, still open.
		if lp.memRows == 0 && s.memParts >= s.maxOpen {
			if ok, err := s.spillLRU(ctx); err != nil {
				return err
			} else if !ok {
				if err := s.flushOldestPart(ctx); err != nil {
					return err
				}
			}
		}
	} else if st.buf == nil && lp.open == 0 && s.openParts >= s.maxOpen {
		if s.onLimit == "error" && key[0] == kindData {
			// The record goes to this sink's error output instead.
			return s.appendLimitFailure(ctx, now, e, group)
		}
		if err := s.flushOldestPart(ctx); err != nil {
			return err
		}
	}
	if st.buf == nil {
		s.open(st, q, e, now)
	}
	b := st.buf
	s.add(b, group, row)
	if e.errType != "" {
		if b.errTypes == nil {
			b.errTypes = map[string]int64{}
		}
		b.errTypes[e.errType]++
	}
	b.last = q
	if b.rows >= s.cfg.MaxRecords || int64(len(b.data))+b.spillLen >= int64(s.cfg.MaxBytes) {
		return s.flushLocked(ctx, b)
	}
	return nil
}

// redeliveredLocked handles a stream whose place went back: the source is
// delivering records again (a Kafka partition assigned back to this
// process). Everything written so far is made durable and the lake
// partition listed again, as after a restart.
func (s *Sink) redeliveredLocked(ctx context.Context, st *stream) error {
	s.log.Info("records delivered again; re-reading what is durable", zap.String("sink", s.name),
		zap.String("prefix", st.lp.key[1:]), zap.String("stream", st.id))
	if st.buf != nil {
		if err := s.flushLocked(ctx, st.buf); err != nil {
			return err
		}
	}
	s.inflight.Wait()
	if err := s.failed(); err != nil {
		return err
	}
	durable, err := s.listDurable(ctx, st.lp.key)
	if err != nil {
		return err
	}
	st.lp.durable = durable
	st.skip = slices.Clone(durable[st.id])
	st.used = false
	return nil
}

// open starts a buffer for a stream at place q.
func (s *Sink) open(st *stream, q seq, e *entry, now time.Time) {
	b := &buffer{st: st, first: q, opened: now, header: e.header}
	st.buf = b
	if st.lp.open == 0 {
		s.openParts++
	}
	st.lp.open++
	s.order = append(s.order, b)
}

// add appends one encoded row to a buffer; the buffer takes one child of
// the batch's ack group, however many of the batch's rows it gets.
func (s *Sink) add(b *buffer, group *record.AckGroup, row []byte) {
	if b.lastAck != group {
		b.acks = append(b.acks, group.Add())
		b.lastAck = group
	}
	b.data = growRows(b.data, binary.MaxVarintLen64+len(row))
	b.data = binary.AppendUvarint(b.data, uint64(len(row)))
	b.data = append(b.data, row...)
	b.maxRow = max(b.maxRow, len(row))
	b.rows++
	b.size += int64(len(row))
	b.memRows++
	b.memSize += int64(len(row))
	s.buffered += int64(len(row))
	s.bufRecs++
	s.added++
	b.st.lp.lastAdd = s.added
	s.memIn(b.st.lp)
}

// memIn counts a row in memory for lp and makes lp the most recently used.
func (s *Sink) memIn(lp *lakePart) {
	if lp.memRows == 0 {
		s.memParts++
	} else if lp == s.lru.next {
		lp.memRows++
		return
	} else {
		lp.prev.next, lp.next.prev = lp.next, lp.prev
	}
	lp.memRows++
	lp.prev, lp.next = &s.lru, s.lru.next
	s.lru.next.prev = lp
	s.lru.next = lp
}

// memOut takes n rows of lp out of memory.
func (s *Sink) memOut(lp *lakePart, n int) {
	if n == 0 {
		return
	}
	lp.memRows -= n
	if lp.memRows == 0 {
		lp.prev.next, lp.next.prev = lp.next, lp.prev
		lp.prev, lp.next = nil, nil
		s.memParts--
	}
}

// spillLRU moves the rows in memory of the least recently used lake
// partition to the spill; its buffers stay open. It reports false when
// there is no spill, or it cannot take them: the caller flushes instead.
//
// A partition that has had no row while half of max_buffered_records came
// in for others is written out instead (idleLRU): on input ordered by
// event time, such as logs partitioned by hour, it is a past hour whose
// rows are all there, and spilling it would only write them to local disk
// and read them back for the same object.
func (s *Sink) spillLRU(ctx context.Context) (bool, error) {
	lp := s.lru.prev
	if s.spill == nil || s.spillOff || lp == &s.lru {
		return false, nil
	}
	if s.added-lp.lastAdd >= int64(max(s.maxRecs/2, 1)) {
		return true, s.flushPart(ctx, lp)
	}
	for _, st := range lp.streams {
		if b := st.buf; b != nil && b.memRows > 0 {
			if ok, err := s.spillBuffer(ctx, b); !ok || err != nil {
				return ok, err
			}
		}
	}
	return true, nil
}

// spillBuffer moves a buffer's rows in memory to the spill, first
// flushing the buffers with the most rows there while it is full. It
// reports true once b's rows are out of memory, either way.
func (s *Sink) spillBuffer(ctx context.Context, b *buffer) (bool, error) {
	for s.spilled+b.memRows > s.maxSpilled || s.spillLen+int64(len(b.data)) > s.spill.max {
		if s.spilled == 0 {
			return false, nil // b alone is more than the spill takes
		}
		if err := s.flushMostSpilled(ctx); err != nil {
			return false, err
		}
		if b.flushed {
			return true, nil
		}
	}
	e, err := s.spill.write(b.data)
	if err != nil {
		s.spillOff = true
		s.log.Warn("cannot spill to local disk; flushing partitions instead", zap.String("sink", s.name), zap.Error(err))
		return false, nil
	}
	if n := len(b.spill); n > 0 && b.spill[n-1].seg == e.seg && b.spill[n-1].off+b.spill[n-1].n == e.off {
		b.spill[n-1].n += e.n
	} else {
		b.spill = append(b.spill, e)
	}
	b.spillLen += e.n
	s.spillLen += e.n
	s.spilled += b.memRows
	s.buffered -= b.memSize
	s.bufRecs -= b.memRows
	s.memOut(b.st.lp, b.memRows)
	releaseRows(b.data) // the spill has copied them
	b.memRows, b.memSize, b.data = 0, 0, nil
	return true, nil
}

// flushPart flushes every open buffer of a lake partition.
func (s *Sink) flushPart(ctx context.Context, lp *lakePart) error {
	for _, st := range lp.streams {
		if st.buf != nil {
			if err := s.flushLocked(ctx, st.buf); err != nil {
				return err
			}
		}
	}
	return nil
}

// flushMostSpilled flushes the open buffer with the most bytes in the
// spill.
func (s *Sink) flushMostSpilled(ctx context.Context) error {
	var big *buffer
	for _, b := range s.order {
		if b != nil && !b.flushed && (big == nil || b.spillLen > big.spillLen) {
			big = b
		}
	}
	if big == nil {
		return nil
	}
	return s.flushLocked(ctx, big)
}

// appendLimitFailure re-encodes a record refused by max_open_partitions as
// an error record. Error prefixes do not count against the limit, so the
// failure always has somewhere to go.
func (s *Sink) appendLimitFailure(ctx context.Context, now time.Time, e *entry, group *record.AckGroup) error {
	f := &sinks.Failure{Type: sinks.PartitionLimit, Code: "DynamicPartitioning.PartitionLimitExceeded",
		Message: fmt.Sprintf("more than %d open partitions", s.maxOpen), Source: e.source, Sink: s.name, Pos: e.pos,
		Raw: e.raw, Arrival: e.arrival, Event: e.event}
	w := s.newWriter()
	w.WriteFailure(f)
	ep := w.Take().(*pending)
	ee := &ep.ents[0]
	metrics.SinkFailed.WithLabelValues(s.name, sinks.PartitionLimit).Inc()
	s.stats.refused.Add(1)
	return s.appendEntry(ctx, now, ee, ep.data[:ee.keyEnd], ep.data[ee.keyEnd:ee.rowEnd], group)
}

// flushOldest flushes the oldest open buffer.
func (s *Sink) flushOldest(ctx context.Context) error {
	for len(s.order) > 0 {
		b := s.order[0]
		s.order[0] = nil
		s.order = s.order[1:]
		if !b.flushed {
			return s.flushLocked(ctx, b)
		}
	}
	return nil
}

// flushOldestPart flushes every buffer of the lake partition with the
// oldest open buffer, which closes that lake partition.
func (s *Sink) flushOldestPart(ctx context.Context) error {
	for len(s.order) > 0 {
		b := s.order[0]
		s.order[0] = nil
		s.order = s.order[1:]
		if b.flushed {
			continue
		}
		return s.flushPart(ctx, b.st.lp)
	}
	return nil
}

func (s *Sink) flushLargest(ctx context.Context) error {
	var big *buffer
	for _, b := range s.order {
		if b == nil || b.flushed {
			continue
		}
		if big == nil || len(b.data) > len(big.data) {
			big = b
		}
	}
	if big == nil {
		return nil
	}
	return s.flushLocked(ctx, big)
}

// flushLocked hands a buffer to the flush workers. It blocks, holding the
// lock, while all workers are busy: appends wait, which is the
// backpressure that reaches the source.
func (s *Sink) flushLocked(ctx context.Context, b *buffer) error {
	st := b.st
	st.buf = nil
	st.lp.open--
	if st.lp.open == 0 {
		s.openParts--
	}
	b.flushed = true
	s.buffered -= b.memSize
	s.bufRecs -= b.memRows
	s.spilled -= b.rows - b.memRows
	s.spillLen -= b.spillLen
	s.memOut(st.lp, b.memRows)
	// The worker holds the spilled rows in memory too while it writes.
	b.fly = int64(cap(b.data)) + b.spillLen
	s.flying.Add(b.fly)
	s.inflight.Add(1)
	st.lp.inflight.Add(1)
	if s.closed {
		// Run gave up (its context ended): no worker takes the buffer.
		return s.dropLocked(b, ErrClosed)
	}
	select {
	case s.jobs <- b:
		return nil
	case <-ctx.Done():
		return s.dropLocked(b, ctx.Err())
	}
}

// dropLocked gives up a buffer flushLocked could not hand to a worker: its
// acks get err.
func (s *Sink) dropLocked(b *buffer, err error) error {
	b.st.lp.inflight.Add(-1)
	s.flying.Add(-b.fly)
	if b.spill != nil {
		s.spill.release(b.spill)
	}
	s.inflight.Done()
	for _, a := range b.acks {
		a(err)
	}
	return err
}

// ticker flushes buffers older than buffer.interval, so a quiet stream
// never holds acks (and the source's checkpoint) for long, and forgets
// lake partitions idle for two intervals.
func (s *Sink) ticker(ctx context.Context) {
	iv := s.cfg.Interval.D()
	tick := max(min(iv/10, time.Second), 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			for len(s.order) > 0 && (s.order[0].flushed || now.Sub(s.order[0].opened) >= iv) {
				b := s.order[0]
				s.order[0] = nil
				s.order = s.order[1:]
				if !b.flushed {
					_ = s.flushLocked(context.Background(), b)
				}
			}
			if now.Sub(s.evicted) >= iv {
				s.evicted = now
				for k, lp := range s.lake {
					if lp.open == 0 && lp.inflight.Load() == 0 && now.Sub(lp.touched) >= 2*iv {
						delete(s.lake, k)
					}
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
	if err := sinks.Wait(ctx, &s.inflight); err != nil {
		return err
	}
	return s.failed()
}

func (s *Sink) failed() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// Close flushes, then stops the workers, which ends Run. With ctx done,
// writes still retrying give up first.
func (s *Sink) Close(ctx context.Context) error {
	err := s.Flush(ctx)
	if ctx.Err() != nil {
		s.abort()
	}
	s.shutdown()
	s.bg.Wait()
	if s.spill != nil {
		s.spill.close()
	}
	s.abort() // releases the context
	return err
}

// flushWorker writes objects while the limiter grants it a slot.
func (s *Sink) flushWorker() {
	var pf *parquetFile
	if s.layout != nil {
		pf = s.layout.newFileWriter()
	}
	var work, wait time.Duration // the object's, for the limiter
	for b := range s.slots(&work, &wait) {
		start := time.Now()
		lp := b.st.lp
		key, format := s.objectKey(b)
		var size, held int64
		var encoded time.Time
		err := s.unspill(b)
		if err == nil {
			err = s.put(lp.key[0], key, func(w io.Writer) error {
				cw := &countingWriter{w: w, held: &s.flying}
				err := s.encodeTo(cw, b, format, pf)
				size = cw.n
				held += cw.n
				encoded = time.Now()
				return err
			})
		}
		if err != nil {
			s.log.Error("object write failed", zap.String("sink", s.name), zap.String("key", key), zap.Error(err))
			s.errMu.Lock()
			if s.err == nil {
				s.err = fmt.Errorf("sink %s: %w", s.name, err)
			}
			s.errMu.Unlock()
		} else {
			end := time.Now()
			if encoded.IsZero() { // a store that took no body
				encoded = end
			}
			work, wait = encoded.Sub(start), end.Sub(encoded)
			s.flushTime.Observe(end.Sub(start).Seconds())
			s.objects.Inc()
			s.bytesOut.Add(float64(size))
			s.stats.objects.Add(1)
			s.stats.bytes.Add(size)
			if lp.key[0] == kindData {
				s.written.Add(float64(b.rows))
				s.stats.records.Add(int64(b.rows))
				if size < s.smallBytes {
					s.countSmall(size)
				}
				if s.catalog != nil {
					if gerr := s.catalog.register(context.Background(), lp.key[1:]); gerr != nil {
						// The object is durable; only its catalog entry is
						// missing, and the next object of the partition
						// tries again.
						metrics.GlueErrors.WithLabelValues(s.name).Inc()
						s.log.Error("glue partition registration failed", zap.String("sink", s.name), zap.Error(gerr))
					}
				}
			} else {
				s.errWritten.Add(float64(b.rows))
				s.stats.errors.Add(int64(b.rows))
				s.stats.typesMu.Lock()
				for typ, n := range b.errTypes {
					if s.stats.errTypes == nil {
						s.stats.errTypes = map[string]int64{}
					}
					s.stats.errTypes[typ] += n
					metrics.ErrorRecords.WithLabelValues(typ).Add(float64(n))
				}
				s.stats.typesMu.Unlock()
			}
			s.log.Debug("object written", zap.String("sink", s.name), zap.String("key", key), zap.Int("records", b.rows), zap.Int64("bytes", size))
		}
		for _, a := range b.acks {
			a(err)
		}
		s.flying.Add(-b.fly - held)
		releaseRows(b.data) // written: the encoders keep no reference
		b.data, b.acks = nil, nil
		lp.inflight.Add(-1)
		s.inflight.Done()
		select {
		case s.freed <- struct{}{}:
		default:
		}
	}
}

// slots yields the objects handed to the flush workers, each while the
// limiter grants a slot for it; after each, it gives the slot back with
// the object's work and wait (0 when it failed), then resets them.
func (s *Sink) slots(work, wait *time.Duration) iter.Seq[*buffer] {
	return func(yield func(*buffer) bool) {
		for {
			s.lim.acquire()
			b, ok := <-s.jobs
			if !ok {
				s.lim.cancel()
				return
			}
			s.lim.start()
			s.writing.Inc()
			more := yield(b)
			s.writing.Dec()
			s.lim.release(*work, *wait)
			*work, *wait = 0, 0
			if !more {
				return
			}
		}
	}
}

// storeFor returns the store of a kind of object: data or error records.
func (s *Sink) storeFor(kind byte) blob.Lister {
	if kind == kindError {
		return s.errStore
	}
	return s.store
}

// unspill puts a buffer's spilled rows back in front of those in memory,
// and gives their place in the spill back.
func (s *Sink) unspill(b *buffer) error {
	if b.spill == nil {
		return nil
	}
	data, err := s.spill.read(make([]byte, 0, b.spillLen+int64(len(b.data))), b.spill)
	s.spill.release(b.spill)
	b.spill = nil
	if err != nil {
		return err
	}
	mem := b.data
	b.data = append(data, b.data...)
	releaseRows(mem)
	return nil
}

// smallWarnEvery is how often at most the sink warns of small objects.
const smallWarnEvery = time.Minute

// countSmall counts a data object below small_object_bytes and warns, at
// most once a minute, how many there were: engines read many small
// objects slowly, and the usual causes (many lake partitions per interval,
// a low max_pending forcing early flushes) are in the configuration.
func (s *Sink) countSmall(size int64) {
	s.smallObjects.Inc()
	s.stats.small.Add(1)
	n := s.smallSince.Add(1)
	now := time.Now().UnixNano()
	last := s.smallWarned.Load()
	if now-last < int64(smallWarnEvery) || !s.smallWarned.CompareAndSwap(last, now) {
		return
	}
	s.smallSince.Add(-n)
	s.log.Warn("objects smaller than small_object_bytes; engines read many small objects slowly",
		zap.String("sink", s.name), zap.Int64("objects", n), zap.Int64("last_bytes", size),
		zap.Int64("small_object_bytes", s.smallBytes))
}

// put writes an object, retrying store errors.
func (s *Sink) put(kind byte, key string, body blob.Body) error {
	st := s.storeFor(kind)
	return s.retry(s.abortCtx, "put "+key, func() error {
		return st.Put(s.abortCtx, key, body)
	})
}

// retry runs op until it succeeds, ctx ends, or retry.max_elapsed has
// passed since its first failure, waiting between tries with exponential
// backoff (from 100 ms, capped at 30 s) and jitter. A store outage
// shorter than max_elapsed costs no restart: the buffer's acks are held
// meanwhile, and with every flush worker waiting here, appends block and
// the sources stop reading. Past it the sink fails, the process exits with
// the error, and nothing has been checkpointed past the unwritten records.
func (s *Sink) retry(ctx context.Context, what string, op func() error) error {
	b := s.backoff.Start()
	for {
		err := op()
		attempt := b.Attempts() + 1
		if errors.Is(err, template.ErrUnsafeKey) {
			return err // refused by the store: trying again cannot help
		}
		if err == nil {
			s.health.OK()
			if attempt > 1 {
				s.log.Info("store call succeeded after retries", zap.String("sink", s.name), zap.String("op", what),
					zap.Int("attempts", attempt), zap.Duration("elapsed", b.Elapsed()))
			}
			return nil
		}
		s.health.Failed(s.endpoint, err)
		var wait time.Duration
		ok := s.backoff.MaxElapsed > 0 && ctx.Err() == nil // max_elapsed 0: no retries
		if ok {
			wait, ok = b.Next()
		}
		if !ok {
			if attempt == 1 {
				return err
			}
			return fmt.Errorf("%d attempts in %s: %w", attempt, b.Elapsed().Round(time.Millisecond), err)
		}
		s.retries.Inc()
		s.log.Warn("store call failed; retrying", zap.String("sink", s.name), zap.String("op", what),
			zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))
		if serr := retry.Sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%d attempts in %s, then %w: %w", attempt, b.Elapsed().Round(time.Millisecond), serr, err)
		}
	}
}

// objectKey names a buffer's object after its stream and the range of
// places it holds; it also returns the format the object is written in.
func (s *Sink) objectKey(b *buffer) (key, format string) {
	prefix := b.st.lp.key[1:]
	format = s.format
	if b.st.lp.key[0] == kindError {
		format = "ndjson"
	}
	ext := map[string]string{"parquet": ".parquet", "ndjson": ".ndjson", "csv": ".csv", "raw": ".ndjson"}[format]
	if s.compress == "gzip" && format != "parquet" {
		ext += ".gz"
	}
	name := make([]byte, 0, len(prefix)+len(b.st.id)+48)
	name = append(name, prefix...)
	name = append(name, b.st.id...)
	name = append(name, '+')
	name = b.first.appendText(name)
	name = append(name, '-')
	name = b.last.appendText(name)
	name = append(name, ext...)
	return string(name), format
}

// encodeTo writes a buffer's object to w in format.
func (s *Sink) encodeTo(w io.Writer, b *buffer, format string, pf *parquetFile) error {
	if format == "parquet" {
		pf.maxRow = b.maxRow
		return pf.encodeTo(w, b.data)
	}
	var zw *gzip.Writer
	if s.compress == "gzip" {
		zw = gzip.NewWriter(w)
		w = zw
	}
	if format == "csv" && b.header != nil {
		if _, err := w.Write(b.header); err != nil {
			return err
		}
		if _, err := w.Write([]byte{'\n'}); err != nil {
			return err
		}
	}
	data := b.data
	for len(data) > 0 {
		l, k := binary.Uvarint(data)
		if _, err := w.Write(data[k : k+int(l)]); err != nil {
			return err
		}
		data = data[k+int(l):]
	}
	if zw != nil {
		return zw.Close()
	}
	return nil
}

// countingWriter counts what passes through it, adding it to held too
// (if set).
type countingWriter struct {
	w    io.Writer
	n    int64
	held *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if c.held != nil {
		c.held.Add(int64(n))
	}
	return n, err
}

// Health reports whether the sink's last store call failed.
func (s *Sink) Health() (sinks.SinkHealth, bool) { return s.health.Health() }

// Stats reports what has been durably written.
func (s *Sink) Stats() sinks.Stats {
	st := sinks.Stats{Records: s.stats.records.Load(), ErrorRecords: s.stats.errors.Load(), Objects: s.stats.objects.Load(), Bytes: s.stats.bytes.Load(),
		Skipped: s.stats.skipped.Load(), Refused: s.stats.refused.Load()}
	s.stats.typesMu.Lock()
	st.ErrorsByType = maps.Clone(s.stats.errTypes)
	s.stats.typesMu.Unlock()
	return st
}

// StoreFor opens the store a sink's URL names.
func StoreFor(cfg *config.Sink) (blob.Lister, error) {
	return blob.OpenStore(cfg.URL, storeOptions(cfg))
}

// StoresFor opens a sink's stores: its url, and its error location when
// that is elsewhere (beside the url, by default).
func StoresFor(cfg *config.Sink) (Stores, error) {
	data, err := StoreFor(cfg)
	if err != nil {
		return Stores{}, err
	}
	st := Stores{Data: data, Errors: data}
	if errURL, _ := cfg.ErrorLocation(); errURL != cfg.URL {
		if st.Errors, err = blob.OpenStore(errURL, storeOptions(cfg)); err != nil {
			return Stores{}, fmt.Errorf("sink %s: error location: %w", cfg.Name, err)
		}
	}
	return st, nil
}

func storeOptions(cfg *config.Sink) blob.S3Options {
	// A PUT per object being written, and LISTs beside them.
	return blob.S3Options{Region: cfg.Region, Endpoint: cfg.Endpoint, KMSKeyID: cfg.KMSKeyID, StorageClass: cfg.StorageClass, Conns: cfg.Concurrency + 16}
}
