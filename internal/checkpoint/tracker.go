// Package checkpoint tracks, per source partition, the highest position whose
// records have all been acknowledged, with a cap on how many records may be
// pending. When the cap is reached, Track blocks: that is the backpressure
// that keeps a slow sink from letting a fast source fill memory.
package checkpoint

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrFailed is returned by Track once any tracked range was acked with an
// error: the checkpoint can never move past it, so reading on is pointless.
var ErrFailed = errors.New("checkpoint: a tracked range failed")

// Tracker is the capped checkpoint of one partition. Ranges are tracked in
// read order; the checkpoint is the end of the longest prefix of ranges that
// were all acked without error. Out-of-order acks are held until the gap
// before them closes.
type Tracker struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever state changes
	cap     int64

	ranges  []*Range // in Track order, head first
	pending int64    // records in ranges not yet acked
	done    bool     // checkpoint is valid
	ckpt    int64
	failed  error

	onWait func()
}

// waitNudge is how long Track waits at the cap before, and between, calls
// to the OnWait hook.
const waitNudge = 250 * time.Millisecond

// OnWait sets a hook called while Track is blocked at the cap: first after
// a short wait, then periodically. Buffering sinks use it to flush early, so
// a cap below what the sinks buffer costs latency, never a deadlock.
func (t *Tracker) OnWait(f func()) {
	t.mu.Lock()
	t.onWait = f
	t.mu.Unlock()
}

// Range is a tracked run of records ending at End.
type Range struct {
	t     *Tracker
	End   int64
	n     int64
	acked bool
}

// New returns a tracker that lets at most cap records be pending; cap <= 0
// means no cap.
func New(cap int64) *Tracker {
	return &Tracker{cap: cap, changed: make(chan struct{})}
}

// Track registers n records ending at position end, blocking while the
// pending count is at the cap. A range larger than the cap is admitted when
// nothing else is pending, so a single oversized batch cannot deadlock.
func (t *Tracker) Track(ctx context.Context, end int64, n int) (*Range, error) {
	for {
		t.mu.Lock()
		if t.failed != nil {
			err := t.failed
			t.mu.Unlock()
			return nil, err
		}
		if t.cap <= 0 || t.pending == 0 || t.pending+int64(n) <= t.cap {
			r := &Range{t: t, End: end, n: int64(n)}
			t.ranges = append(t.ranges, r)
			t.pending += int64(n)
			t.mu.Unlock()
			return r, nil
		}
		ch, hook := t.changed, t.onWait
		t.mu.Unlock()
		timer := time.NewTimer(waitNudge)
		select {
		case <-ch:
		case <-timer.C:
			if hook != nil {
				hook()
			}
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		}
		timer.Stop()
	}
}

// Ack marks the range handled. A nil error may advance the checkpoint; an
// error stops it for good, and wakes anyone blocked in Track.
func (r *Range) Ack(err error) {
	t := r.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.acked {
		return
	}
	r.acked = true
	t.pending -= r.n
	if err != nil {
		if t.failed == nil {
			t.failed = errors.Join(ErrFailed, err)
		}
	} else if t.failed == nil {
		i := 0
		for i < len(t.ranges) && t.ranges[i].acked {
			t.ckpt, t.done = t.ranges[i].End, true
			i++
		}
		if i > 0 {
			clear(t.ranges[:i])
			t.ranges = t.ranges[i:]
		}
	}
	close(t.changed)
	t.changed = make(chan struct{})
}

// Checkpoint returns the highest position whose records, and all before
// them, are acked; ok is false until the first range is.
func (t *Tracker) Checkpoint() (pos int64, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ckpt, t.done
}

// Pending returns the number of tracked records not yet acked.
func (t *Tracker) Pending() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pending
}

// Err returns the failure that stopped the checkpoint, if any.
func (t *Tracker) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

// Wait blocks until nothing is pending or ctx is done.
func (t *Tracker) Wait(ctx context.Context) error {
	for {
		t.mu.Lock()
		if t.pending == 0 {
			t.mu.Unlock()
			return nil
		}
		ch := t.changed
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
