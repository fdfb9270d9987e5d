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
//	      records:                    # a JSON object, or a string taken as raw bytes
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

type rawFile struct {
	Tests []rawTest `yaml:"tests"`
}

type rawTest struct {
	Name  string `yaml:"name"`
	Input struct {
		Source  string      `yaml:"source"`
		Records []yaml.Node `yaml:"records"`
		File    string      `yaml:"file"`
		Arrival string      `yaml:"arrival"`
	} `yaml:"input"`
	Expect yaml.Node `yaml:"expect"`
	line   int
}

type rawSink struct {
	Count      *int64           `yaml:"count"`
	Partitions map[string]int64 `yaml:"partitions"`
	Records    []yaml.Node      `yaml:"records"`
}

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

// Parse is Load of data already read.
func Parse(path string, data []byte, cfg *config.Config) (*File, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var rf rawFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: no tests", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	lines := testLines(&root)
	f := &File{Path: path}
	names := map[string]bool{}
	for i, rt := range rf.Tests {
		at := fmt.Sprintf("%s: tests[%d]", path, i)
		if i < len(lines) {
			at = fmt.Sprintf("%s:%d: tests[%d]", path, lines[i], i)
		}
		t, err := buildTest(path, &rt, cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		if names[t.Name] {
			return nil, fmt.Errorf("%s: name %q used twice", at, t.Name)
		}
		names[t.Name] = true
		f.Tests = append(f.Tests, t)
	}
	if len(f.Tests) == 0 {
		return nil, fmt.Errorf("%s: no tests", path)
	}
	return f, nil
}

// testLines returns the line of each item of the tests list.
func testLines(root *yaml.Node) []int {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "tests" {
			var out []int
			for _, n := range m.Content[i+1].Content {
				out = append(out, n.Line)
			}
			return out
		}
	}
	return nil
}

func buildTest(path string, rt *rawTest, cfg *config.Config) (*Test, error) {
	t := &Test{Name: rt.Name, Source: rt.Input.Source, Sinks: map[string]*SinkExpect{}, Errors: map[string]int64{}}
	if t.Name == "" {
		return nil, errors.New("name: required")
	}
	if t.Source == "" {
		return nil, errors.New("input.source: required")
	}
	if !slices.ContainsFunc(cfg.Sources, func(s config.Source) bool { return s.Name == t.Source }) {
		return nil, fmt.Errorf("input.source: no source %q in %s", t.Source, cfg.File)
	}
	if rt.Input.Arrival != "" {
		a, err := time.Parse(time.RFC3339Nano, rt.Input.Arrival)
		if err != nil {
			return nil, fmt.Errorf("input.arrival: want an RFC 3339 time, not %q", rt.Input.Arrival)
		}
		t.Arrival = a
	}
	switch {
	case rt.Input.File != "" && rt.Input.Records != nil:
		return nil, errors.New("input: give records or file, not both")
	case rt.Input.File != "":
		p := rt.Input.File
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(path), p)
		}
		msgs, err := readLines(p)
		if err != nil {
			return nil, fmt.Errorf("input.file: %w", err)
		}
		t.Input = msgs
	case rt.Input.Records != nil:
		for i := range rt.Input.Records {
			n := &rt.Input.Records[i]
			if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
				t.Input = append(t.Input, []byte(n.Value))
				continue
			}
			if n.Kind != yaml.MappingNode {
				return nil, fmt.Errorf("input.records[%d] (line %d): want a JSON object or a string of raw bytes", i, n.Line)
			}
			b, err := nodeJSON(nil, n)
			if err != nil {
				return nil, fmt.Errorf("input.records[%d]: %w", i, err)
			}
			t.Input = append(t.Input, b)
		}
	default:
		return nil, errors.New("input: records or file required")
	}
	e := &rt.Expect
	if e.Kind != yaml.MappingNode {
		return nil, errors.New("expect: required, a map of sink name to expectations")
	}
	for i := 0; i+1 < len(e.Content); i += 2 {
		k, v := e.Content[i].Value, e.Content[i+1]
		if k == "errors" {
			var m map[string]int64
			if err := v.Decode(&m); err != nil {
				return nil, fmt.Errorf("expect.errors (line %d): want a map of error-output type to records: %w", v.Line, err)
			}
			for typ, n := range m {
				if !slices.Contains(ErrorTypes, typ) {
					return nil, fmt.Errorf("expect.errors (line %d): unknown error-output type %q (want one of %s)", v.Line, typ, strings.Join(ErrorTypes, ", "))
				}
				t.Errors[typ] = n
			}
			continue
		}
		if !slices.ContainsFunc(cfg.Sinks, func(s config.Sink) bool { return s.Name == k }) {
			return nil, fmt.Errorf("expect.%s (line %d): no sink %q in %s", k, e.Content[i].Line, k, cfg.File)
		}
		var rs rawSink
		if err := decodeStrict(v, &rs); err != nil {
			return nil, fmt.Errorf("expect.%s (line %d): %w", k, v.Line, err)
		}
		se := &SinkExpect{Count: rs.Count, Partitions: rs.Partitions}
		if rs.Records != nil {
			se.Records = []any{}
			for j := range rs.Records {
				x, err := nodeValue(&rs.Records[j])
				if err != nil {
					return nil, fmt.Errorf("expect.%s.records[%d]: %w", k, j, err)
				}
				se.Records = append(se.Records, x)
			}
		}
		t.Sinks[k] = se
	}
	return t, nil
}

// decodeStrict decodes n into v, refusing unknown keys.
func decodeStrict(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
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
