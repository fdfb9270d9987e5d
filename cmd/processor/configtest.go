package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluice-data/sluice/internal/configsrc"
	"github.com/sluice-data/sluice/internal/configtest"
)

// configTest runs config unit tests (see internal/configtest): the test
// files given, or every *.test.yaml beside -c's file. Exit 0 when every
// test passes, 1 otherwise.
func configTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("c", "", "configuration `FILE`: a path, s3://bucket/key or ssm:/name (required)")
	if help, err := parseOwn(fs, args, testUsage, stdout, stderr); help || err != nil {
		return err
	}
	if *file == "" {
		return ownUsageError(stderr, fs, testUsage, "test: -c FILE is required")
	}
	testFiles := fs.Args()
	if len(testFiles) == 0 {
		ref, err := configsrc.Parse(*file)
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		if ref.Remote() {
			return ownUsageError(stderr, fs, testUsage, "test: -c %s is not a local file: name the test files", *file)
		}
		testFiles, err = besideTests(*file)
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		if len(testFiles) == 0 {
			return &exitError{code: 1, err: fmt.Errorf("test: no *.test.yaml beside %s", *file)}
		}
	}
	cfg, err := loadConfig(ctx, *file)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	var files []*configtest.File
	var loadErrs []error
	for _, p := range testFiles {
		f, err := configtest.Load(p, cfg)
		if err != nil {
			loadErrs = append(loadErrs, err) // report every file's mistakes at once
			continue
		}
		files = append(files, f)
	}
	if len(loadErrs) > 0 {
		return &exitError{code: 1, err: errors.Join(loadErrs...)}
	}
	if configtest.Report(ctx, cfg, files, stdout) > 0 {
		return &exitError{code: 1, err: errors.New("")}
	}
	return nil
}

// besideTests lists the *.test.yaml files in the directory of the config
// file, as CONFIG.md promises, leaving out those that belong to another
// config there: a test file belongs to the config whose name it starts with
// (local.test.yaml and local.extra.test.yaml to local.yaml; the longest such
// name wins, so prod.example.test.yaml is prod.example.yaml's). Test files
// named after no config (routing.test.yaml) run for every config beside them.
func besideTests(file string) ([]string, error) {
	dir := filepath.Dir(file)
	all, err := filepath.Glob(filepath.Join(dir, "*.test.yaml"))
	if err != nil {
		return nil, err
	}
	stem := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	var run []string
	for _, p := range all {
		if owner := testOwner(dir, filepath.Base(p)); owner == "" || owner == stem {
			run = append(run, p)
		}
	}
	return run, nil
}

// testOwner is the stem of the config in dir that test file base is named
// after ("" when none): the longest dot-separated prefix P of the name before
// .test.yaml for which P.yaml or P.yml exists.
func testOwner(dir, base string) string {
	rest := strings.TrimSuffix(base, ".test.yaml")
	for p := rest; p != ""; {
		for _, ext := range []string{".yaml", ".yml"} {
			if _, err := os.Stat(filepath.Join(dir, p+ext)); err == nil {
				return p
			}
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return ""
}

const testUsage = `usage: processor test -c FILE [TEST_FILE...]

Run config unit tests: each test feeds records to a source of FILE and
compares what its routes, transforms and sinks make of them, in memory
(nothing is written, no service is contacted). With no TEST_FILE, every
*.test.yaml beside FILE runs, except those named after another config
there (beside local.yaml, metric-streams.test.yaml belongs to
metric-streams.yaml). Exit 0 when all pass, 1 with a diff per failing test.
`
