package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/internal/testutil"
)

// shippedEnv is what each shipped config needs from the environment, as
// an ECS task definition would set it.
var shippedEnv = map[string]map[string]string{
	"local.yaml": {},
	"metric-streams.yaml": {
		"FIREHOSE_ACCESS_KEY": "example-access-key",
		"LAKE_BUCKET":         "example-lake",
		"OPENSEARCH_ENDPOINT": "https://search-sluice-abc123.ap-northeast-2.es.amazonaws.com",
	},
	"prod.example.yaml": testutil.ProdExampleEnv,
}

// TestShippedConfigTests runs 'processor test' on every config in configs/
// with no test file named: each has a <name>.test.yaml beside it.
func TestShippedConfigTests(t *testing.T) {
	for name, env := range shippedEnv {
		t.Run(name, func(t *testing.T) {
			for k, v := range env {
				t.Setenv(k, v)
			}
			out, errs, code := runArgs("test", "-c", "../../configs/"+name)
			if code != 0 || !strings.HasSuffix(out, " passed, 0 failed\n") {
				t.Errorf("test -c %s: exit %d\n%s%s", name, code, out, errs)
			}
		})
	}
}

// TestConfigTestFails: a failing config unit test exits 1 and prints its
// diffs.
func TestConfigTestFails(t *testing.T) {
	out, _, code := runArgs("test", "-c", "../../configs/local.yaml", "../../internal/configtest/testdata/failing.test.yaml")
	want, err := os.ReadFile("../../internal/configtest/testdata/failing.golden")
	if err != nil {
		t.Fatal(err)
	}
	if code != 1 || out != string(want) {
		t.Errorf("exit %d, output:\n%s\nwant exit 1 and failing.golden", code, out)
	}
}

// TestShippedConfigsValidate runs 'processor validate' on every config in
// configs/, so a broken or unlisted one fails here.
func TestShippedConfigsValidate(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no configs: %v", err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, ".test.yaml") {
			continue // config unit tests: TestShippedConfigTests
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			env, ok := shippedEnv[filepath.Base(f)]
			if !ok {
				t.Fatalf("%s: add its environment to shippedEnv", f)
			}
			for k, v := range env {
				t.Setenv(k, v)
			}
			if out, errs, code := runArgs("validate", "-c", f); code != 0 || out != "OK\n" {
				t.Errorf("validate %s: exit %d\n%s%s", f, code, out, errs)
			}
		})
	}
}

// TestProdExampleNeedsItsEnvironment checks that endpoints come from the
// environment: without it, validation names each missing variable.
func TestProdExampleNeedsItsEnvironment(t *testing.T) {
	for k := range shippedEnv["prod.example.yaml"] {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	_, errs, code := runArgs("validate", "-c", "../../configs/prod.example.yaml")
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, errs)
	}
	for k := range shippedEnv["prod.example.yaml"] {
		if k == "AWS_REGION" {
			continue // ${AWS_REGION:-ap-northeast-2} has a default
		}
		if !strings.Contains(errs, k) {
			t.Errorf("error does not name %s:\n%s", k, errs)
		}
	}
}

// TestProdExampleHeaderWorks: the environment the header of
// prod.example.yaml tells a reader to export is enough for its validate
// and test commands.
func TestProdExampleHeaderWorks(t *testing.T) {
	data, err := os.ReadFile("../../configs/prod.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for k := range shippedEnv["prod.example.yaml"] {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	exported := 0
	for _, line := range strings.Split(string(data), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(strings.TrimPrefix(line, "#")), "export ")
		if !ok {
			continue
		}
		for _, kv := range strings.Fields(rest) {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
			exported++
		}
	}
	if exported == 0 {
		t.Fatal("the header exports no variables")
	}
	for _, args := range [][]string{{"validate", "-c", "../../configs/prod.example.yaml"}, {"test", "-c", "../../configs/prod.example.yaml"}} {
		if out, errs, code := runArgs(args...); code != 0 {
			t.Errorf("%v with the header's environment: exit %d\n%s%s", args, code, out, errs)
		}
	}
}

// TestBesideTests: with no test file named, 'processor test -c FILE' runs
// every *.test.yaml beside FILE, leaving out only those named after another
// config in the same directory.
func TestBesideTests(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{
		"app.yaml", "app.test.yaml", "app.routes.test.yaml",
		"routing.test.yaml", "smoke.test.yaml",
		"other.yml", "other.test.yaml", "other.more.test.yaml",
		"prod.example.yaml", "prod.example.test.yaml",
	} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		give string
		want []string
	}{
		{"app.yaml", []string{"app.routes.test.yaml", "app.test.yaml", "routing.test.yaml", "smoke.test.yaml"}},
		{"other.yml", []string{"other.more.test.yaml", "other.test.yaml", "routing.test.yaml", "smoke.test.yaml"}},
		{"prod.example.yaml", []string{"prod.example.test.yaml", "routing.test.yaml", "smoke.test.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			got, err := besideTests(filepath.Join(dir, tt.give))
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				got[i] = filepath.Base(got[i])
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("besideTests(%s) = %v, want %v", tt.give, got, tt.want)
			}
		})
	}
}
