package pipeline

import (
	"context"
	"io"
	"sync"

	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/blob"
	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/sinks"
	"github.com/sluice-data/sluice/internal/sinks/objstore"
	"github.com/sluice-data/sluice/internal/sinks/opensearch"
	"github.com/sluice-data/sluice/internal/sources"
)

// Memory is what a pipeline built with InMemory reads, and where it
// writes. New fills Stores and Search.
type Memory struct {
	// Input holds each source's messages by source name; a source with
	// none reads nothing and ends.
	Input map[string][]record.Message
	// Stores holds, by sink name, the in-memory stores of every
	// object-store sink: Data under its url, Errors under its error
	// location. Data objects and error records never share a store.
	Stores map[string]MemStores
	// Search holds, by sink name, every OpenSearch sink, built with
	// opensearch.NewCapture: its documents are in Documents.
	Search map[string]*opensearch.Sink
}

// MemStores are one object-store sink's stores.
type MemStores struct {
	Data, Errors *blob.MemStore
}

// InMemory makes New build a pipeline that touches nothing outside the
// process, for config unit tests (processor test): every source is
// replaced by one that yields m.Input's messages for it in one batch and
// ends; every object-store sink writes its objects, encoded for real, to
// memory stores, with its spill and Glue registration off; every
// OpenSearch sink encodes its documents for real and keeps them instead
// of connecting (no index template or ingest pipeline PUT). Routes,
// transforms, decoders, partition keys, prefixes and encoders are the
// configuration's own, and Run runs as it always does.
func InMemory(m *Memory) Option {
	return func(o *options) { o.mem = m }
}

// newSink builds a sink that writes to memory.
func (m *Memory) newSink(cfg *config.Config, sc *config.Sink, log *zap.Logger) (sinks.Sink, error) {
	if sc.Type == "opensearch" {
		errSink := sc.ErrorSink
		if errSink == "" {
			errSink = cfg.Service.ErrorSink
		}
		s, err := opensearch.NewCapture(sc, errSink, log)
		if err != nil {
			return nil, err
		}
		if m.Search == nil {
			m.Search = map[string]*opensearch.Sink{}
		}
		m.Search[sc.Name] = s
		return s, nil
	}
	c := *sc
	c.MaxSpillBytes, c.MaxSpillRecs = 0, 0 // no spill files
	c.Glue = config.Glue{}                 // no catalog calls
	errURL, _ := sc.ErrorLocation()
	st := MemStores{Data: blob.NewMemStore(sc.URL), Errors: blob.NewMemStore(errURL)}
	s, err := objstore.New(&c, objstore.Stores{Data: st.Data, Errors: st.Errors}, log)
	if err != nil {
		return nil, err
	}
	if m.Stores == nil {
		m.Stores = map[string]MemStores{}
	}
	m.Stores[sc.Name] = st
	return s, nil
}

// source returns the source that yields name's input.
func (m *Memory) source(name string) sources.Source {
	return &memSource{name: name, msgs: m.Input[name]}
}

// memSource yields its messages in one batch, then io.EOF.
type memSource struct {
	name string
	mu   sync.Mutex
	msgs []record.Message
	done bool
}

var _ sources.Source = (*memSource)(nil)

func (s *memSource) ReadBatch(context.Context) (record.Batch, record.AckFunc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done || len(s.msgs) == 0 {
		return record.Batch{}, nil, io.EOF
	}
	s.done = true
	return record.Batch{Source: s.name, Messages: s.msgs}, func(error) {}, nil
}

func (s *memSource) Close(context.Context) error { return nil }
