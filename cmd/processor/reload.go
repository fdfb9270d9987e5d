package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/configsrc"
	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/pipeline"
)

// Reloader swaps the configuration of a running pipeline;
// *pipeline.Pipeline satisfies it.
type Reloader interface {
	// Reload runs cfg, already parsed and validated, from the next batch
	// boundary on, and returns what it changed. It blocks until cfg runs;
	// on an error the running configuration stays.
	Reload(ctx context.Context, cfg *config.Config) (pipeline.Changes, error)
	// Config returns the configuration running now.
	Config() *config.Config
}

// The results of a reload, as sluice_config_reloads_total counts them.
const (
	reloadApplied   = "applied"
	reloadRejected  = "rejected"
	reloadUnchanged = "unchanged"
	reloadFailed    = "failed"
)

// The triggers of a reload, as the log names them.
const (
	triggerSIGHUP = "SIGHUP"
	triggerWatch  = "file change"
	triggerPoll   = "poll"
)

// watchDebounce is how long the file watch waits after the last event
// before it reloads: an editor's save or a ConfigMap swap is several
// events, and they make one reload.
const watchDebounce = 200 * time.Millisecond

// reloader reads the configuration again when a trigger asks (SIGHUP,
// a change of the watched file, a poll of a remote document) and hands a
// new, valid one to the pipeline. Reloads run one at a time; triggers
// that arrive during one make one more after it.
type reloader struct {
	fetcher *configsrc.Fetcher
	target  Reloader
	log     *zap.Logger
	lookup  func(string) (string, bool)
	hup     <-chan os.Signal

	// hash is the SHA-256 of the running document, rejected that of the
	// last document found invalid. Only Run's goroutine uses them.
	hash, rejected string

	kick     chan struct{}      // a pending reload (capacity 1: triggers coalesce)
	settings chan config.Reload // service.reload after a reload changed it (capacity 1, latest wins)
	ready    chan struct{}      // closed once the watch and the poll are set up

	mu      sync.Mutex
	reasons []string // triggers since the last reload started
}

// newReloader builds a reloader for the pipeline target, running the
// document of SHA-256 hash that fetcher fetched. hup delivers SIGHUP (the
// caller calls signal.Notify, before the pipeline starts, so a SIGHUP
// never ends the process). Nothing starts before Run.
func newReloader(fetcher *configsrc.Fetcher, hash string, target Reloader, hup <-chan os.Signal, log *zap.Logger) *reloader {
	for _, result := range []string{reloadApplied, reloadRejected, reloadUnchanged, reloadFailed} {
		metrics.ConfigReloads.WithLabelValues(result) // every result shows in /metrics, at 0
	}
	return &reloader{
		fetcher:  fetcher,
		target:   target,
		log:      log,
		lookup:   os.LookupEnv,
		hup:      hup,
		hash:     hash,
		kick:     make(chan struct{}, 1),
		settings: make(chan config.Reload, 1),
		ready:    make(chan struct{}),
	}
}

// shortHash is how logs and sluice_config_info name a configuration.
func shortHash(h string) string { return h[:min(12, len(h))] }

// setConfigInfo makes hash the only series of sluice_config_info.
func setConfigInfo(hash string) {
	metrics.ConfigInfo.Reset()
	metrics.ConfigInfo.WithLabelValues(shortHash(hash)).Set(1)
}

// Run serves triggers until ctx ends, and then returns nil once the
// reload under way, if any, has returned.
func (r *reloader) Run(ctx context.Context) error {
	cur := r.target.Config().Service.Reload
	var wg sync.WaitGroup
	wg.Go(func() { r.triggers(ctx, cur) })
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
		}
		if ctx.Err() != nil {
			return nil
		}
		if s, ok := r.reload(ctx); ok && s != cur {
			cur = s
			select { // replace a value the trigger loop has not taken yet
			case <-r.settings:
			default:
			}
			r.settings <- s
		}
	}
}

// trigger asks for a reload; one already pending absorbs it.
func (r *reloader) trigger(reason string) {
	r.mu.Lock()
	if !slices.Contains(r.reasons, reason) {
		r.reasons = append(r.reasons, reason)
	}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *reloader) takeReasons() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	reasons := r.reasons
	r.reasons = nil
	return reasons
}

// reload fetches the document, and when its bytes are new and valid,
// swaps it in. It returns the service.reload settings of the document
// swapped in, and whether one was.
func (r *reloader) reload(ctx context.Context) (config.Reload, bool) {
	reasons := r.takeReasons()
	log := r.log.With(zap.String("trigger", strings.Join(reasons, ", ")))
	result, cfg := r.attempt(ctx, reasons, log)
	// Counted once everything about this reload is logged.
	metrics.ConfigReloads.WithLabelValues(result).Inc()
	if cfg == nil {
		return config.Reload{}, false
	}
	return cfg.Service.Reload, true
}

// attempt is one reload: its result, and the configuration it applied.
func (r *reloader) attempt(ctx context.Context, reasons []string, log *zap.Logger) (string, *config.Config) {
	doc, err := r.fetcher.Fetch(ctx)
	if err != nil {
		log.Warn("configuration reload failed: could not read the configuration; the running one stays",
			zap.String("config", r.fetcher.Ref().Raw), zap.Error(err))
		return reloadFailed, nil
	}
	hash := doc.Hash()
	fields := []zap.Field{zap.String("config", doc.Name), zap.String("hash", shortHash(hash))}
	switch {
	case hash == r.hash:
		log.Debug("configuration unchanged", fields...)
		return reloadUnchanged, nil
	case hash == r.rejected && !slices.ContainsFunc(reasons, func(s string) bool { return s != triggerPoll }):
		// A poll finds the document it rejected last time: it was logged
		// then. SIGHUP and a file change still say again what is wrong.
		log.Debug("configuration unchanged since it was rejected", fields...)
		return reloadUnchanged, nil
	}
	cfg, err := config.Parse(doc.Name, doc.Data, r.lookup)
	if err != nil {
		_, err = configProblems(cfg, err) // with validate's warnings: the log says what validate prints
		r.rejected = hash
		var errs config.Errors
		if !errors.As(err, &errs) {
			log.Warn("configuration rejected; the running one stays", append(fields, zap.Error(err))...)
			return reloadRejected, nil
		}
		log.Warn("configuration rejected; the running one stays", append(fields, zap.Int("errors", len(errs)-countWarnings(errs)))...)
		for _, e := range errs {
			msg := "configuration error"
			if e.Warning {
				msg = "configuration warning"
			}
			log.Warn(msg, zap.String("problem", e.Error())) // the text processor validate prints
		}
		return reloadRejected, nil
	}
	changes, err := r.target.Reload(ctx, cfg)
	if err != nil {
		log.Warn("configuration reload failed; the running one stays", append(fields, zap.Error(err))...)
		return reloadFailed, nil
	}
	previous := r.hash
	r.hash, r.rejected = hash, ""
	setConfigInfo(hash)
	log.Info("configuration reloaded", append(fields, zap.String("previous_hash", shortHash(previous)), zap.String("changes", changes.String()), zap.Duration("paused", changes.Paused))...)
	for _, key := range changes.Restart {
		log.Warn("setting changed; it takes effect at the next start", zap.String("key", key))
	}
	logWarnings(log, cfg)
	return reloadApplied, cfg
}

func countWarnings(errs config.Errors) int {
	n := 0
	for _, e := range errs {
		if e.Warning {
			n++
		}
	}
	return n
}

// logWarnings logs the warnings of a configuration that runs.
func logWarnings(log *zap.Logger, cfg *config.Config) {
	for _, w := range cfg.Warnings {
		log.Warn("configuration warning", zap.String("file", w.File), zap.Int("line", w.Line), zap.String("key", w.Path), zap.String("problem", w.Msg))
	}
}

// triggers turns SIGHUP, the file watch and the poll into reloads until
// ctx ends. s is the service.reload in force; a reload that changes it
// sends the new one on r.settings.
func (r *reloader) triggers(ctx context.Context, s config.Reload) {
	var (
		watch   *fileWatch
		ticker  *time.Ticker
		tick    <-chan time.Time
		settled = time.NewTimer(time.Hour) // the debounce of the file watch
		events  <-chan fsnotify.Event
		errs    <-chan error
	)
	settled.Stop()
	stopWatch := func() {
		if watch != nil {
			watch.close()
			watch, events, errs = nil, nil, nil
			settled.Stop()
		}
	}
	stopPoll := func() {
		if ticker != nil {
			ticker.Stop()
			ticker, tick = nil, nil
		}
	}
	defer stopWatch()
	defer stopPoll()
	var cur config.Reload // nothing set up yet
	ref := r.fetcher.Ref()
	apply := func(s config.Reload) {
		if s.Watch != cur.Watch {
			stopWatch()
			switch {
			case s.Watch && ref.Remote():
				r.log.Warn("service.reload.watch has no effect on a configuration fetched from "+kindName(ref)+"; set service.reload.poll to re-read it", zap.String("config", ref.Raw))
			case s.Watch:
				var err error
				if watch, err = newFileWatch(ref.Path); err != nil {
					r.log.Warn("service.reload.watch: cannot watch the configuration file; SIGHUP still reloads", zap.String("config", ref.Raw), zap.Error(err))
				} else {
					events, errs = watch.w.Events, watch.w.Errors
					r.log.Info("watching the configuration file", zap.String("config", ref.Raw), zap.String("directory", watch.dir))
				}
			}
		}
		if s.Poll != cur.Poll {
			stopPoll()
			switch p := s.Poll.D(); {
			case p > 0 && !ref.Remote():
				r.log.Warn("service.reload.poll has no effect on a local file; set service.reload.watch to reload when it changes", zap.String("config", ref.Raw))
			case p > 0:
				ticker = time.NewTicker(p)
				tick = ticker.C
				r.log.Info("polling the configuration", zap.String("config", ref.Raw), zap.Duration("every", p))
			}
		}
		cur = s
	}
	apply(s)
	close(r.ready)
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-r.settings:
			apply(s)
		case <-r.hup:
			r.trigger(triggerSIGHUP)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if watch.concerns(ev) {
				settled.Reset(watchDebounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			r.log.Warn("configuration file watch", zap.Error(err))
		case <-settled.C:
			r.trigger(triggerWatch)
		case <-tick:
			r.trigger(triggerPoll)
		}
	}
}

func kindName(ref configsrc.Ref) string {
	if ref.Kind == configsrc.SSM {
		return "SSM"
	}
	return "S3"
}

// fileWatch watches the directory of a configuration file, not the file:
// an editor that writes a temporary file and renames it over the
// original, and a Kubernetes or ECS mounted ConfigMap that swaps a
// symlink (config.yaml → ..data/config.yaml, ..data → ..2024_01_01...),
// replace the inode a watch on the file would follow.
type fileWatch struct {
	w    *fsnotify.Watcher
	path string // absolute, clean
	dir  string
	// target is where path resolves through its symlinks, as of the
	// last event: a ConfigMap swap changes it without an event on path.
	target string
}

func newFileWatch(path string) (*fileWatch, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	fw := &fileWatch{w: w, path: abs, dir: filepath.Dir(abs)}
	if err := w.Add(fw.dir); err != nil {
		w.Close()
		return nil, err
	}
	fw.target, _ = filepath.EvalSymlinks(abs)
	return fw, nil
}

// concerns reports whether ev may have changed the file's content: an
// event on the file itself (other than a change of mode or times), or
// any event after which the file resolves to another target.
func (fw *fileWatch) concerns(ev fsnotify.Event) bool {
	target, _ := filepath.EvalSymlinks(fw.path)
	moved := target != fw.target
	fw.target = target
	return moved || (filepath.Clean(ev.Name) == fw.path && ev.Op != fsnotify.Chmod)
}

func (fw *fileWatch) close() { fw.w.Close() }

// ignoreHUP keeps SIGHUP from ending a command that does not reload
// (replay), saying so, until ctx ends.
func ignoreHUP(ctx context.Context, hup <-chan os.Signal, log *zap.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			log.Warn("SIGHUP: replay does not reload its configuration; it goes on with the one it started with")
		}
	}
}

// startReload serves reload triggers for processor run, or for replay
// keeps SIGHUP from ending the process. stop returns once the reload
// under way, if any, has returned: call it when the pipeline's Run has.
func startReload(ctx context.Context, p *pipeline.Pipeline, src configSource, hup <-chan os.Signal, log *zap.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	if !src.reload {
		go func() { defer close(done); ignoreHUP(ctx, hup, log) }()
		return func() { cancel(); <-done }
	}
	rl := newReloader(src.fetcher, src.hash, p, hup, log)
	go func() { defer close(done); _ = rl.Run(ctx) }()
	return func() { cancel(); <-done }
}
