// Package template renders Firehose S3 prefix templates:
// !{partitionKeyFromQuery:k}, !{timestamp:yyyy/MM/dd} (Java date letters) and
// !{error-output-type} (also spelled !{firehose:error-output-type}), and
// Sluice's !{arrival:FORMAT}, the time the source read the record (the raw
// archive partitions by it).
package template

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Template is a parsed prefix template.
type Template struct {
	src   string
	parts []part
}

type partKind int

const (
	literal partKind = iota
	partitionKey
	timestamp
	arrival
	errorType
)

type part struct {
	kind partKind
	text string     // literal text or key name
	idx  int        // index of the key in the bound key list
	date []dateElem // timestamp format
}

// Expressions documents the !{...} expressions Parse accepts; the
// configuration reference is generated from it.
var Expressions = []struct {
	Syntax, Example, Doc string
}{
	{"!{partitionKeyFromQuery:KEY}", "!{partitionKeyFromQuery:year}", "The value of partition key KEY (the sink's partition_keys), Hive-escaped."},
	{"!{timestamp:FORMAT}", "!{timestamp:yyyy/MM/dd/HH}", "The record's event time in UTC, with Java date letters: y, M, d, H, h, m, s, S, a and 'quoted' literals."},
	{"!{arrival:FORMAT}", "!{arrival:yyyy-MM-dd}", "The time the source read the record, same letters (the raw archive partitions by it)."},
	{"!{error-output-type}", "!{error-output-type}", "In error_prefix only: processing-failed, schema-mismatch, sink-rejected or partition-limit. Also spelled !{firehose:error-output-type}."},
}

// Parse parses src. Unknown namespaces, and ones Sluice cannot honour
// deterministically (random-string, Lambda keys), are errors.
func Parse(src string) (*Template, error) {
	t, errs := ParseAll(src)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return t, nil
}

// ParseAll parses src as Parse does, but reads every expression: it returns
// each error, in order, and the template of the expressions that parsed, so
// that a configuration check can report all mistakes in one pass (and still
// check the partition keys the valid expressions name).
func ParseAll(src string) (*Template, []error) {
	t := &Template{src: src}
	var errs []error
	rest := src
	for rest != "" {
		i := strings.Index(rest, "!{")
		if i < 0 {
			t.parts = append(t.parts, part{kind: literal, text: rest})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{kind: literal, text: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			errs = append(errs, fmt.Errorf("unterminated !{ in %q", src))
			break
		}
		expr := rest[i+2 : i+j]
		rest = rest[i+j+1:]
		if p, err := parseExpr(expr); err != nil {
			errs = append(errs, err)
		} else {
			t.parts = append(t.parts, p)
		}
	}
	return t, errs
}

// parseExpr parses the expression inside one !{...}.
func parseExpr(expr string) (part, error) {
	ns, arg, _ := strings.Cut(expr, ":")
	switch ns {
	case "partitionKeyFromQuery":
		if arg == "" {
			return part{}, fmt.Errorf("!{partitionKeyFromQuery:} needs a key name")
		}
		return part{kind: partitionKey, text: arg}, nil
	case "timestamp":
		d, err := parseDate(arg)
		if err != nil {
			return part{}, err
		}
		return part{kind: timestamp, date: d}, nil
	case "arrival":
		d, err := parseDate(arg)
		if err != nil {
			return part{}, err
		}
		return part{kind: arrival, date: d}, nil
	case "error-output-type":
		return part{kind: errorType}, nil
	case "firehose":
		switch arg {
		case "error-output-type":
			return part{kind: errorType}, nil
		case "random-string":
			return part{}, fmt.Errorf("!{firehose:random-string} is not supported: object names derive from source positions so that re-processing overwrites")
		default:
			return part{}, fmt.Errorf("unknown !{firehose:%s}", arg)
		}
	case "partitionKeyFromLambda":
		return part{}, fmt.Errorf("!{partitionKeyFromLambda:%s} is not supported: use partition_keys (jq)", arg)
	default:
		return part{}, fmt.Errorf("unknown template expression !{%s} (want partitionKeyFromQuery:KEY, timestamp:FORMAT, arrival:FORMAT or error-output-type)", expr)
	}
}

// String returns the source.
func (t *Template) String() string { return t.src }

// Keys returns the partition keys the template names, in order.
func (t *Template) Keys() []string {
	var keys []string
	for _, p := range t.parts {
		if p.kind == partitionKey {
			keys = append(keys, p.text)
		}
	}
	return keys
}

// UsesErrorType reports whether the template names the error output type.
func (t *Template) UsesErrorType() bool {
	for _, p := range t.parts {
		if p.kind == errorType {
			return true
		}
	}
	return false
}

// Bind resolves the partition keys the template names against the ordered
// key list that Values.Keys will follow.
func (t *Template) Bind(names []string) error {
	for i := range t.parts {
		p := &t.parts[i]
		if p.kind != partitionKey {
			continue
		}
		p.idx = -1
		for j, n := range names {
			if n == p.text {
				p.idx = j
			}
		}
		if p.idx < 0 {
			return fmt.Errorf("!{partitionKeyFromQuery:%s} names a key not in partition_keys", p.text)
		}
	}
	return nil
}

// Values supplies what a rendering needs.
type Values struct {
	// Keys holds the partition key values, in the order given to Bind, as
	// the records gave them: Append escapes them with HiveEscape.
	Keys      [][]byte
	Time      time.Time // event time, for !{timestamp:}
	Arrival   time.Time // when the source read the record, for !{arrival:}
	ErrorType string
}

// Append renders the template onto dst. Partition key values are
// Hive-escaped here, the one place values from records enter a key.
func (t *Template) Append(dst []byte, v Values) []byte {
	for _, p := range t.parts {
		switch p.kind {
		case literal:
			dst = append(dst, p.text...)
		case partitionKey:
			dst = HiveEscape(dst, v.Keys[p.idx])
		case timestamp:
			dst = appendDate(dst, p.date, v.Time.UTC())
		case arrival:
			dst = appendDate(dst, p.date, v.Arrival.UTC())
		case errorType:
			dst = append(dst, v.ErrorType...)
		}
	}
	return dst
}

// AppendPrefix renders the template onto dst as an object key prefix and
// checks the result with CheckPrefix, so that no value can make a key that
// leaves the sink's root. Escaping makes every non-empty value safe in a
// template that Sample renders cleanly; an empty value can still leave an
// empty segment, and that is an error.
func (t *Template) AppendPrefix(dst []byte, v Values) ([]byte, error) {
	start := len(dst)
	dst = t.Append(dst, v)
	p := dst[start:]
	if err := CheckPrefix(p); err != nil {
		return dst[:start], fmt.Errorf("key prefix %q: %w", shorten(p), err)
	}
	if err := checkLength(p); err != nil {
		return dst[:start], fmt.Errorf("key prefix %q: %w", shorten(p), err)
	}
	return dst, nil
}

// MaxSegmentBytes and MaxPrefixBytes bound a rendered prefix, so that a
// long value from a record fails that record instead of every write of its
// object: a file system refuses a name over 255 bytes (ENAMETOOLONG) and
// S3 a key over 1,024 bytes, and the object's own name takes up to 255.
const (
	MaxSegmentBytes = 255
	MaxPrefixBytes  = 1024 - MaxSegmentBytes
)

// ErrKeyTooLong is wrapped by AppendPrefix's error for a prefix over
// MaxPrefixBytes or with a segment over MaxSegmentBytes.
var ErrKeyTooLong = errors.New("key too long for the store")

func checkLength(p []byte) error {
	if len(p) > MaxPrefixBytes {
		return fmt.Errorf("%w: %d bytes, over %d", ErrKeyTooLong, len(p), MaxPrefixBytes)
	}
	for len(p) > 0 {
		seg := p
		if i := bytes.IndexByte(p, '/'); i >= 0 {
			seg, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		if len(seg) > MaxSegmentBytes {
			return fmt.Errorf("%w: a segment of %d bytes, over %d", ErrKeyTooLong, len(seg), MaxSegmentBytes)
		}
	}
	return nil
}

// shorten cuts a rendered prefix for an error message at 200 bytes: the
// record itself is in the error output.
func shorten(p []byte) string {
	const n = 200
	if len(p) <= n {
		return string(p)
	}
	return string(p[:n]) + "…"
}

// Sample renders the template with every partition key set to "x", a fixed
// time and the given error type: what the configuration alone puts in a
// key. Validation checks it with CheckPrefix.
func (t *Template) Sample(errType string) string {
	var dst []byte
	at := time.Date(2024, 11, 3, 7, 4, 5, 0, time.UTC)
	for _, p := range t.parts {
		switch p.kind {
		case literal:
			dst = append(dst, p.text...)
		case partitionKey:
			dst = append(dst, 'x')
		case timestamp, arrival:
			dst = appendDate(dst, p.date, at)
		case errorType:
			dst = append(dst, errType...)
		}
	}
	return string(dst)
}

// ErrUnsafeKey is wrapped by the errors of CheckKey and CheckPrefix.
var ErrUnsafeKey = errors.New("key would leave the sink's root")

// CheckPrefix reports whether p, joined under a store's root, stays inside
// it on every store: it is empty, or a relative path of non-empty segments
// other than "." and "..", optionally ending in '/', without NUL bytes or
// backslashes.
// Stores apply the same rule to whole keys (CheckKey), so no bug upstream
// can write outside the root.
func CheckPrefix[S ~string | ~[]byte](p S) error {
	if len(p) > 0 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
		if len(p) == 0 {
			return fmt.Errorf("%w: it starts with /", ErrUnsafeKey)
		}
	}
	if len(p) == 0 {
		return nil
	}
	return CheckKey(p)
}

// CheckKey reports whether key is a clean relative object key: non-empty
// segments other than "." and "..", no leading or trailing '/', no NUL and
// no backslash.
func CheckKey[S ~string | ~[]byte](key S) error {
	// Keys and prefixes are checked once per record: the common types go
	// through the vectorised IndexByte instead of a loop over bytes.
	switch k := any(key).(type) {
	case []byte:
		return checkKey(k, bytes.IndexByte)
	case string:
		return checkKey(k, strings.IndexByte)
	}
	return checkKey(key, func(s S, c byte) int {
		for i := 0; i < len(s); i++ {
			if s[i] == c {
				return i
			}
		}
		return -1
	})
}

func checkKey[S ~string | ~[]byte](key S, index func(S, byte) int) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: it is empty", ErrUnsafeKey)
	}
	if key[0] == '/' {
		return fmt.Errorf("%w: it starts with /", ErrUnsafeKey)
	}
	// The first problem in the key wins, as a scan from the start finds
	// it: a NUL or a backslash where it is, a bad segment where it ends.
	at, msg := len(key)+1, ""
	if i := index(key, 0); i >= 0 {
		at, msg = i, "it holds a NUL byte"
	}
	if i := index(key, '\\'); i >= 0 && i < at {
		at, msg = i, "it holds a backslash, a separator on some file systems"
	}
	for start := 0; start <= len(key) && start < at; {
		end := len(key)
		if i := index(key[start:], '/'); i >= 0 {
			end = start + i
		}
		if end >= at {
			break
		}
		switch string(key[start:end]) {
		case "":
			at, msg = end, "it has an empty segment (//)"
		case ".":
			at, msg = end, `it has a "." segment`
		case "..":
			at, msg = end, `it has a ".." segment`
		}
		start = end + 1
	}
	if msg != "" {
		return fmt.Errorf("%w: %s", ErrUnsafeKey, msg)
	}
	return nil
}

type dateElem struct {
	letter byte // 0 for literal
	width  int
	lit    string
}

// parseDate parses the subset of java.time.format.DateTimeFormatter
// patterns Firehose users write: y, M, d, H, h, m, s, S, a, and 'quoted'
// literals; any other letter is an error.
func parseDate(f string) ([]dateElem, error) {
	if f == "" {
		return nil, fmt.Errorf("!{timestamp:} needs a format such as yyyy/MM/dd")
	}
	var out []dateElem
	for i := 0; i < len(f); {
		c := f[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(f[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated quote in timestamp format %q", f)
			}
			out = append(out, dateElem{lit: f[i+1 : i+1+j]})
			i += j + 2
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			if !strings.ContainsRune("yMdHhmsSa", rune(c)) {
				return nil, fmt.Errorf("timestamp format %q: unsupported letter %q (use y, M, d, H, h, m, s, S, a)", f, c)
			}
			j := i
			for j < len(f) && f[j] == c {
				j++
			}
			out = append(out, dateElem{letter: c, width: j - i})
			i = j
		default:
			out = append(out, dateElem{lit: string(c)})
			i++
		}
	}
	return out, nil
}

func appendDate(dst []byte, elems []dateElem, t time.Time) []byte {
	for _, e := range elems {
		switch e.letter {
		case 0:
			dst = append(dst, e.lit...)
		case 'y':
			y := t.Year()
			if e.width == 2 {
				y %= 100
			}
			dst = appendPadded(dst, y, e.width)
		case 'M':
			dst = appendPadded(dst, int(t.Month()), e.width)
		case 'd':
			dst = appendPadded(dst, t.Day(), e.width)
		case 'H':
			dst = appendPadded(dst, t.Hour(), e.width)
		case 'h':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			dst = appendPadded(dst, h, e.width)
		case 'm':
			dst = appendPadded(dst, t.Minute(), e.width)
		case 's':
			dst = appendPadded(dst, t.Second(), e.width)
		case 'S':
			frac := fmt.Sprintf("%09d", t.Nanosecond())
			if e.width <= 9 {
				frac = frac[:e.width]
			}
			dst = append(dst, frac...)
		case 'a':
			if t.Hour() < 12 {
				dst = append(dst, "AM"...)
			} else {
				dst = append(dst, "PM"...)
			}
		}
	}
	return dst
}

func appendPadded(dst []byte, v, width int) []byte {
	s := strconv.Itoa(v)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// hiveEscaped marks the bytes HiveEscape writes as %XX: control bytes,
// DEL, and " # % ' * / : = ? \ { [ ] ^.
var hiveEscaped = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c < 0x20 || c == 0x7f || strings.IndexByte("\"#%'*/:=?\\{[]^", byte(c)) >= 0
	}
	return t
}()

// HiveEscape escapes a partition value the way Hive does for directory
// names, so a value holding '/' or '=' cannot change the key layout. A
// value made only of dots ("." or "..", or dots that would meet those of
// another value in the same segment) has every dot escaped as %2E, so no
// value can name the current or parent directory; Hive readers unescape
// %2E like any other escape.
func HiveEscape(dst []byte, s []byte) []byte {
	dots := len(s) > 0 && len(bytes.Trim(s, ".")) == 0
	from := 0
	for i, c := range s {
		if hiveEscaped[c] || dots {
			dst = append(dst, s[from:i]...)
			dst = append(dst, '%', "0123456789ABCDEF"[c>>4], "0123456789ABCDEF"[c&15])
			from = i + 1
		}
	}
	return append(dst, s[from:]...)
}
