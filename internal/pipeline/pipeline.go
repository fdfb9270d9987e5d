// Package pipeline wires sources, routes and sinks together and runs them.
//
// One batch travels: source → decode → route → per-route transforms → sink
// writers (all in a worker, in parallel with other batches) → sink Append
// (in the source's sequencer, in read order) → durable write → ack →
// checkpoint. Each batch's ack is split into one child per sink it touched;
// the source's ack fires when all have fired, first error winning. Filtered
// and unmatched records are acknowledged as delivered.
//
// # Sources are independent
//
// Every source, finite or streaming, is read by a goroutine of its own and
// sequenced by a goroutine of its own: the sequencer restores the source's
// read order after the parallel stage, so a source's records reach each
// sink in the order they were read, and objects (which hold one source
// partition's records each) cut the same way on every run over the same
// input. Order between sources carries no meaning and is not kept.
//
// A source has at most inFlightPerSource batches between its reader and its
// sequencer: the reader takes a slot before handing a batch to the workers,
// the sequencer gives it back once the batch is appended to its sinks, and
// the source's results channel holds as many batches as there are slots, so
// a worker never waits for a sequencer. A sink that blocks (its in-flight
// limit reached while it retries a dead endpoint) therefore holds only the
// sources whose records wait for it, and their checkpoints cannot pass those
// records; a source that does not write to that sink reads on at full speed.
// When a source waits at its pending cap it asks only the sinks its records
// can reach (routes, error outputs, their error sinks) to flush.
//
// Finite sources (file, archive) are read concurrently too: two finite
// sources that share a blocked sink both wait for it; one that does not is
// not held by the other.
package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fastjson"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/decode"
	"github.com/sluice-data/sluice/internal/jq"
	"github.com/sluice-data/sluice/internal/jsonx"
	"github.com/sluice-data/sluice/internal/lifecycle"
	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/routing"
	"github.com/sluice-data/sluice/internal/sinks"
	"github.com/sluice-data/sluice/internal/sources"
	"github.com/sluice-data/sluice/internal/tap"
	"github.com/sluice-data/sluice/internal/transforms"
)

// Option changes how New builds a pipeline.
type Option func(*options)

type options struct {
	replay   bool
	from, to time.Time
	mem      *Memory // InMemory
}

// Replay makes the pipeline's Kafka, Kinesis and archive sources read the time range
// [from, to) and end, without joining groups or committing anything.
func Replay(from, to time.Time) Option {
	return func(o *options) { o.replay, o.from, o.to = true, from, to }
}

// Pipeline is a configured, runnable pipeline.
type Pipeline struct {
	cfg     *config.Config
	log     *zap.Logger
	sources []*sourceRT
	routes  []*routeRT
	sinks   []sinks.Sink
	// order is sinks in flush and close order (see flushOrder).
	order []sinks.Sink
	// runners are the sinks and sources with background work, which Run
	// runs for as long as it runs.
	runners []runner
	// sinkStats counts what the workers handed each sink.
	sinkStats []SinkStats
	workers   int
	ready     atomic.Bool
	replay    bool // reading a time range: every source ends
	tap       *tap.Hub
}

// SetTap publishes every record a route hands to its sinks to h (for
// GET /tap). Call it before Run.
func (p *Pipeline) SetTap(h *tap.Hub) { p.tap = h }

// runner is a component's background work, with the name its errors carry.
type runner struct {
	name string // "sink NAME", "source NAME"
	lifecycle.Runner
}

type sourceRT struct {
	cfg       *config.Source
	src       sources.Source
	errorSink int
	routes    []*routeRT // routes that read this source, in order
	stats     SourceStats
	// The source's optional abilities, found once when it is opened; nil
	// where it has none.
	checkpointer sources.Checkpointer
	progress     sources.ProgressReporter
	errReporter  sources.ErrReporter
	metaPath     jsonx.Path // where records get the message's metadata; nil: not added
	// sinks are the indexes of every sink this source's records can reach:
	// its routes' sinks, error outputs, and the sinks those hand failures to.
	sinks []int
	// slots bounds the batches between the reader and the sequencer;
	// results (as large) carries them from the workers to the sequencer.
	slots   chan struct{}
	results chan result
}

// inFlightPerSource is how many batches of one source may be read and not
// yet appended to its sinks, per pipeline worker.
const inFlightPerSource = 2

// addMeta sets path in v to the message's metadata: topic, partition,
// offset, timestamp (RFC 3339, ms), key and headers as UTF-8 strings.
func addMeta(a *fastjson.Arena, v *fastjson.Value, path jsonx.Path, m *record.Meta) {
	o := a.NewObject()
	o.Set("topic", a.NewString(m.Topic))
	o.Set("partition", a.NewNumberInt(int(m.Partition)))
	o.Set("offset", a.NewNumberString(strconv.FormatInt(m.Offset, 10)))
	o.Set("timestamp", a.NewString(m.Timestamp.Format("2006-01-02T15:04:05.000Z07:00")))
	if m.Key != nil {
		o.Set("key", a.NewStringBytes(m.Key))
	} else {
		o.Set("key", a.NewNull())
	}
	h := a.NewObject()
	for _, hd := range m.Headers {
		h.Set(hd.Key, a.NewStringBytes(hd.Value))
	}
	o.Set("headers", h)
	jsonx.Set(a, v, path, o)
}

type routeRT struct {
	name    string
	idx     int
	pattern *routing.Pattern
	chain   *transforms.Chain
	to      []int
	errSink map[int]int // source index -> error sink index
	stats   RouteStats
}

// SourceStats counts a source's records.
type SourceStats struct {
	Messages, Records, DecodeFailed, Unmatched, Routed atomic.Int64
}

// SinkStats counts what a sink was given and refused.
type SinkStats struct {
	Received, Failed atomic.Int64
}

// RouteStats counts a route's records.
type RouteStats struct {
	Matched, Out, Filtered, Failed atomic.Int64
}

// New builds the pipeline: opens sinks and sources, compiles routes. On
// any failure it closes everything it opened.
func New(cfg *config.Config, log *zap.Logger, opts ...Option) (_ *Pipeline, err error) {
	registerKinds()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	p := &Pipeline{cfg: cfg, log: log, workers: cfg.Service.Workers, replay: o.replay}
	if p.workers <= 0 {
		p.workers = runtime.GOMAXPROCS(0)
	}
	defer func() {
		if err != nil {
			p.logClose(p.abort())
		}
	}()
	sinkIdx := map[string]int{}
	for i := range cfg.Sinks {
		sc := &cfg.Sinks[i]
		var s sinks.Sink
		var err error
		if o.mem != nil {
			s, err = o.mem.newSink(cfg, sc, log)
		} else {
			newSink, ok := sinks.Lookup(sc.Type)
			if !ok {
				return nil, fmt.Errorf("sink %s: type %s is not available in this build", sc.Name, sc.Type)
			}
			s, err = newSink(sc, sinks.Env{Log: log, ErrorSink: cmp.Or(sc.ErrorSink, cfg.Service.ErrorSink)})
		}
		if err != nil {
			return nil, err
		}
		p.sinks = append(p.sinks, s)
		sinkIdx[sc.Name] = i
		if r, ok := s.(lifecycle.Runner); ok {
			p.runners = append(p.runners, runner{"sink " + sc.Name, r})
		}
	}
	for _, s := range p.sinks {
		if u, ok := s.(sinks.ErrorSinkUser); ok {
			i, ok := sinkIdx[s.ErrorSink()]
			if !ok {
				return nil, fmt.Errorf("sink %s: error sink %q is not configured", s.Name(), s.ErrorSink())
			}
			u.SetErrorSink(p.sinks[i])
		}
	}
	p.order = flushOrder(p.sinks)
	p.sinkStats = make([]SinkStats, len(p.sinks))
	srcIdx := map[string]int{}
	for i := range cfg.Sources {
		sc := &cfg.Sources[i]
		rt := &sourceRT{cfg: sc, errorSink: -1}
		if sc.Type == "kafka" && sc.Kafka.MetadataField != "" {
			rt.metaPath = jsonx.ParsePath(sc.Kafka.MetadataField)
		}
		if sc.Type == "firehose_http" && sc.Firehose.MetadataField != "" {
			rt.metaPath = jsonx.ParsePath(sc.Firehose.MetadataField)
		}
		if sc.ErrorSink != "" {
			rt.errorSink = sinkIdx[sc.ErrorSink]
		} else if cfg.Service.ErrorSink != "" {
			rt.errorSink = sinkIdx[cfg.Service.ErrorSink]
		}
		newSource, ok := sources.Lookup(sc.Type)
		if o.mem != nil {
			// processor test: every source yields the test's messages.
			newSource, ok = func(sc *config.Source, _ sources.Env) (sources.Source, error) { return o.mem.source(sc.Name), nil }, true
		}
		if !ok {
			return nil, fmt.Errorf("source %s: type %s is not available in this build", sc.Name, sc.Type)
		}
		src, err := newSource(sc, sources.Env{Log: log, Relieve: p.relieveFor(rt), Replay: o.replay, From: o.from, To: o.to})
		if err != nil {
			return nil, err
		}
		rt.src = src
		// Optional abilities, checked once here.
		rt.checkpointer, _ = src.(sources.Checkpointer)
		rt.progress, _ = src.(sources.ProgressReporter)
		rt.errReporter, _ = src.(sources.ErrReporter)
		if r, ok := src.(lifecycle.Runner); ok {
			p.runners = append(p.runners, runner{"source " + sc.Name, r})
		}
		p.sources = append(p.sources, rt)
		srcIdx[sc.Name] = i
	}
	for i := range cfg.Routes {
		rc := &cfg.Routes[i]
		rt := &routeRT{name: rc.Name, idx: i, errSink: map[int]int{}}
		x, err := rc.Match.Value()
		if err == nil {
			rt.pattern, err = routing.CompilePattern(x)
		}
		if err == nil {
			rt.chain, err = transforms.Compile(rc.Transforms)
		}
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", rc.Name, err)
		}
		for _, to := range rc.To {
			rt.to = append(rt.to, sinkIdx[to])
		}
		for _, from := range rc.From {
			si := srcIdx[from]
			src := p.sources[si]
			src.routes = append(src.routes, rt)
			switch {
			case rc.ErrorSink != "":
				rt.errSink[si] = sinkIdx[rc.ErrorSink]
			default:
				rt.errSink[si] = src.errorSink
			}
		}
		p.routes = append(p.routes, rt)
	}
	for _, src := range p.sources {
		src.sinks = p.reachable(src)
	}
	return p, nil
}

// reachable lists the sinks src's records can be written to: its routes'
// sinks and error outputs, its own error output, and the error sinks of
// those (OpenSearch hands failures to one).
func (p *Pipeline) reachable(src *sourceRT) []int {
	seen := make([]bool, len(p.sinks))
	var out []int
	add := func(i int) {
		if i >= 0 && !seen[i] {
			seen[i] = true
			out = append(out, i)
		}
	}
	add(src.errorSink)
	si := slices.Index(p.sources, src)
	for _, rt := range src.routes {
		for _, to := range rt.to {
			add(to)
		}
		if es, ok := rt.errSink[si]; ok {
			add(es)
		}
	}
	for _, i := range slices.Clone(out) {
		for j, s := range p.sinks {
			if s.Name() == p.sinks[i].ErrorSink() {
				add(j)
			}
		}
	}
	return out
}

// flushOrder orders sinks so that each sink that hands failures to its
// error sink (a sinks.ErrorSinkUser) is flushed and closed before that
// error sink, which then makes what it was handed durable. Otherwise the
// configured order is kept.
func flushOrder(ss []sinks.Sink) []sinks.Sink {
	byName := make(map[string]sinks.Sink, len(ss))
	for _, s := range ss {
		byName[s.Name()] = s
	}
	// hops counts the hand-overs that follow s's failures: a sink that
	// hands over must come before every sink after it on that chain.
	hops := func(s sinks.Sink) int {
		n := 0
		for range ss {
			if _, ok := s.(sinks.ErrorSinkUser); !ok {
				break
			}
			next, ok := byName[s.ErrorSink()]
			if !ok || next == s {
				break
			}
			n++
			s = next
		}
		return n
	}
	out := slices.Clone(ss)
	slices.SortStableFunc(out, func(a, b sinks.Sink) int { return hops(b) - hops(a) })
	return out
}

// relieveFor returns the hook a source calls while it waits at its pending
// cap: it asks the sinks the source's records can reach to flush their
// oldest buffers. Sinks the source does not write to are left alone, so a
// sink that is stuck cannot hold a source that never uses it.
func (p *Pipeline) relieveFor(src *sourceRT) func() {
	return func() {
		p.log.Debug("source at its pending cap; flushing oldest partitions", zap.String("source", src.cfg.Name))
		for _, i := range src.sinks {
			p.sinks[i].Relieve(context.Background())
		}
	}
}

// abort closes every sink and source opened so far, after a failure. A
// done context tells each sink to stop retrying now: what it has not
// written stays unacked, so no source checkpoints past it. The sources
// close after the sinks, keeping the checkpoints they reached.
func (p *Pipeline) abort() error {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	return p.closeAll(done, flushOrder(p.sinks))
}

// closeAll closes the sinks in the given order, then the sources, and
// returns every error: each Close error naming its component, and the
// failures of sources that report them after the end (sources.ErrReporter).
func (p *Pipeline) closeAll(ctx context.Context, order []sinks.Sink) error {
	var errs []error
	for _, s := range order {
		if err := s.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close sink %s: %w", s.Name(), err))
		}
	}
	for _, src := range p.sources {
		// A source whose acks failed after it was read to the end says so
		// now that every sink is closed and every ack has fired.
		if src.errReporter != nil {
			if err := src.errReporter.Err(); err != nil {
				errs = append(errs, err)
			}
		}
		if err := src.src.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close source %s: %w", src.cfg.Name, err))
		}
	}
	return errors.Join(errs...)
}

// logClose logs what went wrong closing components after a failure: the
// failure itself is what the caller returns.
func (p *Pipeline) logClose(err error) {
	if err != nil {
		p.log.Warn("closing after a failure", zap.Error(err))
	}
}

// Ready reports whether the pipeline is running and not shutting down.
func (p *Pipeline) Ready() bool { return p.ready.Load() }

// FailingSinks lists the sinks whose last write attempt failed, for
// /readyz.
func (p *Pipeline) FailingSinks() []sinks.SinkHealth {
	var out []sinks.SinkHealth
	for _, s := range p.sinks {
		if hr, ok := s.(sinks.HealthReporter); ok {
			if h, failing := hr.Health(); failing {
				out = append(out, h)
			}
		}
	}
	return out
}

// job is one batch on its way through the workers.
type job struct {
	seq   uint64
	src   int
	batch record.Batch
	ack   record.AckFunc
}

// result is a processed batch waiting for its turn in its source's
// sequencer.
type result struct {
	seq     uint64
	ack     record.AckFunc
	pending []sinks.Pending // by sink index; nil where nothing was written
	err     error           // set when the batch was abandoned
}

// Run reads until every finite source is exhausted or ctx is cancelled,
// then flushes, waits for every ack and closes the sinks and sources. On
// cancellation the flush gets service.shutdown_timeout.
//
// Every component's background work (lifecycle.Runner) runs in one group
// for the whole of Run: started before the first read, ended once every
// component is closed. A component whose Run fails fails the pipeline as
// a stage would.
func (p *Pipeline) Run(ctx context.Context) (err error) {
	work, cancelWork := context.WithCancelCause(context.Background())
	defer cancelWork(nil)
	runCtx, stopRunners := context.WithCancel(context.Background())
	var runners errgroup.Group
	for _, r := range p.runners {
		runners.Go(func() error {
			if err := r.Run(runCtx); err != nil {
				err = fmt.Errorf("%s: %w", r.name, err)
				cancelWork(err)
				return err
			}
			return nil
		})
	}
	defer func() {
		// Closing ended every Run; runCtx is only the backstop.
		stopRunners()
		if rerr := runners.Wait(); err == nil {
			err = rerr
		}
	}()
	// A shutdown signal stops reading at once; everything already read still
	// gets flushed, within shutdown_timeout.
	stopHard := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(p.cfg.Service.ShutdownTimeout.D(), func() {
			cancelWork(fmt.Errorf("shutdown_timeout %s exceeded", p.cfg.Service.ShutdownTimeout.D()))
		})
		context.AfterFunc(work, func() { t.Stop() })
	})
	defer stopHard()

	jobs := make(chan job)
	for _, src := range p.sources {
		src.slots = make(chan struct{}, inFlightPerSource*p.workers)
		src.results = make(chan result, cap(src.slots))
	}
	g, gctx := errgroup.WithContext(work)
	// Reading stops on a signal (ctx) or on a failure elsewhere (gctx); a
	// read blocked at the pending cap must notice either.
	readCtx, stopRead := context.WithCancel(gctx)
	defer stopRead()
	context.AfterFunc(ctx, stopRead)
	g.Go(func() error {
		defer close(jobs)
		return p.read(ctx, readCtx, gctx, jobs)
	})
	var wg sync.WaitGroup
	for range p.workers {
		wg.Add(1)
		// A worker's jq evaluations end when the pipeline goes down hard
		// (shutdown_timeout passed, or a stage failed): a slow or hostile
		// program never holds up shutdown.
		w := p.newWorker(gctx)
		go func() {
			defer wg.Done()
			for j := range jobs {
				// Never blocks: the reader holds one of the source's slots
				// for this batch, and results has room for all of them.
				p.sources[j.src].results <- w.process(j)
			}
		}()
	}
	go func() {
		wg.Wait()
		for _, src := range p.sources {
			close(src.results)
		}
	}()
	for _, src := range p.sources {
		g.Go(func() error { return p.sequence(gctx, src) })
	}
	p.ready.Store(true)
	err = g.Wait()
	p.ready.Store(false)
	if err != nil {
		// Wait for the workers to exit; what they processed is dropped
		// unacked.
		for _, src := range p.sources {
			for range src.results {
			}
		}
		if cause := context.Cause(work); cause != nil && errors.Is(err, context.Canceled) {
			err = cause // shutdown_timeout passed: say so, not "context canceled"
		}
		cancelWork(err)
		p.logClose(p.abort())
		return err
	}
	for _, s := range p.order {
		if err := s.Flush(work); err != nil {
			p.logClose(p.abort())
			if cause := context.Cause(work); cause != nil && errors.Is(err, context.Canceled) {
				return cause
			}
			return err
		}
	}
	return p.closeAll(work, p.order)
}

// read pulls batches from the sources, each source on a goroutine of its
// own, numbering each source's batches in read order for its sequencer.
// stop is the shutdown signal; readCtx ends a blocked read on a signal or a
// failure; a batch already read is still handed on unless the pipeline
// failed (sendCtx), since workers drain on shutdown.
func (p *Pipeline) read(stop, readCtx, sendCtx context.Context, jobs chan<- job) error {
	send := func(s *sourceRT, j job) bool {
		// A slot first: while the source's sinks hold its batches, the
		// source waits here, and only it.
		select {
		case s.slots <- struct{}{}:
		case <-sendCtx.Done():
			j.ack(sendCtx.Err())
			return false
		}
		select {
		case jobs <- j:
			return true
		case <-sendCtx.Done():
			j.ack(sendCtx.Err())
			return false
		}
	}
	readOne := func(i int) error {
		s := p.sources[i]
		var seq uint64
		for {
			if stop.Err() != nil {
				return nil
			}
			b, ack, err := s.src.ReadBatch(readCtx)
			if errors.Is(err, io.EOF) {
				p.log.Info("source finished", zap.String("source", s.cfg.Name))
				return nil
			}
			if err != nil {
				if readCtx.Err() != nil {
					return nil
				}
				return fmt.Errorf("source %s: %w", s.cfg.Name, err)
			}
			if !send(s, job{seq: seq, src: i, batch: b, ack: ack}) {
				return nil
			}
			seq++
		}
	}
	var g errgroup.Group
	for i := range p.sources {
		g.Go(func() error { return readOne(i) })
	}
	return g.Wait()
}

// sequence appends a source's results to the sinks in read order, giving
// the source's slot back for each batch appended.
func (p *Pipeline) sequence(ctx context.Context, src *sourceRT) error {
	waiting := map[uint64]result{}
	var next uint64
	for r := range src.results {
		waiting[r.seq] = r
		for {
			r, ok := waiting[next]
			if !ok {
				break
			}
			delete(waiting, next)
			next++
			if r.err != nil {
				r.ack(r.err)
				return r.err
			}
			group := record.NewAckGroup(r.ack)
			for i, pend := range r.pending {
				if pend == nil {
					continue
				}
				if err := p.sinks[i].Append(ctx, pend, group.Add()); err != nil {
					group.Seal()
					return fmt.Errorf("sink %s: %w", p.sinks[i].Name(), err)
				}
			}
			group.Seal()
			<-src.slots
		}
	}
	return nil
}

// worker holds the per-goroutine state: decoders, parsers, arenas, sink
// writers.
type worker struct {
	p        *Pipeline
	decoders []*decode.Decoder
	writers  []sinks.Writer
	tctx     transforms.Context
	jq       *jq.Env // bounds every jq evaluation of this worker
	reparse  fastjson.Parser
	stamp    []uint64 // per sink: the record counter when last written
	recNo    uint64
	route    *routeRT // route of the record being emitted
	src      int
	// sinkRecords counts records handed to each sink in the current batch.
	sinkRecords []int64
	// in is the copy of a record a route's chain works on, and deliverFn
	// and failFn the chains' callbacks: kept here, so that routing a
	// record allocates nothing.
	in        record.Record
	deliverFn transforms.Emit
	failFn    transforms.Fail
}

func (p *Pipeline) newWorker(ctx context.Context) *worker {
	w := &worker{p: p, stamp: make([]uint64, len(p.sinks)), sinkRecords: make([]int64, len(p.sinks))}
	w.deliverFn, w.failFn = w.deliver, w.transformFailed
	lim := p.cfg.Service.JQ
	w.jq = jq.NewEnv(ctx, jq.Limits{Timeout: lim.Timeout.D(), MaxOutputs: lim.MaxOutputs, MaxOutputBytes: int64(lim.MaxOutputBytes)})
	w.tctx.JQ = w.jq
	for _, s := range p.sources {
		d, err := decode.New(s.cfg.Name, s.cfg.Format, s.cfg.EventTime.Field, s.cfg.EventTime.Unit)
		if err != nil {
			panic(err) // formats are validated with the config
		}
		w.decoders = append(w.decoders, d)
	}
	for _, s := range p.sinks {
		wr := s.NewWriter()
		if jw, ok := wr.(sinks.JQWriter); ok {
			jw.SetJQ(w.jq)
		}
		w.writers = append(w.writers, wr)
	}
	return w
}

type batchCounts struct {
	records, decodeFailed, unmatched, routed int64
}

func (w *worker) process(j job) result {
	src := w.p.sources[j.src]
	w.src = j.src
	var bc batchCounts
	routeCounts := make([]transforms.Stats, len(src.routes))
	matched := make([]int64, len(src.routes))
	dec := w.decoders[j.src]
	var cur *record.Message
	metaPath := src.metaPath
	emit := func(rec *record.Record) {
		bc.records++
		w.recNo++
		w.tctx.Reset()
		if metaPath != nil && cur.Meta != nil && rec.Value != nil {
			addMeta(&w.tctx.Arena, rec.Value, metaPath, cur.Meta)
		}
		took, dirty := false, false
		for i, rt := range src.routes {
			if rt.pattern != nil && !rt.pattern.Match(rec.Value) {
				continue
			}
			if dirty {
				v, err := w.reparse.ParseBytes(rec.Raw)
				if err != nil {
					panic(fmt.Sprintf("re-parse of decoded record failed: %v", err))
				}
				rec.Value = v
				if metaPath != nil && cur.Meta != nil {
					addMeta(&w.tctx.Arena, rec.Value, metaPath, cur.Meta)
				}
			}
			took = true
			matched[i]++
			w.route = rt
			w.in = *rec
			rt.chain.Run(&w.tctx, &w.in, &routeCounts[i], w.deliverFn, w.failFn)
			dirty = dirty || rt.chain.Mutates()
		}
		if took {
			bc.routed++
		} else {
			bc.unmatched++
		}
	}
	fail := func(e *decode.Error) {
		bc.records++
		bc.decodeFailed++
		w.recNo++
		m := messageOf(j.batch, e.Pos)
		origin := src.cfg.Name
		if m.Origin != "" {
			origin = m.Origin
		}
		code := "Sluice.DecodeFailed"
		if _, ok := errors.AsType[*record.ReadError](e.Err); ok {
			code = "Sluice.ReadFailed" // the source could not read this part of its input
		}
		w.writeFailure(src.errorSink, "", &sinks.Failure{Type: sinks.ProcessingFailed, Code: code, Message: e.Err.Error(),
			Source: origin, Pos: e.Pos, Raw: e.Raw, Arrival: m.Arrival, Event: m.Arrival})
	}
	for i := range j.batch.Messages {
		cur = &j.batch.Messages[i]
		dec.Decode(cur, emit, fail)
	}
	if w.jq.Canceled() {
		return w.abandon(j)
	}
	src.stats.Messages.Add(int64(len(j.batch.Messages)))
	src.stats.Records.Add(bc.records)
	src.stats.DecodeFailed.Add(bc.decodeFailed)
	src.stats.Unmatched.Add(bc.unmatched)
	src.stats.Routed.Add(bc.routed)
	name := src.cfg.Name
	metrics.SourceMessages.WithLabelValues(name).Add(float64(len(j.batch.Messages)))
	metrics.SourceRecords.WithLabelValues(name).Add(float64(bc.records))
	metrics.DecodeFailed.WithLabelValues(name).Add(float64(bc.decodeFailed))
	metrics.Unmatched.WithLabelValues(name).Add(float64(bc.unmatched))
	for i, rt := range src.routes {
		rc := routeCounts[i]
		rt.stats.Matched.Add(matched[i])
		rt.stats.Out.Add(rc.Out)
		rt.stats.Filtered.Add(rc.Filtered)
		rt.stats.Failed.Add(rc.Failed)
		metrics.RouteMatched.WithLabelValues(rt.name).Add(float64(matched[i]))
		metrics.RouteOut.WithLabelValues(rt.name).Add(float64(rc.Out))
		metrics.RouteFiltered.WithLabelValues(rt.name).Add(float64(rc.Filtered))
		metrics.RouteFailed.WithLabelValues(rt.name).Add(float64(rc.Failed))
	}
	r := result{seq: j.seq, ack: j.ack, pending: make([]sinks.Pending, len(w.writers))}
	for i, wr := range w.writers {
		r.pending[i] = wr.Take()
		if n := w.sinkRecords[i]; n > 0 {
			metrics.SinkRecords.WithLabelValues(w.p.sinks[i].Name()).Add(float64(n))
			w.p.sinkStats[i].Received.Add(n)
			w.sinkRecords[i] = 0
		}
	}
	return r
}

// abandon drops what the worker made of a batch whose jq evaluations were
// canceled: a canceled record was neither written nor failed, so the
// batch must not be acked as handled. Its ack gets the error from the
// sequencer, which stops there; the records are read again on the next
// run.
func (w *worker) abandon(j job) result {
	for _, wr := range w.writers {
		wr.Take()
	}
	clear(w.sinkRecords)
	return result{seq: j.seq, ack: j.ack, err: fmt.Errorf("batch abandoned, jq evaluations canceled: %w", context.Canceled)}
}

func messageOf(b record.Batch, pos record.Position) *record.Message {
	for i := range b.Messages {
		m := &b.Messages[i]
		if m.Pos.Partition == pos.Partition && m.Pos.Offset == pos.Offset {
			return m
		}
	}
	return &record.Message{}
}

// claim marks that the current record was written to sink i and returns
// the position to use: a record that reaches the same sink a second time
// (through another route) gets the route's name in its position, so its
// object name and id differ from the first copy's.
func (w *worker) claim(i int, route string, pos record.Position) record.Position {
	if w.stamp[i] == w.recNo {
		pos.Sub += "~" + route
	}
	w.stamp[i] = w.recNo
	return pos
}

// deliver sends a transformed record to the route's sinks.
func (w *worker) deliver(rec *record.Record) {
	rt := w.route
	w.p.tap.Publish(rt.name, w.p.cfg.Routes[rt.idx].To, rec) // one atomic load when nobody taps
	orig := rec.Pos
	for _, si := range rt.to {
		rec.Pos = w.claim(si, rt.name, orig)
		w.sinkRecords[si]++
		if f := w.writers[si].Write(rec); f != nil {
			f.Route = rt.name
			metrics.SinkFailed.WithLabelValues(f.Sink, f.Type).Inc()
			w.p.sinkStats[si].Failed.Add(1)
			w.writeFailure(w.sinkIndex(w.p.sinks[si].ErrorSink()), rt.name, f)
		}
	}
	rec.Pos = orig
}

func (w *worker) sinkIndex(name string) int {
	for i, s := range w.p.sinks {
		if s.Name() == name {
			return i
		}
	}
	return -1
}

func (w *worker) transformFailed(rec *record.Record, err error) {
	rt := w.route
	code := "Sluice.TransformFailed"
	if le := (*jq.LimitError)(nil); errors.As(err, &le) {
		code = "Sluice.JQLimitExceeded"
	}
	w.writeFailure(rt.errSink[w.src], rt.name, &sinks.Failure{Type: sinks.ProcessingFailed, Code: code, Message: err.Error(),
		Source: rec.Source, Route: rt.name, Pos: rec.Pos, Raw: rec.Raw, Arrival: rec.Arrival, Event: rec.EventTime})
}

func (w *worker) writeFailure(sink int, route string, f *sinks.Failure) {
	if sink < 0 {
		// Validation guarantees an error sink for every failure; reaching
		// here is a bug, and dropping the record silently is not an option.
		panic(fmt.Sprintf("no error sink for %s failure of %s", f.Type, f.Pos))
	}
	f.Pos = w.claim(sink, route, f.Pos)
	f.Route = route
	w.writers[sink].WriteFailure(f)
}
