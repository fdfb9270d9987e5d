// Package service holds what every Sluice process needs around the
// pipeline: the JSON logger and the HTTP endpoints /healthz, /readyz,
// /metrics and /tap (see internal/tap; 403 unless WithTap).
package service

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/sinks"
	"github.com/sluice-data/sluice/internal/tap"
)

// NewLogger returns a zap JSON logger at level (debug, info, warn, error)
// writing to stderr.
func NewLogger(level, service string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.Sampling = nil
	log, err := cfg.Build()
	if err != nil {
		return nil, err
	}
	return log.With(zap.String("service", service)), nil
}

// Server serves the health and metrics endpoints.
type Server struct {
	srv *http.Server
	ln  net.Listener
	// stop ends long responses (/tap streams) when the server closes.
	stop context.CancelFunc
}

// ListenOption changes what Listen serves.
type ListenOption func(*listenOptions)

type listenOptions struct {
	failing func() []sinks.SinkHealth
	tap     *tap.Hub
}

// WithTap serves GET /tap from h (service.tap: true). Without it /tap
// answers 403 with a message saying how to turn it on.
func WithTap(h *tap.Hub) ListenOption {
	return func(o *listenOptions) { o.tap = h }
}

// WithFailingSinks adds the sinks failing reports to /readyz. They do not
// make the process unready: it is alive and serves its other sources, and a
// restart would not bring a dead endpoint back.
func WithFailingSinks(failing func() []sinks.SinkHealth) ListenOption {
	return func(o *listenOptions) { o.failing = failing }
}

// readiness is the JSON body of /readyz.
type readiness struct {
	Status       string             `json:"status"` // "ready" or "not ready"
	FailingSinks []sinks.SinkHealth `json:"failing_sinks"`
}

// Listen starts serving on addr. ready reports readiness for /readyz:
// 200 when ready, 503 otherwise, with a JSON body
// {"status": "ready", "failing_sinks": [...]} that lists the sinks whose
// writes are failing.
func Listen(addr string, ready func() bool, log *zap.Logger, opts ...ListenOption) (*Server, error) {
	var o listenOptions
	for _, opt := range opts {
		opt(&o)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		body := readiness{Status: "ready", FailingSinks: []sinks.SinkHealth{}}
		code := http.StatusOK
		if !ready() {
			body.Status, code = "not ready", http.StatusServiceUnavailable
		}
		if o.failing != nil {
			body.FailingSinks = append(body.FailingSinks, o.failing()...)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	})
	mux.Handle("/metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{Registry: metrics.Registry}))
	mux.Handle("/tap", tap.Handler{Hub: o.tap})
	base, stop := context.WithCancel(context.Background())
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		BaseContext: func(net.Listener) context.Context { return base }}, ln: ln, stop: stop}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", zap.Error(err))
		}
	}()
	log.Info("http listening", zap.String("addr", ln.Addr().String()))
	return s, nil
}

// Addr returns the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close shuts the server down. Open /tap streams end at once instead of
// holding the shutdown until ctx expires.
func (s *Server) Close(ctx context.Context) error {
	s.stop()
	return s.srv.Shutdown(ctx)
}
