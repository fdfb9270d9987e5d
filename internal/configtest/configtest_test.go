package configtest

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite golden files")

func loadConfig(t *testing.T, path string, env map[string]string) *config.Config {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(path, data, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestShippedConfigTests runs every configs/*.test.yaml against its config.
func TestShippedConfigTests(t *testing.T) {
	env := map[string]string{"FIREHOSE_ACCESS_KEY": "test"}
	for k, v := range testutil.ProdExampleEnv {
		env[k] = v
	}
	for _, name := range []string{"local", "prod.example", "metric-streams"} {
		t.Run(name, func(t *testing.T) {
			cfg := loadConfig(t, filepath.Join("../../configs", name+".yaml"), env)
			f, err := Load(filepath.Join("../../configs", name+".test.yaml"), cfg)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if n := Report(context.Background(), cfg, []*File{f}, &out); n != 0 {
				t.Errorf("%d tests failed:\n%s", n, out.String())
			}
		})
	}
}

// TestFailingDiffs: failing tests print one readable diff per expectation
// that does not hold (golden: testdata/failing.golden).
func TestFailingDiffs(t *testing.T) {
	cfg := loadConfig(t, "../../configs/local.yaml", nil)
	f, err := Load("testdata/failing.test.yaml", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if n := Report(context.Background(), cfg, []*File{f}, &out); n != 2 {
		t.Errorf("Report = %d failed, want 2", n)
	}
	golden := "testdata/failing.golden"
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("output differs from %s:\n%s", golden, out.String())
	}
}

// TestBadTestFiles: a test file that names what the config lacks is an
// error naming the file, line and key.
func TestBadTestFiles(t *testing.T) {
	cfg := loadConfig(t, "../../configs/local.yaml", nil)
	tests := []struct{ name, give, want string }{
		{"unknown source", "tests:\n  - name: a\n    input: {source: nope, records: ['x']}\n    expect: {errors: {}}\n",
			`x.test.yaml:3: tests[0].input.source: no source "nope" in ../../configs/local.yaml (defined: app-logs, security, metrics)`},
		{"unknown sink", "tests:\n  - name: a\n    input: {source: app-logs, records: ['x']}\n    expect: {lake: {count: 1}}\n",
			`x.test.yaml:4: tests[0].expect.lake: no sink "lake" in ../../configs/local.yaml (defined: app-lake, app-alerts-csv, security-lake, security-ndjson, metrics-csv-out, metrics-lake, errors; or errors)`},
		{"unknown error type", "tests:\n  - name: a\n    input: {source: app-logs, records: ['x']}\n    expect: {errors: {bad: 1}}\n",
			`x.test.yaml:4: tests[0].expect.errors.bad: unknown error-output type "bad" (want one of processing-failed, schema-mismatch, sink-rejected, partition-limit)`},
		{"record not an object", "tests:\n  - name: a\n    input: {source: app-logs, records: [[1]]}\n    expect: {errors: {}}\n",
			`x.test.yaml:3: tests[0].input.records[0]: want a JSON object, a string of raw bytes or !!binary base64`},
		{"unknown key", "tests:\n  - name: a\n    input: {source: app-logs, records: ['x']}\n    expect: {app-lake: {cuont: 1}}\n",
			`x.test.yaml:4: tests[0].expect.app-lake.cuont: unknown key "cuont" (known keys: count, partitions, records)`},
		{"invalid YAML", "tests:\n  - name: a\n    input: {source: app-logs, records: ['x'\n",
			`x.test.yaml:3: invalid YAML: did not find expected ',' or ']' (in the list or mapping that starts here)`},
		// Every mistake in one pass, each with its line and key, and no
		// Go type names (before: only "field expcet not found in type
		// configtest.rawTest").
		{"many at once", `tests:
  - name: typo
    input: {source: app-logs, records: ['x']}
    expcet: {app-lake: {count: 1}}
  - name: several
    input: {source: nope, records: ['x'], arrival: yesterday}
    expect:
      nosink: {count: 1}
      app-lake: {cnt: 1, count: many}
      errors: {bogus: 1}
  - input: {source: app-logs, file: missing.ndjson}
    expect: {}
  - name: several
    input: {source: app-logs, records: ['x']}
    expect: {errors: {}}
`, `x.test.yaml:4: tests[0].expcet: unknown key "expcet" (known keys: name, input, expect)
x.test.yaml:2: tests[0]: missing required key "expect": a map of sink name to expectations
x.test.yaml:6: tests[1].input.source: no source "nope" in ../../configs/local.yaml (defined: app-logs, security, metrics)
x.test.yaml:6: tests[1].input.arrival: want an RFC 3339 time, not "yesterday"
x.test.yaml:8: tests[1].expect.nosink: no sink "nosink" in ../../configs/local.yaml (defined: app-lake, app-alerts-csv, security-lake, security-ndjson, metrics-csv-out, metrics-lake, errors; or errors)
x.test.yaml:9: tests[1].expect.app-lake.cnt: unknown key "cnt" (known keys: count, partitions, records)
x.test.yaml:9: tests[1].expect.app-lake.count: want a number of records, not "many"
x.test.yaml:10: tests[1].expect.errors.bogus: unknown error-output type "bogus" (want one of processing-failed, schema-mismatch, sink-rejected, partition-limit)
x.test.yaml:11: tests[2]: missing required key "name"
x.test.yaml:11: tests[2].input.file: open missing.ndjson: no such file or directory (relative to the test file)
x.test.yaml:13: tests[3].name: "several" used twice (also tests[1])`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("x.test.yaml", []byte(tt.give), cfg)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error = %v\nwant    %s", err, tt.want)
			}
		})
	}
}

// TestBinaryRecords: a record tagged !!binary (base64) is those bytes, so
// that binary formats (otlp_metrics) can be tested; a YAML string cannot
// hold bytes that are not UTF-8.
func TestBinaryRecords(t *testing.T) {
	cfg := loadConfig(t, "../../configs/local.yaml", nil)
	f, err := Parse("x.test.yaml", []byte("tests:\n  - name: a\n    input: {source: app-logs, records: [!!binary gAAK/w==, 'x']}\n    expect: {errors: {processing-failed: 2}}\n"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Tests[0].Input; len(got) != 2 || !bytes.Equal(got[0], []byte{0x80, 0x00, 0x0a, 0xff}) || string(got[1]) != "x" {
		t.Errorf("input = %q, want [\"\\x80\\x00\\n\\xff\" \"x\"]", got)
	}
}
