// Package decode turns source messages into records, one format at a time:
// app_log, eventbridge, metric_stream, otlp_metrics (CloudWatch Metric
// Streams' opentelemetry1.0 output, rendered as metric_stream records),
// json and raw. Each record gets its
// event time here. A message that does not decode is reported with its raw
// bytes and reason; nothing is dropped.
package decode

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fastjson"

	"github.com/sluice-data/sluice/internal/jsonx"
	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/timeconv"
)

// Formats lists the format names.
var Formats = []string{"app_log", "eventbridge", "metric_stream", "otlp_metrics", "json", "raw"}

// DefaultEventTime returns the event-time field and unit of a format; an
// empty field means arrival time.
func DefaultEventTime(format string) (field, unit string) {
	switch format {
	case "app_log":
		return "event_timestamp", "auto"
	case "eventbridge":
		return "time", "auto"
	case "metric_stream", "otlp_metrics":
		return "timestamp", "ms"
	}
	return "", "auto"
}

// Decoder decodes messages of one source. It owns a parser whose values are
// valid only until the next record is emitted, so it is not safe for
// concurrent use: a pipeline worker holds one per source.
type Decoder struct {
	source    string
	format    string
	timeField jsonx.Path
	timeUnit  string
	parser    fastjson.Parser
	text      []byte // the message with invalid UTF-8 replaced
	numbers   jsonx.NumberChecker
	rec       record.Record // the record being emitted
	badUTF8   prometheus.Counter
}

// New returns a decoder for source in format. timeField overrides the
// format's event-time field when not empty.
func New(source, format, timeField, timeUnit string) (*Decoder, error) {
	known := false
	for _, f := range Formats {
		known = known || f == format
	}
	if !known {
		return nil, fmt.Errorf("unknown format %q", format)
	}
	if timeField == "" {
		timeField, timeUnit = DefaultEventTime(format)
	}
	if timeUnit == "" {
		timeUnit = "auto"
	}
	return &Decoder{source: source, format: format, timeField: jsonx.ParsePath(timeField), timeUnit: timeUnit,
		badUTF8: metrics.DecodeInvalidUTF8.WithLabelValues(source)}, nil
}

// Error is a message, or one object of it, that did not decode.
type Error struct {
	Pos record.Position
	Raw []byte
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("decode %s: %v", e.Pos, e.Err) }

// Decode decodes msg and calls emit once per record, or fail once per part
// that does not decode. The record passed to emit is valid only during the
// call.
func (d *Decoder) Decode(msg *record.Message, emit func(*record.Record), fail func(*Error)) {
	if msg.Err != nil {
		// The source could not take the message apart (a corrupt KPL
		// aggregate): it fails whole, with the source's reason.
		fail(&Error{Pos: msg.Pos, Raw: msg.Data, Err: msg.Err})
		return
	}
	if d.format == "otlp_metrics" {
		d.otlp(msg, emit, fail)
		return
	}
	if d.format == "metric_stream" && bytes.IndexByte(bytes.TrimSpace(msg.Data), '\n') >= 0 {
		// Several newline-separated objects in one stream record: each is a
		// record named by its index among the non-empty lines.
		data, i := msg.Data, 0
		for len(data) > 0 {
			line := data
			if j := bytes.IndexByte(data, '\n'); j >= 0 {
				line, data = data[:j], data[j+1:]
			} else {
				data = nil
			}
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			d.one(msg, line, msg.Pos.Child(i), emit, fail)
			i++
		}
		return
	}
	d.one(msg, msg.Data, msg.Pos, emit, fail)
}

// otlp decodes a Metric Streams opentelemetry1.0 record: one record per
// data point, named like the objects of a multi-object metric_stream
// record, or the whole message to the error output with its bytes.
func (d *Decoder) otlp(msg *record.Message, emit func(*record.Record), fail func(*Error)) {
	// A fresh buffer per message: records' Raw points into it, and error
	// records keep Raw until the batch is written.
	buf, ends, mended, err := decodeOTLP(msg.Data, nil)
	if err != nil {
		fail(&Error{Pos: msg.Pos, Raw: msg.Data, Err: fmt.Errorf("invalid OpenTelemetry metrics: %w", err)})
		return
	}
	if len(ends) == 0 {
		fail(&Error{Pos: msg.Pos, Raw: msg.Data, Err: errors.New("invalid OpenTelemetry metrics: no data points")})
		return
	}
	if mended {
		// Which data points the mended strings reached is not known
		// here: each record of the message counts.
		d.badUTF8.Add(float64(len(ends)))
	}
	if len(ends) == 1 {
		d.one(msg, buf, msg.Pos, emit, fail)
		return
	}
	start := 0
	for i, end := range ends {
		d.one(msg, buf[start:end:end], msg.Pos.Child(i), emit, fail)
		start = end
	}
}

var bom = []byte("\ufeff")

func (d *Decoder) one(msg *record.Message, data []byte, pos record.Position, emit func(*record.Record), fail func(*Error)) {
	// The record lives in the decoder, so that emitting it allocates
	// nothing; it is valid only during emit.
	d.rec = record.Record{Source: d.source, Raw: data, Pos: pos, Arrival: msg.Arrival, EventTime: msg.Arrival}
	rec := &d.rec
	if msg.Origin != "" {
		rec.Source = msg.Origin
	}
	if d.format == "raw" {
		emit(rec)
		return
	}
	// Strings reach every later stage (partition keys, object keys,
	// Parquet, OpenSearch) as valid UTF-8: invalid bytes and lone
	// surrogate escapes become U+FFFD, counted. Raw keeps the bytes as
	// they came, for the error output and the raw archive.
	text, fixed := jsonx.ValidText(d.text[:0], data)
	if fixed {
		d.text = text
		d.badUTF8.Inc()
	}
	// RFC 8259 8.1 lets a parser ignore a leading byte order mark; files
	// saved by Windows editors start with one, and so would their first
	// record. Raw keeps it.
	v, err := d.parser.ParseBytes(bytes.TrimPrefix(text, bom))
	if err != nil {
		fail(&Error{Pos: pos, Raw: data, Err: fmt.Errorf("invalid JSON: %w", err)})
		return
	}
	// One walk refuses what fastjson takes as numbers but JSON does not
	// (NaN, inf, 01, .5) and keeps the last value of a duplicate key.
	if bad := d.numbers.Settle(v); bad != nil {
		fail(&Error{Pos: pos, Raw: data, Err: fmt.Errorf("invalid JSON: %q is not a number", shortText(bad))})
		return
	}
	if err := d.check(v); err != nil {
		fail(&Error{Pos: pos, Raw: data, Err: err})
		return
	}
	if d.timeField != nil {
		if tv := jsonx.Get(v, d.timeField); tv != nil && tv.Type() != fastjson.TypeNull {
			t, err := timeconv.Read(tv, d.timeUnit)
			if err != nil {
				fail(&Error{Pos: pos, Raw: data, Err: fmt.Errorf("event time %s: %w", d.timeField, err)})
				return
			}
			rec.EventTime = t
		}
	}
	rec.Value = v
	emit(rec)
}

// shortText bounds the part of a reason that quotes the input.
func shortText(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

var errNotObject = errors.New("not a JSON object")

// check enforces the shape each format promises.
func (d *Decoder) check(v *fastjson.Value) error {
	if v.Type() != fastjson.TypeObject {
		return fmt.Errorf("%w (got %s)", errNotObject, v.Type())
	}
	switch d.format {
	case "eventbridge":
		for _, k := range []string{"source", "detail-type"} {
			f := v.Get(k)
			if f == nil || f.Type() != fastjson.TypeString {
				return fmt.Errorf("not an EventBridge event: %q must be a string", k)
			}
		}
		if det := v.Get("detail"); det == nil || det.Type() != fastjson.TypeObject {
			return errors.New(`not an EventBridge event: "detail" must be an object`)
		}
	case "metric_stream", "otlp_metrics":
		if f := v.Get("metric_name"); f == nil || f.Type() != fastjson.TypeString {
			return errors.New(`not a metric stream record: "metric_name" must be a string`)
		}
		if f := v.Get("timestamp"); f == nil || f.Type() != fastjson.TypeNumber {
			return errors.New(`not a metric stream record: "timestamp" must be an epoch number`)
		}
	}
	return nil
}

// Arrival is a helper for sources without their own arrival time.
func Arrival() time.Time { return time.Now().UTC() }
