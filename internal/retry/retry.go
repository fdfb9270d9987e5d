// Package retry is the one backoff every sink and reader of Sluice uses:
// exponential from Base to Max with equal jitter (each wait is between half
// the current step and the whole step), bounded by MaxElapsed, and ended at
// once by its context, which is how Close aborts retries it has given up on.
//
// A loop that retries a whole call uses Policy.Do. A loop with its own shape
// (OpenSearch resends only the items that asked for it; a Kinesis reader
// backs off on throttling and starts over after a good read) keeps a
// Backoff and calls Wait between attempts and Reset after progress.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// ErrExhausted is returned when waiting again would pass MaxElapsed.
var ErrExhausted = errors.New("retries exhausted")

// Policy says how to back off.
type Policy struct {
	// Base is the first step; each failed attempt doubles it, up to Max.
	Base, Max time.Duration
	// MaxElapsed bounds the time since the first attempt after which no
	// more waits are granted; 0 means no bound.
	MaxElapsed time.Duration
}

// Backoff is one run of retries under a Policy. It is used by one
// goroutine.
type Backoff struct {
	p        Policy
	step     time.Duration
	start    time.Time
	attempts int
}

// Start begins a run of retries; its elapsed time counts from now.
func (p Policy) Start() *Backoff {
	return &Backoff{p: p, step: p.Base, start: time.Now()}
}

// Next returns how long to wait before the next attempt, and false when
// that wait would end past MaxElapsed (then the wait returned is what is
// left, and the caller should give up).
func (b *Backoff) Next() (time.Duration, bool) {
	b.attempts++
	d := b.step/2 + time.Duration(rand.Int64N(int64(b.step/2)+1))
	b.step = min(b.step*2, b.p.Max)
	if b.p.MaxElapsed > 0 {
		left := b.p.MaxElapsed - time.Since(b.start)
		if left <= 0 {
			return 0, false
		}
		d = min(d, left)
	}
	return d, true
}

// Wait sleeps for the next step. It returns ErrExhausted once MaxElapsed
// has passed, and the context's error when ctx ends first.
func (b *Backoff) Wait(ctx context.Context) error {
	d, ok := b.Next()
	if !ok {
		return ErrExhausted
	}
	return Sleep(ctx, d)
}

// Reset starts the steps and the elapsed time over, after an attempt made
// progress.
func (b *Backoff) Reset() {
	b.step = b.p.Base
	b.start = time.Now()
	b.attempts = 0
}

// Attempts counts the waits since the start or the last Reset.
func (b *Backoff) Attempts() int { return b.attempts }

// Elapsed is the time since the start or the last Reset.
func (b *Backoff) Elapsed() time.Duration { return time.Since(b.start) }

// Sleep waits for d, or until ctx ends (then it returns ctx's error).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// permanent marks an error that retrying cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so that Do returns it at once instead of retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// Do calls op until it returns nil, a Permanent error (returned unwrapped),
// or the policy is exhausted (the last error is returned), or ctx ends
// (ctx's error joined with the last one). onRetry, when not nil, is called
// before each wait with the failed attempt's error and the wait.
func (p Policy) Do(ctx context.Context, op func(context.Context) error, onRetry func(err error, wait time.Duration)) error {
	b := p.Start()
	for {
		err := op(ctx)
		if err == nil {
			return nil
		}
		var perm permanent
		if errors.As(err, &perm) {
			return perm.err
		}
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), err)
		}
		d, ok := b.Next()
		if !ok {
			return err
		}
		if onRetry != nil {
			onRetry(err, d)
		}
		if serr := Sleep(ctx, d); serr != nil {
			return errors.Join(serr, err)
		}
	}
}
