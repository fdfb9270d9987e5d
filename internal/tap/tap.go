// Package tap shows live records flowing through a running pipeline, like
// `vector tap`: the pipeline publishes every record a route hands to its
// sinks, and each subscriber (one GET /tap, one `processor tap`) receives
// those of the route or sink it asked for, as NDJSON lines.
//
// # A reader never slows the pipeline
//
// Publish never blocks. Each subscriber has a bounded channel of rendered
// lines; when it is full (the reader is slower than the pipeline) the line
// is dropped and counted for that subscriber, and the HTTP handler tells the
// client the running count in a {"dropped":N} line. With nobody subscribed,
// Publish is one atomic load and allocates nothing.
//
// # Line format
//
// Every record line is one JSON object:
//
//	{"route":"errors","sinks":["lake","search"],"source":"app-logs","position":"app-logs/3:1042","record":{...}}
//
// route is the route that matched the record; sinks are the sinks that
// route hands it to (a --sink tap receives the lines whose sinks include
// it); source is the source name; position is the record's source position
// as error records write it (partition:offset[sub]); record is the record
// after the route's transforms, as JSON, or, for format raw, its bytes as a
// JSON string (invalid UTF-8 replaced by U+FFFD). Failures written to error
// outputs are not tapped: a tap shows what routes deliver.
//
// A line {"dropped":N} (no other key) says that N lines in total were
// dropped for this subscriber so far.
package tap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sluice-data/sluice/internal/record"
)

// DefaultBuffer is how many rendered lines a subscriber may have waiting
// before further lines are dropped.
const DefaultBuffer = 1024

// ErrUnknown is returned by Subscribe for a route or sink the
// configuration does not have.
var ErrUnknown = errors.New("unknown name")

// Filter selects what a subscriber sees: the records of one route, or the
// records handed to one sink. Exactly one of Route and Sink is set.
type Filter struct {
	Route, Sink string
}

func (f Filter) match(route string, sinks []string) bool {
	if f.Route != "" {
		return f.Route == route
	}
	return slices.Contains(sinks, f.Sink)
}

// Hub fans records out to subscribers. Its zero value is not usable; a nil
// *Hub is, and publishes nothing.
type Hub struct {
	routes, sinks []string // the names a Filter may use
	n             atomic.Int32
	mu            sync.RWMutex
	subs          map[*Subscription]struct{}
}

// NewHub returns a hub whose subscribers may name the given routes and
// sinks.
func NewHub(routes, sinks []string) *Hub {
	return &Hub{routes: slices.Clone(routes), sinks: slices.Clone(sinks), subs: map[*Subscription]struct{}{}}
}

// SetNames replaces the routes and sinks a Filter may name (after a
// reload). Subscribers to names that are gone stay subscribed and get
// nothing until the names come back.
func (h *Hub) SetNames(routes, sinks []string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.routes, h.sinks = slices.Clone(routes), slices.Clone(sinks)
	h.mu.Unlock()
}

// Subscription is one subscriber's stream of lines.
type Subscription struct {
	h       *Hub
	f       Filter
	ch      chan []byte
	dropped atomic.Int64
	once    sync.Once
}

// Subscribe registers a subscriber with room for buffer waiting lines
// (DefaultBuffer when buffer <= 0). The caller must Close it.
func (h *Hub) Subscribe(f Filter, buffer int) (*Subscription, error) {
	h.mu.RLock()
	routes, sinks := h.routes, h.sinks
	h.mu.RUnlock()
	switch {
	case (f.Route == "") == (f.Sink == ""):
		return nil, errors.New("tap: give exactly one of route and sink")
	case f.Route != "" && !slices.Contains(routes, f.Route):
		return nil, fmt.Errorf("tap: route %q: %w (routes: %v)", f.Route, ErrUnknown, routes)
	case f.Sink != "" && !slices.Contains(sinks, f.Sink):
		return nil, fmt.Errorf("tap: sink %q: %w (sinks: %v)", f.Sink, ErrUnknown, sinks)
	}
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	s := &Subscription{h: h, f: f, ch: make(chan []byte, buffer)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.n.Add(1)
	h.mu.Unlock()
	return s, nil
}

// Lines delivers the subscriber's lines, each one JSON object ending in a
// newline. It is closed by Close.
func (s *Subscription) Lines() <-chan []byte { return s.ch }

// Dropped is how many lines were dropped because Lines was full.
func (s *Subscription) Dropped() int64 { return s.dropped.Load() }

// Close unsubscribes and closes Lines. It may be called more than once.
func (s *Subscription) Close() {
	s.once.Do(func() {
		h := s.h
		h.mu.Lock()
		delete(h.subs, s)
		h.n.Add(-1)
		h.mu.Unlock()
		// Publish sends only under the read lock, so nothing sends now.
		close(s.ch)
	})
}

// Active reports whether anyone is subscribed.
func (h *Hub) Active() bool { return h != nil && h.n.Load() > 0 }

// Publish offers rec, which route hands to sinks, to every matching
// subscriber. It never blocks, and with nobody subscribed it only loads an
// atomic counter. rec is rendered before Publish returns, so the caller may
// reuse it.
func (h *Hub) Publish(route string, sinks []string, rec *record.Record) {
	if h == nil || h.n.Load() == 0 {
		return
	}
	h.publish(route, sinks, rec)
}

func (h *Hub) publish(route string, sinks []string, rec *record.Record) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var line []byte
	for s := range h.subs {
		if !s.f.match(route, sinks) {
			continue
		}
		if line == nil {
			line = render(route, sinks, rec)
		}
		select {
		case s.ch <- line: // subscribers only read lines: one copy serves all
		default:
			s.dropped.Add(1)
		}
	}
}

// Line is one record line of a tap stream.
type Line struct {
	Route    string          `json:"route"`
	Sinks    []string        `json:"sinks"`
	Source   string          `json:"source"`
	Position string          `json:"position"`
	Record   json.RawMessage `json:"record"`
}

func render(route string, sinks []string, rec *record.Record) []byte {
	l := Line{Route: route, Sinks: sinks, Source: rec.Source, Position: rec.Pos.String()}
	if rec.Value != nil {
		l.Record = rec.Value.MarshalTo(nil)
	} else {
		l.Record, _ = json.Marshal(string(rec.Raw)) // a string never fails
	}
	if l.Sinks == nil {
		l.Sinks = []string{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // records are shown as they are, not for a browser
	if err := enc.Encode(l); err != nil {
		// fastjson renders valid JSON; reaching here is a bug worth a
		// visible line rather than a silent gap in the stream.
		b.Reset()
		_ = enc.Encode(map[string]string{"route": route, "source": rec.Source, "position": rec.Pos.String(), "error": err.Error()})
	}
	return b.Bytes() // Encode ends it with a newline
}
