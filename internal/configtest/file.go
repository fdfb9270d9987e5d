// Package configtest runs config unit tests (processor test): a test file
// feeds given records to one of a configuration's sources and compares, per
// sink, what the configuration's own decoders, routes, transforms, partition
// keys, prefixes and encoders make of them, with everything in memory (see
// pipeline.InMemory).
//
// A test file:
//
//	tests:
//	  - name: high findings reach the lake
//	    input:
//	      source: security            # a source in the config
//	      records:                    # a JSON object, a string taken as raw bytes, or !!binary base64
//	        - {"source": "aws.securityhub", "detail": {...}}
//	      # or file: testdata/x.ndjson  (relative to the test file; one message per line)
//	      arrival: 2024-11-05T10:00:00Z  # optional: the records' arrival time (default now)
//	    expect:
//	      security-lake:              # a sink
//	        count: 2                  # records it writes
//	        partitions: {"year=2024/month=11/": 2}  # rendered prefix (OpenSearch: index) -> records
//	        records:                  # in order; each a subset the written record must match
//	          - {Id: "...", severity: HIGH}
//	      errors: {processing-failed: 1}  # error-output type -> records; absent types must be 0
package configtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/sinks"
)

// File is a parsed test file.
type File struct {
	Path  string
	Tests []*Test
}

// Test is one config unit test.
type Test struct {
	Name    string
	Source  string
	Input   [][]byte  // one message each
	Arrival time.Time // zero: the time the test runs
	Sinks   map[string]*SinkExpect
	// Errors counts error records by error-output type; a type not in it
	// must have none.
	Errors map[string]int64
}

// SinkExpect is what one sink must write.
type SinkExpect struct {
	Count      *int64
	Partitions map[string]int64 // nil: not checked
	Records    []any            // nil: not checked
}

// ErrorTypes are the error-output types expect.errors may name.
var ErrorTypes = []string{sinks.ProcessingFailed, sinks.SchemaMismatch, sinks.SinkRejected, sinks.PartitionLimit}

// Load reads the test file at path and checks it against cfg: sources,
// sinks and error types must exist. An input.file is read relative to the
// test file.
func Load(path string, cfg *config.Config) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, cfg)
}

// problems collects every mistake in a test file, each naming the file,
// line and key, so that one run reports them all (as processor validate
// does for a configuration).
type problems struct {
	file string
	list []string
}

func (p *problems) add(line int, key, format string, args ...any) {
	p.list = append(p.list, fmt.Sprintf("%s:%d: %s: %s", p.file, line, key, fmt.Sprintf(format, args...)))
}

// mapping returns the values of mapping node n by key, reporting keys not
// in known and a node that is not a mapping.
func (p *problems) mapping(n *yaml.Node, key string, known ...string) (map[string]*yaml.Node, bool) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, key, "want a mapping")
		return nil, false
	}
	m := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if known != nil && !slices.Contains(known, k) {
			p.add(n.Content[i].Line, key+"."+k, "unknown key %q (known keys: %s)", k, strings.Join(known, ", "))
			continue
		}
		m[k] = n.Content[i+1]
	}
	return m, true
}

// str decodes a scalar string; "" when n is nil or not a string.
func (p *problems) str(n *yaml.Node, key string) string {
	if n == nil {
		return ""
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.add(n.Line, key, "want a string")
		return ""
	}
	return n.Value
}

// Parse is Load of data already read. Every problem is reported at once,
// one line each: file:line: key: message.
func Parse(path string, data []byte, cfg *config.Config) (*File, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, config.YAMLError(path, data, err.Error())
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil, fmt.Errorf("%s: no tests", path)
	}
	p := &problems{file: path}
	top, ok := p.mapping(root.Content[0], "(top level)", "tests")
	if !ok {
		return nil, errors.New(strings.Join(p.list, "\n"))
	}
	list := top["tests"]
	f := &File{Path: path}
	if list == nil || list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		line := root.Content[0].Line
		if list != nil {
			line = list.Line
		}
		p.add(line, "tests", "want a list of tests")
	} else {
		names := map[string]int{}
		for i, n := range list.Content {
			key := fmt.Sprintf("tests[%d]", i)
			t := buildTest(p, key, path, n, cfg)
			if t == nil {
				continue
			}
			if prev, ok := names[t.Name]; ok && t.Name != "" {
				p.add(n.Line, key+".name", "%q used twice (also tests[%d])", t.Name, prev)
			}
			names[t.Name] = i
			f.Tests = append(f.Tests, t)
		}
	}
	if len(p.list) > 0 {
		return nil, errors.New(strings.Join(p.list, "\n"))
	}
	return f, nil
}

// buildTest reads one test; nil when it is not a mapping.
func buildTest(p *problems, key, path string, n *yaml.Node, cfg *config.Config) *Test {
	m, ok := p.mapping(n, key, "name", "input", "expect")
	if !ok {
		return nil
	}
	t := &Test{Sinks: map[string]*SinkExpect{}, Errors: map[string]int64{}}
	switch t.Name = p.str(m["name"], key+".name"); {
	case m["name"] == nil:
		p.add(n.Line, key, "missing required key \"name\"")
	case t.Name == "":
		p.add(m["name"].Line, key+".name", "must not be empty")
	}
	if in := m["input"]; in == nil {
		p.add(n.Line, key, "missing required key \"input\"")
	} else {
		buildInput(p, key+".input", path, in, cfg, t)
	}
	if e := m["expect"]; e == nil {
		p.add(n.Line, key, "missing required key \"expect\": a map of sink name to expectations")
	} else {
		buildExpect(p, key+".expect", e, cfg, t)
	}
	return t
}

func buildInput(p *problems, key, path string, n *yaml.Node, cfg *config.Config, t *Test) {
	in, ok := p.mapping(n, key, "source", "records", "file", "arrival")
	if !ok {
		return
	}
	t.Source = p.str(in["source"], key+".source")
	switch {
	case in["source"] == nil:
		p.add(n.Line, key, "missing required key \"source\"")
	case t.Source != "" && !slices.ContainsFunc(cfg.Sources, func(s config.Source) bool { return s.Name == t.Source }):
		var names []string
		for _, s := range cfg.Sources {
			names = append(names, s.Name)
		}
		p.add(in["source"].Line, key+".source", "no source %q in %s (defined: %s)", t.Source, cfg.File, strings.Join(names, ", "))
	}
	if a := in["arrival"]; a != nil {
		at, err := time.Parse(time.RFC3339Nano, a.Value)
		if err != nil {
			p.add(a.Line, key+".arrival", "want an RFC 3339 time, not %q", a.Value)
		}
		t.Arrival = at
	}
	file, records := in["file"], in["records"]
	switch {
	case file != nil && records != nil:
		p.add(n.Line, key, "give records or file, not both")
	case file != nil:
		f := p.str(file, key+".file")
		if f == "" {
			return
		}
		if !filepath.IsAbs(f) {
			f = filepath.Join(filepath.Dir(path), f)
		}
		msgs, err := readLines(f)
		if err != nil {
			p.add(file.Line, key+".file", "%v (relative to the test file)", err)
		}
		t.Input = msgs
	case records != nil:
		if records.Kind != yaml.SequenceNode {
			p.add(records.Line, key+".records", "want a list")
			return
		}
		for i, r := range records.Content {
			if r.Kind == yaml.ScalarNode && r.Tag == "!!str" {
				t.Input = append(t.Input, []byte(r.Value))
				continue
			}
			if r.Kind == yaml.ScalarNode && r.Tag == "!!binary" {
				// Bytes a YAML string cannot hold (otlp_metrics input).
				var b string
				if err := r.Decode(&b); err != nil {
					p.add(r.Line, fmt.Sprintf("%s.records[%d]", key, i), "!!binary: %v", err)
					continue
				}
				t.Input = append(t.Input, []byte(b))
				continue
			}
			if r.Kind != yaml.MappingNode {
				p.add(r.Line, fmt.Sprintf("%s.records[%d]", key, i), "want a JSON object, a string of raw bytes or !!binary base64")
				continue
			}
			b, err := nodeJSON(nil, r)
			if err != nil {
				p.add(r.Line, fmt.Sprintf("%s.records[%d]", key, i), "%v", err)
				continue
			}
			t.Input = append(t.Input, b)
		}
	default:
		p.add(n.Line, key, "records or file required")
	}
}

func buildExpect(p *problems, key string, n *yaml.Node, cfg *config.Config, t *Test) {
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, key, "want a map of sink name to expectations")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		at := key + "." + k
		if k == "errors" {
			if _, ok := p.mapping(v, at); !ok {
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				typ, c := v.Content[j].Value, v.Content[j+1]
				if !slices.Contains(ErrorTypes, typ) {
					p.add(c.Line, at+"."+typ, "unknown error-output type %q (want one of %s)", typ, strings.Join(ErrorTypes, ", "))
					continue
				}
				var count int64
				if err := c.Decode(&count); err != nil {
					p.add(c.Line, at+"."+typ, "want a number of records, not %q", c.Value)
				}
				t.Errors[typ] = count
			}
			continue
		}
		if !slices.ContainsFunc(cfg.Sinks, func(s config.Sink) bool { return s.Name == k }) {
			var names []string
			for _, s := range cfg.Sinks {
				names = append(names, s.Name)
			}
			p.add(n.Content[i].Line, at, "no sink %q in %s (defined: %s; or errors)", k, cfg.File, strings.Join(names, ", "))
			continue
		}
		m, ok := p.mapping(v, at, "count", "partitions", "records")
		if !ok {
			continue
		}
		se := &SinkExpect{}
		if c := m["count"]; c != nil {
			var count int64
			if err := c.Decode(&count); err != nil {
				p.add(c.Line, at+".count", "want a number of records, not %q", c.Value)
			}
			se.Count = &count
		}
		if ps := m["partitions"]; ps != nil {
			if err := ps.Decode(&se.Partitions); err != nil {
				p.add(ps.Line, at+".partitions", "want a map of rendered prefix to records")
			}
		}
		if rs := m["records"]; rs != nil {
			if rs.Kind != yaml.SequenceNode {
				p.add(rs.Line, at+".records", "want a list")
			} else {
				se.Records = []any{}
				for j, r := range rs.Content {
					x, err := nodeValue(r)
					if err != nil {
						p.add(r.Line, fmt.Sprintf("%s.records[%d]", at, j), "%v", err)
						continue
					}
					se.Records = append(se.Records, x)
				}
			}
		}
		t.Sinks[k] = se
	}
}

// readLines reads a file (gzip when it ends in .gz) as one message per
// line, skipping blank lines, as a file source does.
func readLines(p string) ([][]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(p, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		r = zr
	}
	var out [][]byte
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		line = bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(line)) > 0 {
			out = append(out, line)
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
}

// nodeJSON appends n as JSON, keeping the order of keys as written.
func nodeJSON(dst []byte, n *yaml.Node) ([]byte, error) {
	switch n.Kind {
	case yaml.AliasNode:
		return nodeJSON(dst, n.Alias)
	case yaml.DocumentNode:
		return nodeJSON(dst, n.Content[0])
	case yaml.MappingNode:
		dst = append(dst, '{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				dst = append(dst, ',')
			}
			kb, _ := json.Marshal(n.Content[i].Value)
			dst = append(dst, kb...)
			dst = append(dst, ':')
			var err error
			if dst, err = nodeJSON(dst, n.Content[i+1]); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	case yaml.SequenceNode:
		dst = append(dst, '[')
		for i, c := range n.Content {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = nodeJSON(dst, c); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	}
	switch n.Tag {
	case "!!null":
		return append(dst, "null"...), nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, err
		}
		return strconv.AppendBool(dst, b), nil
	case "!!int":
		if i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64); err == nil {
			return strconv.AppendInt(dst, i, 10), nil
		}
		if json.Valid([]byte(n.Value)) {
			return append(dst, n.Value...), nil // beyond int64: as written
		}
		return nil, fmt.Errorf("line %d: %s is not a JSON number", n.Line, n.Value)
	case "!!float":
		if json.Valid([]byte(n.Value)) {
			return append(dst, n.Value...), nil
		}
		var f float64
		if err := n.Decode(&f); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("line %d: %s is not a JSON number", n.Line, n.Value)
		}
		return strconv.AppendFloat(dst, f, 'g', -1, 64), nil
	}
	// Strings, and what YAML reads as timestamps or binary: their text.
	b, _ := json.Marshal(n.Value)
	return append(dst, b...), nil
}

// nodeValue converts n to what encoding/json (with UseNumber) makes of
// its JSON.
func nodeValue(n *yaml.Node) (any, error) {
	b, err := nodeJSON(nil, n)
	if err != nil {
		return nil, err
	}
	return decodeJSON(b)
}

func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}
