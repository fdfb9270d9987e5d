package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
)

type reloadReq struct {
	cfg   *config.Config
	reply chan reloadResult
}

type reloadResult struct {
	changes Changes
	err     error
}

// Reload swaps cfg in for the running configuration, at a batch boundary,
// and returns what changed. cfg must be valid (config.Parse validates).
//
// Batches already read finish under the configuration they were read
// under. New batches wait while every sink flushes what the old
// configuration handed it, so that every record read before the swap is
// durable, and its source checkpointed, before a record is routed by the
// new one. Then sinks that are gone or changed are closed (changed ones
// reopened), sources that are gone or changed are closed at their
// checkpoint (changed ones reopened, reading on from it), and reading
// resumes. Sources and sinks whose settings did not change go on as they
// are: a Kafka source keeps its group membership, a Kinesis source its
// leases.
//
// An error from Reload means the new configuration is not in force and the
// old one runs on, except where the pipeline itself failed (a sink that
// could not flush), which Run then returns.
func (p *Pipeline) Reload(ctx context.Context, cfg *config.Config) (Changes, error) {
	req := reloadReq{cfg: cfg, reply: make(chan reloadResult, 1)}
	select {
	case p.reloads <- req:
	case <-p.stopped:
		return Changes{}, ErrNotRunning
	case <-ctx.Done():
		return Changes{}, ctx.Err()
	}
	// Once taken, a reload runs to its end: its answer always comes.
	r := <-req.reply
	return r.changes, r.err
}

// apply carries out one reload in Run's controller. fatal reports an
// error that fails the pipeline (the old plan could not be made durable,
// or a changed source could not be reopened); other errors leave the old
// plan running untouched.
func (p *Pipeline) apply(rn *running, cfg *config.Config) (_ Changes, _ error, fatal bool) {
	old := p.cur.Load()
	ch := Diff(old.cfg, cfg)
	pl, err := p.build(cfg, old)
	if err != nil {
		return ch, err, false
	}
	start := time.Now()
	// Hold new batches back until pl is in place.
	p.gateMu.Lock()
	p.paused = make(chan struct{})
	p.gateMu.Unlock()
	defer func() {
		p.gateMu.Lock()
		if !fatal {
			p.cur.Store(pl)
		}
		close(p.paused)
		p.paused = nil
		p.gateMu.Unlock()
	}()
	abandon := func(err error) (Changes, error, bool) {
		done, cancel := context.WithCancel(context.Background())
		cancel()
		for _, s := range pl.sinks {
			if !slices.Contains(old.sinks, s) {
				s.Close(done)
			}
		}
		for _, src := range pl.sources {
			if src.sourceRun != nil && old.byRun[src.sourceRun] == nil {
				src.src.Close(done)
			}
		}
		return ch, err, true
	}
	// Every batch admitted under the old plan appended to its sinks...
	drained := make(chan struct{})
	go func() { old.inflight.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-rn.sendCtx.Done():
		return abandon(fmt.Errorf("reload: the pipeline failed: %w", context.Cause(rn.sendCtx)))
	}
	// ... and durable, its acks fired and its sources' checkpoints
	// advanced.
	for _, s := range old.order {
		if err := s.Flush(rn.work); err != nil {
			return abandon(fmt.Errorf("reload: flush sink %s: %w", s.Name(), err))
		}
	}
	// Close what the new plan does not keep: sinks first, as at shutdown,
	// then sources at their checkpoints.
	var errs []error
	p.relieveMu.Lock()
	for _, s := range old.order {
		if !slices.Contains(pl.sinks, s) {
			if err := s.Close(rn.work); err != nil {
				errs = append(errs, fmt.Errorf("close sink %s: %w", s.Name(), err))
			}
		}
	}
	p.relieveMu.Unlock()
	for _, src := range old.sources {
		if pl.byRun[src.sourceRun] != nil {
			continue
		}
		src.stopRead()
		// No batch of it is in flight (drained above) and none can be
		// admitted any more: its sequencer ends here.
		src.closeResults()
		if err := closeSource(rn.work, src.sourceRun); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		// What was flushed is durable; a close error is reported, not
		// fatal: nothing of the old plan is left to lose.
		p.log.Warn("reload: closing replaced components", zap.Error(err))
	}
	for _, up := range pl.updates {
		up.u.Update(up.cfg)
	}
	// Changed sources reopen now that their predecessors are closed.
	for _, src := range pl.pending {
		run, r, err := p.openSource(&cfg.Sources[src.idx])
		if err != nil {
			return abandon(fmt.Errorf("reload: reopen source %s: %w", cfg.Sources[src.idx].Name, err))
		}
		src.sourceRun = run
		pl.byRun[run] = src
		if r != nil {
			pl.runners = append(pl.runners, *r)
		}
		p.statsMu.Lock()
		p.srcLatest[run.cfg.Name] = run
		p.statsMu.Unlock()
	}
	for _, r := range pl.runners {
		rn.startRunner(r)
	}
	for _, src := range pl.sources {
		if old.byRun[src.sourceRun] != nil {
			continue // reading on
		}
		src.start(rn.readCtx, rn.inFlight)
		run := src.sourceRun
		rn.g.Go(func() error { return p.sequence(rn.sendCtx, run) })
		rn.startReader(src)
	}
	var routes, sinkNames []string
	for _, r := range cfg.Routes {
		routes = append(routes, r.Name)
	}
	for _, s := range cfg.Sinks {
		sinkNames = append(sinkNames, s.Name)
	}
	p.tap.SetNames(routes, sinkNames)
	ch.Paused = time.Since(start)
	p.log.Debug("reload applied at a batch boundary", zap.Duration("paused", ch.Paused), zap.Stringer("changes", ch))
	return ch, nil, false
}
