package objstore

import (
	"context"
	"encoding/base64"
	"strconv"
	"sync"
	"time"

	"github.com/sluice-data/sluice/internal/archivefmt"
	"github.com/sluice-data/sluice/internal/jq"
	"github.com/sluice-data/sluice/internal/jsonx"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/sinks"
	"github.com/sluice-data/sluice/internal/template"
)

const (
	kindData  byte = 'd'
	kindError byte = 'e'
)

// entry is one encoded record inside a pending chunk.
type entry struct {
	keyEnd, rowEnd uint32 // data[start:keyEnd] is the partition key, data[keyEnd:rowEnd] the row
	pos            record.Position
	source         string
	header         []byte // CSV header of the record's route, if any
	errType        string // an error record's error output type; "" for data
	// For on_partition_limit: error, what an error record needs.
	raw            []byte
	arrival, event time.Time
}

// pending is what one worker encoded for one batch.
type pending struct {
	data []byte
	ents []entry
}

func (p *pending) Len() int { return len(p.ents) }

var pendingPool = sync.Pool{New: func() any { return &pending{} }}

// writer encodes records for one sink in one pipeline worker.
type writer struct {
	s      *Sink
	keys   []*jq.Expr
	jq     *jq.Env
	vals   [][]byte
	prefix *template.Template
	errPfx *template.Template
	p      *pending
}

func (s *Sink) newWriter() *writer {
	w := &writer{s: s, keys: s.keys, prefix: s.prefix, errPfx: s.errPrefix, vals: make([][]byte, len(s.keys))}
	return w
}

// NewWriter returns a writer for one worker.
func (s *Sink) NewWriter() sinks.Writer { return s.newWriter() }

var _ sinks.JQWriter = (*writer)(nil)

// SetJQ bounds the partition keys' evaluations by the worker's limits.
func (w *writer) SetJQ(env *jq.Env) { w.jq = env }

func (w *writer) cur() *pending {
	if w.p == nil {
		w.p = pendingPool.Get().(*pending)
	}
	return w.p
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

// Write evaluates the partition keys, renders the prefix and encodes the
// row. A failure leaves nothing behind in the chunk.
func (w *writer) Write(rec *record.Record) *sinks.Failure {
	if len(w.keys) > 0 {
		if rec.Value == nil {
			return w.fail(rec, sinks.ProcessingFailed, "DynamicPartitioning.MetadataExtractionFailed", "partition keys need a JSON record; this one is raw bytes")
		}
		if w.jq == nil {
			w.jq = jq.NewEnv(context.Background(), jq.DefaultLimits)
		}
		// The keys are evaluated together, so that keys over one field
		// read it once. A key over a jq bound fails like any key Firehose
		// cannot extract; the message names the bound. The first key that
		// fails or is empty names the failure.
		bad, err := w.jq.AppendTexts(w.keys, w.vals, rec.Value)
		for i := range bad {
			if len(w.vals[i]) == 0 {
				bad, err = i, errEmptyKey
				break
			}
		}
		if err != nil {
			return w.fail(rec, sinks.ProcessingFailed, "DynamicPartitioning.MetadataExtractionFailed", "partition key "+w.s.keyNames[bad]+": "+err.Error())
		}
	}
	p := w.cur()
	start := len(p.data)
	p.data = append(p.data, kindData)
	// The renderer escapes the values; a key it still cannot make safe
	// goes to the error output, never to the store.
	var err error
	if p.data, err = w.prefix.AppendPrefix(p.data, template.Values{Keys: w.vals, Time: rec.EventTime, Arrival: rec.Arrival}); err != nil {
		p.data = p.data[:start]
		return w.fail(rec, sinks.ProcessingFailed, "DynamicPartitioning.MetadataExtractionFailed", err.Error())
	}
	keyEnd := len(p.data)
	var dropped bool
	switch w.s.format {
	case "parquet":
		if rec.Value == nil {
			p.data = p.data[:start]
			return w.fail(rec, sinks.SchemaMismatch, "DataFormatConversion.InvalidSchema", "record is raw bytes; parquet needs JSON")
		}
		p.data, dropped, err = w.s.layout.encodeRow(p.data, rec.Value)
	case "ndjson":
		if rec.Value != nil {
			p.data = jsonx.AppendValue(p.data, rec.Value)
		} else {
			p.data = append(p.data, rec.Raw...)
		}
		p.data = append(p.data, '\n')
	case "csv":
		if rec.CSV == nil {
			p.data = p.data[:start]
			return w.fail(rec, sinks.SchemaMismatch, "DataFormatConversion.InvalidSchema", "record has no CSV rendering: add a json_to_csv transform to its route")
		}
		p.data = append(p.data, rec.CSV...)
		p.data = append(p.data, '\n')
	case "raw":
		p.data = archivefmt.Append(p.data, rec)
	}
	if err != nil {
		p.data = p.data[:start]
		return w.fail(rec, sinks.SchemaMismatch, "DataFormatConversion.InvalidSchema", err.Error())
	}
	if dropped {
		w.s.droppedExtra.Inc()
	}
	e := entry{keyEnd: uint32(keyEnd), rowEnd: uint32(len(p.data)), pos: rec.Pos, source: rec.Source, header: rec.CSVHeader}
	if w.s.onLimit == "error" {
		e.raw, e.arrival, e.event = rec.Raw, rec.Arrival, rec.EventTime
	}
	p.ents = append(p.ents, e)
	return nil
}

type constError string

func (e constError) Error() string { return string(e) }

const errEmptyKey = constError("produced an empty value")

func (w *writer) fail(rec *record.Record, typ, code, msg string) *sinks.Failure {
	return &sinks.Failure{Type: typ, Code: code, Message: msg, Source: rec.Source, Sink: w.s.name, Pos: rec.Pos, Raw: rec.Raw, Arrival: rec.Arrival, Event: rec.EventTime}
}

// WriteFailure encodes an error record under error_prefix.
func (w *writer) WriteFailure(f *sinks.Failure) {
	p := w.cur()
	p.data = append(p.data, kindError)
	at := f.Event
	if at.IsZero() {
		at = f.Arrival
	}
	p.data = w.errPfx.Append(p.data, template.Values{Time: at, Arrival: f.Arrival, ErrorType: f.Type})
	keyEnd := len(p.data)
	p.data = AppendErrorRecord(p.data, f)
	pos, source := f.Pos, f.Source
	if f.FiledSource != "" {
		pos, source = f.FiledPos, f.FiledSource
	}
	p.ents = append(p.ents, entry{keyEnd: uint32(keyEnd), rowEnd: uint32(len(p.data)), pos: pos, source: source, errType: f.Type})
}

// AppendErrorRecord renders a failure as one NDJSON line in the shape
// Firehose uses for its error output, plus where the record came from.
// There is no attemptEndingTimestamp: it would make re-runs differ.
func AppendErrorRecord(dst []byte, f *sinks.Failure) []byte {
	dst = append(dst, `{"attemptsMade":1,"arrivalTimestamp":`...)
	dst = strconv.AppendInt(dst, f.Arrival.UnixMilli(), 10)
	dst = append(dst, `,"errorCode":`...)
	dst = jsonx.AppendString(dst, []byte(f.Code))
	dst = append(dst, `,"errorMessage":`...)
	dst = jsonx.AppendString(dst, []byte(f.Message))
	dst = append(dst, `,"errorOutputType":`...)
	dst = jsonx.AppendString(dst, []byte(f.Type))
	dst = append(dst, `,"rawData":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, f.Raw)
	dst = append(dst, `","source":`...)
	dst = jsonx.AppendString(dst, []byte(f.Source))
	dst = append(dst, `,"sourcePartition":`...)
	dst = jsonx.AppendString(dst, []byte(f.Pos.Partition))
	dst = append(dst, `,"sourcePosition":`...)
	dst = jsonx.AppendString(dst, []byte(f.Pos.String()))
	if f.Route != "" {
		dst = append(dst, `,"route":`...)
		dst = jsonx.AppendString(dst, []byte(f.Route))
	}
	if f.Sink != "" {
		dst = append(dst, `,"sink":`...)
		dst = jsonx.AppendString(dst, []byte(f.Sink))
	}
	return append(dst, "}\n"...)
}
