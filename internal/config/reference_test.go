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
