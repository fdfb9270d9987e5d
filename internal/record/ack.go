package record

import (
	"sync"
	"sync/atomic"
)

// AckFunc reports that a batch, or the part of it a derived ack stands for,
// is durably handled (err == nil) or has failed. It is called exactly once.
type AckFunc func(err error)

// AckGroup derives child acks from a parent ack. The parent fires once the
// group is sealed and every child has fired; the first error reported by any
// child wins. A group with no children fires on Seal with nil: records that
// were filtered or matched no route count as delivered.
type AckGroup struct {
	parent  AckFunc
	pending atomic.Int64 // children not yet fired, +1 until sealed
	mu      sync.Mutex
	err     error
}

// NewAckGroup returns a group that calls parent when all its children have
// fired and Seal has been called.
func NewAckGroup(parent AckFunc) *AckGroup {
	g := &AckGroup{parent: parent}
	g.pending.Store(1)
	return g
}

// Add derives a child ack. It must not be called after Seal. Calling the
// child more than once has no further effect.
func (g *AckGroup) Add() AckFunc {
	g.pending.Add(1)
	var once atomic.Bool
	return func(err error) {
		if once.CompareAndSwap(false, true) {
			g.done(err)
		}
	}
}

// Seal says no more children will be added.
func (g *AckGroup) Seal() { g.done(nil) }

// SealWith seals the group and, if err is not nil, fails it with err: what
// a stage returns when it could not take all of a batch.
func (g *AckGroup) SealWith(err error) { g.done(err) }

func (g *AckGroup) done(err error) {
	if err != nil {
		g.mu.Lock()
		if g.err == nil {
			g.err = err
		}
		g.mu.Unlock()
	}
	if g.pending.Add(-1) == 0 && g.parent != nil {
		g.mu.Lock()
		err := g.err
		g.mu.Unlock()
		g.parent(err)
	}
}

// Noop is an AckFunc that does nothing.
func Noop(error) {}
