package checkpoint

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

func track(t *testing.T, tr *Tracker, end int64, n int) *Range {
	t.Helper()
	r, err := tr.Track(context.Background(), end, n)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestOutOfOrderAcksNeverPassAGap(t *testing.T) {
	tr := New(0)
	r1 := track(t, tr, 10, 10)
	r2 := track(t, tr, 20, 10)
	r3 := track(t, tr, 30, 10)
	r3.Ack(nil)
	r2.Ack(nil)
	if pos, ok := tr.Checkpoint(); ok {
		t.Fatalf("checkpoint %d with range ending 10 unacked", pos)
	}
	r1.Ack(nil)
	if pos, ok := tr.Checkpoint(); !ok || pos != 30 {
		t.Fatalf("checkpoint = %d, %v; want 30", pos, ok)
	}
}

func TestErrorNeverAdvances(t *testing.T) {
	tr := New(0)
	r1 := track(t, tr, 1, 1)
	r2 := track(t, tr, 2, 1)
	r3 := track(t, tr, 3, 1)
	r1.Ack(nil)
	r2.Ack(errors.New("sink down"))
	r3.Ack(nil)
	if pos, _ := tr.Checkpoint(); pos != 1 {
		t.Fatalf("checkpoint = %d, want 1 (stuck before the failed range)", pos)
	}
	if _, err := tr.Track(context.Background(), 4, 1); !errors.Is(err, ErrFailed) {
		t.Fatalf("Track after failure = %v, want ErrFailed", err)
	}
}

func TestCapBlocksUntilAck(t *testing.T) {
	tr := New(100)
	r1 := track(t, tr, 60, 60)
	track(t, tr, 100, 40)
	got := make(chan *Range)
	go func() {
		r, err := tr.Track(context.Background(), 110, 10)
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	select {
	case <-got:
		t.Fatal("Track did not block at the cap")
	case <-time.After(50 * time.Millisecond):
	}
	r1.Ack(nil)
	select {
	case r := <-got:
		if r.End != 110 {
			t.Fatalf("End = %d", r.End)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Track still blocked after an ack freed room")
	}
	if p := tr.Pending(); p != 50 {
		t.Fatalf("pending = %d, want 50", p)
	}
}

func TestCapBlockedTrackHonoursContext(t *testing.T) {
	tr := New(1)
	track(t, tr, 1, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := tr.Track(ctx, 2, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestOversizedRangeAdmittedWhenIdle(t *testing.T) {
	tr := New(10)
	r := track(t, tr, 500, 500)
	r.Ack(nil)
	if pos, _ := tr.Checkpoint(); pos != 500 {
		t.Fatalf("checkpoint = %d", pos)
	}
}

// TestRandomAckOrder checks the invariant against a model: after every ack,
// the checkpoint is the end of the longest fully-acked prefix.
func TestRandomAckOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		tr := New(0)
		n := 1 + rng.IntN(30)
		ranges := make([]*Range, n)
		for i := range ranges {
			ranges[i] = track(t, tr, int64(i+1)*3, 3)
		}
		acked := make([]bool, n)
		for _, i := range rng.Perm(n) {
			ranges[i].Ack(nil)
			acked[i] = true
			want, wantOK := int64(0), false
			for j := 0; j < n && acked[j]; j++ {
				want, wantOK = int64(j+1)*3, true
			}
			if got, ok := tr.Checkpoint(); got != want || ok != wantOK {
				t.Fatalf("trial %d: checkpoint %d,%v want %d,%v", trial, got, ok, want, wantOK)
			}
		}
	}
}
