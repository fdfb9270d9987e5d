// Package transforms implements the per-route record transforms: explode,
// severity, epoch_to_utc, json_to_csv, set, rename, drop and jq. A chain is
// compiled once from the configuration; running it needs a Context per
// worker, because new values are built in the worker's arena.
package transforms

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/valyala/fastjson"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/jq"
	"github.com/sluice-data/sluice/internal/jsonx"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/severity"
	"github.com/sluice-data/sluice/internal/timeconv"
)

// Error is a record a transform could not handle. It goes to the error
// output as processing-failed.
type Error struct {
	Transform string // e.g. "epoch_to_utc"
	Err       error
}

func (e *Error) Error() string { return e.Transform + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Context is per-worker scratch space. Reset it between source records.
type Context struct {
	Arena fastjson.Arena
	// JQ bounds the jq transform's evaluations (service.jq) and stops them
	// on shutdown; nil means jq.DefaultLimits, never canceled.
	JQ  *jq.Env
	buf []byte
}

func (c *Context) jq() *jq.Env {
	if c.JQ == nil {
		c.JQ = jq.NewEnv(context.Background(), jq.DefaultLimits)
	}
	return c.JQ
}

// Reset frees what the previous record built.
func (c *Context) Reset() { c.Arena.Reset() }

// Emit receives a record that made it through the chain.
type Emit func(*record.Record)

// Fail receives a record that a step could not handle.
type Fail func(*record.Record, error)

// step is one transform. Apply changes rec in place and reports whether it
// is kept; splitters call next for each record they produce instead.
type step interface {
	apply(c *Context, rec *record.Record) (keep bool, err error)
}

type splitter interface {
	split(c *Context, rec *record.Record, next func(*record.Record)) error
}

// Stats counts what a chain did with its input.
type Stats struct {
	Out, Filtered, Failed int64
}

// Chain is a compiled list of transforms.
type Chain struct {
	steps []step
	names []string
}

// Len returns the number of steps.
func (ch *Chain) Len() int { return len(ch.steps) }

// Mutates reports whether running the chain may change the record tree, so
// the caller knows to re-parse before handing the record to another route.
func (ch *Chain) Mutates() bool { return len(ch.steps) > 0 }

// Compile builds a chain from the configured transforms.
func Compile(ts []config.Transform) (*Chain, error) {
	ch := &Chain{}
	for _, t := range ts {
		s, err := compileOne(t)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Path, err)
		}
		ch.steps = append(ch.steps, s)
		ch.names = append(ch.names, t.Kind)
	}
	return ch, nil
}

func compileOne(t config.Transform) (step, error) {
	switch t.Kind {
	case "explode":
		return &explode{path: jsonx.ParsePath(t.Explode.Field), envelope: t.Explode.Envelope}, nil
	case "severity":
		return newSeverity(t.Severity)
	case "epoch_to_utc":
		return newEpoch(t.EpochToUTC)
	case "json_to_csv":
		return newCSV(t.JSONToCSV), nil
	case "set":
		s := &set{}
		for _, kn := range t.Set {
			v, err := kn.Node.Value()
			if err != nil {
				return nil, err
			}
			s.paths = append(s.paths, jsonx.ParsePath(kn.Key))
			s.values = append(s.values, v)
		}
		return s, nil
	case "rename":
		r := &rename{}
		for _, kv := range t.Rename {
			r.from = append(r.from, jsonx.ParsePath(kv.Key))
			r.to = append(r.to, jsonx.ParsePath(kv.Value))
		}
		return r, nil
	case "drop":
		d := &drop{}
		for _, p := range t.Drop {
			d.paths = append(d.paths, jsonx.ParsePath(p))
		}
		return d, nil
	case "jq":
		e, err := jq.Compile(t.JQ)
		if err != nil {
			return nil, err
		}
		return &jqStep{expr: e}, nil
	}
	return nil, fmt.Errorf("unknown transform %q", t.Kind)
}

// Run passes rec through the chain. Every record that comes out goes to
// emit; every record a step fails goes to fail. Filtered records go
// nowhere, and st counts all three.
func (ch *Chain) Run(c *Context, rec *record.Record, st *Stats, emit Emit, fail Fail) {
	ch.run(c, 0, rec, st, emit, fail)
}

func (ch *Chain) run(c *Context, i int, rec *record.Record, st *Stats, emit Emit, fail Fail) {
	for ; i < len(ch.steps); i++ {
		if rec.Value == nil {
			st.Failed++
			fail(rec, &Error{Transform: ch.names[i], Err: errors.New("record is raw bytes, not JSON")})
			return
		}
		s := ch.steps[i]
		if sp, ok := s.(splitter); ok {
			n := 0
			next := i + 1
			err := sp.split(c, rec, func(child *record.Record) {
				n++
				ch.run(c, next, child, st, emit, fail)
			})
			if err != nil {
				st.Failed++
				fail(rec, &Error{Transform: ch.names[i], Err: err})
			} else if n == 0 {
				st.Filtered++
			}
			return
		}
		keep, err := s.apply(c, rec)
		if err != nil {
			st.Failed++
			fail(rec, &Error{Transform: ch.names[i], Err: err})
			return
		}
		if !keep {
			st.Filtered++
			return
		}
	}
	st.Out++
	emit(rec)
}

// explode emits one record per element of an array; the rest of the
// original record is kept under envelope.
type explode struct {
	path     jsonx.Path
	envelope string
}

func (e *explode) apply(*Context, *record.Record) (bool, error) { panic("explode is a splitter") }

func (e *explode) split(c *Context, rec *record.Record, next func(*record.Record)) error {
	arr := jsonx.Get(rec.Value, e.path)
	if arr == nil {
		return fmt.Errorf("field %s is missing", e.path)
	}
	if arr.Type() != fastjson.TypeArray {
		return fmt.Errorf("field %s is %s, not an array", e.path, arr.Type())
	}
	items, _ := arr.Array()
	var env *fastjson.Value
	if e.envelope != "" {
		jsonx.Delete(rec.Value, e.path)
		env = rec.Value
	}
	for i, it := range items {
		child := *rec
		child.Pos = rec.Pos.Child(i)
		child.CSV, child.CSVHeader = nil, nil
		if it.Type() == fastjson.TypeObject {
			child.Value = it
		} else {
			child.Value = c.Arena.NewObject()
			child.Value.Set("value", it)
		}
		if env != nil {
			child.Value.Set(e.envelope, jsonx.Copy(&c.Arena, env))
		}
		next(&child)
	}
	return nil
}

// severityStep keeps records within [min, max] on the field's scale.
type severityStep struct {
	path     jsonx.Path
	last     string
	scale    string
	family   severity.Family
	min, max *severity.Bound
	target   jsonx.Path
	missing  string
}

func newSeverity(s *config.Severity) (*severityStep, error) {
	st := &severityStep{path: jsonx.ParsePath(s.Field), scale: s.Scale, missing: s.Missing, family: severity.Security}
	st.last = st.path[len(st.path)-1]
	if s.Scale == "log_level" {
		st.family = severity.Log
	}
	for _, b := range []struct {
		src string
		dst **severity.Bound
	}{{s.Min, &st.min}, {s.Max, &st.max}} {
		if b.src == "" {
			continue
		}
		bound, err := severity.ParseBound(s.Scale, b.src)
		if err != nil {
			return nil, err
		}
		*b.dst = &bound
		st.family = bound.Family
	}
	if st.min != nil && st.max != nil && st.min.Family != st.max.Family {
		return nil, errors.New("min and max are on different scales")
	}
	if s.Target != "" {
		if st.family == severity.Numeric {
			return nil, errors.New("target needs a labelled scale; numeric bounds have no labels")
		}
		st.target = jsonx.ParsePath(s.Target)
	}
	return st, nil
}

func (s *severityStep) apply(c *Context, rec *record.Record) (bool, error) {
	v := jsonx.Get(rec.Value, s.path)
	if v == nil || v.Type() == fastjson.TypeNull {
		switch s.missing {
		case "drop":
			return false, nil
		case "keep":
			return true, nil
		}
		return false, fmt.Errorf("field %s is missing", s.path)
	}
	level, num, err := severity.Read(s.family, s.scale, s.last, v)
	if err != nil {
		return false, err
	}
	in := func(b *severity.Bound, low bool) bool {
		if b == nil {
			return true
		}
		if b.Family == severity.Numeric {
			return (low && num >= b.Num) || (!low && num <= b.Num)
		}
		return (low && level >= b.Level) || (!low && level <= b.Level)
	}
	if !in(s.min, true) || !in(s.max, false) {
		return false, nil
	}
	if s.target != nil {
		jsonx.Set(&c.Arena, rec.Value, s.target, c.Arena.NewString(severity.Label(s.family, level)))
	}
	return true, nil
}

// epoch renders a time field as RFC 3339 with milliseconds.
type epoch struct {
	field, target jsonx.Path
	unit          string
	loc           *time.Location
	missing       string
}

func newEpoch(e *config.EpochToUTC) (*epoch, error) {
	loc, err := time.LoadLocation(e.Timezone)
	if err != nil {
		return nil, err
	}
	st := &epoch{field: jsonx.ParsePath(e.Field), target: jsonx.ParsePath(e.Target), unit: e.Unit, loc: loc, missing: e.Missing}
	if st.target == nil {
		st.target = st.field
	}
	return st, nil
}

func (e *epoch) apply(c *Context, rec *record.Record) (bool, error) {
	v := jsonx.Get(rec.Value, e.field)
	var t time.Time
	if v == nil || v.Type() == fastjson.TypeNull {
		switch e.missing {
		case "skip":
			return true, nil
		case "error":
			return false, fmt.Errorf("field %s is missing", e.field)
		}
		t = rec.EventTime
	} else {
		var err error
		if t, err = timeconv.Read(v, e.unit); err != nil {
			return false, fmt.Errorf("field %s: %w", e.field, err)
		}
	}
	c.buf = timeconv.AppendRFC3339Millis(c.buf[:0], t, e.loc)
	jsonx.Set(&c.Arena, rec.Value, e.target, c.Arena.NewStringBytes(c.buf))
	return true, nil
}

// set stores constant values.
type set struct {
	paths  []jsonx.Path
	values []any
}

func (s *set) apply(c *Context, rec *record.Record) (bool, error) {
	for i, p := range s.paths {
		jsonx.Set(&c.Arena, rec.Value, p, jsonx.FromAny(&c.Arena, s.values[i]))
	}
	return true, nil
}

// rename moves fields; a missing source is not an error.
type rename struct {
	from, to []jsonx.Path
}

func (r *rename) apply(c *Context, rec *record.Record) (bool, error) {
	for i, p := range r.from {
		if v := jsonx.Delete(rec.Value, p); v != nil {
			jsonx.Set(&c.Arena, rec.Value, r.to[i], v)
		}
	}
	return true, nil
}

// drop deletes fields.
type drop struct {
	paths []jsonx.Path
}

func (d *drop) apply(_ *Context, rec *record.Record) (bool, error) {
	for _, p := range d.paths {
		jsonx.Delete(rec.Value, p)
	}
	return true, nil
}

// jqStep replaces the record with each output of a jq program: no output
// filters the record, several explode it. Outputs must be objects. The
// evaluation runs under the Context's jq limits: one over a bound fails
// the record with a *jq.LimitError; one canceled fails it with
// jq.ErrCanceled, which the caller must not treat as the record's fault.
type jqStep struct {
	expr *jq.Expr
}

func (j *jqStep) apply(*Context, *record.Record) (bool, error) { panic("jq is a splitter") }

func (j *jqStep) split(c *Context, rec *record.Record, next func(*record.Record)) error {
	outs, err := c.jq().Run(j.expr, rec.Value)
	if err != nil {
		return err
	}
	for i, o := range outs {
		if _, ok := o.(map[string]any); !ok {
			return fmt.Errorf("output %d is %s, want an object", i, typeName(o))
		}
	}
	for i, o := range outs {
		child := *rec
		if len(outs) > 1 {
			child.Pos = rec.Pos.Child(i)
		}
		child.Value = jsonx.FromAny(&c.Arena, o)
		next(&child)
	}
	return nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	default:
		return "a number"
	}
}

// csvStep renders the record as one RFC 4180 line.
type csvStep struct {
	cols   []jsonx.Path
	header []byte
	delim  byte
}

func newCSV(j *config.JSONToCSV) *csvStep {
	s := &csvStep{delim: j.Delimiter[0]}
	var h []byte
	for i, col := range j.Columns {
		s.cols = append(s.cols, jsonx.ParsePath(col.Name))
		if i > 0 {
			h = append(h, s.delim)
		}
		h = appendCSVField(h, []byte(col.Header()), s.delim)
	}
	if j.Header {
		s.header = h
	}
	return s
}

func (s *csvStep) apply(c *Context, rec *record.Record) (bool, error) {
	line := make([]byte, 0, 128)
	for i, p := range s.cols {
		if i > 0 {
			line = append(line, s.delim)
		}
		v := jsonx.Get(rec.Value, p)
		if v == nil {
			continue
		}
		c.buf = jsonx.Text(c.buf[:0], v)
		line = appendCSVField(line, c.buf, s.delim)
	}
	rec.CSV, rec.CSVHeader = line, s.header
	return true, nil
}

// appendCSVField quotes a field when RFC 4180 requires it.
func appendCSVField(dst, f []byte, delim byte) []byte {
	if !strings.ContainsAny(string(f), "\"\r\n"+string(delim)) {
		return append(dst, f...)
	}
	dst = append(dst, '"')
	for _, b := range f {
		if b == '"' {
			dst = append(dst, '"')
		}
		dst = append(dst, b)
	}
	return append(dst, '"')
}
