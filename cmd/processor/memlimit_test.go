package main

import (
	"math"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestMemoryLimitField(t *testing.T) {
	tests := []struct {
		give int64
		want any
	}{
		{math.MaxInt64, "none"},
		{0, "none"},
		{1 << 30, int64(1 << 30)},
	}
	for _, tt := range tests {
		core, logs := observer.New(zapcore.InfoLevel)
		zap.New(core).Info("pipeline starting", memoryLimitField(tt.give))
		if got := logs.All()[0].ContextMap()["go_memory_limit"]; got != tt.want {
			t.Errorf("limit %d logs %v (%T), want %v", tt.give, got, got, tt.want)
		}
	}
}
