package kinesis

import (
	"testing"

	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/metrics"
)

// TestLostLeaseForgetsBehind: a shard this worker stops reading stops
// counting in its MillisBehindLatest; a stale value would keep the lag
// alarm and the scale-out policy firing after the lease moved.
func TestLostLeaseForgetsBehind(t *testing.T) {
	done := make(chan struct{})
	close(done)
	r := &reader{shard: "shardId-000000000000", done: done, cancel: func() {}}
	s := &Source{name: "behind-forget", log: zap.NewNop(), readers: map[string]*reader{r.shard: r}}
	metrics.KinesisBehind.WithLabelValues(s.name, r.shard).Set(86_400_000)
	metrics.KinesisBehind.WithLabelValues(s.name, "shardId-000000000001").Set(5)
	s.lose(r)
	if metrics.KinesisBehind.DeleteLabelValues(s.name, r.shard) {
		t.Error("a lost shard still reports MillisBehindLatest")
	}
	if !metrics.KinesisBehind.DeleteLabelValues(s.name, "shardId-000000000001") {
		t.Error("a shard still held lost its MillisBehindLatest")
	}
}
