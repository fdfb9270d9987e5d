// Package jsonx holds the record-tree helpers every stage shares: dotted
// field paths compiled once from the configuration and evaluated against
// fastjson values, and conversions to and from plain Go values for gojq.
//
// Records are parsed with fastjson into a tree owned by the worker's parser,
// so the hot path builds no map[string]any per record.
package jsonx

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// Path is a dotted field path split into keys: "Severity.Label" is
// {"Severity", "Label"}. A key that itself holds a dot cannot be named; use a
// jq transform for such fields.
type Path []string

// ParsePath splits a dotted path. It returns nil for "" or "."; a leading dot
// is allowed so jq-style ".a.b" works too.
func ParsePath(s string) Path {
	s = strings.TrimPrefix(s, ".")
	if s == "" {
		return nil
	}
	return Path(strings.Split(s, "."))
}

// String joins the path back with dots.
func (p Path) String() string { return strings.Join(p, ".") }

// Valid reports whether every key is non-empty.
func (p Path) Valid() bool {
	if len(p) == 0 {
		return false
	}
	for _, k := range p {
		if k == "" {
			return false
		}
	}
	return true
}

// Get returns the value at p, or nil when any step is missing or not an
// object. A JSON null is returned as a value of type null.
func Get(v *fastjson.Value, p Path) *fastjson.Value {
	for _, k := range p {
		if v == nil || v.Type() != fastjson.TypeObject {
			return nil
		}
		v = v.Get(k)
	}
	return v
}

// Set stores val at p, creating objects along the way (and replacing
// non-objects in the way). v must be an object.
func Set(a *fastjson.Arena, v *fastjson.Value, p Path, val *fastjson.Value) {
	for i, k := range p {
		if i == len(p)-1 {
			v.Set(k, val)
			return
		}
		next := v.Get(k)
		if next == nil || next.Type() != fastjson.TypeObject {
			next = a.NewObject()
			v.Set(k, next)
		}
		v = next
	}
}

// Delete removes the value at p and returns it (nil if absent).
func Delete(v *fastjson.Value, p Path) *fastjson.Value {
	parent := Get(v, p[:len(p)-1])
	if parent == nil || parent.Type() != fastjson.TypeObject {
		return nil
	}
	old := parent.Get(p[len(p)-1])
	if old != nil {
		parent.Del(p[len(p)-1])
	}
	return old
}

// Text renders a scalar the way partition keys and CSV cells want it:
// strings unquoted, numbers and booleans as their JSON text, null as "".
// Objects and arrays render as compact JSON.
func Text(dst []byte, v *fastjson.Value) []byte {
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return append(dst, b...)
	case fastjson.TypeNull:
		return dst
	default:
		return AppendValue(dst, v)
	}
}

// maxOverflowDigits bounds the exact integer a number too large for a
// double becomes (1e400 has 401 digits): a longer one would cost more to
// build than the record is worth.
const maxOverflowDigits = 1000

// ToAny converts a value to the plain Go values gojq works on: integers
// that fit an int stay ints, larger ones become *big.Int, other numbers
// float64. A number no double holds (1e400) becomes the exact integer it
// denotes, so that it reaches jq's output with its value; one whose
// integer would pass maxOverflowDigits, or that is no integer, becomes
// ±Inf, which the jq package refuses in any output.
func ToAny(v *fastjson.Value) any {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		m := make(map[string]any, o.Len())
		o.Visit(func(k []byte, c *fastjson.Value) { m[string(k)] = ToAny(c) })
		return m
	case fastjson.TypeArray:
		arr, _ := v.Array()
		out := make([]any, len(arr))
		for i, c := range arr {
			out[i] = ToAny(c)
		}
		return out
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return string(b)
	case fastjson.TypeNumber:
		raw := string(v.MarshalTo(nil))
		if i, err := strconv.ParseInt(raw, 10, 64); err == nil {
			return int(i)
		}
		if n, ok := new(big.Int).SetString(raw, 10); ok {
			return n
		}
		f, _ := v.Float64()
		if math.IsInf(f, 0) {
			if n := overflowInteger(raw); n != nil {
				return n
			}
		}
		return f // 1e-400 is 0, as a double reads it
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	default:
		return nil
	}
}

// overflowInteger returns the integer a JSON number too large for a
// double denotes, or nil when it is no integer or too long.
func overflowInteger(raw string) *big.Int {
	mant, exp, _ := strings.Cut(strings.ToLower(raw), "e")
	e, err := strconv.Atoi(exp)
	if err != nil || e > maxOverflowDigits || len(mant) > maxOverflowDigits {
		return nil
	}
	r, ok := new(big.Rat).SetString(raw)
	if !ok || !r.IsInt() {
		return nil
	}
	return r.Num()
}

// FromAny builds a value in arena a from plain Go values (the output of
// gojq or of a YAML decode). Map keys are emitted in sorted order, so the
// result is deterministic.
func FromAny(a *fastjson.Arena, x any) *fastjson.Value {
	switch t := x.(type) {
	case nil:
		return a.NewNull()
	case bool:
		if t {
			return a.NewTrue()
		}
		return a.NewFalse()
	case string:
		return a.NewString(t)
	case int:
		return a.NewNumberString(strconv.Itoa(t))
	case int64:
		return a.NewNumberString(strconv.FormatInt(t, 10))
	case uint64:
		return a.NewNumberString(strconv.FormatUint(t, 10))
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return a.NewNull()
		}
		return a.NewNumberString(strconv.FormatFloat(t, 'g', -1, 64))
	case *big.Int:
		return a.NewNumberString(t.String())
	case []any:
		arr := a.NewArray()
		for i, c := range t {
			arr.SetArrayItem(i, FromAny(a, c))
		}
		return arr
	case map[string]any:
		obj := a.NewObject()
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			obj.Set(k, FromAny(a, t[k]))
		}
		return obj
	default:
		return a.NewString(strconv.Quote("unsupported"))
	}
}

// Copy deep-copies v into arena a, so the copy outlives v's parser.
func Copy(a *fastjson.Arena, v *fastjson.Value) *fastjson.Value {
	switch v.Type() {
	case fastjson.TypeObject:
		obj := a.NewObject()
		o, _ := v.Object()
		o.Visit(func(k []byte, c *fastjson.Value) { obj.Set(string(k), Copy(a, c)) })
		return obj
	case fastjson.TypeArray:
		arr := a.NewArray()
		items, _ := v.Array()
		for i, c := range items {
			arr.SetArrayItem(i, Copy(a, c))
		}
		return arr
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return a.NewStringBytes(b)
	case fastjson.TypeNumber:
		return a.NewNumberString(string(v.MarshalTo(nil)))
	case fastjson.TypeTrue:
		return a.NewTrue()
	case fastjson.TypeFalse:
		return a.NewFalse()
	default:
		return a.NewNull()
	}
}

// AppendString appends s as a JSON string literal: quotes, backslashes and
// control bytes escaped, valid UTF-8 as it is, and each byte that is not
// part of valid UTF-8 as U+FFFD, so the output is always valid JSON.
func AppendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	from := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) && !special8(binary.LittleEndian.Uint64(s[i:])) {
			i += 8 // eight plain bytes at once: most strings are all plain
			continue
		}
		c := s[i]
		if !special[c] {
			i++
			continue
		}
		dst = append(dst, s[from:i]...)
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
			i++
		case c < 0x20:
			dst = append(dst, `\u00`...)
			dst = append(dst, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
		}
		from = i
	}
	dst = append(dst, s[from:]...)
	return append(dst, '"')
}

// special8 reports whether any of the eight bytes in x is special: below
// 0x20, '"', '\\' or 0x80 and above (the classic SWAR tests for a byte
// less than n and for a zero byte, exact for n <= 0x80).
func special8(x uint64) bool {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	quote, backslash := x^(lsb*'"'), x^(lsb*'\\')
	return (x-lsb*0x20)&^x&msb|(quote-lsb)&^quote&msb|(backslash-lsb)&^backslash&msb|x&msb != 0
}

// special marks the bytes AppendString does not copy as they are: control
// bytes, '"', '\\', and the start of anything not ASCII (checked as UTF-8).
var special = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf
	}
	return t
}()

// Dedupe leaves each object in v (at any depth) with one value per key,
// the last one, as jq, JavaScript and encoding/json read duplicate names
// (RFC 8259 leaves them to the reader). fastjson keeps every pair and its
// Get finds the first, so without this a route, a native partition key and
// a gojq expression could read different values of one field. The decoder
// calls it once per record.
func Dedupe(v *fastjson.Value) {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		dedupeObject(o)
	case fastjson.TypeArray:
		arr, _ := v.Array()
		for _, c := range arr {
			Dedupe(c)
		}
	}
}

// smallObject is the most keys compared pairwise; larger objects use a map.
const smallObject = 32

func dedupeObject(o *fastjson.Object) {
	n := o.Len()
	var small [smallObject][]byte
	keys := small[:0]
	var seen map[string]int
	var dups []string
	if n > smallObject {
		seen = make(map[string]int, n)
	}
	o.Visit(func(k []byte, c *fastjson.Value) {
		if t := c.Type(); t == fastjson.TypeObject || t == fastjson.TypeArray {
			Dedupe(c)
		}
		if seen != nil {
			if seen[string(k)]++; seen[string(k)] == 2 {
				dups = append(dups, string(k))
			}
			return
		}
		for _, prev := range keys {
			if bytes.Equal(prev, k) {
				if !slices.Contains(dups, string(k)) {
					dups = append(dups, string(k))
				}
				break
			}
		}
		keys = append(keys, k)
	})
	for _, k := range dups {
		// Del removes the first pair with the key: repeat until only the
		// last is left.
		for count(o, k) > 1 {
			o.Del(k)
		}
	}
}

// count returns how many pairs of o have key k.
func count(o *fastjson.Object, k string) int {
	n := 0
	o.Visit(func(key []byte, _ *fastjson.Value) {
		if string(key) == k {
			n++
		}
	})
	return n
}
