package objstore

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestStoreFailureShowsInHealth: while the store refuses writes the sink
// reports itself failing, with its URL and the store's error; the write
// that finally succeeds clears it.
func TestStoreFailureShowsInHealth(t *testing.T) {
	store := &flakyStore{memStore: newMemStore()}
	store.n.Store(1 << 30)
	s, dir := newSink(t, "    format: ndjson\n", store, func(s *Sink) {
		s.backoff.Base, s.backoff.Max, s.backoff.MaxElapsed = time.Millisecond, 2*time.Millisecond, time.Minute
	})
	acked := make(chan error, 1)
	feed(t, s, func(err error) { acked <- err }, `{"a":1}`)
	s.Relieve(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	for store.calls.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("no retries")
		}
		time.Sleep(time.Millisecond)
	}
	h, failing := s.Health()
	if !failing || h.Sink != "s" || h.Endpoint != "file:"+dir+"/" || !strings.Contains(h.Error, "503 SlowDown") {
		t.Errorf("Health() = %+v, %v", h, failing)
	}
	store.n.Store(0)
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	if h, failing := s.Health(); failing {
		t.Errorf("still failing after a successful write: %+v", h)
	}
}
