package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/configsrc"
	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/pipeline"
	"github.com/sluice-data/sluice/internal/testutil"
)

var _ Reloader = (*pipeline.Pipeline)(nil)

// errNoSwap is a swap that fails.
var errNoSwap = errors.New("cannot swap")

// fakePipeline is a Reloader that records the configurations it is given.
// block, when set, holds every Reload until it is closed.
type fakePipeline struct {
	mu       sync.Mutex
	cfg      *config.Config
	calls    []*config.Config
	block    chan struct{}
	err      error // what Reload fails with, when set
	inflight atomic.Int32
	overlap  atomic.Bool // two Reloads ran at once
}

func (f *fakePipeline) Reload(ctx context.Context, cfg *config.Config) (pipeline.Changes, error) {
	if f.inflight.Add(1) > 1 {
		f.overlap.Store(true)
	}
	defer f.inflight.Add(-1)
	f.mu.Lock()
	f.calls = append(f.calls, cfg)
	block, err := f.block, f.err
	f.mu.Unlock()
	if err != nil {
		return pipeline.Changes{}, err
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return pipeline.Changes{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := pipeline.Diff(f.cfg, cfg)
	f.cfg = cfg
	return c, nil
}

func (f *fakePipeline) Config() *config.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg
}

func (f *fakePipeline) Calls() []*config.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*config.Config(nil), f.calls...)
}

// reloadConfig is a valid configuration; extra is added to service,
// and extraSink names a second sink with its route.
func reloadConfig(service, extraSink string) string {
	s := `service:
  error_sink: lake
  log_level: info
` + service + `
sources:
  - {name: logs, type: file, file: {paths: [a]}}
routes:
  - {name: all, from: [logs], to: [lake]}
`
	if extraSink != "" {
		s += "  - {name: to-" + extraSink + ", from: [logs], to: [" + extraSink + "]}\n"
	}
	s += "sinks:\n  - {name: lake, type: s3, url: \"file:out/\", format: ndjson}\n"
	if extraSink != "" {
		s += "  - {name: " + extraSink + ", type: s3, url: \"file:" + extraSink + "/\", format: ndjson}\n"
	}
	return s
}

// reloadHarness runs a reloader over a fakePipeline.
type reloadHarness struct {
	ref  string
	fake *fakePipeline
	logs *observer.ObservedLogs
	hup  chan os.Signal
	rl   *reloader
	base map[string]float64 // sluice_config_reloads_total at start, by result
}

// startReloader fetches ref, runs it on a fakePipeline, and serves
// triggers until the test ends. hup, when not nil, is the SIGHUP channel.
func startReloader(t *testing.T, ref string, opts configsrc.Options, hup chan os.Signal) *reloadHarness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f, err := configsrc.New(ctx, ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := f.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(doc.Name, doc.Data, os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	if hup == nil {
		hup = make(chan os.Signal, 1)
	}
	h := &reloadHarness{ref: ref, fake: &fakePipeline{cfg: cfg}, logs: logs, hup: hup, base: map[string]float64{}}
	h.rl = newReloader(f, doc.Hash(), h.fake, hup, zap.New(core))
	setConfigInfo(doc.Hash())
	for _, r := range []string{reloadApplied, reloadRejected, reloadUnchanged, reloadFailed} {
		h.base[r] = promtest.ToFloat64(metrics.ConfigReloads.WithLabelValues(r))
	}
	done := make(chan struct{})
	go func() { defer close(done); h.rl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-h.rl.ready:
	case <-time.After(20 * time.Second):
		t.Fatal("reloader not ready within 20 s")
	}
	return h
}

// count returns how many reloads of result happened since the start.
func (h *reloadHarness) count(result string) int {
	return int(promtest.ToFloat64(metrics.ConfigReloads.WithLabelValues(result)) - h.base[result])
}

// waitCount waits until count(result) is at least n.
func (h *reloadHarness) waitCount(t *testing.T, result string, n int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d %s reload(s)", n, result), func() bool { return h.count(result) >= n })
}

// wantCount checks that count(result) is n.
func (h *reloadHarness) wantCount(t *testing.T, result string, n int) {
	t.Helper()
	if got := h.count(result); got != n {
		t.Errorf("%d %s reloads, want %d; log:\n%s", got, result, n, h.logText())
	}
}

// barrier triggers a reload of what is already running and waits for its
// "unchanged": every trigger before it has been served.
func (h *reloadHarness) barrier(t *testing.T) {
	t.Helper()
	n := h.count(reloadUnchanged)
	h.rl.trigger("test")
	h.waitCount(t, reloadUnchanged, n+1)
}

func (h *reloadHarness) logText() string {
	var b strings.Builder
	for _, e := range h.logs.All() {
		fmt.Fprintf(&b, "%s %s %v\n", e.Level, e.Message, e.ContextMap())
	}
	return b.String()
}

// waitUntil polls cond for up to 20 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("no %s within 20 s", what)
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// wantApplied checks that the fake got exactly one configuration, with a
// sink named sink, and that sluice_config_info names its document.
func (h *reloadHarness) wantApplied(t *testing.T, text, sink string) {
	t.Helper()
	h.waitCount(t, reloadApplied, 1)
	h.barrier(t)
	h.wantCount(t, reloadApplied, 1)
	calls := h.fake.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d Reload calls, want 1; log:\n%s", len(calls), h.logText())
	}
	if n := len(calls[0].Sinks); n != 2 || calls[0].Sinks[1].Name != sink {
		t.Errorf("reloaded sinks %+v, want lake and %s", calls[0].Sinks, sink)
	}
	hash := shortHash(configsrc.Doc{Data: []byte(text)}.Hash())
	if got := promtest.ToFloat64(metrics.ConfigInfo.WithLabelValues(hash)); got != 1 {
		t.Errorf("sluice_config_info{hash=%q} = %v, want 1", hash, got)
	}
	if n := promtest.CollectAndCount(metrics.ConfigInfo); n != 1 {
		t.Errorf("sluice_config_info has %d series, want 1 (the old hash is reset)", n)
	}
	rel := h.logs.FilterMessage("configuration reloaded").All()
	if len(rel) != 1 {
		t.Fatalf("%d \"configuration reloaded\" lines, want 1; log:\n%s", len(rel), h.logText())
	}
	m := rel[0].ContextMap()
	if m["hash"] != hash || !strings.Contains(fmt.Sprint(m["changes"]), "sinks: +"+sink) {
		t.Errorf("configuration reloaded %v, want hash %s and changes naming +%s", m, hash, sink)
	}
}

func TestReloadWatchInPlaceWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, path, reloadConfig("  reload: {watch: true}", ""))
	h := startReloader(t, path, configsrc.Options{}, nil)
	// A new sink, and a setting that waits for the next start.
	v2 := strings.Replace(reloadConfig("  reload: {watch: true}", "audit"), "log_level: info", "log_level: debug", 1)
	writeFile(t, path, v2)
	h.wantApplied(t, v2, "audit")
	if rel := h.logs.FilterMessage("configuration reloaded").All(); rel[0].ContextMap()["trigger"] != triggerWatch {
		t.Errorf("trigger = %v, want %q", rel[0].ContextMap()["trigger"], triggerWatch)
	}
	w := h.logs.FilterMessage("setting changed; it takes effect at the next start").All()
	if len(w) != 1 || w[0].ContextMap()["key"] != "service.log_level" {
		t.Errorf("next-start warnings %v, want one for service.log_level", w)
	}
}

func TestReloadWatchRenameOver(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.yaml")
	writeFile(t, path, reloadConfig("  reload: {watch: true}", ""))
	h := startReloader(t, path, configsrc.Options{}, nil)
	save := func(text string) {
		tmp := filepath.Join(dir, ".sluice.yaml.swp")
		writeFile(t, tmp, text)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	v2 := reloadConfig("  reload: {watch: true}", "audit")
	save(v2)
	h.wantApplied(t, v2, "audit")
	// Saved again: the file is another inode now, and still watched.
	save(reloadConfig("  reload: {watch: true}", "search"))
	h.waitCount(t, reloadApplied, 2)
	if calls := h.fake.Calls(); len(calls) != 2 || calls[1].Sinks[1].Name != "search" {
		t.Errorf("%d Reload calls, want 2, the second with sink search", len(calls))
	}
}

// TestReloadWatchConfigMapSwap swaps a directory the way the kubelet
// updates a mounted ConfigMap: config.yaml → ..data/config.yaml, and
// ..data is a symlink renamed over to a new timestamped directory. No
// event names config.yaml.
func TestReloadWatchConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	v1 := reloadConfig("  reload: {watch: true}", "")
	mkVersion := func(name, text string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name, "config.yaml"), text)
	}
	mkVersion("..2024_01_01_00_00_00.1", v1)
	for _, l := range [][2]string{{"..2024_01_01_00_00_00.1", "..data"}, {"..data/config.yaml", "config.yaml"}} {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	h := startReloader(t, filepath.Join(dir, "config.yaml"), configsrc.Options{}, nil)
	v2 := reloadConfig("  reload: {watch: true}", "audit")
	mkVersion("..2024_01_02_00_00_00.2", v2)
	if err := os.Symlink("..2024_01_02_00_00_00.2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	h.wantApplied(t, v2, "audit")
}

// TestReloadRejectsInvalid: an invalid file is logged with the lines
// processor validate prints, counted, and never reaches the pipeline.
func TestReloadRejectsInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	v1 := reloadConfig("  reload: {watch: true}", "")
	writeFile(t, path, v1)
	h := startReloader(t, path, configsrc.Options{}, nil)
	bad := strings.Replace(reloadConfig("  reload: {watch: true}", ""), "to: [lake]", "to: [laek]", 1)
	bad = strings.Replace(bad, "format: ndjson", "format: ndjson, bufer: {}", 1)
	writeFile(t, path, bad)
	h.waitCount(t, reloadRejected, 1)

	_, stderr, code := runArgs("validate", "-c", path)
	if code != 1 {
		t.Fatalf("validate: exit %d, want 1", code)
	}
	want := strings.Split(strings.TrimSpace(stderr), "\n")
	var got []string
	for _, e := range h.logs.All() {
		if e.Message == "configuration error" || e.Message == "configuration warning" {
			got = append(got, e.ContextMap()["problem"].(string))
		}
	}
	// Two errors, and the warning that the glob "a" matches nothing here.
	if strings.Join(got, "\n") != strings.Join(want, "\n") || len(want) != 3 || !strings.HasPrefix(want[0], "warning: "+path+":") {
		t.Errorf("logged problems:\n%s\nwant what validate prints:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(h.fake.Calls()) != 0 {
		t.Errorf("an invalid configuration reached Reload")
	}
	if got := promtest.ToFloat64(metrics.ConfigInfo.WithLabelValues(shortHash(configsrc.Doc{Data: []byte(v1)}.Hash()))); got != 1 {
		t.Errorf("sluice_config_info of the running configuration = %v, want 1", got)
	}

	// Fixed: the next change applies.
	v3 := reloadConfig("  reload: {watch: true}", "audit")
	writeFile(t, path, v3)
	h.wantApplied(t, v3, "audit")
	h.wantCount(t, reloadRejected, 1)
}

// TestReloadUnchanged: a touch, and a write of the same bytes, reach no
// Reload.
func TestReloadUnchanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	v1 := reloadConfig("  reload: {watch: true}", "")
	writeFile(t, path, v1)
	h := startReloader(t, path, configsrc.Options{}, nil)
	now := time.Now()
	if err := os.Chtimes(path, now, now); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, v1)
	h.waitCount(t, reloadUnchanged, 1)
	h.barrier(t)
	h.wantCount(t, reloadUnchanged, 2)
	if n := len(h.fake.Calls()); n != 0 {
		t.Errorf("%d Reload calls for an unchanged file, want 0", n)
	}
	if n := h.logs.FilterMessage("configuration unchanged").Len(); n != 2 {
		t.Errorf("%d \"configuration unchanged\" lines, want 2 (the write, the barrier); log:\n%s", n, h.logText())
	}
}

func TestReloadSIGHUP(t *testing.T) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // before the Kill: the test process must not die of it
	defer signal.Stop(hup)
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, path, reloadConfig("", "")) // no watch: only SIGHUP reloads
	h := startReloader(t, path, configsrc.Options{}, hup)
	v2 := reloadConfig("", "audit")
	writeFile(t, path, v2)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	h.wantApplied(t, v2, "audit")
	if rel := h.logs.FilterMessage("configuration reloaded").All(); rel[0].ContextMap()["trigger"] != triggerSIGHUP {
		t.Errorf("trigger = %v, want SIGHUP", rel[0].ContextMap()["trigger"])
	}
}

// TestReloadTurnsWatchOn: a reload that sets service.reload.watch starts
// the watch; poll on a local file is ignored with a warning.
func TestReloadTurnsWatchOn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, path, reloadConfig("  reload: {poll: 5s}", ""))
	h := startReloader(t, path, configsrc.Options{}, nil)
	if n := h.logs.FilterMessageSnippet("service.reload.poll has no effect on a local file").Len(); n != 1 {
		t.Errorf("%d warnings for poll on a file, want 1; log:\n%s", n, h.logText())
	}
	v2 := reloadConfig("  reload: {watch: true}", "")
	writeFile(t, path, v2)
	h.hup <- syscall.SIGHUP
	h.waitCount(t, reloadApplied, 1)
	waitUntil(t, "watch started", func() bool { return h.logs.FilterMessage("watching the configuration file").Len() == 1 })
	v3 := reloadConfig("  reload: {watch: true, poll: 2s}", "audit")
	writeFile(t, path, v3)
	h.waitCount(t, reloadApplied, 2)
	if calls := h.fake.Calls(); len(calls) != 2 || len(calls[1].Sinks) != 2 {
		t.Errorf("Reload calls %d, want 2, the second with the audit sink", len(calls))
	}
	// Only poll changed: the watch goes on as it was.
	h.barrier(t)
	if n := h.logs.FilterMessage("watching the configuration file").Len(); n != 1 {
		t.Errorf("the watch was set up %d times, want once", n)
	}
	writeFile(t, path, reloadConfig("  reload: {watch: true, poll: 2s}", "search"))
	h.waitCount(t, reloadApplied, 3)
}

// TestReloadCoalesces: triggers during a reload make one more reload, and
// two never run at once.
func TestReloadCoalesces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, path, reloadConfig("", ""))
	h := startReloader(t, path, configsrc.Options{}, nil)
	block := make(chan struct{})
	h.fake.mu.Lock()
	h.fake.block = block
	h.fake.mu.Unlock()
	writeFile(t, path, reloadConfig("", "audit"))
	h.rl.trigger(triggerSIGHUP)
	waitUntil(t, "first Reload call", func() bool { return len(h.fake.Calls()) == 1 })
	v3 := reloadConfig("", "search")
	writeFile(t, path, v3)
	for range 5 {
		h.rl.trigger(triggerSIGHUP)
	}
	close(block)
	h.waitCount(t, reloadApplied, 2)
	h.barrier(t)
	h.wantCount(t, reloadApplied, 2)
	calls := h.fake.Calls()
	if len(calls) != 2 || calls[1].Sinks[1].Name != "search" {
		t.Fatalf("%d Reload calls, want 2, the second with sink search; log:\n%s", len(calls), h.logText())
	}
	if h.fake.overlap.Load() {
		t.Error("two Reloads ran at once")
	}
	if n := h.count(reloadUnchanged); n != 1 {
		t.Errorf("%d unchanged reloads, want 1 (the barrier): the five triggers made more than one reload", n)
	}
}

// TestReloadFailed: a swap that fails keeps the running hash, and the same
// document is tried again on the next trigger.
func TestReloadFailed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	v1 := reloadConfig("", "")
	writeFile(t, path, v1)
	h := startReloader(t, path, configsrc.Options{}, nil)
	h.fake.mu.Lock()
	h.fake.err = errNoSwap
	h.fake.mu.Unlock()
	writeFile(t, path, reloadConfig("", "audit"))
	h.rl.trigger(triggerSIGHUP)
	h.waitCount(t, reloadFailed, 1)
	h.rl.trigger(triggerSIGHUP)
	h.waitCount(t, reloadFailed, 2)
	f := h.logs.FilterMessage("configuration reload failed; the running one stays").All()
	if len(f) != 2 || !strings.Contains(fmt.Sprint(f[0].ContextMap()["error"]), errNoSwap.Error()) {
		t.Errorf("failure lines %v, want 2 naming %q", f, errNoSwap)
	}
	if got := promtest.ToFloat64(metrics.ConfigInfo.WithLabelValues(shortHash(configsrc.Doc{Data: []byte(v1)}.Hash()))); got != 1 {
		t.Errorf("sluice_config_info of the running configuration = %v, want 1", got)
	}
}

// TestReloadPollS3 serves the configuration from an S3 fake and polls
// it: a new object version is picked up, and watch is ignored with a
// warning.
func TestReloadPollS3(t *testing.T) {
	fake := testutil.NewS3Fake(t)
	client := fake.Client(t)
	put := func(text string) {
		t.Helper()
		if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{
			Bucket: aws.String("lake"), Key: aws.String("conf/sluice.yaml"), Body: strings.NewReader(text),
		}); err != nil {
			t.Fatal(err)
		}
	}
	put(reloadConfig("  reload: {poll: 1s, watch: true}", ""))
	h := startReloader(t, "s3://lake/conf/sluice.yaml", configsrc.Options{Region: "us-east-1", S3Endpoint: fake.URL}, nil)
	if n := h.logs.FilterMessageSnippet("service.reload.watch has no effect on a configuration fetched from S3").Len(); n != 1 {
		t.Errorf("%d warnings for watch on s3://, want 1; log:\n%s", n, h.logText())
	}
	h.waitCount(t, reloadUnchanged, 1) // a poll found the same object
	v2 := reloadConfig("  reload: {poll: 1s, watch: true}", "audit")
	put(v2)
	h.wantApplied(t, v2, "audit")
	if rel := h.logs.FilterMessage("configuration reloaded").All(); rel[0].ContextMap()["trigger"] != triggerPoll {
		t.Errorf("trigger = %v, want poll", rel[0].ContextMap()["trigger"])
	}
	if n := fake.Requests("GET /lake/conf/sluice.yaml"); n < 3 {
		t.Errorf("%d GETs of the object, want at least 3 (start, poll, poll)", n)
	}

	// A rejected object is logged once, not at every poll.
	put("service: {bogus: 1}\n")
	h.waitCount(t, reloadRejected, 1)
	n := h.count(reloadUnchanged)
	waitUntil(t, "a poll after the rejection", func() bool { return h.count(reloadUnchanged) > n })
	if got := h.count(reloadRejected); got != 1 {
		t.Errorf("%d rejections of one object, want 1", got)
	}
}

// TestReloadFetchFails: a file that is gone is counted as failed.
func TestReloadFetchFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, path, reloadConfig("", ""))
	h := startReloader(t, path, configsrc.Options{}, nil)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	h.rl.trigger(triggerSIGHUP)
	h.waitCount(t, reloadFailed, 1)
	e := h.logs.FilterMessageSnippet("could not read the configuration").All()
	if len(e) != 1 || !strings.Contains(fmt.Sprint(e[0].ContextMap()["error"]), "no such file") {
		t.Errorf("failure lines %v, want one with the not-exist error", e)
	}
}

// TestReloadPollSSM polls a SecureString parameter: a new version with
// other bytes is applied.
func TestReloadPollSSM(t *testing.T) {
	awsEnv(t)
	fake := testutil.NewSSMFake(t)
	fake.Put("/sluice/prod", "SecureString", reloadConfig("  reload: {poll: 1s}", ""))
	h := startReloader(t, "ssm:/sluice/prod", configsrc.Options{SSMEndpoint: fake.Server.URL}, nil)
	waitUntil(t, "polling started", func() bool { return h.logs.FilterMessage("polling the configuration").Len() == 1 })
	v2 := reloadConfig("  reload: {poll: 1s}", "audit")
	fake.Put("/sluice/prod", "SecureString", v2)
	h.wantApplied(t, v2, "audit")
}
