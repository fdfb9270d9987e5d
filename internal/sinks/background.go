package sinks

import (
	"context"
	"fmt"
	"sync"
)

// Background is the lifecycle every buffering sink shares: Run starts its
// workers, runs its ticker (which flushes on time) and the failing-sink
// warner, and returns once all have exited. The sink's Close (or Run's ctx
// ending) stops them. The sink sets the exported fields before Run.
type Background struct {
	Name    string
	Workers int
	// Worker is one worker: it returns once the sink's work channel is
	// closed by Stop's caller.
	Worker func()
	// Tick is the ticker loop: it returns once Stopping is closed or ctx
	// ends.
	Tick     func(ctx context.Context)
	Health   *Health
	Stopping <-chan struct{}
	// GiveUp is called when ctx ends before the sink is closed: it stops
	// retries and closes the sink's work channel and Stopping.
	GiveUp func()

	// mu orders Run's start against Stop, and is never the sink's own
	// lock: an append may hold that while it waits for a worker.
	mu               sync.Mutex
	running, stopped bool
	workers          sync.WaitGroup
}

// Run starts the workers, then runs the ticker and the warner until the
// sink stops or ctx ends. Run after Stop returns at once.
func (b *Background) Run(ctx context.Context) error {
	b.mu.Lock()
	if b.running {
		b.mu.Unlock()
		return fmt.Errorf("sink %s: already running", b.Name)
	}
	if b.stopped {
		b.mu.Unlock()
		return nil
	}
	b.running = true
	for range b.Workers {
		b.workers.Go(b.Worker)
	}
	b.mu.Unlock()
	var watch sync.WaitGroup
	watch.Go(func() { b.Health.Watch(b.Stopping) })
	b.Tick(ctx)
	if ctx.Err() != nil {
		b.GiveUp()
	}
	watch.Wait()
	b.workers.Wait()
	return nil
}

// Stop tells Run that the sink is closing: a Run not yet started starts
// nothing. The caller then closes the work channel and Stopping.
func (b *Background) Stop() {
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
}

// Wait waits until every worker has exited.
func (b *Background) Wait() { b.workers.Wait() }
