package jsonx

import (
	"bytes"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// fastjson is lenient where JSON is not: it takes NaN, nan, inf, INF, 01,
// .5, 1. and +1 as numbers (but not Infinity), keeps invalid UTF-8 and
// lone surrogate escapes in strings, and its MarshalTo writes strings it
// has unescaped with strconv.Quote, whose \a, \v, \x7f, \xff and
// \U0010ffff are not JSON. The helpers here hold records to RFC 8259 on
// the way in and on the way out.

// ValidNumber reports whether b is a number in RFC 8259's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func ValidNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i == len(b) || !isDigit(b[i]) {
			return false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i == len(b) || !isDigit(b[i]) {
			return false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i == len(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// BadNumber returns the text of the first number in v (at any depth) that
// is not a JSON number, or nil.
func BadNumber(v *fastjson.Value) []byte {
	var c NumberChecker
	return c.Bad(v)
}

// NumberChecker is BadNumber with a buffer kept between calls, so checking
// a record allocates nothing.
type NumberChecker struct{ buf []byte }

// Bad returns the text of the first number in v that is not a JSON number,
// or nil. The text is valid until the next call.
func (c *NumberChecker) Bad(v *fastjson.Value) []byte {
	switch v.Type() {
	case fastjson.TypeNumber:
		c.buf = v.MarshalTo(c.buf[:0])
		if !ValidNumber(c.buf) {
			return c.buf
		}
	case fastjson.TypeObject:
		o, _ := v.Object()
		var bad []byte
		o.Visit(func(_ []byte, e *fastjson.Value) {
			if bad == nil {
				bad = c.Bad(e)
			}
		})
		return bad
	case fastjson.TypeArray:
		arr, _ := v.Array()
		for _, e := range arr {
			if bad := c.Bad(e); bad != nil {
				return bad
			}
		}
	}
	return nil
}

// Settle does what Bad and Dedupe do, in one walk of v: it returns the
// text of the first number in v that is not a JSON number (v is then left
// partly deduplicated, and the record is to be refused), or nil once every
// object in v has one value per key. The decoder calls it once per record.
func (c *NumberChecker) Settle(v *fastjson.Value) []byte {
	switch v.Type() {
	case fastjson.TypeNumber:
		c.buf = v.MarshalTo(c.buf[:0])
		if !ValidNumber(c.buf) {
			return c.buf
		}
	case fastjson.TypeObject:
		o, _ := v.Object()
		return c.settleObject(o)
	case fastjson.TypeArray:
		arr, _ := v.Array()
		for _, e := range arr {
			if bad := c.Settle(e); bad != nil {
				return bad
			}
		}
	}
	return nil
}

func (c *NumberChecker) settleObject(o *fastjson.Object) []byte {
	// The duplicate search is dedupeObject's.
	n := o.Len()
	var small [smallObject][]byte
	keys := small[:0]
	var seen map[string]int
	var dups []string
	if n > smallObject {
		seen = make(map[string]int, n)
	}
	var bad []byte
	var bloom uint64 // keyBit of the keys so far: most keys need no compare
	o.Visit(func(k []byte, e *fastjson.Value) {
		if bad != nil {
			return
		}
		switch e.Type() {
		case fastjson.TypeNumber, fastjson.TypeObject, fastjson.TypeArray:
			if bad = c.Settle(e); bad != nil {
				return
			}
		}
		if seen != nil {
			if seen[string(k)]++; seen[string(k)] == 2 {
				dups = append(dups, string(k))
			}
			return
		}
		bit := keyBit(k)
		if bloom&bit != 0 {
			for _, prev := range keys {
				if bytes.Equal(prev, k) {
					if !slices.Contains(dups, string(k)) {
						dups = append(dups, string(k))
					}
					break
				}
			}
		}
		bloom |= bit
		keys = append(keys, k)
	})
	if bad != nil {
		return bad
	}
	for _, k := range dups {
		for count(o, k) > 1 {
			o.Del(k)
		}
	}
	return nil
}

// keyBit hashes a key to one of 64 bits from its length and its first and
// last bytes: two keys with different bits differ.
func keyBit(k []byte) uint64 {
	h := uint(len(k)) * 31
	if len(k) > 0 {
		h += uint(k[0])*7 + uint(k[len(k)-1])
	}
	return 1 << (h & 63)
}

// FiniteFloat parses a JSON number, refusing what does not fit a float64:
// 1e400 is an error, not +Inf.
func FiniteFloat(b []byte) (float64, error) {
	if !ValidNumber(b) {
		return 0, strconv.ErrSyntax
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0, strconv.ErrRange
	}
	return f, nil
}

// ValidText returns JSON text whose strings are valid Unicode: every byte
// that is not part of valid UTF-8 becomes U+FFFD (as Go's and gojq's
// string conversions do), and so does every \u escape of a lone
// surrogate. It returns src itself, and fixed=false, when there is
// nothing to replace; otherwise the text is appended to dst.
func ValidText(dst, src []byte) (out []byte, fixed bool) {
	if utf8.Valid(src) && !hasLoneSurrogate(src) {
		return src, false
	}
	out = dst
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\\' && i+1 < len(src):
			if n := escapeLen(src, i); n == 6 && isLoneSurrogate(src, i) {
				out = append(out, `\ufffd`...)
				i += 6
			} else {
				out = append(out, src[i:i+n]...)
				i += n
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && size == 1 {
				out = append(out, "\uFFFD"...)
			} else {
				out = append(out, src[i:i+size]...)
			}
			i += size
		}
	}
	return out, true
}

// escapeLen is the length of the escape at src[i] ('\\'): 12 for a
// surrogate pair, 6 for another \u escape, 1 before a non-ASCII byte
// (not an escape; the byte is checked on its own), else 2.
func escapeLen(src []byte, i int) int {
	if src[i+1] >= utf8.RuneSelf {
		return 1
	}
	if src[i+1] != 'u' {
		return 2
	}
	r, ok := hex4(src, i+2)
	if !ok {
		return 2
	}
	if 0xD800 <= r && r < 0xDC00 && i+12 <= len(src) && src[i+6] == '\\' && src[i+7] == 'u' {
		if lo, ok := hex4(src, i+8); ok && 0xDC00 <= lo && lo < 0xE000 {
			return 12
		}
	}
	return 6
}

// isLoneSurrogate reports whether the 6-byte \u escape at src[i] names a
// surrogate (escapeLen has already paired a high one that has its low one).
func isLoneSurrogate(src []byte, i int) bool {
	r, _ := hex4(src, i+2)
	return 0xD800 <= r && r < 0xE000
}

func hasLoneSurrogate(src []byte) bool {
	for i := 0; i+1 < len(src); {
		j := bytes.IndexByte(src[i:], '\\')
		if j < 0 {
			return false
		}
		if i += j; i+1 >= len(src) {
			return false
		}
		n := escapeLen(src, i)
		if n == 6 && isLoneSurrogate(src, i) {
			return true
		}
		i += n
	}
	return false
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// AppendValue appends v as JSON text: like fastjson's MarshalTo, but every
// string is escaped as JSON has it (see AppendString), so the output is
// always valid JSON.
func AppendValue(dst []byte, v *fastjson.Value) []byte {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		dst = append(dst, '{')
		n := 0
		o.Visit(func(k []byte, c *fastjson.Value) {
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = AppendString(dst, k)
			dst = append(dst, ':')
			dst = AppendValue(dst, c)
		})
		return append(dst, '}')
	case fastjson.TypeArray:
		arr, _ := v.Array()
		dst = append(dst, '[')
		for i, c := range arr {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendValue(dst, c)
		}
		return append(dst, ']')
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return AppendString(dst, b)
	default:
		return v.MarshalTo(dst)
	}
}
