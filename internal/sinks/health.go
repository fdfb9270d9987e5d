package sinks

import (
	"net/url"
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/metrics"
)

// WarnEvery is how often a sink whose writes keep failing logs a warning.
const WarnEvery = 10 * time.Second

// Health tracks whether a sink's writes to its endpoint are failing, for
// the warning log, the sluice_sink_failing gauge and /readyz. A sink calls
// Failed after each attempt that got nowhere (connection refused, a whole
// request answered 5xx, a store error) and OK after one that made
// progress, and runs Watch on a goroutine of its own, so the warning
// repeats however long the sink's retries and appends wait. It is safe
// for concurrent use.
type Health struct {
	sink  string
	log   *zap.Logger
	gauge prometheus.Gauge
	// Every is the interval between warnings while failing; Now is the
	// clock. Tests change both before the first call.
	Every time.Duration
	Now   func() time.Time

	mu       sync.Mutex
	failing  bool
	since    time.Time
	endpoint string
	lastErr  string
	failures int64
	warned   time.Time
}

// SinkHealth is a failing sink as /readyz shows it.
type SinkHealth struct {
	Sink     string    `json:"sink"`
	Endpoint string    `json:"endpoint"`
	Error    string    `json:"error"`
	Since    time.Time `json:"since"`
	Failures int64     `json:"failures"`
}

// HealthReporter is a sink that reports its health.
type HealthReporter interface {
	// Health returns the sink's failure state; failing is true while its
	// last write attempt failed.
	Health() (h SinkHealth, failing bool)
}

// NewHealth returns the tracker of sink's health; the gauge starts at 0.
func NewHealth(sink string, log *zap.Logger) *Health {
	h := &Health{sink: sink, log: log, gauge: metrics.SinkFailing.WithLabelValues(sink), Every: WarnEvery, Now: time.Now}
	h.gauge.Set(0)
	return h
}

// Failed records an attempt against endpoint that failed with err. The
// first failure after a success is logged at once.
func (h *Health) Failed(endpoint string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.Now()
	if !h.failing {
		h.failing, h.since, h.failures = true, now, 0
		h.gauge.Set(1)
	}
	h.failures++
	h.endpoint = Redact(endpoint)
	h.lastErr = RedactText(err.Error())
	if h.warned.Before(h.since) {
		h.warnLocked(now)
	}
}

// OK records an attempt that made progress.
func (h *Health) OK() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.failing {
		return
	}
	h.failing = false
	h.gauge.Set(0)
	h.log.Info("sink recovered", zap.String("sink", h.sink), zap.String("endpoint", h.endpoint),
		zap.Duration("failing_for", h.Now().Sub(h.since).Round(time.Millisecond)), zap.Int64("failures", h.failures))
}

// watchTick is how often Watch calls Tick.
const watchTick = time.Second

// Tick logs the warning again if the sink is still failing and Every would
// have passed by the next tick, so warnings are never more than Every
// apart.
func (h *Health) Tick() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := h.Now(); h.failing && now.Sub(h.warned) >= h.Every-watchTick {
		h.warnLocked(now)
	}
}

// Watch calls Tick every second until stop is closed.
func (h *Health) Watch(stop <-chan struct{}) {
	t := time.NewTicker(watchTick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			h.Tick()
		}
	}
}

func (h *Health) warnLocked(now time.Time) {
	h.warned = now
	h.log.Warn("sink failing; its records wait and its sources are held", zap.String("sink", h.sink), zap.String("endpoint", h.endpoint),
		zap.String("error", h.lastErr), zap.Duration("failing_for", now.Sub(h.since).Round(time.Millisecond)), zap.Int64("failures", h.failures))
}

// Health reports the failure state.
func (h *Health) Health() (SinkHealth, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return SinkHealth{Sink: h.sink, Endpoint: h.endpoint, Error: h.lastErr, Since: h.since, Failures: h.failures}, h.failing
}

// Redact returns an endpoint URL without its user information (a
// password in https://user:pass@host must never reach a log).
func Redact(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.User == nil {
		return endpoint
	}
	u.User = nil
	return u.String()
}

// userinfo matches the user information of URLs quoted in a message.
var userinfo = regexp.MustCompile(`//[^/@\s"']*@`)

// RedactText removes the user information of every URL quoted in msg.
func RedactText(msg string) string {
	return userinfo.ReplaceAllString(msg, "//")
}
