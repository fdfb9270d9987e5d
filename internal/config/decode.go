package config

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads, decodes, expands, defaults and validates one configuration
// file. The error, when not nil, is Errors listing every problem found
// (with any warnings among them); on success the warnings are in
// Config.Warnings. With Errors, the Config is returned too, decoded as far
// as it went, so that a caller can report more in the same pass (processor
// validate checks file globs); it must never be run.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse is Load on bytes already read; lookup resolves ${VAR}.
//
// Problems are reported in one pass: a key that is unknown or a value
// that does not decode is reported and left at its zero value, and the
// semantic checks of Validate still run on everything else. Only YAML
// that does not parse stops early.
func Parse(file string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	d := &decoder{file: file, pos: map[string]int{}, bad: map[string]bool{}, envBad: map[string]bool{}}
	text, refs := protect(data)
	var root yaml.Node
	if err := yaml.Unmarshal(text, &root); err != nil {
		return nil, Errors{YAMLError(file, data, refs.restore(err.Error()))}
	}
	cfg := &Config{File: file}
	if len(root.Content) == 0 {
		return nil, Errors{{File: file, Line: 1, Msg: "empty configuration"}}
	}
	d.expandEnv(&root, "", refs, lookup, map[*yaml.Node]bool{})
	d.red = newRedactor(d.expanded)
	d.decode(root.Content[0], cfg, "")
	cfg.pos, cfg.bad, cfg.red = d.pos, d.bad, d.red
	errs := append(d.errs, cfg.Validate()...)
	if len(errs) > 0 {
		errs = append(errs, cfg.Warnings...)
		errs.Sort()
		return cfg, errs
	}
	return cfg, nil
}

var yamlLine = regexp.MustCompile(`(?:yaml: )?line (\d+):\s*`)

type decoder struct {
	file string
	errs Errors
	pos  map[string]int
	// bad holds the paths whose value did not decode; Validate does not
	// complain again about them or what is below them.
	bad map[string]bool
	// envBad holds the paths whose ${VAR} could not be expanded.
	envBad   map[string]bool
	expanded []expansion
	red      redactor
}

// errorf reports that the value at path (n) is wrong.
func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	if d.envBad[path] {
		return
	}
	d.bad[path] = true
	d.report(n, path, format, args...)
}

// report adds an error about path without marking its value as wrong
// (a key missing from the mapping at path, say).
func (d *decoder) report(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Path: path, Msg: d.red.redact(path, fmt.Sprintf(format, args...))})
}

func (d *decoder) record(path string, line int) {
	if _, ok := d.pos[path]; !ok {
		d.pos[path] = line
	}
}

// recordTree records the line of every key inside a free-form subtree, so
// errors found later (in an event pattern, say) can name their line.
func (d *decoder) recordTree(n *yaml.Node, path string) {
	d.record(path, n.Line)
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := joinPath(path, n.Content[i].Value)
			d.record(p, n.Content[i].Line)
			d.recordTree(n.Content[i+1], p)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			d.recordTree(c, fmt.Sprintf("%s[%d]", path, i))
		}
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// scalar reports whether n is a scalar, recording an error if not.
func (d *decoder) scalar(n *yaml.Node, path string) bool {
	if n.Kind == yaml.ScalarNode {
		return true
	}
	d.errorf(n, path, "must be a single value, not a %s", kindName(n))
	return false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	default:
		return "value"
	}
}

var decoderType = reflect.TypeFor[nodeDecoder]()

// decode fills out (a pointer) from n.
func (d *decoder) decode(n *yaml.Node, out any, path string) {
	d.value(n, reflect.ValueOf(out).Elem(), path, reflect.StructField{})
}

func (d *decoder) value(n *yaml.Node, v reflect.Value, path string, field reflect.StructField) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.record(path, n.Line)
	if v.CanAddr() && v.Addr().Type().Implements(decoderType) {
		v.Addr().Interface().(nodeDecoder).decodeNode(d, n, path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.structValue(n, v, path)
	case reflect.Slice:
		items := n.Content
		switch {
		case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
			return
		case n.Kind == yaml.ScalarNode && v.Type().Elem().Kind() == reflect.String:
			items = []*yaml.Node{n} // a single name where a list is expected
		case n.Kind != yaml.SequenceNode:
			d.errorf(n, path, "must be a list, not a %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, c := range items {
			d.value(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i), field)
		}
		v.Set(s)
	case reflect.String:
		if !d.scalar(n, path) {
			return
		}
		if n.Tag == "!!null" {
			v.SetString("")
			return
		}
		if enum := field.Tag.Get("enum"); enum != "" && !slices.Contains(strings.Split(enum, "|"), n.Value) {
			d.errorf(n, path, "invalid value %q (want one of: %s)", n.Value, strings.ReplaceAll(enum, "|", ", "))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if !d.scalar(n, path) {
			return
		}
		b, err := strconv.ParseBool(n.Value)
		if err != nil {
			d.errorf(n, path, "invalid boolean %q (want true or false)", n.Value)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		if !d.scalar(n, path) {
			return
		}
		i, err := strconv.ParseInt(n.Value, 10, 64)
		if err != nil {
			d.errorf(n, path, "invalid integer %q", n.Value)
			return
		}
		v.SetInt(i)
	default:
		panic(fmt.Sprintf("config: no decoder for %s at %s", v.Type(), path))
	}
}

func (d *decoder) structValue(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		d.applyDefaults(v.Addr().Interface(), path, nil)
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "must be a mapping, not a %s", kindName(n))
		return
	}
	t := v.Type()
	byName := map[string]int{}
	var known []string
	for i := 0; i < t.NumField(); i++ {
		name := t.Field(i).Tag.Get("yaml")
		if name == "" || name == "-" {
			continue
		}
		byName[name] = i
		known = append(known, name)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, c := n.Content[i], n.Content[i+1]
		p := joinPath(path, k.Value)
		idx, ok := byName[k.Value]
		if !ok {
			d.errorf(k, p, "unknown key %q%s", k.Value, suggest(k.Value, known))
			continue
		}
		if seen[k.Value] {
			d.errorf(k, p, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		d.record(p, k.Line)
		d.value(c, v.Field(idx), p, t.Field(idx))
	}
	for name, idx := range byName {
		if seen[name] {
			continue
		}
		f := t.Field(idx)
		if f.Tag.Get("required") == "true" {
			d.report(n, path, "missing required key %q", name)
			// Checks of the missing value itself would only repeat this.
			d.bad[joinPath(path, name)] = true
		}
	}
	d.applyDefaults(v.Addr().Interface(), path, seen)
}

// applyDefaults sets the default of every field of the struct out points to
// whose key was not in the file (seen), recursing into nested structs.
func (d *decoder) applyDefaults(out any, path string, seen map[string]bool) {
	v := reflect.ValueOf(out).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("yaml")
		if name == "" || name == "-" || seen[name] {
			continue
		}
		fv := v.Field(i)
		if def, ok := f.Tag.Lookup("default"); ok {
			node := &yaml.Node{Kind: yaml.ScalarNode, Value: def, Tag: "!!str"}
			d.value(node, fv, joinPath(path, name), f)
			delete(d.pos, joinPath(path, name)) // not in the file
			continue
		}
		if fv.Kind() == reflect.Struct && !fv.Addr().Type().Implements(decoderType) {
			d.applyDefaults(fv.Addr().Interface(), joinPath(path, name), nil)
		}
	}
}

// suggest returns ` (did you mean "x"?)` for a near miss, else the list of
// known keys.
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if dist := editDistance(key, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	sorted := slices.Clone(known)
	slices.Sort(sorted)
	return " (known keys: " + strings.Join(sorted, ", ") + ")"
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Line returns the line of path in the file, or of its nearest ancestor.
func (c *Config) Line(path string) int {
	for p := path; p != ""; {
		if l, ok := c.pos[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// YAMLError is a YAML syntax error (msg, as yaml.v3 words it) in file as
// Sluice reports it: file:line: invalid YAML: what, with yaml.v3's lines
// made to point where the mistake is. processor test's files use it too.
func YAMLError(file string, data []byte, msg string) *Error {
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = strings.TrimSpace(yamlLine.ReplaceAllString(msg, ""))
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	if strings.HasPrefix(msg, "did not find expected") && line > 0 {
		// yaml.v3 reports the zero-based line where the unclosed
		// list or mapping starts; name it one-based.
		line++
		msg += " (in the list or mapping that starts here)"
	}
	if strings.HasPrefix(msg, "found a tab character") && line > 0 {
		// yaml.v3 reports where the scalar before the tab began;
		// name the line whose indentation holds the tab.
		line = tabLine(data, line)
		msg += " (YAML indents with spaces only)"
	}
	return &Error{File: file, Line: line, Msg: "invalid YAML: " + msg}
}

// tabLine returns the first line from line on (one-based) whose
// indentation holds a tab, or line when none does.
func tabLine(data []byte, line int) int {
	for i, l := range strings.Split(string(data), "\n") {
		if i+1 < line {
			continue
		}
		if indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]; strings.Contains(indent, "\t") {
			return i + 1
		}
	}
	return line
}
