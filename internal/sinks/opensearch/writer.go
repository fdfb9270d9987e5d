package opensearch

import (
	"bytes"
	"context"
	"fmt"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/jq"
	"github.com/sluice-data/sluice/internal/jsonx"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/sinks"
	"github.com/sluice-data/sluice/internal/template"
)

// pending is what one worker encoded for one batch.
type pending struct {
	items []*item
}

func (p *pending) Len() int { return len(p.items) }

// writer encodes records into bulk items for one pipeline worker.
type writer struct {
	s       *Sink
	id      *jq.Expr
	jq      *jq.Env
	p       *pending
	slab    []byte // items' lines are cut from it
	idx, sc []byte
	okIdx   []byte // the last index name found legal
}

// NewWriter returns a writer for one worker.
func (s *Sink) NewWriter() sinks.Writer { return &writer{s: s, id: s.id} }

var _ sinks.JQWriter = (*writer)(nil)

// SetJQ bounds the id's evaluations by the worker's limits.
func (w *writer) SetJQ(env *jq.Env) { w.jq = env }

// Write renders the index name, the id and the document. A record whose id
// cannot be computed, or that is not JSON, is returned as a failure.
func (w *writer) Write(rec *record.Record) *sinks.Failure {
	at := rec.EventTime
	if at.IsZero() {
		at = rec.Arrival
	}
	w.idx = w.s.index.Append(w.idx[:0], template.Values{Time: at, Arrival: rec.Arrival})
	if !bytes.Equal(w.idx, w.okIdx) {
		// Validation checked the template's literal parts; what a time
		// renders to is checked here, before OpenSearch would refuse it.
		if err := config.IndexNameError(string(w.idx)); err != nil {
			return w.fail(rec, "OpenSearch.InvalidIndexName", fmt.Sprintf("index %q: %v", w.idx, err))
		}
		w.okIdx = append(w.okIdx[:0], w.idx...)
	}
	if rec.Value == nil {
		return w.fail(rec, "OpenSearch.NotJSON", "a document must be a JSON object; this record is raw bytes")
	}
	if w.id != nil {
		var err error
		if w.jq == nil {
			w.jq = jq.NewEnv(context.Background(), jq.DefaultLimits)
		}
		w.sc, err = w.jq.AppendText(w.id, w.sc[:0], rec.Value)
		if err == nil && len(w.sc) == 0 {
			err = errEmptyID
		}
		if err == nil && len(w.sc) > 512 {
			err = errLongID
		}
		if err != nil {
			return w.fail(rec, "OpenSearch.IdExtractionFailed", "id "+w.s.cfg.ID+": "+err.Error())
		}
	} else {
		w.sc = docID(w.sc[:0], rec.Source, rec.Pos)
	}
	if cap(w.slab)-len(w.slab) < 4096 {
		w.slab = make([]byte, 0, 256<<10)
	}
	start := len(w.slab)
	w.slab = appendAction(w.slab, w.idx, w.sc)
	w.slab = jsonx.AppendValue(w.slab, rec.Value)
	w.slab = append(w.slab, '\n')
	// A document longer than what was left of the slab moved it; either
	// way the item's lines are the tail, and later items go after them.
	it := &item{lines: w.slab[start:len(w.slab):len(w.slab)], source: rec.Source, pos: rec.Pos, raw: rec.Raw, arrival: rec.Arrival, event: rec.EventTime}
	if w.p == nil {
		w.p = &pending{}
	}
	w.p.items = append(w.p.items, it)
	return nil
}

type constError string

func (e constError) Error() string { return string(e) }

const (
	errEmptyID = constError("produced an empty value")
	errLongID  = constError("produced more than 512 bytes, OpenSearch's limit for _id")
)

func (w *writer) fail(rec *record.Record, code, msg string) *sinks.Failure {
	return &sinks.Failure{Type: sinks.ProcessingFailed, Code: code, Message: msg, Source: rec.Source, Sink: w.s.name,
		Pos: rec.Pos, Raw: rec.Raw, Arrival: rec.Arrival, Event: rec.EventTime}
}

// WriteFailure is never called: an OpenSearch sink's failures go to its
// error sink (ErrorSink), which must be an object-store sink.
func (w *writer) WriteFailure(f *sinks.Failure) {
	panic("opensearch: WriteFailure called; failures go to sink " + w.s.errName)
}

// Take hands over what was encoded since the last call.
func (w *writer) Take() sinks.Pending {
	p := w.p
	w.p = nil
	if p == nil {
		return nil
	}
	return p
}
