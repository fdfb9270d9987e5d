// Package registry maps a component kind (a config type:) to its
// constructor. Sources and sinks each keep one, like database/sql keeps
// its drivers.
package registry

import (
	"maps"
	"slices"
	"sync"
)

// Registry holds the constructors of one family of components.
type Registry[C any] struct {
	family string // "sources", "sinks": names the registry in panics
	mu     sync.RWMutex
	kinds  map[string]C
}

// New returns an empty registry for family.
func New[C any](family string) *Registry[C] {
	return &Registry[C]{family: family, kinds: map[string]C{}}
}

// Register makes kind available. Registering a kind twice is a programming
// error and panics.
func (r *Registry[C]) Register(kind string, c C) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.kinds[kind]; dup {
		panic(r.family + ": Register called twice for " + kind)
	}
	r.kinds[kind] = c
}

// Lookup returns the constructor registered for kind.
func (r *Registry[C]) Lookup(kind string) (C, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.kinds[kind]
	return c, ok
}

// Kinds lists the registered kinds, sorted.
func (r *Registry[C]) Kinds() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.kinds))
}
