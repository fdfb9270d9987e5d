package opensearch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
)

// NewCapture builds a sink that encodes documents exactly as New's does
// (index name, id, bulk lines, and the failures those can produce) but
// connects to nothing: no client, no index template or ingest pipeline
// PUT at start, no bulk request. Append keeps the documents, in order,
// and acks them at once. Config unit tests (processor test) use it; since
// nothing is sent, nothing is ever rejected by OpenSearch.
func NewCapture(cfg *config.Sink, errorSink string, log *zap.Logger) (*Sink, error) {
	return newSink(cfg, errorSink, nil, log)
}

// Document is one captured bulk item.
type Document struct {
	Index, ID string
	Source    json.RawMessage // the document, as it would be sent
}

type capture struct {
	mu    sync.Mutex
	items []*item
}

func (c *capture) add(items []*item) {
	c.mu.Lock()
	c.items = append(c.items, items...)
	c.mu.Unlock()
}

// Documents returns what a sink built by NewCapture was given, in Append
// order. It is an error to call it on a sink built by New.
func (s *Sink) Documents() ([]Document, error) {
	if s.captured == nil {
		return nil, fmt.Errorf("sink %s: not a capturing sink", s.name)
	}
	s.captured.mu.Lock()
	defer s.captured.mu.Unlock()
	out := make([]Document, 0, len(s.captured.items))
	for _, it := range s.captured.items {
		action, doc, ok := bytes.Cut(it.lines, []byte{'\n'})
		if !ok {
			return nil, fmt.Errorf("sink %s: bulk item without a document line", s.name)
		}
		var a struct {
			Index struct {
				Index string `json:"_index"`
				ID    string `json:"_id"`
			} `json:"index"`
		}
		if err := json.Unmarshal(action, &a); err != nil {
			return nil, fmt.Errorf("sink %s: action line: %w", s.name, err)
		}
		out = append(out, Document{Index: a.Index.Index, ID: a.Index.ID, Source: bytes.Clone(bytes.TrimSuffix(doc, []byte{'\n'}))})
	}
	return out, nil
}
