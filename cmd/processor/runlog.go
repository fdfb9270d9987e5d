package main

import (
	"context"
	"encoding/json"
	"io"
	"os"

	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/emf"
	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/pipeline"
)

// startEMF writes CloudWatch EMF lines to the log stream (stderr, where
// zap logs and awslogs reads) when service.cloudwatch_emf is set. stop
// writes the last interval's lines and returns once they are out: call it
// after the pipeline has flushed.
func startEMF(cfg *config.Config, log *zap.Logger) (stop func()) {
	if !cfg.Service.CloudWatchEMF {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	e := emf.New(metrics.Registry, os.Stderr, cfg.Service.Name)
	go func() {
		defer close(done)
		if err := e.Run(ctx); err != nil {
			log.Warn("cloudwatch emf stopped", zap.Error(err))
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// logSummary puts the run summary in the log as one JSON line when
// stdout is not a terminal (a container, a pipe): a log stream keeps it
// as one event, where the table would be one event per line.
func logSummary(stdout io.Writer, log *zap.Logger, sum pipeline.Summary) {
	if isTerminal(stdout) {
		return
	}
	log.Info("run summary", zap.Any("summary", json.RawMessage(sum.JSON())))
}
