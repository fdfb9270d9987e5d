package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestBadConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 15 {
		t.Fatalf("only %d bad fixtures", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			wantFile := strings.TrimSuffix(f, ".bad.yaml") + ".want"
			_, perr := Parse(filepath.Base(f), data, lookup(nil))
			if perr == nil {
				t.Fatal("config was accepted")
			}
			if *update {
				if err := os.WriteFile(wantFile, []byte(perr.Error()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatal(err)
			}
			if got := perr.Error(); got != strings.TrimSpace(string(want)) {
				t.Errorf("error:\n%s\nwant:\n%s", got, strings.TrimSpace(string(want)))
			}
		})
	}
}

func TestGoodConfig(t *testing.T) {
	data, err := os.ReadFile("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("good.yaml", data, lookup(map[string]string{"LOG_DIR": "/var/log/app"}))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sinks[0]
	if got := c.Sources[0].File.Paths[0]; got != "/var/log/app/*.ndjson" {
		t.Errorf("expanded path = %q", got)
	}
	if s.Buffer.MaxBytes != 8<<20 || s.Buffer.Interval.D() != 30*time.Second || s.Buffer.MaxRecords != 500000 {
		t.Errorf("buffer = %+v", s.Buffer)
	}
	if s.Compression != "snappy" || s.ExtraColumn != "_extra" || s.MaxOpenPartitions != 500 {
		t.Errorf("defaults: compression %q extra %q open %d", s.Compression, s.ExtraColumn, s.MaxOpenPartitions)
	}
	if c.Service.ShutdownTimeout.D() != 25*time.Second || c.Service.HTTPListen != ":8080" {
		t.Errorf("service defaults = %+v", c.Service)
	}
	if j := c.Service.JQ; j.Timeout.D() != 100*time.Millisecond || j.MaxOutputs != 1000 || j.MaxOutputBytes != 16<<20 {
		t.Errorf("service.jq defaults = %+v", j)
	}
	if r := c.Service.Reload; r.Watch || r.Poll != 0 {
		t.Errorf("service.reload defaults = %+v, want watch false, poll 0s", r)
	}
	if len(s.PartitionKeys) != 2 || s.PartitionKeys[0].Key != "project_id" || s.PartitionKeys[1].Key != "year" {
		t.Errorf("partition key order lost: %+v", s.PartitionKeys)
	}
	tr := c.Routes[0].Transforms
	if len(tr) != 7 || tr[0].EpochToUTC.Unit != "auto" || tr[0].EpochToUTC.Timezone != "UTC" || tr[2].Explode.Envelope != "event" {
		t.Errorf("transforms = %+v", tr)
	}
	if tr[3].Set[1].Key != "meta.owner" || tr[4].Rename[0].Value != "message" || tr[5].Drop[0] != "debug" || tr[6].JQ != ".x = 1" {
		t.Errorf("set/rename/drop/jq decoded wrong: %+v", tr[3:])
	}
	if got := c.Line("routes[0].transforms[1].severity.min"); got != 16 {
		t.Errorf("line of severity.min = %d, want 16", got)
	}
}

func TestErrorsAreCollected(t *testing.T) {
	data := []byte(`service: {error_sink: nowhere, shutdown_timeout: 0s}
sources:
  - {name: a, type: file, file: {paths: [x]}, max_pending: 0}
  - {name: a, type: file, file: {paths: [x]}}
routes:
  - {name: r, from: [b], to: [c]}
sinks: []
`)
	_, err := Parse("multi.yaml", data, lookup(nil))
	errs, ok := err.(Errors)
	if !ok || len(errs) < 5 {
		t.Fatalf("want at least 5 errors, got %v", err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		give string
		want Size
	}{
		{"64MiB", 64 << 20}, {"10KiB", 10 << 10}, {"1GiB", 1 << 30}, {"1.5MiB", 3 << 19}, {"1000", 1000}, {"2MB", 2e6},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.give)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.give, got, err, tt.want)
		}
	}
}

// TestWarning: warnf records a problem that does not fail the file,
// printed with a "warning: " prefix.
func TestWarning(t *testing.T) {
	data, err := os.ReadFile("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("good.yaml", data, lookup(nil))
	if err != nil || len(c.Warnings) != 0 {
		t.Fatalf("err %v, warnings %v", err, c.Warnings)
	}
	v := &validator{c: c}
	v.warnf("sinks[0].url", "nothing there yet")
	if len(v.errs) != 0 || len(v.warns) != 1 {
		t.Fatalf("errs %v, warns %v", v.errs, v.warns)
	}
	if got, want := v.warns[0].Error(), "warning: good.yaml:26: sinks[0].url: nothing there yet"; got != want {
		t.Errorf("warning = %q, want %q", got, want)
	}
}

// TestKeysOfAnotherType: a key that belongs to another source or sink
// type would be ignored, so validate says so (a warning: the
// configuration still runs as before); an opensearch sink using every
// opensearch key, and an s3 sink every s3 key, draw none.
func TestKeysOfAnotherType(t *testing.T) {
	const y = `service: {error_sink: errs}
sources:
  - name: logs
    type: file
    file: {paths: ["-"]}
    kafka: {brokers: [b:9092], topics: [t], group: g}
  - name: k
    type: kafka
    kafka: {brokers: [b:9092], topics: [t], group: g}
    file: {paths: [a]}
routes:
  - {name: r, from: [logs, k], to: [lake, search, full]}
sinks:
  - name: lake
    type: s3
    url: "file:out/lake/"
    format: ndjson
    index: "logs-!{timestamp:yyyy.MM.dd}"
    error_sink: errs
    retry: {max_elapsed: 60s}
  - name: search
    type: opensearch
    endpoints: ["http://localhost:9200"]
    index: logs
    url: "file:out/search/"
    buffer: {interval: 5s}
  - name: full
    type: opensearch
    endpoints: ["http://localhost:9200"]
    auth: {type: none}
    index: logs
    id: .id
    bulk: {max_docs: 10}
    error_sink: errs
    tls: {insecure_skip_verify: true}
    retry: {max_elapsed: 60s}
  - {name: errs, type: s3, url: "file:out/errors/", format: ndjson}
`
	c, err := Parse("w.yaml", []byte(y), lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`warning: w.yaml:6: sources[0].kafka: applies to type: kafka sources, not file: ignored`,
		`warning: w.yaml:10: sources[1].file: applies to type: file sources, not kafka: ignored`,
		`warning: w.yaml:18: sinks[0].index: applies to type: opensearch sinks, not s3: ignored`,
		`warning: w.yaml:19: sinks[0].error_sink: ignored: an s3 sink's own failures go to its error_prefix, not to an error sink (error_sink is for opensearch sinks)`,
		`warning: w.yaml:25: sinks[1].url: applies to type: s3 sinks, not opensearch: ignored`,
		`warning: w.yaml:26: sinks[1].buffer: applies to type: s3 sinks, not opensearch: ignored`,
	}
	var got []string
	for _, w := range c.Warnings {
		got = append(got, w.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestParquetKeysOnOtherFormats: schema, extra_column and max_value_bytes
// shape Parquet rows only; on an ndjson or csv sink they would be ignored,
// so validate says so. Glue registration describes Parquet objects, so on
// another format it is an error.
func TestParquetKeysOnOtherFormats(t *testing.T) {
	const y = `service: {error_sink: errs}
sources:
  - {name: logs, type: file, file: {paths: ["-"]}}
routes:
  - {name: r, from: [logs], to: [nd]}
  - {name: c, from: [logs], transforms: [{json_to_csv: {columns: [a]}}], to: [csv]}
sinks:
  - name: nd
    type: s3
    url: "s3://b/nd/"
    format: ndjson
    partition_keys: {k: .k}
    schema: [{name: a, type: string}]
    glue: {database: d, table: t}
  - name: csv
    type: s3
    url: "file:out/csv/"
    format: csv
    extra_column: rest
    max_value_bytes: 1KiB
  - {name: errs, type: s3, url: "file:out/errors/", format: ndjson}
`
	_, err := Parse("p.yaml", []byte(y), lookup(nil))
	want := `p.yaml:13: sinks[0].schema: applies to format: parquet sinks, not ndjson: ignored
p.yaml:14: sinks[0].glue: Glue registration describes Parquet objects (its SerDe is Parquet's), not ndjson
p.yaml:19: sinks[1].extra_column: applies to format: parquet sinks, not csv: ignored
p.yaml:20: sinks[1].max_value_bytes: applies to format: parquet sinks, not csv: ignored`
	if err == nil || strings.ReplaceAll(err.Error(), "warning: ", "") != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

// TestGlueColumnNames: the glue option registers the schema's column names,
// and Athena refuses a dotted one (a field path without column:), so
// validate says which entry to name.
func TestGlueColumnNames(t *testing.T) {
	const y = `service: {error_sink: errs}
sources:
  - {name: logs, type: file, file: {paths: ["-"]}}
routes:
  - {name: r, from: [logs], to: [lake]}
sinks:
  - name: lake
    type: s3
    url: "s3://b/lake/"
    partition_keys: {k: .k}
    schema: [{name: detail.severity, type: string}, {name: detail.id, column: id, type: string}]
    glue: {database: d, table: t}
  - {name: errs, type: s3, url: "file:out/errors/", format: ndjson}
`
	_, err := Parse("g.yaml", []byte(y), lookup(nil))
	want := `g.yaml:11: sinks[0].schema[0]: column "detail.severity": Glue registers it and Athena refuses '.' and ':' in column names; name the column (column: detail_severity)`
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}
