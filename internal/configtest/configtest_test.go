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
// error naming the file and line.
func TestBadTestFiles(t *testing.T) {
	cfg := loadConfig(t, "../../configs/local.yaml", nil)
	tests := []struct{ name, give, want string }{
		{"unknown source", "tests:\n  - name: a\n    input: {source: nope, records: ['x']}\n    expect: {errors: {}}\n",
			`x.test.yaml:2: tests[0]: input.source: no source "nope" in ../../configs/local.yaml`},
		{"unknown sink", "tests:\n  - name: a\n    input: {source: app-logs, records: ['x']}\n    expect: {lake: {count: 1}}\n",
			`x.test.yaml:2: tests[0]: expect.lake (line 4): no sink "lake" in ../../configs/local.yaml`},
		{"unknown error type", "tests:\n  - name: a\n    input: {source: app-logs, records: ['x']}\n    expect: {errors: {bad: 1}}\n",
			`x.test.yaml:2: tests[0]: expect.errors (line 4): unknown error-output type "bad" (want one of processing-failed, schema-mismatch, sink-rejected, partition-limit)`},
		{"record not an object", "tests:\n  - name: a\n    input: {source: app-logs, records: [[1]]}\n    expect: {errors: {}}\n",
			`x.test.yaml:2: tests[0]: input.records[0] (line 3): want a JSON object or a string of raw bytes`},
		{"unknown key", "tests:\n  - name: a\n    input: {source: app-logs, records: ['x']}\n    expect: {app-lake: {cuont: 1}}\n",
			"x.test.yaml:2: tests[0]: expect.app-lake (line 4): yaml: unmarshal errors:\n  line 1: field cuont not found in type configtest.rawSink"},
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
