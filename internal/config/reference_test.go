package config

import (
	"flag"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

const referencePath = "../../docs/config-reference.md"

// TestReference keeps docs/config-reference.md equal to what the struct
// tags say.
func TestReference(t *testing.T) {
	got := Reference()
	if *update {
		if err := os.WriteFile(referencePath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != got {
		t.Errorf("%s is out of date: run go test ./internal/config -run TestReference -update", referencePath)
	}
}

// TestReferenceListsEveryKey walks the configuration types on its own
// (every nested struct, list and map of them) and requires every key in
// the reference doc, with a doc tag.
func TestReferenceListsEveryKey(t *testing.T) {
	doc, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	var visit func(path string, t reflect.Type)
	visit = func(path string, typ reflect.Type) {
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		switch typ.Kind() {
		case reflect.Slice:
			visit(path+"[]", typ.Elem())
		case reflect.Map:
			visit(path+".<name>", typ.Elem())
		case reflect.Struct:
			for i := 0; i < typ.NumField(); i++ {
				f := typ.Field(i)
				name := f.Tag.Get("yaml")
				if name == "" || name == "-" {
					continue
				}
				key := name
				if path != "" {
					key = path + "." + name
				}
				if f.Tag.Get("doc") == "" {
					t.Errorf("%s (%s.%s) has no doc tag", key, typ.Name(), f.Name)
				}
				keys = append(keys, key)
				visit(key, f.Type)
			}
		}
	}
	visit("", reflect.TypeFor[Config]())
	for _, want := range []string{"sources[].kafka.sasl.mechanism", "sources[].kafka.tls.ca_file", "sources[].kinesis.lease_table",
		"sources[].archive.url", "sinks[].glue.database", "sinks[].tls.ca_file", "routes[].transforms[].severity.min", "routes[].transforms[].jq"} {
		if !slices.Contains(keys, want) {
			t.Errorf("the walk did not reach %s", want)
		}
	}
	for _, k := range keys {
		if !strings.Contains(string(doc), "| `"+k+"` |") {
			t.Errorf("%s is missing from %s: run go test ./internal/config -run TestReference -update", k, referencePath)
		}
	}
	for _, e := range []string{"!{partitionKeyFromQuery:KEY}", "!{timestamp:FORMAT}", "!{error-output-type}"} {
		if !strings.Contains(string(doc), e) {
			t.Errorf("template expression %s is missing from %s", e, referencePath)
		}
	}
}

// TestTransformKinds keeps the transform names the decoder knows equal to
// the tagged fields of Transform (which the reference lists).
func TestTransformKinds(t *testing.T) {
	var tagged []string
	for _, f := range keyFields(reflect.TypeFor[Transform]()) {
		tagged = append(tagged, f.Tag.Get("yaml"))
	}
	slices.Sort(tagged)
	kinds := slices.Sorted(slices.Values(transformKinds))
	if !slices.Equal(tagged, kinds) {
		t.Errorf("Transform fields %v, transformKinds %v", tagged, kinds)
	}
}

// TestConfigurationExample keeps the complete example of
// docs/configuration.md valid.
func TestConfigurationExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	example, _, ok2 := strings.Cut(rest, "```\n")
	if !ok || !ok2 {
		t.Fatal("no yaml example in docs/configuration.md")
	}
	if _, err := Parse("configuration.md", []byte(example), lookup(map[string]string{"KAFKA_BROKERS": "b:9092"})); err != nil {
		t.Error(err)
	}
}

// TestReferenceMarksRequiredByType: a key that validate requires for one
// type (a kafka source's group, an s3 sink's url) says so in the reference,
// whose default column would otherwise suggest it may be left out.
func TestReferenceMarksRequiredByType(t *testing.T) {
	const base = "service: {error_sink: e}\nroutes: [{name: r, from: [s], to: [e]}]\n"
	const errSink = "  - {name: e, type: s3, url: 'file:e/', format: ndjson}\n"
	tests := []struct {
		key, give string
	}{
		{"sources[].kafka.brokers", "sources: [{name: s, type: kafka, kafka: {topics: [t], group: g}}]\nsinks:\n" + errSink},
		{"sources[].kafka.topics", "sources: [{name: s, type: kafka, kafka: {brokers: [b:9092], group: g}}]\nsinks:\n" + errSink},
		{"sources[].kafka.group", "sources: [{name: s, type: kafka, kafka: {brokers: [b:9092], topics: [t]}}]\nsinks:\n" + errSink},
		{"sources[].kinesis.stream", "sources: [{name: s, type: kinesis, kinesis: {lease_table: l}}]\nsinks:\n" + errSink},
		{"sources[].kinesis.lease_table", "sources: [{name: s, type: kinesis, kinesis: {stream: k}}]\nsinks:\n" + errSink},
		{"sources[].archive.url", "sources: [{name: s, type: archive, archive: {from: '2024-01-01T00:00:00Z'}}]\nsinks:\n" + errSink},
		{"sources[].archive.from", "sources: [{name: s, type: archive, archive: {url: 'file:a/'}}]\nsinks:\n" + errSink},
		{"sources[].file.paths", "sources: [{name: s, type: file}]\nsinks:\n" + errSink},
		{"sinks[].url", "sources: [{name: s, type: file, file: {paths: [x]}}]\nsinks:\n" + errSink + "  - {name: l, type: s3, format: ndjson}\n"},
		{"sinks[].endpoints", "sources: [{name: s, type: file, file: {paths: [x]}}]\nsinks:\n" + errSink + "  - {name: o, type: opensearch, index: i}\n"},
		{"sinks[].index", "sources: [{name: s, type: file, file: {paths: [x]}}]\nsinks:\n" + errSink + "  - {name: o, type: opensearch, endpoints: ['http://h:9200']}\n"},
	}
	doc := Reference()
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(base+tt.give), lookup(nil))
			leaf := tt.key[strings.LastIndexByte(tt.key, '.')+1:]
			if err == nil || !strings.Contains(err.Error(), leaf) {
				t.Fatalf("validate without %s: %v, want an error naming it", tt.key, err)
			}
			var row string
			for _, line := range strings.Split(doc, "\n") {
				if strings.HasPrefix(line, "| `"+tt.key+"` |") {
					row = line
				}
			}
			if cells := strings.Split(row, " | "); len(cells) < 3 || !strings.HasPrefix(cells[2], "required") {
				t.Errorf("reference row for %s does not say required:\n%s", tt.key, row)
			}
		})
	}
}
