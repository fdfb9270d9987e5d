// Package routing decides which routes a record takes. Matching uses
// Amazon EventBridge event-pattern semantics, so AWS users can paste the
// patterns they already have: exact values, prefix, suffix, anything-but,
// exists, numeric ranges, wildcard, equals-ignore-case, cidr and $or. A field
// whose value is an array matches when any element does, and arrays of
// objects are flattened as EventBridge does.
package routing

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/valyala/fastjson"
)

// PatternError is a problem in an event pattern at Path (dotted, relative
// to the pattern root).
type PatternError struct {
	Path string
	Msg  string
}

func (e *PatternError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Pattern is a compiled event pattern.
type Pattern struct {
	leaves []leaf
	ors    [][]*Pattern // each group: any alternative matches
}

type leaf struct {
	path     []string
	matchers []matcher // any matches
}

// CompilePattern compiles a pattern given as plain Go values, as decoded
// from YAML or JSON. A nil pattern matches everything.
func CompilePattern(x any) (*Pattern, error) {
	if x == nil {
		return &Pattern{}, nil
	}
	m, ok := x.(map[string]any)
	if !ok {
		return nil, &PatternError{Msg: "an event pattern must be a mapping of field names"}
	}
	p := &Pattern{}
	if err := p.compile(m, nil); err != nil {
		return nil, err
	}
	return p, nil
}

func pathText(path []string) string { return strings.Join(path, ".") }

func (p *Pattern) compile(m map[string]any, path []string) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		if k == "$or" {
			alts, ok := v.([]any)
			if !ok || len(alts) < 2 {
				return &PatternError{Path: pathText(append(path, k)), Msg: "$or needs a list of at least two patterns"}
			}
			var group []*Pattern
			for i, a := range alts {
				am, ok := a.(map[string]any)
				if !ok {
					return &PatternError{Path: fmt.Sprintf("%s[%d]", pathText(append(path, k)), i), Msg: "each $or alternative must be a mapping"}
				}
				sub := &Pattern{}
				if err := sub.compile(am, path); err != nil {
					return err
				}
				group = append(group, sub)
			}
			p.ors = append(p.ors, group)
			continue
		}
		fp := append(append([]string(nil), path...), k)
		switch t := v.(type) {
		case map[string]any:
			if err := p.compile(t, fp); err != nil {
				return err
			}
		case []any:
			if len(t) == 0 {
				return &PatternError{Path: pathText(fp), Msg: "an empty list matches nothing"}
			}
			l := leaf{path: fp}
			for i, c := range t {
				mt, err := compileMatcher(c)
				if err != nil {
					return &PatternError{Path: fmt.Sprintf("%s[%d]", pathText(fp), i), Msg: err.Error()}
				}
				l.matchers = append(l.matchers, mt)
			}
			p.leaves = append(p.leaves, l)
		default:
			mt, err := compileMatcher(t)
			if err != nil {
				return &PatternError{Path: pathText(fp), Msg: err.Error()}
			}
			p.leaves = append(p.leaves, leaf{path: fp, matchers: []matcher{mt}})
		}
	}
	return nil
}

// Match reports whether the record matches.
func (p *Pattern) Match(v *fastjson.Value) bool {
	var buf [8]*fastjson.Value
	for i := range p.leaves {
		l := &p.leaves[i]
		vals := collect(buf[:0], v, l.path)
		if !l.match(vals) {
			return false
		}
	}
	for _, group := range p.ors {
		ok := false
		for _, alt := range group {
			if alt.Match(v) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// collect appends every value at path, fanning out through arrays.
func collect(dst []*fastjson.Value, v *fastjson.Value, path []string) []*fastjson.Value {
	if v == nil {
		return dst
	}
	if len(path) == 0 {
		if v.Type() == fastjson.TypeArray {
			items, _ := v.Array()
			return append(dst, items...)
		}
		return append(dst, v)
	}
	switch v.Type() {
	case fastjson.TypeObject:
		return collect(dst, v.Get(path[0]), path[1:])
	case fastjson.TypeArray:
		items, _ := v.Array()
		for _, it := range items {
			dst = collect(dst, it, path)
		}
	}
	return dst
}

func (l *leaf) match(vals []*fastjson.Value) bool {
	for _, m := range l.matchers {
		if e, ok := m.(existsMatcher); ok {
			if bool(e) == (len(vals) > 0) {
				return true
			}
			continue
		}
		for _, v := range vals {
			if m.match(v) {
				return true
			}
		}
	}
	return false
}

type matcher interface {
	match(v *fastjson.Value) bool
}

type existsMatcher bool

func (existsMatcher) match(*fastjson.Value) bool { return false }

type stringEq string

func (s stringEq) match(v *fastjson.Value) bool {
	b, err := v.StringBytes()
	return err == nil && string(b) == string(s)
}

type numberEq float64

func (n numberEq) match(v *fastjson.Value) bool {
	f, err := v.Float64()
	return v.Type() == fastjson.TypeNumber && err == nil && f == float64(n)
}

type boolEq bool

func (b boolEq) match(v *fastjson.Value) bool {
	return (bool(b) && v.Type() == fastjson.TypeTrue) || (!bool(b) && v.Type() == fastjson.TypeFalse)
}

type nullEq struct{}

func (nullEq) match(v *fastjson.Value) bool { return v.Type() == fastjson.TypeNull }

type stringFunc func(s string) bool

func (f stringFunc) match(v *fastjson.Value) bool {
	b, err := v.StringBytes()
	return v.Type() == fastjson.TypeString && err == nil && f(string(b))
}

type notMatcher struct{ inner []matcher }

func (n notMatcher) match(v *fastjson.Value) bool {
	for _, m := range n.inner {
		if m.match(v) {
			return false
		}
	}
	return true
}

type numericMatcher struct {
	conds []numericCond
}

type numericCond struct {
	op string
	n  float64
}

func (m numericMatcher) match(v *fastjson.Value) bool {
	if v.Type() != fastjson.TypeNumber {
		return false
	}
	f, err := v.Float64()
	if err != nil {
		return false
	}
	for _, c := range m.conds {
		ok := false
		switch c.op {
		case "=":
			ok = f == c.n
		case "<":
			ok = f < c.n
		case "<=":
			ok = f <= c.n
		case ">":
			ok = f > c.n
		case ">=":
			ok = f >= c.n
		}
		if !ok {
			return false
		}
	}
	return true
}

func toFloat(x any) (float64, bool) {
	switch t := x.(type) {
	case int:
		return float64(t), true
	case int64:
		return float64(t), true
	case uint64:
		return float64(t), true
	case float64:
		return t, !math.IsNaN(t)
	}
	return 0, false
}

func compileMatcher(x any) (matcher, error) {
	switch t := x.(type) {
	case nil:
		return nullEq{}, nil
	case string:
		return stringEq(t), nil
	case bool:
		return boolEq(t), nil
	case map[string]any:
		return compileOperator(t)
	case []any:
		return nil, fmt.Errorf("nested lists are not allowed in a pattern")
	default:
		if f, ok := toFloat(t); ok {
			return numberEq(f), nil
		}
		return nil, fmt.Errorf("unsupported value %v", t)
	}
}

var operators = []string{"anything-but", "cidr", "equals-ignore-case", "exists", "numeric", "prefix", "suffix", "wildcard"}

func compileOperator(m map[string]any) (matcher, error) {
	if len(m) != 1 {
		return nil, fmt.Errorf("a matcher must have exactly one operator (one of: %s)", strings.Join(operators, ", "))
	}
	for op, arg := range m {
		switch op {
		case "prefix", "suffix":
			s, fold, err := stringArg(op, arg)
			if err != nil {
				return nil, err
			}
			return affix(op, s, fold), nil
		case "equals-ignore-case":
			s, ok := arg.(string)
			if !ok {
				return nil, fmt.Errorf("equals-ignore-case takes a string")
			}
			return stringFunc(func(v string) bool { return strings.EqualFold(v, s) }), nil
		case "wildcard":
			s, ok := arg.(string)
			if !ok {
				return nil, fmt.Errorf("wildcard takes a string")
			}
			if strings.Contains(s, "**") {
				return nil, fmt.Errorf("wildcard %q: consecutive * are not allowed", s)
			}
			return stringFunc(func(v string) bool { return wildcard(s, v) }), nil
		case "exists":
			b, ok := arg.(bool)
			if !ok {
				return nil, fmt.Errorf("exists takes true or false")
			}
			return existsMatcher(b), nil
		case "numeric":
			return compileNumeric(arg)
		case "cidr":
			s, ok := arg.(string)
			if !ok {
				return nil, fmt.Errorf("cidr takes a string such as 10.0.0.0/24")
			}
			pfx, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("cidr %q: %v", s, err)
			}
			return stringFunc(func(v string) bool {
				a, err := netip.ParseAddr(v)
				return err == nil && pfx.Contains(a)
			}), nil
		case "anything-but":
			var inner []matcher
			switch t := arg.(type) {
			case []any:
				if len(t) == 0 {
					return nil, fmt.Errorf("anything-but needs at least one value")
				}
				for _, c := range t {
					if _, isMap := c.(map[string]any); isMap {
						return nil, fmt.Errorf("anything-but lists hold plain values")
					}
					mt, err := compileMatcher(c)
					if err != nil {
						return nil, err
					}
					inner = append(inner, mt)
				}
			case map[string]any:
				if len(t) != 1 {
					return nil, fmt.Errorf("anything-but takes one operator")
				}
				for iop := range t {
					if iop != "prefix" && iop != "suffix" && iop != "equals-ignore-case" && iop != "wildcard" {
						return nil, fmt.Errorf("anything-but does not take %q (want prefix, suffix, equals-ignore-case or wildcard)", iop)
					}
				}
				if eq, ok := t["equals-ignore-case"].([]any); ok {
					for _, c := range eq {
						s, ok := c.(string)
						if !ok {
							return nil, fmt.Errorf("equals-ignore-case takes strings")
						}
						inner = append(inner, stringFunc(func(v string) bool { return strings.EqualFold(v, s) }))
					}
					break
				}
				mt, err := compileOperator(t)
				if err != nil {
					return nil, err
				}
				inner = []matcher{mt}
			default:
				mt, err := compileMatcher(t)
				if err != nil {
					return nil, err
				}
				inner = []matcher{mt}
			}
			return notMatcher{inner: inner}, nil
		default:
			return nil, fmt.Errorf("unknown operator %q (want one of: %s)", op, strings.Join(operators, ", "))
		}
	}
	return nil, nil
}

func stringArg(op string, arg any) (string, bool, error) {
	switch t := arg.(type) {
	case string:
		return t, false, nil
	case map[string]any:
		if s, ok := t["equals-ignore-case"].(string); ok && len(t) == 1 {
			return s, true, nil
		}
	}
	return "", false, fmt.Errorf("%s takes a string or {equals-ignore-case: string}", op)
}

func affix(op, s string, fold bool) matcher {
	if fold {
		s = strings.ToLower(s)
	}
	return stringFunc(func(v string) bool {
		if fold {
			v = strings.ToLower(v)
		}
		if op == "prefix" {
			return strings.HasPrefix(v, s)
		}
		return strings.HasSuffix(v, s)
	})
}

func compileNumeric(arg any) (matcher, error) {
	list, ok := arg.([]any)
	if !ok || len(list) == 0 || len(list)%2 != 0 || len(list) > 4 {
		return nil, fmt.Errorf(`numeric takes one or two [operator, number] pairs, e.g. [">", 0, "<=", 5]`)
	}
	var m numericMatcher
	for i := 0; i < len(list); i += 2 {
		op, ok := list[i].(string)
		if !ok || !slices.Contains([]string{"=", "<", "<=", ">", ">="}, op) {
			return nil, fmt.Errorf("numeric operator %v: want one of =, <, <=, >, >=", list[i])
		}
		n, ok := toFloat(list[i+1])
		if !ok {
			if s, isStr := list[i+1].(string); isStr {
				if f, err := strconv.ParseFloat(s, 64); err == nil {
					n, ok = f, true
				}
			}
		}
		if !ok {
			return nil, fmt.Errorf("numeric %s needs a number, not %v", op, list[i+1])
		}
		m.conds = append(m.conds, numericCond{op: op, n: n})
	}
	return m, nil
}

// wildcard matches s against pattern p where * matches any run of
// characters and \* is a literal star.
func wildcard(p, s string) bool {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(p); i++ {
		switch {
		case p[i] == '\\' && i+1 < len(p) && p[i+1] == '*':
			cur.WriteByte('*')
			i++
		case p[i] == '*':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(p[i])
		}
	}
	parts = append(parts, cur.String())
	if len(parts) == 1 {
		return s == parts[0]
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}
