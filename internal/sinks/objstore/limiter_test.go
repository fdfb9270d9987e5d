package objstore

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/blob"
)

// TestLimiterFollowsStoreLatency: the limit is cpus × (work + wait) /
// work over recent objects, between min(cpus, most) and most.
func TestLimiterFollowsStoreLatency(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name       string
		most, cpus int
		work, wait time.Duration
		want       int
	}{
		{"slow PUTs", 64, 2, 3 * ms, 25 * ms, 19},
		{"fast store", 64, 2, 3 * ms, 0, 2},
		{"fsync as long as encoding", 64, 2, 2 * ms, 2 * ms, 4},
		{"capped at concurrency", 16, 2, ms / 10, 25 * ms, 16},
		{"concurrency below the cpus", 1, 4, 3 * ms, 25 * ms, 1},
		{"no measurable work", 64, 2, 0, 10 * ms, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var set []int
			l := newLimiter(tt.most, tt.cpus, func() bool { return true }, func(n int) { set = append(set, n) })
			for range 40 {
				l.acquire()
				l.start()
				l.release(tt.work, tt.wait)
			}
			if got, _ := l.state(); got != tt.want {
				t.Errorf("limit %d, want %d", got, tt.want)
			}
			if set[len(set)-1] != tt.want {
				t.Errorf("last limit reported %d, want %d", set[len(set)-1], tt.want)
			}
		})
	}
}

// TestLimiterAdapts: the limit rises when the store slows down and falls
// back when it speeds up.
func TestLimiterAdapts(t *testing.T) {
	ms := time.Millisecond
	l := newLimiter(64, 2, func() bool { return true }, nil)
	var got []int
	for _, wait := range []time.Duration{0, 25 * ms, 0} {
		for range 60 {
			l.acquire()
			l.start()
			l.release(2*ms, wait)
		}
		n, _ := l.state()
		got = append(got, n)
	}
	if fmt.Sprint(got) != "[2 27 2]" {
		t.Errorf("limits %v, want [2 27 2]", got)
	}
}

// TestLimiterHoldsSlots: acquire waits at the limit; start waits while
// memory has no room, unless no other object is being written.
func TestLimiterHoldsSlots(t *testing.T) {
	var room atomic.Bool
	room.Store(true)
	l := newLimiter(2, 2, room.Load, nil)
	l.acquire()
	l.start()
	l.acquire()
	third := make(chan struct{})
	go func() {
		l.acquire()
		close(third)
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case <-third:
		t.Fatal("a third slot at limit 2")
	default:
	}
	l.cancel() // the second slot got no object
	<-third
	room.Store(false)
	started := make(chan struct{})
	go func() {
		l.start()
		close(started)
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case <-started:
		t.Fatal("an object started without memory room while another is written")
	default:
	}
	l.release(0, 0) // none written now: it starts, room or not
	<-started
	if _, peak := l.state(); peak != 1 {
		t.Errorf("%d objects written at once, want 1", peak)
	}
}

// latencyStore is a store whose writes take wait after the body is
// written, counting the most in flight at once.
type latencyStore struct {
	blob.Lister
	wait      time.Duration
	mu        sync.Mutex
	now, most int
	puts      int
}

func (s *latencyStore) Put(_ context.Context, _ string, body blob.Body) error {
	if err := body(io.Discard); err != nil {
		return err
	}
	s.mu.Lock()
	s.now++
	s.most = max(s.most, s.now)
	s.mu.Unlock()
	time.Sleep(s.wait)
	s.mu.Lock()
	s.now--
	s.puts++
	s.mu.Unlock()
	return nil
}

func (s *latencyStore) List(context.Context, string) ([]string, error) { return nil, nil }

// TestSlowStoreGetsMoreWritesInFlight: with 50 ms writes, the limit
// rises to the sink's concurrency (the old fixed pool had 8) and the
// writes in flight follow it; with max_buffered_bytes too small for two
// objects' rows and bytes, they go one at a time whatever the limit.
func TestSlowStoreGetsMoreWritesInFlight(t *testing.T) {
	tests := []struct {
		name        string
		cfg         string
		rounds      int
		most, limit int
	}{
		{"slow PUTs", "    concurrency: 24\n", 4, 24, 24},
		{"no memory for two", "    concurrency: 24\n    max_buffered_bytes: 300\n    max_spill_bytes: 0\n", 1, 1, 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &latencyStore{wait: 50 * time.Millisecond}
			s, _ := newSink(t, "    format: ndjson\n    partition_keys: {k: .k}\n"+tt.cfg, store)
			for round := range tt.rounds {
				var lines []string
				for k := range 30 {
					lines = append(lines, fmt.Sprintf(`{"k":"%d-%d","pad":"%0200d"}`, round, k, 0))
				}
				feed(t, s, nil, lines...)
				if err := s.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if store.puts != 30*tt.rounds {
				t.Fatalf("%d puts, want %d", store.puts, 30*tt.rounds)
			}
			limit, peak := s.lim.state()
			if store.most != tt.most || peak != tt.most || limit != tt.limit {
				t.Errorf("%d writes in flight at most (limiter: %d), limit %d; want %d, limit %d", store.most, peak, limit, tt.most, tt.limit)
			}
		})
	}
}
