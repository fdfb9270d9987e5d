package config

import (
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Transform is one step of a route. Exactly one of the kind fields is set;
// Kind names it.
type Transform struct {
	Kind string `yaml:"-"`
	Path string `yaml:"-"` // e.g. routes[1].transforms[0]

	Explode    *Explode    `yaml:"explode" doc:"One record per element of an array field; the rest of the record is kept under envelope. explode: PATH is short for {field: PATH}."`
	Severity   *Severity   `yaml:"severity" doc:"Keep records whose severity is within [min, max] (ASFF labels, GuardDuty numbers, log levels)."`
	EpochToUTC *EpochToUTC `yaml:"epoch_to_utc" doc:"Render an epoch or RFC 3339 time as RFC 3339 with milliseconds."`
	JSONToCSV  *JSONToCSV  `yaml:"json_to_csv" doc:"Render the record as one CSV line (for format: csv sinks)."`
	Set        KeyNodes    `yaml:"set" doc:"{path: value, ...}: store YAML values (scalars, lists, mappings) at dotted paths."`
	Rename     KeyMap      `yaml:"rename" doc:"{from.path: to.path, ...}: move fields; a missing field is left alone."`
	Drop       []string    `yaml:"drop" doc:"[path, ...]: delete fields."`
	JQ         string      `yaml:"jq" doc:"A jq program (gojq) whose outputs replace the record: none filters it, several explode it; outputs must be objects."`
}

// Explode emits one record per element of an array field.
type Explode struct {
	Field    string `yaml:"field" required:"true" doc:"Dotted path of the array."`
	Envelope string `yaml:"envelope" default:"event" doc:"Key under which the rest of the original record is kept; \"\" drops it."`
}

// Severity keeps records whose severity is within [min, max].
type Severity struct {
	Field   string `yaml:"field" required:"true" doc:"Dotted path of the severity value."`
	Min     string `yaml:"min" doc:"Lowest severity kept (a label or a number on the field's scale)."`
	Max     string `yaml:"max" doc:"Highest severity kept."`
	Scale   string `yaml:"scale" default:"auto" enum:"auto|asff|asff_normalized|guardduty|log_level" doc:"How values are read; auto picks by min/max and the value's type."`
	Target  string `yaml:"target" doc:"Write the normalised label here (e.g. HIGH, WARN)."`
	Missing string `yaml:"missing" default:"error" enum:"error|drop|keep" doc:"A record without the field: error output, filtered, or kept."`
}

// EpochToUTC renders an epoch or RFC 3339 time as RFC 3339 with milliseconds.
type EpochToUTC struct {
	Field    string `yaml:"field" required:"true" doc:"Dotted path of the time value."`
	Target   string `yaml:"target" doc:"Where to write the result; default overwrites field."`
	Unit     string `yaml:"unit" default:"auto" enum:"s|ms|us|ns|auto" doc:"Epoch unit; auto: <1e11 s, <1e14 ms, <1e17 us, else ns."`
	Timezone string `yaml:"timezone" default:"UTC" doc:"IANA zone for the rendered offset, e.g. Asia/Seoul."`
	Missing  string `yaml:"missing" default:"event_time" enum:"event_time|error|skip" doc:"A record without the field: use its event time, error output, or leave it."`
}

// JSONToCSV renders the record as one CSV line.
type JSONToCSV struct {
	Columns   []CSVColumn `yaml:"columns" required:"true" doc:"One per column: a dotted path, whose header is the path with dots as underscores (owner.team: owner_team), or {name: path, column: header}; nested values render as JSON."`
	Header    bool        `yaml:"header" doc:"Write a header line at the top of each object."`
	Delimiter string      `yaml:"delimiter" default:"," doc:"One-character field delimiter."`
}

// CSVColumn is one json_to_csv column: the record's dotted path and the
// header it gets.
type CSVColumn struct {
	Name   string `yaml:"name" required:"true" doc:"Dotted path in the record."`
	Column string `yaml:"column" doc:"Header; default: the path with dots as underscores."`
}

// Header is the column's header name.
func (c CSVColumn) Header() string {
	if c.Column != "" {
		return c.Column
	}
	return strings.ReplaceAll(c.Name, ".", "_")
}

// decodeNode reads a bare path or a {name, column} mapping.
func (c *CSVColumn) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind == yaml.ScalarNode {
		c.Name = n.Value
		return
	}
	d.structValue(n, reflect.ValueOf(c).Elem(), path)
}

var transformKinds = []string{"drop", "epoch_to_utc", "explode", "jq", "json_to_csv", "rename", "set", "severity"}

func (t *Transform) decodeNode(d *decoder, n *yaml.Node, path string) {
	t.Path = path
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		d.errorf(n, path, "a transform is a mapping with exactly one key, one of: %s", strings.Join(transformKinds, ", "))
		return
	}
	k, v := n.Content[0], n.Content[1]
	t.Kind = k.Value
	p := path + "." + k.Value
	d.record(p, k.Line)
	switch k.Value {
	case "explode":
		t.Explode = &Explode{}
		if v.Kind == yaml.ScalarNode {
			t.Explode.Field = v.Value
			d.applyDefaults(t.Explode, p, map[string]bool{"field": true})
			return
		}
		d.decode(v, t.Explode, p)
	case "severity":
		t.Severity = &Severity{}
		d.decode(v, t.Severity, p)
	case "epoch_to_utc":
		t.EpochToUTC = &EpochToUTC{}
		d.decode(v, t.EpochToUTC, p)
	case "json_to_csv":
		t.JSONToCSV = &JSONToCSV{}
		d.decode(v, t.JSONToCSV, p)
	case "set":
		d.decode(v, &t.Set, p)
	case "rename":
		d.decode(v, &t.Rename, p)
	case "drop":
		d.decode(v, &t.Drop, p)
	case "jq":
		if d.scalar(v, p) {
			t.JQ = v.Value
		}
	default:
		kinds := append([]string(nil), transformKinds...)
		sort.Strings(kinds)
		d.errorf(k, p, "unknown transform %q (want one of: %s)", k.Value, strings.Join(kinds, ", "))
	}
}
