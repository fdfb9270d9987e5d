package config

import (
	"bytes"
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// envRef matches ${VAR} and ${VAR:-default}; $${ is a literal ${.
var envRef = regexp.MustCompile(`\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)

// minRedact is the shortest environment value hidden wherever it appears
// in a message. A whole expanded value is hidden in messages about it
// whatever its length; hiding every "1" or "on" in every message would
// garble them without protecting a real secret.
const minRedact = 4

// quotedPiece matches a Go-quoted string in a message.
var quotedPiece = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// window is the length of the pieces of a value looked for in a message
// about that value, after whole values were replaced: a parser that quotes
// the rest of a value from where it stopped must not show that either.
// Shorter pieces would hide ordinary words of the message.
const window = 8

// Environment references are expanded inside the scalar values of the
// parsed document, never in its text: a value cannot change the YAML
// structure, start a comment, name an anchor or inject keys, and a
// reference inside a comment is never seen.
//
// Before parsing, each reference is swapped for an inert placeholder (a
// word of letters and digits that occurs nowhere in the file), so that an
// unquoted ${VAR} stays valid YAML even inside [ ] or { }, where a plain
// "{" would end the scalar. After parsing, placeholders in values become
// what the environment holds; placeholders in mapping keys become the
// reference text again (keys are not expanded). An unquoted value is then
// typed by what it expands to (42 is a number, an empty value is null), as
// if it had been written in its place; a quoted one stays a string.
// Expanded values are not expanded again.
//
// Every expansion that used the environment is remembered, so that error
// messages can print the text written in the file (${NAME}) instead of
// what the environment held.
type envRefs struct {
	list []string       // reference texts as written: "${A}", "${B:-x}", "$${"
	re   *regexp.Regexp // matches a placeholder; group 1 is its index
}

// protect swaps every reference in data for a placeholder.
func protect(data []byte) ([]byte, *envRefs) {
	if !envRef.Match(data) {
		return data, &envRefs{}
	}
	nonce := "sluiceenv"
	for n := 0; bytes.Contains(data, []byte(nonce)); n++ {
		nonce = fmt.Sprintf("sluiceenv%dq", n)
	}
	r := &envRefs{re: regexp.MustCompile(nonce + `(\d+)z`)}
	out := envRef.ReplaceAllFunc(data, func(ref []byte) []byte {
		r.list = append(r.list, string(ref))
		return fmt.Appendf(nil, "%s%dz", nonce, len(r.list)-1)
	})
	return out, r
}

// restore puts the reference texts back in s.
func (r *envRefs) restore(s string) string {
	if r.re == nil {
		return s
	}
	return r.re.ReplaceAllStringFunc(s, func(ph string) string {
		return r.list[r.index(ph)]
	})
}

func (r *envRefs) index(ph string) int {
	i, _ := strconv.Atoi(r.re.FindStringSubmatch(ph)[1])
	return i
}

// expandEnv expands the references in the values below n, with path the
// key path of n.
func (d *decoder) expandEnv(n *yaml.Node, path string, refs *envRefs, lookup func(string) (string, bool), seen map[*yaml.Node]bool) {
	if refs.re == nil || seen[n] {
		return
	}
	seen[n] = true
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			d.expandEnv(c, path, refs, lookup, seen)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if !seen[k] {
				seen[k] = true
				k.Value = refs.restore(k.Value)
			}
			d.expandEnv(n.Content[i+1], joinPath(path, k.Value), refs, lookup, seen)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			d.expandEnv(c, fmt.Sprintf("%s[%d]", path, i), refs, lookup, seen)
		}
	case yaml.ScalarNode:
		if refs.re.MatchString(n.Value) {
			d.expandScalar(n, path, refs, lookup)
		}
	case yaml.AliasNode:
		n.Value = refs.restore(n.Value)
	}
}

func (d *decoder) expandScalar(n *yaml.Node, path string, refs *envRefs, lookup func(string) (string, bool)) {
	raw := refs.restore(n.Value)
	var used []envValue
	out := refs.re.ReplaceAllStringFunc(n.Value, func(ph string) string {
		ref := refs.list[refs.index(ph)]
		if ref == "$${" {
			return "${"
		}
		m := envRef.FindStringSubmatch(ref)
		name := m[1]
		v, ok := lookup(name)
		switch {
		case ok && !utf8.ValidString(v):
			d.envErrorf(n, path, "environment variable %s is not valid UTF-8", name)
		case ok && v != "":
			used = append(used, envValue{name: name, value: v})
			return v
		case strings.Contains(ref, ":-"):
			return m[2]
		case ok:
			d.envErrorf(n, path, "environment variable %s is empty (write ${%s:-default} for a default)", name, name)
		default:
			d.envErrorf(n, path, "environment variable %s is not set", name)
		}
		return ""
	})
	n.Value = out
	if n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		n.Tag = (&yaml.Node{Kind: yaml.ScalarNode, Value: out}).ShortTag()
	}
	if len(used) > 0 {
		d.expanded = append(d.expanded, expansion{path: path, raw: raw, value: out, vars: used})
	}
}

// envErrorf reports a reference that could not be expanded. Later
// complaints about the value at path (now incomplete) are left out: the
// missing variable is the problem.
func (d *decoder) envErrorf(n *yaml.Node, path, format string, args ...any) {
	d.report(n, path, format, args...)
	d.bad[path], d.envBad[path] = true, true
}

type envValue struct{ name, value string }

// expansion is one scalar whose value came (partly) from the environment.
type expansion struct {
	path  string
	raw   string // as written in the file, with its ${...} references
	value string // after expansion
	vars  []envValue
}

// redactor rewrites messages so that no value that came from the
// environment appears in them, plain or as Go quoting (%q) renders it.
type redactor struct {
	byPath map[string]expansion
	vars   []envValue // every environment value used
}

func newRedactor(exps []expansion) redactor {
	r := redactor{byPath: map[string]expansion{}}
	for _, e := range exps {
		r.byPath[e.path] = e
		r.vars = append(r.vars, e.vars...)
	}
	return r
}

// quoted is s as it appears between the quotes of %q.
func quoted(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// redact rewrites a message about the value at path. The value, if it came
// from the environment, is replaced by the text written in the file; then
// any environment value (at least minRedact long) by ${NAME}; then, in a
// message about a value that came from the environment, every run of
// pieces of that value (an error quoting the rest of a value from where
// a parser stopped) by ${NAME} too.
func (r redactor) redact(path, msg string) string {
	if len(r.vars) == 0 {
		return msg
	}
	type pair struct{ old, new string }
	var pairs []pair
	add := func(old, new string) {
		switch {
		case old == "" || old == new:
		case len(old) < minRedact: // only where quoted whole, not every "1"
			pairs = append(pairs, pair{strconv.Quote(old), strconv.Quote(new)})
		default:
			pairs = append(pairs, pair{old, new}, pair{quoted(old), quoted(new)})
		}
	}
	own, ok := r.byPath[path]
	if ok {
		add(own.value, own.raw)
		for _, v := range own.vars {
			add(v.value, "${"+v.name+"}")
		}
	}
	for _, v := range r.vars {
		if len(v.value) >= minRedact {
			add(v.value, "${"+v.name+"}")
		}
	}
	// strings.Replacer tries the pairs in order at each position: the
	// longest first, so a whole value wins over a variable inside it, and
	// this path's own references win over equal values elsewhere.
	slices.SortStableFunc(pairs, func(a, b pair) int { return cmp.Compare(len(b.old), len(a.old)) })
	args := make([]string, 0, 2*len(pairs))
	for _, p := range pairs {
		args = append(args, p.old, p.new)
	}
	msg = strings.NewReplacer(args...).Replace(msg)
	if !ok {
		return msg
	}
	cover := make([]string, len(msg)) // the variable whose value covers each byte
	found := false
	for _, v := range own.vars {
		for _, val := range []string{v.value, quoted(v.value)} {
			w := min(window, len(val))
			for i := 0; i+w <= len(msg); i++ {
				if !strings.Contains(val, msg[i:i+w]) {
					continue
				}
				for j := i; j < i+w; j++ {
					if cover[j] == "" {
						cover[j] = v.name
					}
				}
				found = true
			}
		}
	}
	if found {
		var b strings.Builder
		for i := 0; i < len(msg); i++ {
			switch {
			case cover[i] == "":
				b.WriteByte(msg[i])
			case i == 0 || cover[i-1] == "":
				b.WriteString("${" + cover[i] + "}")
			}
		}
		msg = b.String()
	}
	// A parser quotes the token where it stopped: hide a quoted piece of
	// the value even when it is shorter than a window.
	msg = quotedPiece.ReplaceAllStringFunc(msg, func(q string) string {
		inner := q[1 : len(q)-1]
		for _, v := range own.vars {
			if len(inner) >= minRedact && strings.Contains(quoted(v.value), inner) {
				return `"${` + v.name + `}"`
			}
		}
		return q
	})
	return msg
}
