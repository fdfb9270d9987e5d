package config

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/sluice-data/sluice/internal/template"
)

// Reference renders the configuration reference in Markdown from the same
// struct tags that drive decoding, defaults and validation. It walks the
// types from Config down (nested structs, lists and maps of them), so a
// key added to any of them appears without touching this function.
func Reference() string {
	var b strings.Builder
	b.WriteString("# Configuration reference\n\n" +
		"Generated from `internal/config` by `go test ./internal/config -run TestReference -update`; do not edit by hand.\n" +
		"This page lists every key this build accepts, with its type, default and allowed values; " +
		"[configuration.md](configuration.md) explains how the pieces fit together.\n\n" +
		"- `${VAR}` and `${VAR:-default}` are expanded inside values after the YAML is parsed, so a value can never change the file's structure; " +
		"an unset variable without a default is an error that names the key. Keys are not expanded, references in comments are ignored, `$${` is a literal `${`. " +
		"Error messages print the reference, never the value.\n" +
		"- Durations are Go durations (`90s`, `5m`); sizes are bytes or a number with `KiB`, `MiB`, `GiB` (`KB`, `MB`, `GB` are decimal).\n" +
		"- `[]` in a key is any element of a list; `<name>` is any key of a map.\n")
	walk(&b, "Top level", "", reflect.TypeFor[Config]())
	b.WriteString("\n## Templates: `!{...}`\n\n" +
		"`sinks[].prefix`, `sinks[].error_prefix` and `sinks[].index` are templates made of text and these expressions:\n\n" +
		"| expression | example | meaning |\n|---|---|---|\n")
	for _, e := range template.Expressions {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", e.Syntax, e.Example, cell(e.Doc))
	}
	fmt.Fprintf(&b, "\nThis build runs source types: %s; sink types: %s. The others validate as not available.\n",
		strings.Join(Available.Sources, ", "), strings.Join(Available.Sinks, ", "))
	return b.String()
}

// walk writes the table of struct type t found at path (title names it),
// then one section for every struct below it.
func walk(b *strings.Builder, title, path string, t reflect.Type) {
	fmt.Fprintf(b, "\n## %s\n\n| key | type | default | values | meaning |\n|---|---|---|---|---|\n", title)
	type child struct {
		path string
		t    reflect.Type
	}
	var children []child
	for _, f := range keyFields(t) {
		name := f.Tag.Get("yaml")
		key := joinPath(path, name)
		def := f.Tag.Get("default")
		if def != "" {
			def = "`" + def + "`"
		}
		if f.Tag.Get("required") == "true" {
			def = "required"
		}
		if t := f.Tag.Get("requiredfor"); t != "" {
			def = "required (type: " + t + ")"
		}
		vals := strings.ReplaceAll(f.Tag.Get("enum"), "|", ", ")
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n", key, typeName(f.Type), def, vals, cell(f.Tag.Get("doc")))
		if st, suffix := structBelow(f.Type); st != nil {
			children = append(children, child{key + suffix, st})
		}
	}
	for _, c := range children {
		walk(b, "`"+c.path+"`", c.path, c.t)
	}
}

// keyFields returns the fields of struct t that are configuration keys.
func keyFields(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name := f.Tag.Get("yaml"); name != "" && name != "-" {
			out = append(out, f)
		}
	}
	return out
}

// structBelow returns the struct type with keys that a value of type t
// holds (itself, through pointers, list elements or map values) and the
// suffix its keys get ("[]", ".<name>").
func structBelow(t reflect.Type) (reflect.Type, string) {
	suffix := ""
	for {
		switch t.Kind() {
		case reflect.Pointer:
			t = t.Elem()
			continue
		case reflect.Slice:
			t, suffix = t.Elem(), suffix+"[]"
			continue
		case reflect.Map:
			t, suffix = t.Elem(), suffix+".<name>"
			continue
		case reflect.Struct:
			if len(keyFields(t)) > 0 {
				return t, suffix
			}
		}
		return nil, ""
	}
}

// typeName is how the reference names the type of a key's value.
func typeName(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Duration]():
		return "duration"
	case reflect.TypeFor[Size]():
		return "size"
	case reflect.TypeFor[Node]():
		return "any YAML"
	case reflect.TypeFor[KeyMap]():
		return "map of strings"
	case reflect.TypeFor[KeyNodes]():
		return "map of any YAML"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "integer"
	case reflect.Float64, reflect.Float32:
		return "number"
	case reflect.Slice:
		return "list of " + plural(typeName(t.Elem()))
	case reflect.Map:
		return "map of " + plural(typeName(t.Elem()))
	case reflect.Struct:
		return "mapping"
	}
	return t.Kind().String()
}

func plural(s string) string {
	switch {
	case strings.HasPrefix(s, "list of"), strings.HasPrefix(s, "map of"), s == "any YAML":
		return s
	}
	return s + "s"
}

func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
