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
	"strings"
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

// ErrNotRunning is what Reload returns when the pipeline is not running
// (not started yet, or stopping).
var ErrNotRunning = errors.New("the pipeline is not running")

// Pipeline is a configured, runnable pipeline.
type Pipeline struct {
	log  *zap.Logger
	opts options
	// stuckGrace is how long Run waits, once shutdown_timeout has passed,
	// for source reads that ignore their context, before it returns
	// without them (see Run).
	stuckGrace time.Duration
	// readingMu guards reading: the sources inside ReadBatch, by name.
	readingMu sync.Mutex
	reading   map[string]int
	// cur is the plan new batches are admitted under; a reload swaps it.
	cur     atomic.Pointer[plan]
	workers int
	ready   atomic.Bool
	replay  bool // reading a time range: every source ends
	tap     *tap.Hub

	// gate holds new batches back while a reload swaps plans: paused is
	// non-nil (and open) from the moment a reload starts until the new
	// plan is in place.
	gateMu sync.Mutex
	paused chan struct{}
	// relieveMu keeps a source's relieve hook off a sink a reload is
	// closing.
	relieveMu sync.RWMutex

	reloads chan reloadReq
	stopped chan struct{} // closed when Run no longer takes reloads

	// Counts by component name, kept across reloads for the summary.
	statsMu    sync.Mutex
	srcNames   []string
	srcStats   map[string]*SourceStats
	srcLatest  map[string]*sourceRun
	routeNames []string
	routeStats map[string]*RouteStats
	sinkNames  []string
	sinkStats  map[string]*SinkStats
	sinkInst   map[string][]sinks.Sink // every instance a name had
	// pending is the balance's "in" of the batches counted but not yet
	// acked (see Summary.Pending).
	pending atomic.Int64
}

// plan is what one configuration makes of the components: the sources
// read, the routes compiled, the sinks written to. A batch is processed
// and appended under the plan it was admitted under; a reload builds a new
// plan and swaps it in at a batch boundary.
type plan struct {
	cfg     *config.Config
	sources []*sourceRT
	routes  []*routeRT
	sinks   []sinks.Sink
	// order is sinks in flush and close order (see flushOrder).
	order []sinks.Sink
	// sinkStats counts what the workers handed each sink.
	sinkStats []*SinkStats
	byRun     map[*sourceRun]*sourceRT
	// runners are the components this plan opened that have background
	// work (lifecycle.Runner); Run starts them.
	runners []runner
	// pending are the sources whose settings changed: the reload opens
	// them once their predecessors are closed.
	pending []*sourceRT
	// updates are the changed sources that take their new settings in
	// place (sources.Updater), at the swap.
	updates []sourceUpdate
	// inflight counts the batches admitted under this plan and not yet
	// appended to its sinks.
	inflight sync.WaitGroup
}

type sourceUpdate struct {
	u   sources.Updater
	cfg *config.Source
}

// SetTap publishes every record a route hands to its sinks to h (for
// GET /tap). Call it before Run.
func (p *Pipeline) SetTap(h *tap.Hub) { p.tap = h }

// Config returns the configuration running now.
func (p *Pipeline) Config() *config.Config { return p.cur.Load().cfg }

// runner is a component's background work, with the name its errors carry.
type runner struct {
	name string // "sink NAME", "source NAME"
	lifecycle.Runner
}

// sourceRun is an opened source and what reading it needs, for as long as
// it is open: across reloads that leave its settings alone.
type sourceRun struct {
	cfg   *config.Source
	src   sources.Source
	stats *SourceStats // shared by every run of the same name
	// The source's optional abilities, found once when it is opened; nil
	// where it has none.
	checkpointer sources.Checkpointer
	progress     sources.ProgressReporter
	errReporter  sources.ErrReporter
	metaPath     jsonx.Path // where records get the message's metadata; nil: not added
	// slots bounds the batches between the reader and the sequencer;
	// results (as large) carries them from the workers to the sequencer.
	slots    chan struct{}
	results  chan result
	closeRes sync.Once
	// readCtx ends this source's reads; stopRead ends them when a reload
	// removes or replaces the source.
	readCtx  context.Context
	stopRead context.CancelFunc
}

// start prepares the run for reading under parent.
func (r *sourceRun) start(parent context.Context, inFlight int) {
	r.slots = make(chan struct{}, inFlight)
	r.results = make(chan result, inFlight)
	r.readCtx, r.stopRead = context.WithCancel(parent)
}

func (r *sourceRun) closeResults() { r.closeRes.Do(func() { close(r.results) }) }

// sourceRT is a source as one plan routes it.
type sourceRT struct {
	*sourceRun
	idx       int // in plan.sources
	errorSink int
	routes    []*routeRT // routes that read this source, in order
	// sinks are the indexes of every sink this source's records can reach:
	// its routes' sinks, error outputs, and the sinks those hand failures to.
	sinks []int
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
	stats   *RouteStats
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
func New(cfg *config.Config, log *zap.Logger, opts ...Option) (*Pipeline, error) {
	registerKinds()
	p := &Pipeline{log: log, stuckGrace: 5 * time.Second, workers: cfg.Service.Workers, reloads: make(chan reloadReq), stopped: make(chan struct{}),
		srcStats: map[string]*SourceStats{}, srcLatest: map[string]*sourceRun{}, routeStats: map[string]*RouteStats{},
		sinkStats: map[string]*SinkStats{}, sinkInst: map[string][]sinks.Sink{}}
	for _, opt := range opts {
		opt(&p.opts)
	}
	p.replay = p.opts.replay
	if p.workers <= 0 {
		p.workers = runtime.GOMAXPROCS(0)
	}
	pl, err := p.build(cfg, nil)
	if err != nil {
		return nil, err
	}
	p.cur.Store(pl)
	return p, nil
}

// build makes the plan for cfg. With old (a reload), the sinks and sources
// whose settings did not change are taken over from old, running; the
// others are opened new, except a source whose settings changed: apply
// opens it once its predecessor is closed, since two instances of one
// Kafka group member or Kinesis lease holder must never read at once. On
// failure build closes what it opened.
func (p *Pipeline) build(cfg *config.Config, old *plan) (_ *plan, err error) {
	pl := &plan{cfg: cfg, byRun: map[*sourceRun]*sourceRT{}}
	var keepSink, keepSource func(name string) bool
	if old != nil {
		ch := Diff(old.cfg, cfg)
		keepSink = func(n string) bool {
			return !slices.Contains(ch.Sinks.Added, n) && !slices.Contains(ch.Sinks.Changed, n)
		}
		keepSource = func(n string) bool {
			return !slices.Contains(ch.Sources.Added, n) && !slices.Contains(ch.Sources.Changed, n)
		}
	}
	var openedSinks []sinks.Sink
	var openedSources []*sourceRun
	defer func() {
		if err == nil {
			return
		}
		done, cancel := context.WithCancel(context.Background())
		cancel()
		var errs []error
		for _, s := range flushOrder(openedSinks) {
			errs = append(errs, s.Close(done))
		}
		for _, r := range openedSources {
			errs = append(errs, r.src.Close(done))
		}
		if err := errors.Join(errs...); err != nil {
			p.log.Warn("closing after a failure", zap.Error(err))
		}
	}()
	sinkIdx := map[string]int{}
	for i := range cfg.Sinks {
		sc := &cfg.Sinks[i]
		sinkIdx[sc.Name] = i
		if old != nil && keepSink(sc.Name) {
			pl.sinks = append(pl.sinks, old.sinks[slices.IndexFunc(old.sinks, func(s sinks.Sink) bool { return s.Name() == sc.Name })])
			continue
		}
		var s sinks.Sink
		var err error
		if p.opts.mem != nil {
			s, err = p.opts.mem.newSink(cfg, sc, p.log)
		} else {
			newSink, ok := sinks.Lookup(sc.Type)
			if !ok {
				return nil, fmt.Errorf("sink %s: type %s is not available in this build", sc.Name, sc.Type)
			}
			s, err = newSink(sc, sinks.Env{Log: p.log, ErrorSink: cmp.Or(sc.ErrorSink, cfg.Service.ErrorSink)})
		}
		if err != nil {
			return nil, err
		}
		openedSinks = append(openedSinks, s)
		pl.sinks = append(pl.sinks, s)
		if r, ok := s.(lifecycle.Runner); ok {
			pl.runners = append(pl.runners, runner{"sink " + sc.Name, r})
		}
	}
	for _, s := range openedSinks {
		if u, ok := s.(sinks.ErrorSinkUser); ok {
			i, ok := sinkIdx[s.ErrorSink()]
			if !ok {
				return nil, fmt.Errorf("sink %s: error sink %q is not configured", s.Name(), s.ErrorSink())
			}
			u.SetErrorSink(pl.sinks[i])
		}
	}
	pl.order = flushOrder(pl.sinks)
	srcIdx := map[string]int{}
	for i := range cfg.Sources {
		sc := &cfg.Sources[i]
		rt := &sourceRT{idx: i, errorSink: -1}
		if sc.ErrorSink != "" {
			rt.errorSink = sinkIdx[sc.ErrorSink]
		} else if cfg.Service.ErrorSink != "" {
			rt.errorSink = sinkIdx[cfg.Service.ErrorSink]
		}
		srcIdx[sc.Name] = i
		pl.sources = append(pl.sources, rt)
		switch {
		case old != nil && keepSource(sc.Name):
			prev := old.sources[slices.IndexFunc(old.sources, func(s *sourceRT) bool { return s.cfg.Name == sc.Name })]
			rt.sourceRun = prev.sourceRun
		case old != nil && slices.ContainsFunc(old.sources, func(s *sourceRT) bool { return s.cfg.Name == sc.Name }):
			prev := old.sources[slices.IndexFunc(old.sources, func(s *sourceRT) bool { return s.cfg.Name == sc.Name })]
			if u, ok := prev.src.(sources.Updater); ok && u.CanUpdate(sc) {
				rt.sourceRun = prev.sourceRun // changed in place by apply
				pl.updates = append(pl.updates, sourceUpdate{u, sc})
				break
			}
			pl.pending = append(pl.pending, rt) // changed: opened by apply
			continue
		default:
			run, r, err := p.openSource(sc)
			if err != nil {
				return nil, err
			}
			openedSources = append(openedSources, run)
			rt.sourceRun = run
			if r != nil {
				pl.runners = append(pl.runners, *r)
			}
		}
		pl.byRun[rt.sourceRun] = rt
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
			src := pl.sources[si]
			src.routes = append(src.routes, rt)
			switch {
			case rc.ErrorSink != "":
				rt.errSink[si] = sinkIdx[rc.ErrorSink]
			default:
				rt.errSink[si] = src.errorSink
			}
		}
		pl.routes = append(pl.routes, rt)
	}
	for _, src := range pl.sources {
		src.sinks = pl.reachable(src)
	}
	// Counts by name: a component that a reload replaces keeps counting
	// where its predecessor stopped.
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	for _, rt := range pl.routes {
		rt.stats = statsFor(p.routeStats, &p.routeNames, rt.name)
	}
	for i, s := range pl.sinks {
		pl.sinkStats = append(pl.sinkStats, statsFor(p.sinkStats, &p.sinkNames, s.Name()))
		if slices.Contains(openedSinks, s) {
			p.sinkInst[s.Name()] = append(p.sinkInst[s.Name()], pl.sinks[i])
		}
	}
	for _, run := range openedSources {
		p.srcLatest[run.cfg.Name] = run
	}
	return pl, nil
}

// statsFor returns name's counters in m, made (and name added to names)
// the first time.
func statsFor[T any](m map[string]*T, names *[]string, name string) *T {
	st, ok := m[name]
	if !ok {
		st = new(T)
		m[name] = st
		*names = append(*names, name)
	}
	return st
}

// openSource opens the source sc configures, with its counters, and the
// runner for its background work (nil if it has none).
func (p *Pipeline) openSource(sc *config.Source) (*sourceRun, *runner, error) {
	run := &sourceRun{cfg: sc}
	if sc.Type == "kafka" && sc.Kafka.MetadataField != "" {
		run.metaPath = jsonx.ParsePath(sc.Kafka.MetadataField)
	}
	if sc.Type == "firehose_http" && sc.Firehose.MetadataField != "" {
		run.metaPath = jsonx.ParsePath(sc.Firehose.MetadataField)
	}
	newSource, ok := sources.Lookup(sc.Type)
	if p.opts.mem != nil {
		// processor test: every source yields the test's messages.
		newSource, ok = func(sc *config.Source, _ sources.Env) (sources.Source, error) { return p.opts.mem.source(sc.Name), nil }, true
	}
	if !ok {
		return nil, nil, fmt.Errorf("source %s: type %s is not available in this build", sc.Name, sc.Type)
	}
	o := &p.opts
	src, err := newSource(sc, sources.Env{Log: p.log, Relieve: p.relieveFor(sc.Name), Replay: o.replay, From: o.from, To: o.to})
	if err != nil {
		return nil, nil, err
	}
	run.src = src
	// Optional abilities, checked once here.
	run.checkpointer, _ = src.(sources.Checkpointer)
	run.progress, _ = src.(sources.ProgressReporter)
	run.errReporter, _ = src.(sources.ErrReporter)
	p.statsMu.Lock()
	run.stats = statsFor(p.srcStats, &p.srcNames, sc.Name)
	p.statsMu.Unlock()
	if r, ok := src.(lifecycle.Runner); ok {
		return run, &runner{"source " + sc.Name, r}, nil
	}
	return run, nil, nil
}

// reachable lists the sinks src's records can be written to: its routes'
// sinks and error outputs, its own error output, and the error sinks of
// those (OpenSearch hands failures to one).
func (pl *plan) reachable(src *sourceRT) []int {
	seen := make([]bool, len(pl.sinks))
	var out []int
	add := func(i int) {
		if i >= 0 && !seen[i] {
			seen[i] = true
			out = append(out, i)
		}
	}
	add(src.errorSink)
	for _, rt := range src.routes {
		for _, to := range rt.to {
			add(to)
		}
		if es, ok := rt.errSink[src.idx]; ok {
			add(es)
		}
	}
	for _, i := range slices.Clone(out) {
		for j, s := range pl.sinks {
			if s.Name() == pl.sinks[i].ErrorSink() {
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
// cap: it asks the sinks the source's records can reach (under the plan in
// force) to flush their oldest buffers. Sinks the source does not write to
// are left alone, so a sink that is stuck cannot hold a source that never
// uses it.
func (p *Pipeline) relieveFor(name string) func() {
	return func() {
		p.log.Debug("source at its pending cap; flushing oldest partitions", zap.String("source", name))
		p.relieveMu.RLock()
		defer p.relieveMu.RUnlock()
		pl := p.cur.Load()
		if pl == nil {
			return
		}
		for _, src := range pl.sources {
			if src.sourceRun != nil && src.cfg.Name == name {
				for _, i := range src.sinks {
					pl.sinks[i].Relieve(context.Background())
				}
			}
		}
	}
}

// abort closes every sink and source of the plan, after a failure. A done
// context tells each sink to stop retrying now: what it has not written
// stays unacked, so no source checkpoints past it. The sources close after
// the sinks, keeping the checkpoints they reached.
func (p *Pipeline) abort() error {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	pl := p.cur.Load()
	return p.closeAll(done, pl, flushOrder(pl.sinks))
}

// closeAll closes the plan's sinks in the given order, then its sources,
// and returns every error: each Close error naming its component, and the
// failures of sources that report them after the end (sources.ErrReporter).
func (p *Pipeline) closeAll(ctx context.Context, pl *plan, order []sinks.Sink) error {
	var errs []error
	for _, s := range order {
		if err := s.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close sink %s: %w", s.Name(), err))
		}
	}
	for _, src := range pl.sources {
		if src.sourceRun != nil {
			errs = append(errs, closeSource(ctx, src.sourceRun))
		}
	}
	return errors.Join(errs...)
}

// closeSource closes a source once every sink it wrote to is closed or
// flushed and every ack has fired: a source whose acks failed after it was
// read to the end says so now (sources.ErrReporter).
func closeSource(ctx context.Context, run *sourceRun) error {
	var errs []error
	if run.errReporter != nil {
		if err := run.errReporter.Err(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := run.src.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("close source %s: %w", run.cfg.Name, err))
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
	for _, s := range p.cur.Load().sinks {
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
	plan  *plan
	src   *sourceRT
	seq   uint64
	batch record.Batch
	ack   record.AckFunc
}

// result is a processed batch waiting for its turn in its source's
// sequencer.
type result struct {
	plan    *plan
	seq     uint64
	ack     record.AckFunc
	pending []sinks.Pending // by sink index in plan; nil where nothing was written
	err     error           // set when the batch was abandoned
}

// running is what Run shares with the reloads it applies.
type running struct {
	stop     context.Context // the shutdown signal
	work     context.Context // ends when the pipeline must stop hard
	readCtx  context.Context // parent of every source's reads
	sendCtx  context.Context // ends when a stage failed
	g        *errgroup.Group // stages: the controller, the sequencers
	jobs     chan<- job
	inFlight int
	// startRunner runs a component's background work until Run ends.
	startRunner func(runner)
	// startReader reads a source until it ends or is stopped.
	startReader func(*sourceRT)
}

// Run reads until every finite source is exhausted or ctx is cancelled,
// then flushes, waits for every ack and closes the sinks and sources. On
// cancellation the flush gets service.shutdown_timeout. While it runs,
// Reload swaps in new configurations.
//
// Every component's background work (lifecycle.Runner) runs in one group
// for the whole of Run: started before the first read (or when a reload
// opens the component), ended once the component is closed. A component
// whose Run fails fails the pipeline as a stage would.
func (p *Pipeline) Run(ctx context.Context) (err error) {
	work, cancelWork := context.WithCancelCause(context.Background())
	defer cancelWork(nil)
	runCtx, stopRunners := context.WithCancel(context.Background())
	var runners errgroup.Group
	rn := &running{stop: ctx, work: work, inFlight: inFlightPerSource * p.workers}
	rn.startRunner = func(r runner) {
		runners.Go(func() error {
			if err := r.Run(runCtx); err != nil {
				err = fmt.Errorf("%s: %w", r.name, err)
				cancelWork(err)
				return err
			}
			return nil
		})
	}
	pl := p.cur.Load()
	for _, r := range pl.runners {
		rn.startRunner(r)
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
		d := p.cur.Load().cfg.Service.ShutdownTimeout.D()
		t := time.AfterFunc(d, func() {
			cancelWork(fmt.Errorf("shutdown_timeout %s exceeded", d))
		})
		context.AfterFunc(work, func() { t.Stop() })
	})
	defer stopHard()

	jobs := make(chan job)
	rn.jobs = jobs
	g, gctx := errgroup.WithContext(work)
	rn.g, rn.sendCtx = g, gctx
	// Reading stops on a signal (ctx) or on a failure elsewhere (gctx); a
	// read blocked at the pending cap must notice either.
	readCtx, stopRead := context.WithCancel(gctx)
	defer stopRead()
	context.AfterFunc(ctx, stopRead)
	rn.readCtx = readCtx
	for _, src := range pl.sources {
		src.start(readCtx, rn.inFlight)
		g.Go(func() error { return p.sequence(gctx, src.sourceRun) })
	}
	g.Go(func() error {
		defer close(jobs)
		return p.control(rn, stopRead)
	})
	var wg sync.WaitGroup
	for range p.workers {
		wg.Add(1)
		// A worker's jq evaluations end when the pipeline goes down hard
		// (shutdown_timeout passed, or a stage failed): a slow or hostile
		// program never holds up shutdown.
		w := &worker{p: p, ctx: gctx}
		go func() {
			defer wg.Done()
			for j := range jobs {
				// Never blocks: the reader holds one of the source's slots
				// for this batch, and results has room for all of them.
				j.src.results <- w.process(j)
			}
		}()
	}
	go func() {
		wg.Wait()
		// The controller has returned (jobs is closed): the plan is final.
		for _, src := range p.cur.Load().sources {
			src.closeResults()
		}
	}()
	p.ready.Store(true)
	waited := make(chan error, 1)
	go func() { waited <- g.Wait() }()
	select {
	case err = <-waited:
	case <-afterDone(work, p.stuckGrace):
		// The pipeline went down hard (shutdown_timeout passed, or a stage
		// failed), and still a read has not returned: a source stuck in a
		// call that ignores its context (a hung file system). Waiting for
		// it would hold the process past shutdown_timeout for as long as
		// the call hangs. Nothing it read was acked, so no checkpoint
		// passes it; the process ends and the next run reads it again.
		p.ready.Store(false)
		return fmt.Errorf("%w; %s did not return within %s of it: its batch is not acked and is read again on the next run",
			context.Cause(work), p.stuckReads(), p.stuckGrace)
	}
	p.ready.Store(false)
	pl = p.cur.Load()
	if err != nil {
		// Wait for the workers to exit; what they processed is dropped
		// unacked.
		for _, src := range pl.sources {
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
	for _, s := range pl.order {
		if err := s.Flush(work); err != nil {
			p.logClose(p.abort())
			if cause := context.Cause(work); cause != nil && errors.Is(err, context.Canceled) {
				return cause
			}
			return err
		}
	}
	return p.closeAll(work, pl, pl.order)
}

// control starts a reader per source and, while any reads, applies the
// reloads asked for. A reader's failure stops every read; control returns
// it once the last reader has stopped.
// afterDone returns a channel closed d after ctx is done.
func afterDone(ctx context.Context, d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	context.AfterFunc(ctx, func() {
		time.AfterFunc(d, func() { close(ch) })
	})
	return ch
}

// markReading counts a source in (+1) or out (-1) of ReadBatch.
func (p *Pipeline) markReading(name string, d int) {
	p.readingMu.Lock()
	defer p.readingMu.Unlock()
	if p.reading == nil {
		p.reading = map[string]int{}
	}
	if p.reading[name] += d; p.reading[name] == 0 {
		delete(p.reading, name)
	}
}

// stuckReads names the sources inside ReadBatch, for Run's error.
func (p *Pipeline) stuckReads() string {
	p.readingMu.Lock()
	defer p.readingMu.Unlock()
	if len(p.reading) == 0 {
		return "the pipeline's stages"
	}
	names := make([]string, 0, len(p.reading))
	for n := range p.reading {
		names = append(names, "source "+n)
	}
	slices.Sort(names)
	return "a read of " + strings.Join(names, ", ")
}

func (p *Pipeline) control(rn *running, stopAll context.CancelFunc) error {
	defer close(p.stopped)
	exited := make(chan error)
	live := 0
	rn.startReader = func(src *sourceRT) {
		live++
		run := src.sourceRun
		go func() { exited <- p.readSource(rn, run) }()
	}
	for _, src := range p.cur.Load().sources {
		rn.startReader(src)
	}
	var first error
	for live > 0 {
		select {
		case err := <-exited:
			live--
			if err != nil && first == nil {
				first = err
				stopAll()
			}
		case req := <-p.reloads:
			if rn.stop.Err() != nil || first != nil {
				req.reply <- reloadResult{err: ErrNotRunning}
				continue
			}
			ch, err, fatal := p.apply(rn, req.cfg)
			req.reply <- reloadResult{changes: ch, err: err}
			if fatal && first == nil {
				first = err
				stopAll()
			}
		}
	}
	return first
}

// readSource reads one source's batches, numbering them in read order for
// its sequencer, until the source ends, the pipeline stops, or a reload
// stops the source. A batch already read is still handed on unless the
// pipeline failed (sendCtx) or the source was stopped, since workers drain
// on shutdown.
func (p *Pipeline) readSource(rn *running, run *sourceRun) error {
	var seq uint64
	for {
		if rn.stop.Err() != nil {
			return nil
		}
		p.markReading(run.cfg.Name, 1)
		b, ack, err := run.src.ReadBatch(run.readCtx)
		p.markReading(run.cfg.Name, -1)
		if errors.Is(err, io.EOF) {
			p.log.Info("source finished", zap.String("source", run.cfg.Name))
			return nil
		}
		if err != nil {
			if run.readCtx.Err() != nil {
				return nil
			}
			return fmt.Errorf("source %s: %w", run.cfg.Name, err)
		}
		pl, src := p.admit(run)
		if src == nil {
			// Stopped by a reload (or the shutdown) at the gate: unacked,
			// so read again by whoever reads the source next.
			ack(fmt.Errorf("source %s stopped before the batch was processed", run.cfg.Name))
			return nil
		}
		if !p.send(rn, src, job{plan: pl, src: src, seq: seq, batch: b, ack: ack}) {
			pl.inflight.Done()
			return nil
		}
		seq++
	}
}

// admit waits while a reload swaps plans, then returns the plan in force
// and the source as it routes it, counting the batch in that plan's
// in-flight batches. The source is nil when the plan no longer reads the
// source, or its reads were stopped meanwhile.
func (p *Pipeline) admit(run *sourceRun) (*plan, *sourceRT) {
	for {
		p.gateMu.Lock()
		if p.paused == nil {
			pl := p.cur.Load()
			src := pl.byRun[run]
			if src != nil {
				pl.inflight.Add(1)
			}
			p.gateMu.Unlock()
			return pl, src
		}
		wait := p.paused
		p.gateMu.Unlock()
		select {
		case <-wait:
		case <-run.readCtx.Done():
			return nil, nil
		}
	}
}

// send hands a batch to the workers once the source has a slot: while the
// source's sinks hold its batches, the source waits here, and only it.
func (p *Pipeline) send(rn *running, src *sourceRT, j job) bool {
	select {
	case src.slots <- struct{}{}:
	case <-rn.sendCtx.Done():
		j.ack(rn.sendCtx.Err())
		return false
	}
	select {
	case rn.jobs <- j:
		return true
	case <-rn.sendCtx.Done():
		<-src.slots
		j.ack(rn.sendCtx.Err())
		return false
	}
}

// sequence appends a source's results to the sinks in read order, giving
// the source's slot back for each batch appended. A result is appended to
// the sinks of the plan it was processed under.
func (p *Pipeline) sequence(ctx context.Context, run *sourceRun) error {
	waiting := map[uint64]result{}
	var next uint64
	for r := range run.results {
		waiting[r.seq] = r
		for {
			r, ok := waiting[next]
			if !ok {
				break
			}
			delete(waiting, next)
			next++
			if err := p.appendResult(ctx, r); err != nil {
				return err
			}
			<-run.slots
		}
	}
	return nil
}

func (p *Pipeline) appendResult(ctx context.Context, r result) error {
	defer r.plan.inflight.Done()
	if r.err != nil {
		r.ack(r.err)
		return r.err
	}
	group := record.NewAckGroup(r.ack)
	defer group.Seal()
	for i, pend := range r.pending {
		if pend == nil {
			continue
		}
		if err := r.plan.sinks[i].Append(ctx, pend, group.Add()); err != nil {
			return fmt.Errorf("sink %s: %w", r.plan.sinks[i].Name(), err)
		}
	}
	return nil
}

// worker holds the per-goroutine state: decoders, parsers, arenas, sink
// writers, made for the plan of the batch at hand.
type worker struct {
	p        *Pipeline
	ctx      context.Context // ends the worker's jq evaluations
	pl       *plan           // the plan the state below is for
	decoders []*decode.Decoder
	writers  []sinks.Writer
	tctx     transforms.Context
	jq       *jq.Env // bounds every jq evaluation of this worker
	jqLim    config.JQLimits
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

// use makes the worker's state for pl, once per plan: a reload's first
// batch finds the worker's writers empty (each batch takes what it wrote).
func (w *worker) use(pl *plan) {
	if w.pl == pl {
		return
	}
	w.pl = pl
	w.deliverFn, w.failFn = w.deliver, w.transformFailed
	w.stamp, w.sinkRecords = make([]uint64, len(pl.sinks)), make([]int64, len(pl.sinks))
	if lim := pl.cfg.Service.JQ; w.jq == nil || lim != w.jqLim {
		w.jqLim = lim
		w.jq = jq.NewEnv(w.ctx, jq.Limits{Timeout: lim.Timeout.D(), MaxOutputs: lim.MaxOutputs, MaxOutputBytes: int64(lim.MaxOutputBytes)})
	}
	w.tctx.JQ = w.jq
	w.decoders = w.decoders[:0]
	for _, s := range pl.sources {
		d, err := decode.New(s.cfg.Name, s.cfg.Format, s.cfg.EventTime.Field, s.cfg.EventTime.Unit)
		if err != nil {
			panic(err) // formats are validated with the config
		}
		w.decoders = append(w.decoders, d)
	}
	w.writers = w.writers[:0]
	for _, s := range pl.sinks {
		wr := s.NewWriter()
		if jw, ok := wr.(sinks.JQWriter); ok {
			jw.SetJQ(w.jq)
		}
		w.writers = append(w.writers, wr)
	}
}

type batchCounts struct {
	records, decodeFailed, unmatched, routed int64
}

func (w *worker) process(j job) result {
	w.use(j.plan)
	src := j.src
	w.src = src.idx
	var bc batchCounts
	routeCounts := make([]transforms.Stats, len(src.routes))
	matched := make([]int64, len(src.routes))
	dec := w.decoders[src.idx]
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
	// The batch's share of the balance's "in" (Summary.Balance): its
	// records, less those routed, plus what its routes filtered or failed
	// and what its sinks received. It stays pending until the batch's ack.
	in := bc.records - bc.routed
	for i := range src.routes {
		in += routeCounts[i].Filtered + routeCounts[i].Failed
	}
	r := result{plan: j.plan, seq: j.seq, ack: j.ack, pending: make([]sinks.Pending, len(w.writers))}
	for i, wr := range w.writers {
		r.pending[i] = wr.Take()
		if n := w.sinkRecords[i]; n > 0 {
			in += n
			metrics.SinkRecords.WithLabelValues(w.pl.sinks[i].Name()).Add(float64(n))
			w.pl.sinkStats[i].Received.Add(n)
			w.sinkRecords[i] = 0
		}
	}
	// The closure takes the ack alone, not j: j holds the batch's
	// messages, which must not live until the ack (a lake partition may
	// hold its records for minutes).
	p, ack := w.p, j.ack
	p.pending.Add(in)
	r.ack = func(err error) {
		if err == nil {
			p.pending.Add(-in)
		}
		ack(err)
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
	return result{plan: j.plan, seq: j.seq, ack: j.ack, err: fmt.Errorf("batch abandoned, jq evaluations canceled: %w", context.Canceled)}
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
	w.p.tap.Publish(rt.name, w.pl.cfg.Routes[rt.idx].To, rec) // one atomic load when nobody taps
	orig := rec.Pos
	for _, si := range rt.to {
		rec.Pos = w.claim(si, rt.name, orig)
		w.sinkRecords[si]++
		if f := w.writers[si].Write(rec); f != nil {
			if w.jq.Canceled() {
				continue // its evaluation was canceled: the batch is abandoned and read again
			}
			f.Route = rt.name
			metrics.SinkFailed.WithLabelValues(f.Sink, f.Type).Inc()
			w.pl.sinkStats[si].Failed.Add(1)
			w.writeFailure(w.sinkIndex(w.pl.sinks[si].ErrorSink()), rt.name, f)
		}
	}
	rec.Pos = orig
}

func (w *worker) sinkIndex(name string) int {
	for i, s := range w.pl.sinks {
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
