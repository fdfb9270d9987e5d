package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoffSteps(t *testing.T) {
	b := Policy{Base: 100 * time.Millisecond, Max: 400 * time.Millisecond}.Start()
	// Equal jitter: each wait is within [step/2, step]; steps double to Max.
	for i, step := range []time.Duration{100, 200, 400, 400, 400} {
		step *= time.Millisecond
		d, ok := b.Next()
		if !ok || d < step/2 || d > step {
			t.Fatalf("wait %d = %s, %v; want within [%s, %s]", i, d, ok, step/2, step)
		}
	}
	if b.Attempts() != 5 {
		t.Errorf("attempts = %d, want 5", b.Attempts())
	}
	b.Reset()
	if d, _ := b.Next(); d > 100*time.Millisecond {
		t.Errorf("after Reset the wait is %s, want the first step again", d)
	}
}

func TestBackoffMaxElapsed(t *testing.T) {
	b := Policy{Base: time.Hour, Max: time.Hour, MaxElapsed: 30 * time.Millisecond}.Start()
	d, ok := b.Next()
	if !ok || d > 30*time.Millisecond {
		t.Fatalf("first wait = %s, %v; want at most what is left of MaxElapsed", d, ok)
	}
	time.Sleep(35 * time.Millisecond)
	if _, ok := b.Next(); ok {
		t.Error("a wait past MaxElapsed was granted")
	}
	if err := b.Wait(context.Background()); !errors.Is(err, ErrExhausted) {
		t.Errorf("Wait = %v, want ErrExhausted", err)
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	b := Policy{Base: time.Hour, Max: time.Hour}.Start()
	if err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait = %v, want context.Canceled", err)
	}
}

func TestDo(t *testing.T) {
	fast := Policy{Base: time.Millisecond, Max: 2 * time.Millisecond, MaxElapsed: time.Second}
	boom := errors.New("boom")
	tests := []struct {
		name    string
		fails   int   // attempts that fail before one succeeds
		err     error // what a failing attempt returns
		want    error
		retries int
	}{
		{name: "first try", fails: 0, want: nil, retries: 0},
		{name: "third try", fails: 2, err: boom, want: nil, retries: 2},
		{name: "permanent", fails: 5, err: Permanent(boom), want: boom, retries: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls, retries := 0, 0
			err := fast.Do(context.Background(), func(context.Context) error {
				calls++
				if calls <= tt.fails {
					return tt.err
				}
				return nil
			}, func(error, time.Duration) { retries++ })
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) || retries != tt.retries {
				t.Errorf("Do = %v after %d retries; want %v after %d", err, retries, tt.want, tt.retries)
			}
		})
	}
	t.Run("exhausted", func(t *testing.T) {
		p := Policy{Base: time.Millisecond, Max: time.Millisecond, MaxElapsed: 20 * time.Millisecond}
		err := p.Do(context.Background(), func(context.Context) error { return boom }, nil)
		if !errors.Is(err, boom) {
			t.Errorf("Do = %v, want the last error", err)
		}
	})
	t.Run("aborted", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(10*time.Millisecond, cancel)
		err := Policy{Base: time.Hour, Max: time.Hour}.Do(ctx, func(context.Context) error { return boom }, nil)
		if !errors.Is(err, context.Canceled) || !errors.Is(err, boom) {
			t.Errorf("Do = %v, want context.Canceled joined with the last error", err)
		}
	})
}
