// Package jq compiles the jq expressions Firehose users already write for
// dynamic partitioning (".project_id", ".event_timestamp|strftime(\"%Y\")",
// ".time_utc|fromdateiso8601|strftime(\"%m\")") and evaluates them per record.
//
// Every expression is compiled with gojq. The common Firehose shapes — a field
// path followed by strftime, fromdateiso8601/fromdate, ascii_downcase or
// ascii_upcase — are also compiled to a native evaluator that reads the
// fastjson tree directly, because converting each record to map[string]any
// for gojq would cost more than the rest of the hot path together. Any input
// the native evaluator does not cover exactly goes to gojq; a differential
// test keeps both in agreement.
//
// One deliberate difference from jq 1.6: fromdateiso8601 (and fromdate)
// accept any RFC 3339 time, including fractional seconds and numeric offsets
// such as the output of the epoch_to_utc transform; jq rejects them.
//
// Every gojq evaluation a worker runs is bounded (Env, Limits: service.jq):
// a deadline gojq checks before each VM step, a number of outputs and
// their total JSON size. gojq has no memory limit, so the deadline is what
// stops growth inside one evaluation. Measured peak RSS of a test process
// (23 MB at rest) under the 100ms default: [range(1e9)] 31 MB,
// [limit(1e8; repeat("aaaaaaaa"))] | add 30 MB, [range(1e8)] | tostring
// 36 MB; doubling a value each step (reduce range(40) as $i ("x"; . + .))
// 157 MB. What one builtin does in a single step cannot be interrupted:
// "x" * 1e9 allocates 1 GB (gojq refuses results of 2 GiB or more) and then
// fails on max_output_bytes.
package jq

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/itchyny/gojq"
	"github.com/itchyny/timefmt-go"
	"github.com/valyala/fastjson"

	"github.com/sluice-data/sluice/internal/jsonx"
)

// Expr is a compiled expression.
type Expr struct {
	src  string
	code *gojq.Code
	fast *fastExpr
}

const lenientDate = "sluice_fromdateiso8601"

// Compile parses and compiles src.
func Compile(src string) (*Expr, error) {
	q, err := gojq.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("invalid jq %q: %w", src, err)
	}
	fast := compileFast(q.String())
	renameFuncs(reflect.ValueOf(q), map[string]string{"fromdateiso8601/0": lenientDate, "fromdate/0": lenientDate,
		"strftime/1": boundedStrftime, "strflocaltime/1": boundedStrflocaltime, "todate/0": boundedTodate, "todateiso8601/0": boundedTodate})
	code, err := gojq.Compile(q, append(timeFuncs(), gojq.WithFunction(lenientDate, 0, 0, func(v any, _ []any) any {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("fromdateiso8601 cannot be applied to %s", typeName(v))
		}
		f, err := parseISO(s)
		if err != nil {
			return err
		}
		return f
	}))...)
	if err != nil {
		return nil, fmt.Errorf("invalid jq %q: %w", src, err)
	}
	e := &Expr{src: src, code: code}
	e.fast = fast
	return e, nil
}

// String returns the source text.
func (e *Expr) String() string { return e.src }

// Strftime returns the format of the strftime that ends a native path
// expression (".event_timestamp | strftime(\"%Y\")" gives "%Y").
func (e *Expr) Strftime() (string, bool) {
	if e.fast == nil || len(e.fast.steps) == 0 {
		return "", false
	}
	last := e.fast.steps[len(e.fast.steps)-1]
	return last.format, last.kind == stepStrftime
}

// Native reports whether the expression has a native evaluator.
func (e *Expr) Native() bool { return e.fast != nil }

// renameFuncs rewrites calls to builtins in a parsed query; names maps
// "name/arity" to the replacement. gojq lets no custom function shadow a
// builtin, so the lenient date parser and the bounded time formatters are
// swapped in on the syntax tree.
func renameFuncs(v reflect.Value, names map[string]string) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			if f, ok := v.Interface().(*gojq.Func); ok {
				if to, ok := names[f.Name+"/"+strconv.Itoa(len(f.Args))]; ok {
					f.Name = to
				}
			}
			renameFuncs(v.Elem(), names)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				renameFuncs(v.Field(i), names)
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			renameFuncs(v.Index(i), names)
		}
	}
}

// Run evaluates the expression with gojq under DefaultLimits and returns
// every output. Workers use Env.Run, which needs no timer per call.
func (e *Expr) Run(v *fastjson.Value) ([]any, error) {
	return e.runAny(nil, jsonx.ToAny(v))
}

// Run evaluates x with gojq under the Env's limits and returns every
// output. An evaluation over a bound fails with a *LimitError; one stopped
// because the Env's parent ended fails with ErrCanceled.
func (env *Env) Run(x *Expr, v *fastjson.Value) ([]any, error) {
	return x.runAny(env, jsonx.ToAny(v))
}

func (e *Expr) runAny(env *Env, in any) ([]any, error) {
	if env == nil {
		env = NewEnv(context.Background(), DefaultLimits)
	}
	if err := env.begin(); err != nil {
		return nil, err
	}
	out, err := e.collect(env, in)
	if stop := env.end(); stop != nil && !isLimit(err) {
		// The deadline or a cancellation cut the evaluation short; what
		// gojq said about it (a context error) is not the reason. An
		// output bound it reached first is.
		err = stop
	}
	if err != nil {
		if errors.Is(err, ErrCanceled) {
			return nil, err
		}
		return nil, fmt.Errorf("jq %s: %w", e.src, err)
	}
	return out, nil
}

var errNotFinite = errors.New("produced a number that does not fit a double (Inf or NaN)")

// finite reports whether x holds no infinite or NaN number.
func finite(x any) bool {
	switch t := x.(type) {
	case float64:
		return !math.IsInf(t, 0) && !math.IsNaN(t)
	case []any:
		for _, c := range t {
			if !finite(c) {
				return false
			}
		}
	case map[string]any:
		for _, c := range t {
			if !finite(c) {
				return false
			}
		}
	}
	return true
}

func isLimit(err error) bool {
	var le *LimitError
	return errors.As(err, &le)
}

// collect runs the program and gathers its outputs within the output
// bounds.
func (e *Expr) collect(env *Env, in any) ([]any, error) {
	var out []any
	left := env.limits.MaxOutputBytes
	iter := e.code.RunWithContext((*evalCtx)(env), in)
	for {
		x, ok := iter.Next()
		if !ok {
			return out, nil
		}
		if err, ok := x.(error); ok {
			var halt *gojq.HaltError
			if errors.As(err, &halt) && halt.Value() == nil {
				return out, nil
			}
			return nil, err
		}
		if len(out) == env.limits.MaxOutputs {
			return nil, env.outputsError()
		}
		if left -= jsonSize(x, left); left < 0 {
			return nil, env.bytesError()
		}
		if !finite(x) {
			// JSON has no Inf or NaN: an output holding one (a number no
			// double holds, too long for an exact integer, or one jq
			// computed) would become null or a bound double. (After the
			// size bound: a walk of an output that shares its parts, as
			// [., .] does, is bounded only by its JSON size.)
			return nil, errNotFinite
		}
		out = append(out, x)
	}
}

// AppendText evaluates the expression as a partition key or id: it must
// produce exactly one string, number or boolean, which is appended to dst as
// text (numbers in jq's notation). gojq runs under DefaultLimits; workers
// use Env.AppendText.
func (e *Expr) AppendText(dst []byte, v *fastjson.Value) ([]byte, error) {
	return e.appendText(nil, dst, v)
}

// AppendText is Expr.AppendText under the Env's limits. The native
// evaluator, which cannot loop, runs unbounded; gojq runs as in Env.Run.
func (env *Env) AppendText(x *Expr, dst []byte, v *fastjson.Value) ([]byte, error) {
	return x.appendText(env, dst, v)
}

// AppendTexts is AppendText for several expressions over one record,
// such as a sink's partition keys: dst[i] gets xs[i]'s text (appended to
// dst[i][:0]). Native expressions over the same field read it, and
// convert it to a time for strftime, once. It stops at the first
// expression that fails and returns its index and error; i is len(xs)
// when all succeed.
func (env *Env) AppendTexts(xs []*Expr, dst [][]byte, v *fastjson.Value) (i int, err error) {
	var memo fastMemo
	for i, x := range xs {
		if dst[i], err = x.appendTextMemo(env, dst[i][:0], v, &memo); err != nil {
			return i, err
		}
	}
	return len(xs), nil
}

func (e *Expr) appendText(env *Env, dst []byte, v *fastjson.Value) ([]byte, error) {
	return e.appendTextMemo(env, dst, v, nil)
}

func (e *Expr) appendTextMemo(env *Env, dst []byte, v *fastjson.Value, memo *fastMemo) ([]byte, error) {
	if e.fast != nil {
		if out, ok, err := e.fast.appendText(dst, v, memo); ok {
			if err != nil {
				return dst, fmt.Errorf("jq %s: %w", e.src, err)
			}
			return out, nil
		}
	}
	outs, err := e.runAny(env, jsonx.ToAny(v))
	if err != nil {
		return dst, err
	}
	if len(outs) != 1 {
		return dst, fmt.Errorf("jq %s: produced %d values, want exactly one", e.src, len(outs))
	}
	return appendScalar(dst, e.src, outs[0])
}

func appendScalar(dst []byte, src string, x any) ([]byte, error) {
	switch t := x.(type) {
	case string:
		return append(dst, t...), nil
	case nil:
		return dst, fmt.Errorf("jq %s: produced null", src)
	case map[string]any, []any:
		return dst, fmt.Errorf("jq %s: produced %s, want a string or number", src, typeName(x))
	default:
		b, err := gojq.Marshal(t)
		if err != nil {
			return dst, err
		}
		return append(dst, b...), nil
	}
}

func typeName(v any) string {
	return gojq.TypeOf(v)
}

// parseISO reads an RFC 3339 time, with or without fractional seconds,
// with Z, ±hh:mm or ±hhmm, and returns epoch seconds.
func parseISO(s string) (float64, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		if t2, err2 := time.Parse("2006-01-02T15:04:05.999999999-0700", s); err2 == nil {
			t, err = t2, nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("fromdateiso8601: %q is not an RFC 3339 time", s)
	}
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9, nil
}

// fastExpr is a field path followed by a chain of scalar functions.
type fastExpr struct {
	path  jsonx.Path
	steps []step
}

type stepKind int

const (
	stepStrftime stepKind = iota
	stepFromISO
	stepDowncase
	stepUpcase
)

type step struct {
	kind   stepKind
	format string
	// simple is the letter of a strftime format that is one of %Y, %m,
	// %d or %H alone (the Firehose partition keys), formatted without
	// timefmt; 0 otherwise.
	simple byte
}

var (
	fastKey  = `(?:\.[A-Za-z_][A-Za-z0-9_]*|\."(?:[^"\\]|\\.)*")`
	fastStep = `(?:strftime\("(?:[^"\\]|\\.)*"\)|fromdateiso8601|fromdate|` + lenientDate + `|ascii_downcase|ascii_upcase)`
	fastRe   = regexp.MustCompile(`^(` + fastKey + `+)((?: \| ` + fastStep + `)*)$`)
	keyRe    = regexp.MustCompile(fastKey)
	stepRe   = regexp.MustCompile(fastStep)
)

// compileFast recognises the canonical form gojq prints for a query.
func compileFast(canon string) *fastExpr {
	m := fastRe.FindStringSubmatch(canon)
	if m == nil {
		return nil
	}
	f := &fastExpr{}
	for _, k := range keyRe.FindAllString(m[1], -1) {
		k = k[1:]
		if strings.HasPrefix(k, `"`) {
			u, err := strconv.Unquote(k)
			if err != nil {
				return nil
			}
			k = u
		}
		f.path = append(f.path, k)
	}
	for _, s := range stepRe.FindAllString(m[2], -1) {
		switch {
		case strings.HasPrefix(s, "strftime("):
			fmtStr, err := strconv.Unquote(s[len("strftime(") : len(s)-1])
			if err != nil {
				return nil
			}
			st := step{kind: stepStrftime, format: fmtStr}
			switch fmtStr {
			case "%Y", "%m", "%d", "%H":
				st.simple = fmtStr[1]
			}
			f.steps = append(f.steps, st)
		case s == "ascii_downcase":
			f.steps = append(f.steps, step{kind: stepDowncase})
		case s == "ascii_upcase":
			f.steps = append(f.steps, step{kind: stepUpcase})
		default:
			f.steps = append(f.steps, step{kind: stepFromISO})
		}
	}
	return f
}

// scalar is the intermediate value of a fast evaluation.
type scalar struct {
	isNum bool
	num   float64
	str   []byte
	v     *fastjson.Value // set while still a raw JSON value
}

// fastMemo is what native expressions evaluated over one record share:
// the scalar at the last path resolved, and its time for strftime.
type fastMemo struct {
	path jsonx.Path // nil until a path is resolved
	s    scalar
	res  resolved
	t    time.Time
	tok  int8 // 0: t not computed yet, 1: t holds s's time, -1: s is no time
	// t's calendar fields, once a simple strftime needed them.
	year, month, day, hour int
	fields                 bool
}

// appendSimple formats t as the strftime format %Y, %m, %d or %H alone
// does (timefmt: the year zero-padded to four digits, the others to two;
// years are never negative here, see inYearRange), taking t's fields from
// the memo when it has them.
func appendSimple(dst []byte, letter byte, t time.Time, memo *fastMemo) []byte {
	var m fastMemo
	if memo == nil {
		memo = &m
	}
	if !memo.fields {
		y, mo, d := t.Date()
		memo.year, memo.month, memo.day, memo.hour, memo.fields = y, int(mo), d, t.Hour(), true
	}
	switch letter {
	case 'Y':
		for n := 1000; n > 1 && memo.year < n; n /= 10 {
			dst = append(dst, '0')
		}
		return strconv.AppendInt(dst, int64(memo.year), 10)
	case 'm':
		return append(dst, byte('0'+memo.month/10), byte('0'+memo.month%10))
	case 'd':
		return append(dst, byte('0'+memo.day/10), byte('0'+memo.day%10))
	}
	return append(dst, byte('0'+memo.hour/10), byte('0'+memo.hour%10))
}

// resolved says what resolving a path gave.
type resolved int8

const (
	resScalar resolved = iota // a string or a number, in the scalar
	resNull                   // nothing or null
	resGojq                   // a value the native path leaves to gojq
)

// resolve reads the scalar at the path.
func (f *fastExpr) resolve(root *fastjson.Value) (scalar, resolved) {
	v := root
	for _, k := range f.path {
		if v == nil || v.Type() == fastjson.TypeNull {
			v = nil
			break
		}
		if v.Type() != fastjson.TypeObject {
			return scalar{}, resGojq // gojq words the error
		}
		v = v.Get(k)
	}
	if v == nil || v.Type() == fastjson.TypeNull {
		return scalar{}, resNull
	}
	var s scalar
	switch v.Type() {
	case fastjson.TypeString:
		s.str, _ = v.StringBytes()
	case fastjson.TypeNumber:
		n, err := v.Float64()
		if err != nil {
			return scalar{}, resGojq
		}
		s.isNum, s.num, s.v = true, n, v
	default:
		return scalar{}, resGojq
	}
	return s, resScalar
}

// appendText evaluates natively. ok is false when the input needs gojq (a
// type combination the native path does not mirror exactly). memo, when
// not nil, holds what an earlier expression over the same record found.
func (f *fastExpr) appendText(dst []byte, root *fastjson.Value, memo *fastMemo) (out []byte, ok bool, err error) {
	var s scalar
	var res resolved
	shared := memo != nil && memo.path != nil && slices.Equal(memo.path, f.path)
	if shared {
		s, res = memo.s, memo.res
	} else {
		s, res = f.resolve(root)
		if memo != nil {
			*memo = fastMemo{path: f.path, s: s, res: res}
			shared = true
		}
	}
	switch res {
	case resGojq:
		return dst, false, nil
	case resNull:
		if len(f.steps) == 0 {
			return dst, true, errors.New("produced null")
		}
		return dst, false, nil
	}
	for i, st := range f.steps {
		switch st.kind {
		case stepStrftime:
			if !s.isNum {
				return dst, false, nil
			}
			var t time.Time
			var ok bool
			if i == 0 && shared && memo.tok != 0 {
				t, ok = memo.t, memo.tok > 0
			} else {
				t, ok = epochToTime(s.num)
				if i == 0 && shared {
					memo.t, memo.tok = t, -1
					if ok {
						memo.tok = 1
					}
				}
			}
			if !ok {
				return dst, false, nil
			}
			if i == len(f.steps)-1 {
				if st.simple != 0 {
					if i == 0 && shared {
						return appendSimple(dst, st.simple, t, memo), true, nil
					}
					return appendSimple(dst, st.simple, t, nil), true, nil
				}
				return timefmt.AppendFormat(dst, t, st.format), true, nil
			}
			s = scalar{str: timefmt.AppendFormat(nil, t, st.format)}
		case stepFromISO:
			if s.isNum {
				return dst, false, nil
			}
			n, err := parseISO(string(s.str))
			if err != nil {
				return dst, true, err
			}
			s = scalar{isNum: true, num: n}
		case stepDowncase, stepUpcase:
			if s.isNum {
				return dst, false, nil
			}
			if !utf8.Valid(s.str) {
				// gojq maps runes: each invalid byte becomes U+FFFD.
				s.str = []byte(strings.Map(func(r rune) rune { return asciiCase(st.kind, r) }, string(s.str)))
				break
			}
			b := make([]byte, len(s.str))
			for i, c := range s.str {
				b[i] = byte(asciiCase(st.kind, rune(c)))
			}
			s.str = b
		}
	}
	if !s.isNum {
		return append(dst, s.str...), true, nil
	}
	if s.v != nil {
		// A number straight from the record: render as gojq would after
		// decoding it (integers exactly, others as float64).
		// Integers as jsonx.ToAny hands them to gojq: int64 when they fit,
		// else big.Int; both normalise leading zeros, which fastjson lets
		// through.
		raw := s.v.MarshalTo(nil)
		if i, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			return strconv.AppendInt(dst, i, 10), true, nil
		}
		if isInteger(raw) {
			if n, ok := new(big.Int).SetString(string(raw), 10); ok {
				return n.Append(dst, 10), true, nil
			}
		}
		if math.IsInf(s.num, 0) {
			// Too large for a double (1e400): gojq gets the exact
			// integer, or refuses it (jsonx.ToAny).
			return dst, false, nil
		}
	}
	if s.num == math.Trunc(s.num) && math.Abs(s.num) < 1<<53 {
		return strconv.AppendInt(dst, int64(s.num), 10), true, nil
	}
	b, _ := gojq.Marshal(s.num)
	return append(dst, b...), true, nil
}

func isInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func epochToTime(v float64) (time.Time, bool) {
	i, f := math.Floor(v), v-math.Floor(v)
	if !(math.MinInt64 <= i && i < math.MaxInt64) {
		return time.Time{}, false
	}
	t := time.Unix(int64(i), int64(f*1e9)).UTC()
	if i < 0 && t.Year() > 1970 || !inYearRange(t) {
		return time.Time{}, false
	}
	return t, true
}

// asciiCase changes the case of ASCII letters only, as jq's ascii_downcase
// and ascii_upcase do.
func asciiCase(kind stepKind, c rune) rune {
	switch {
	case kind == stepDowncase && 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	case kind == stepUpcase && 'a' <= c && c <= 'z':
		return c - ('a' - 'A')
	}
	return c
}
