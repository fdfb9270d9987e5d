package kafka

import (
	"context"
	"testing"

	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/metrics"
)

// TestPartitionLeavingForgetsLag: a partition revoked or lost stops
// counting in this process's lag; otherwise the EMF lag (and the scaling
// policy on it) keeps the last value forever after a rebalance.
func TestPartitionLeavingForgetsLag(t *testing.T) {
	s := &Source{name: "lag-forget", parts: map[topicPart]*partState{}, log: zap.NewNop(), rebalances: func() {}}
	m := &metricsVec{source: s.name}
	m.set(topicPart{"t", 0}, 500)
	m.set(topicPart{"t", 1}, 700)
	s.lost(context.Background(), nil, map[string][]int32{"t": {0}})
	if metrics.KafkaLag.DeleteLabelValues(s.name, "t/0") {
		t.Error("a lost partition still reports its lag")
	}
	if !metrics.KafkaLag.DeleteLabelValues(s.name, "t/1") {
		t.Error("a partition still held lost its lag")
	}
}
