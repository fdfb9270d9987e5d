// Package lifecycle names the one contract every component with background
// work follows, so that the pipeline owns every goroutine in one place.
//
// Constructors start nothing. A component that needs goroutines (flush
// workers, a ticker, a lease loop) does that work in Run, which the
// pipeline starts, for every such component, before it reads anything, and
// ends after every sink and source is closed.
package lifecycle

import "context"

// Runner is a component with background work.
//
// Run does that work until the component is closed or ctx ends, whichever
// comes first, and returns once every goroutine it started has exited.
// ctx ending means the owner gives up: work still retrying stops at once,
// as with Close on a done context. Run returns the reason the component
// failed, or nil. The component's other methods (Append, Flush, ReadBatch)
// need Run started; Close may come at any time, and Run after Close returns
// at once.
type Runner interface {
	Run(ctx context.Context) error
}
