package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/sinks"
	"github.com/sluice-data/sluice/internal/sources"
)

// Fake kinds, registered once for the lifecycle tests: what each instance
// does is set by name in fakeSpecs, and what happened to it is recorded in
// fakeSources and fakeSinks.
const (
	fakeSourceKind = "test_fake_source"
	fakeSinkKind   = "test_fake_sink"
	fakeUserKind   = "test_fake_error_sink_user"
)

type fakeSpec struct {
	openErr, readErr, closeErr, flushErr, runErr error
	// endless makes a source read nothing until it is closed.
	endless bool
	// deaf makes a source's read block until the test ends, whatever its
	// context says: a read stuck in the kernel (a hung NFS mount, say).
	deaf chan struct{}
}

var (
	fakeOnce    sync.Once
	fakeMu      sync.Mutex
	fakeSpecs   = map[string]fakeSpec{}
	fakeSources = map[string]*fakeSource{}
	fakeSinks   = map[string]*fakeSink{}
)

func registerFakes(t *testing.T) {
	t.Helper()
	fakeOnce.Do(func() {
		sources.Register(fakeSourceKind, func(cfg *config.Source, _ sources.Env) (sources.Source, error) {
			fakeMu.Lock()
			defer fakeMu.Unlock()
			spec := fakeSpecs[cfg.Name]
			if spec.openErr != nil {
				return nil, spec.openErr
			}
			s := &fakeSource{spec: spec, stop: make(chan struct{})}
			fakeSources[cfg.Name] = s
			return s, nil
		})
		newSink := func(user bool) sinks.Constructor {
			return func(cfg *config.Sink, env sinks.Env) (sinks.Sink, error) {
				fakeMu.Lock()
				defer fakeMu.Unlock()
				spec := fakeSpecs[cfg.Name]
				if spec.openErr != nil {
					return nil, spec.openErr
				}
				s := &fakeSink{name: cfg.Name, errSink: cfg.Name, spec: spec}
				fakeSinks[cfg.Name] = s
				if user {
					s.errSink = env.ErrorSink
					return &fakeUser{s}, nil
				}
				return s, nil
			}
		}
		sinks.Register(fakeSinkKind, newSink(false))
		sinks.Register(fakeUserKind, newSink(true))
	})
	t.Cleanup(func() {
		fakeMu.Lock()
		defer fakeMu.Unlock()
		clear(fakeSpecs)
		clear(fakeSources)
		clear(fakeSinks)
	})
}

type fakeSource struct {
	spec   fakeSpec
	closed int
	stop   chan struct{} // closed by Close: ends Run
	// ranUntil is what Run saw when it returned: "closed", "ctx" or
	// "failed"; empty while Run has not returned.
	ranUntil string
}

func (s *fakeSource) ReadBatch(ctx context.Context) (record.Batch, record.AckFunc, error) {
	if s.spec.readErr != nil {
		return record.Batch{}, nil, s.spec.readErr
	}
	if s.spec.deaf != nil {
		<-s.spec.deaf
		return record.Batch{}, nil, io.EOF
	}
	if s.spec.endless {
		<-ctx.Done()
		return record.Batch{}, nil, ctx.Err()
	}
	return record.Batch{}, nil, io.EOF
}

func (s *fakeSource) Run(ctx context.Context) error {
	until, err := "closed", error(nil)
	if s.spec.runErr != nil {
		until, err = "failed", s.spec.runErr
	} else {
		select {
		case <-s.stop:
		case <-ctx.Done():
			until = "ctx"
		}
	}
	fakeMu.Lock()
	s.ranUntil = until
	fakeMu.Unlock()
	return err
}

func (s *fakeSource) Close(context.Context) error {
	fakeMu.Lock()
	defer fakeMu.Unlock()
	s.closed++
	if s.closed == 1 {
		close(s.stop)
	}
	return s.spec.closeErr
}

type fakeSink struct {
	name, errSink string
	spec          fakeSpec
	closed        int
	// handedTo is the sink SetErrorSink attached (fakeUser only).
	handedTo sinks.Sink
}

type fakeWriter struct{}

func (fakeWriter) Write(*record.Record) *sinks.Failure { return nil }
func (fakeWriter) WriteFailure(*sinks.Failure)         {}
func (fakeWriter) Take() sinks.Pending                 { return nil }

func (s *fakeSink) Name() string                { return s.name }
func (s *fakeSink) NewWriter() sinks.Writer     { return fakeWriter{} }
func (s *fakeSink) ErrorSink() string           { return s.errSink }
func (s *fakeSink) Stats() sinks.Stats          { return sinks.Stats{} }
func (s *fakeSink) Relieve(context.Context)     {}
func (s *fakeSink) Flush(context.Context) error { return s.spec.flushErr }
func (s *fakeSink) Append(_ context.Context, _ sinks.Pending, ack record.AckFunc) error {
	ack(nil)
	return nil
}
func (s *fakeSink) Close(context.Context) error {
	s.closed++
	return s.spec.closeErr
}

// fakeUser hands failures to its error sink, like OpenSearch.
type fakeUser struct{ *fakeSink }

func (u *fakeUser) SetErrorSink(s sinks.Sink) { u.handedTo = s }

// fakeConfig is a valid configuration whose sources and sinks are then
// given the fake kinds: sources a, b; sinks errors (the error output) and
// other.
func fakeConfig(t *testing.T) *config.Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.ndjson"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	y := fmt.Sprintf(`
service: {http_listen: "", error_sink: errors}
sources:
  - {name: a, type: file, file: {paths: ["%[1]s/in.ndjson"]}}
  - {name: b, type: file, file: {paths: ["%[1]s/in.ndjson"]}}
routes:
  - {name: all, from: [a, b], to: [other]}
sinks:
  - {name: other, type: s3, url: "file:%[1]s/other/", format: ndjson}
  - {name: errors, type: s3, url: "file:%[1]s/errors/", format: ndjson}
`, dir)
	cfg, err := config.Parse("t.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Sources {
		cfg.Sources[i].Type = fakeSourceKind
	}
	for i := range cfg.Sinks {
		cfg.Sinks[i].Type = fakeSinkKind
	}
	return cfg
}

func closedCounts() (srcs, snks map[string]int) {
	fakeMu.Lock()
	defer fakeMu.Unlock()
	srcs, snks = map[string]int{}, map[string]int{}
	for n, s := range fakeSources {
		srcs[n] = s.closed
	}
	for n, s := range fakeSinks {
		snks[n] = s.closed
	}
	return srcs, snks
}

// TestCloseEverythingOpened checks the one cleanup path: whatever New or
// Run fails on, every source and sink opened is closed exactly once, and
// Close errors are returned, not dropped.
func TestCloseEverythingOpened(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name      string
		give      map[string]fakeSpec
		run       bool
		wantErr   string
		wantSrcs  map[string]int
		wantSinks map[string]int
	}{
		{
			name:      "new: a source fails to open",
			give:      map[string]fakeSpec{"b": {openErr: errBoom}},
			wantErr:   "boom",
			wantSrcs:  map[string]int{"a": 1},
			wantSinks: map[string]int{"other": 1, "errors": 1},
		},
		{
			name:      "new: a sink fails to open",
			give:      map[string]fakeSpec{"errors": {openErr: errBoom}},
			wantErr:   "boom",
			wantSrcs:  map[string]int{},
			wantSinks: map[string]int{"other": 1},
		},
		{
			name:      "run: a source fails to read",
			give:      map[string]fakeSpec{"a": {readErr: errBoom}},
			run:       true,
			wantErr:   "source a: boom",
			wantSrcs:  map[string]int{"a": 1, "b": 1},
			wantSinks: map[string]int{"other": 1, "errors": 1},
		},
		{
			name:      "run: a sink fails to flush",
			give:      map[string]fakeSpec{"other": {flushErr: errBoom}},
			run:       true,
			wantErr:   "boom",
			wantSrcs:  map[string]int{"a": 1, "b": 1},
			wantSinks: map[string]int{"other": 1, "errors": 1},
		},
		{
			name:      "run: a source fails to close",
			give:      map[string]fakeSpec{"b": {closeErr: errBoom}},
			run:       true,
			wantErr:   "close source b: boom",
			wantSrcs:  map[string]int{"a": 1, "b": 1},
			wantSinks: map[string]int{"other": 1, "errors": 1},
		},
		{
			name:      "run: a sink fails to close",
			give:      map[string]fakeSpec{"other": {closeErr: errBoom}},
			run:       true,
			wantErr:   "close sink other: boom",
			wantSrcs:  map[string]int{"a": 1, "b": 1},
			wantSinks: map[string]int{"other": 1, "errors": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			registerFakes(t)
			cfg := fakeConfig(t)
			fakeMu.Lock()
			for n, s := range tt.give {
				fakeSpecs[n] = s
			}
			fakeMu.Unlock()
			p, err := New(cfg, zap.NewNop())
			if err == nil && tt.run {
				err = p.Run(context.Background())
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			srcs, snks := closedCounts()
			if fmt.Sprint(srcs) != fmt.Sprint(tt.wantSrcs) {
				t.Errorf("sources closed %v, want %v", srcs, tt.wantSrcs)
			}
			if fmt.Sprint(snks) != fmt.Sprint(tt.wantSinks) {
				t.Errorf("sinks closed %v, want %v", snks, tt.wantSinks)
			}
		})
	}
}

// TestFlushOrderFromErrorSinkUsers checks that a sink handing failures to
// another sink is wired to it and flushed before it, wherever it is
// configured.
func TestFlushOrderFromErrorSinkUsers(t *testing.T) {
	registerFakes(t)
	cfg := fakeConfig(t)
	cfg.Sinks = append(cfg.Sinks, cfg.Sinks[0])
	cfg.Sinks[2].Name, cfg.Sinks[2].Type = "search", fakeUserKind
	p, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.abort()
	var names []string
	for _, s := range p.cur.Load().order {
		names = append(names, s.Name())
	}
	if want := []string{"search", "other", "errors"}; !slices.Equal(names, want) {
		t.Errorf("flush order %v, want %v", names, want)
	}
	fakeMu.Lock()
	handed := fakeSinks["search"].handedTo
	fakeMu.Unlock()
	if handed == nil || handed.Name() != "errors" {
		t.Errorf("search hands failures to %v, want errors", handed)
	}
}

// TestKindsMatchConfig keeps the registry equal to the kinds the
// configuration accepts.
func TestKindsMatchConfig(t *testing.T) {
	registerKinds()
	tests := []struct {
		name       string
		registered []string
		want       []string
	}{
		{"sources", sources.Kinds(), config.Available.Sources},
		{"sinks", sinks.Kinds(), config.Available.Sinks},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := slices.DeleteFunc(slices.Clone(tt.registered), func(k string) bool { return strings.HasPrefix(k, "test_") })
			if want := slices.Sorted(slices.Values(tt.want)); !slices.Equal(got, want) {
				t.Errorf("registered %v, config accepts %v", got, want)
			}
		})
	}
}

// TestRunnersLiveAsLongAsRun checks that the pipeline runs every
// component's background work and ends it by closing the component, and
// that a component whose Run fails fails the pipeline and is closed.
func TestRunnersLiveAsLongAsRun(t *testing.T) {
	errRun := errors.New("lease loop died")
	tests := []struct {
		name    string
		give    map[string]fakeSpec
		wantErr string
		want    map[string]string // source -> how its Run ended
	}{
		{
			name: "finite sources",
			want: map[string]string{"a": "closed", "b": "closed"},
		},
		{
			name:    "a Run fails",
			give:    map[string]fakeSpec{"a": {runErr: errRun}, "b": {endless: true}},
			wantErr: "source a: lease loop died",
			want:    map[string]string{"a": "failed", "b": "closed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			registerFakes(t)
			cfg := fakeConfig(t)
			fakeMu.Lock()
			for n, s := range tt.give {
				fakeSpecs[n] = s
			}
			fakeMu.Unlock()
			p, err := New(cfg, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			err = p.Run(context.Background())
			if got := fmt.Sprint(err); (tt.wantErr == "" && err != nil) || !strings.Contains(got, tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			fakeMu.Lock()
			got := map[string]string{}
			for n, s := range fakeSources {
				got[n] = s.ranUntil
			}
			fakeMu.Unlock()
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Run ended %v, want %v", got, tt.want)
			}
		})
	}
}

// TestShutdownDoesNotWaitForADeafRead: a source whose read ignores its
// context (stuck in the kernel) does not keep Run alive past
// shutdown_timeout and a short grace: Run returns the timeout, with the
// read's batch never acked, so nothing is checkpointed past it.
func TestShutdownDoesNotWaitForADeafRead(t *testing.T) {
	registerFakes(t)
	cfg := fakeConfig(t)
	cfg.Service.ShutdownTimeout = config.Duration(50 * time.Millisecond)
	deaf := make(chan struct{})
	t.Cleanup(func() { close(deaf) })
	fakeMu.Lock()
	fakeSpecs["a"] = fakeSpec{deaf: deaf}
	fakeSpecs["b"] = fakeSpec{endless: true}
	fakeMu.Unlock()
	p, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	p.stuckGrace = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for !strings.Contains(p.stuckReads(), "source a") {
		time.Sleep(time.Millisecond)
	}
	cancel()
	// Not a timing assertion: a hang detector, far above the 100 ms Run
	// takes, so the test fails instead of running into go test's timeout.
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "shutdown_timeout 50ms exceeded") || !strings.Contains(err.Error(), "source a") {
			t.Errorf("Run: %v, want shutdown_timeout exceeded naming source a", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run still waits for a read that ignores its context")
	}
}
