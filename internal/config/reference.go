package config

import (
	"fmt"
	"reflect"
	"strings"
)

// Reference renders the configuration reference in Markdown from the same
// struct tags that drive decoding, defaults and validation.
func Reference() string {
	var b strings.Builder
	b.WriteString("# Configuration reference\n\nGenerated from `internal/config` by `go test ./internal/config -run TestReference -update`; do not edit by hand.\n")
	b.WriteString("The contract is `../shared/CONFIG.md`; this page lists every key this build accepts, its default and allowed values.\n")
	b.WriteString("`${VAR}` and `${VAR:-default}` are expanded before parsing (an unset variable without a default is an error). Durations are Go durations (`90s`); sizes accept `KiB`, `MiB`, `GiB`.\n")
	section(&b, "Top level", "", reflect.TypeFor[Config]())
	section(&b, "service", "service.", reflect.TypeFor[Service]())
	section(&b, "service.jq", "jq.", reflect.TypeFor[JQLimits]())
	section(&b, "sources[]", "sources[].", reflect.TypeFor[Source]())
	section(&b, "sources[].event_time", "event_time.", reflect.TypeFor[EventTime]())
	section(&b, "sources[].file", "file.", reflect.TypeFor[FileSource]())
	section(&b, "routes[]", "routes[].", reflect.TypeFor[Route]())
	b.WriteString("\n## routes[].transforms[]\n\nEach transform is a mapping with one key, the transform's name.\n")
	section(&b, "explode", "explode.", reflect.TypeFor[Explode]())
	b.WriteString("\n`explode: detail.findings` is short for `explode: {field: detail.findings}`.\n")
	section(&b, "severity", "severity.", reflect.TypeFor[Severity]())
	section(&b, "epoch_to_utc", "epoch_to_utc.", reflect.TypeFor[EpochToUTC]())
	section(&b, "json_to_csv", "json_to_csv.", reflect.TypeFor[JSONToCSV]())
	b.WriteString("\n### set, rename, drop, jq\n\n" +
		"- `set: {path: value, ...}` stores YAML values (scalars, lists, mappings) at dotted paths.\n" +
		"- `rename: {from.path: to.path, ...}` moves fields; a missing field is left alone.\n" +
		"- `drop: [path, ...]` deletes fields.\n" +
		"- `jq: 'program'` (gojq) replaces the record with each output: none filters it, several explode it; outputs must be objects.\n")
	section(&b, "sinks[]", "sinks[].", reflect.TypeFor[Sink]())
	section(&b, "sinks[].schema[]", "schema[].", reflect.TypeFor[Column]())
	section(&b, "sinks[].buffer", "buffer.", reflect.TypeFor[Buffer]())
	section(&b, "sinks[].auth (opensearch)", "auth.", reflect.TypeFor[OpenSearchAuth]())
	section(&b, "sinks[].bulk (opensearch)", "bulk.", reflect.TypeFor[Bulk]())
	section(&b, "sinks[].retry (opensearch)", "retry.", reflect.TypeFor[Retry]())
	fmt.Fprintf(&b, "\nThis build runs source types: %s; sink types: %s. The others validate as not available.\n",
		strings.Join(Available.Sources, ", "), strings.Join(Available.Sinks, ", "))
	return b.String()
}

func section(b *strings.Builder, title, prefix string, t reflect.Type) {
	fmt.Fprintf(b, "\n## %s\n\n| key | default | values | meaning |\n|---|---|---|---|\n", title)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("yaml")
		if name == "" || name == "-" {
			continue
		}
		def := f.Tag.Get("default")
		if def != "" {
			def = "`" + def + "`"
		}
		if f.Tag.Get("required") == "true" {
			def = "required"
		}
		vals := strings.ReplaceAll(f.Tag.Get("enum"), "|", ", ")
		fmt.Fprintf(b, "| `%s%s` | %s | %s | %s |\n", prefix, name, def, vals, strings.ReplaceAll(f.Tag.Get("doc"), "|", "\\|"))
	}
}
