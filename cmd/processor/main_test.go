package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/internal/config"
)

func runArgs(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	var ee *exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.code
		errb.WriteString(ee.err.Error())
	default:
		code = 1
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), code
}

func TestSubcommandHelp(t *testing.T) {
	tests := []struct {
		give []string
		want []string // all on stdout
	}{
		{[]string{"run", "--help"}, []string{"usage: processor run -c FILE", "-c FILE"}},
		{[]string{"validate", "-h"}, []string{"usage: processor validate -c FILE", "-c FILE"}},
		{[]string{"replay", "--help"}, []string{"usage: processor replay -c FILE --source NAME --from T1 --to T2", "-source NAME", "-from time", "-to time", "-routes names"}},
		{[]string{"athena-ddl", "-h"}, []string{"usage: processor athena-ddl -c FILE --sink NAME", "-sink NAME", "-database", "-years FIRST-LAST", `(default "2020-NOW+1")`, "-enum KEY=V1,V2,...", "-injected KEYS", "s3://YOUR-BUCKET/"}},
		{[]string{"help", "replay"}, []string{"usage: processor replay"}},
		{[]string{"--help"}, []string{"usage: processor <command>", "'processor <command> -h'"}},
		{[]string{"version", "-h"}, []string{"usage: processor version"}},
		{[]string{"healthcheck", "-h"}, []string{"usage: processor healthcheck", "-url", "-timeout"}},
		{[]string{"iam-policy", "--help"}, []string{"usage: processor iam-policy -c FILE", "-account", "-config-url"}},
		{[]string{"test", "-h"}, []string{"usage: processor test -c FILE [TEST_FILE...]", "-c"}},
		{[]string{"tap", "-h"}, []string{"usage: processor tap", "-route", "-limit"}},
		{[]string{"help", "healthcheck"}, []string{"usage: processor healthcheck"}},
		{[]string{"help", "tap"}, []string{"usage: processor tap"}},
	}
	for _, tt := range tests {
		out, errs, code := runArgs(tt.give...)
		for _, w := range tt.want {
			if code != 0 || errs != "" || !strings.Contains(out, w) {
				t.Errorf("processor %v: exit %d, stdout %q, stderr %q; want exit 0 and stdout containing %q", tt.give, code, out, errs, w)
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		give []string
		want []string // all on stderr
	}{
		{[]string{"run", "--bogus"}, []string{"run: flag provided but not defined: -bogus", "usage: processor run -c FILE"}},
		{[]string{"replay", "-c", "x.yaml"}, []string{"replay: --source, --from and --to are required", "usage: processor replay"}},
		{[]string{"replay", "-c", "x.yaml", "--source", "s", "--from", "yesterday", "--to", "2024-01-01T00:00:00Z"}, []string{`--from: want an RFC 3339 time, not "yesterday"`}},
		{[]string{"athena-ddl", "-c", "x.yaml", "--sink", "s", "--years", "2030-2019"}, []string{"first year is after the last", "usage: processor athena-ddl"}},
		{[]string{"athena-ddl", "-c", "x.yaml", "--sink", "s", "--enum", "k"}, []string{`want KEY=V1,V2,..., not "k"`}},
		{[]string{"validate"}, []string{"validate: -c FILE is required", "usage: processor validate"}},
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`, "usage: processor <command>"}},
	}
	for _, tt := range tests {
		out, errs, code := runArgs(tt.give...)
		for _, w := range tt.want {
			if code != 2 || !strings.Contains(errs, w) {
				t.Errorf("processor %v: exit %d, stdout %q, stderr %q; want exit 2 and stderr containing %q", tt.give, code, out, errs, w)
			}
		}
	}
}

func TestVersionFlag(t *testing.T) {
	want, _, code := runArgs("version")
	if code != 0 || !strings.HasPrefix(want, "sluice ") {
		t.Fatalf("version: exit %d, %q", code, want)
	}
	for _, arg := range []string{"--version", "-version"} {
		if got, errs, code := runArgs(arg); code != 0 || got != want {
			t.Errorf("processor %s: exit %d, %q %q; want %q", arg, code, got, errs, want)
		}
	}
}

// TestReplaySourcesAgree checks that the usage and replay's refusal name
// the same source types, and that each named type is accepted.
func TestReplaySourcesAgree(t *testing.T) {
	help, _, _ := runArgs("replay", "-h")
	global, _, _ := runArgs("--help")
	newCfg := func(typ string) *config.Config {
		return &config.Config{
			Sources: []config.Source{{Name: "s", Type: typ}},
			Routes:  []config.Route{{Name: "r", From: []string{"s"}, To: []string{"k"}}},
			Sinks:   []config.Sink{{Name: "k"}},
		}
	}
	err := replayConfig(newCfg("file"), "s", nil)
	if err == nil {
		t.Fatal("replay accepted a file source")
	}
	list := strings.Join(replaySources, ", ")
	for _, text := range []string{help, global, err.Error()} {
		if !strings.Contains(text, list) {
			t.Errorf("%q does not name the replayable types %q", text, list)
		}
	}
	for _, typ := range []string{"kafka", "kinesis", "archive"} {
		if err := replayConfig(newCfg(typ), "s", nil); err != nil {
			t.Errorf("replay refused a %s source: %v", typ, err)
		}
	}
}

// TestValidateWarnsAlongsideErrors: a config with errors still gets the
// warning about a glob that matches nothing, in the same one pass and in
// line order, so fixing the errors brings no new surprise.
func TestValidateWarnsAlongsideErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(`service: {http_listen: "", error_sink: out}
sources:
  - {name: logs, type: file, format: json, file: {paths: ["`+dir+`/nowhere/*.ndjson"]}}
routes:
  - {name: all, from: [logs], to: [out]}
sinks:
  - {name: out, type: s3, url: "file:out/", format: ndjson, bufer: {interval: 1s}}
`), 0o644)
	_, errs, code := runArgs("validate", "-c", cfg)
	want := cfg + `:3: sources[0].file.paths[0]: "` + dir + `/nowhere/*.ndjson" matches no file here; run stops with "no file matches" unless it matches where the service runs` + "\n" +
		cfg + `:7: sinks[0].bufer: unknown key "bufer" (did you mean "buffer"?)`
	if code != 1 || !strings.Contains(errs, "warning: "+want) {
		t.Errorf("validate: exit %d, stderr:\n%s\nwant exit 1 and:\nwarning: %s", code, errs, want)
	}
}

// TestConfigurationDocCommands keeps the command list of
// docs/configuration.md with the binary's: every command, and replay's
// source types as the usage and replay's refusal name them.
func TestConfigurationDocCommands(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(doc), "\n## Command line\n")
	section, _, _ = strings.Cut(section, "\n## ")
	if section == "" {
		t.Fatal("docs/configuration.md has no Command line section")
	}
	var names []string
	for name := range commands {
		names = append(names, name)
	}
	for name := range ownFlags {
		names = append(names, name)
	}
	for _, name := range names {
		if !strings.Contains(section, "processor "+name+" ") {
			t.Errorf("docs/configuration.md's Command line does not list processor %s", name)
		}
	}
	if list := strings.Join(replaySources, ", "); !strings.Contains(section, list) {
		t.Errorf("docs/configuration.md's Command line does not say replay reads %s sources", list)
	}
}

// TestValidateGlobWarningRedacts: the glob warning, like every problem,
// prints ${NAME} where a value came from the environment.
func TestValidateGlobWarningRedacts(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(`service: {http_listen: "", error_sink: out}
sources:
  - {name: logs, type: file, format: json, file: {paths: ["${SLUICE_TEST_DATA_DIR}/*.ndjson"]}}
routes:
  - {name: all, from: [logs], to: [out]}
sinks:
  - {name: out, type: s3, url: "file:out/", format: ndjson}
`), 0o644)
	t.Setenv("SLUICE_TEST_DATA_DIR", dir+"/private-location")
	out, errs, code := runArgs("validate", "-c", cfg)
	want := `warning: ` + cfg + `:3: sources[0].file.paths[0]: "${SLUICE_TEST_DATA_DIR}/*.ndjson" matches no file here`
	if code != 0 || out != "OK\n" || !strings.Contains(errs, want) || strings.Contains(errs, "private-location") {
		t.Errorf("validate: exit %d, stdout %q, stderr:\n%s\nwant OK and %s", code, out, errs, want)
	}
}

// TestOwnUsageOnMistakes: a mistake on a command that parses its own flags
// prints that command's usage and flags (as run, validate, replay and
// athena-ddl do), not the list of every command; exit 2.
func TestOwnUsageOnMistakes(t *testing.T) {
	tests := []struct {
		give []string
		want string
	}{
		{[]string{"test", "cfg.yaml"}, "test: -c FILE is required\n\nusage: processor test -c FILE"},
		{[]string{"test", "--bogus"}, "test: flag provided but not defined: -bogus\n\nusage: processor test -c FILE"},
		{[]string{"iam-policy"}, "iam-policy: -c FILE is required\n\nusage: processor iam-policy"},
		{[]string{"healthcheck", "x"}, "healthcheck: unexpected argument \"x\"\n\nusage: processor healthcheck"},
		{[]string{"tap", "-c", "x.yaml"}, "tap: give exactly one of --route NAME and --sink NAME\n\nusage: processor tap"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.give, " "), func(t *testing.T) {
			_, errs, code := runArgs(tt.give...)
			if code != 2 || !strings.HasPrefix(errs, tt.want) || !strings.Contains(errs, "\nflags:\n") || strings.Contains(errs, "commands:") {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2, starting %q, with the command's flags only", code, errs, tt.want)
			}
		})
	}
}

// TestHelpListsFlagsOnce: each command's -h has one flags section.
func TestHelpListsFlagsOnce(t *testing.T) {
	for _, cmd := range []string{"run", "validate", "test", "replay", "athena-ddl", "iam-policy", "healthcheck", "tap"} {
		t.Run(cmd, func(t *testing.T) {
			out, _, code := runArgs(cmd, "-h")
			if n := strings.Count(out, "flags:\n"); code != 0 || n != 1 {
				t.Errorf("%s -h: exit %d, %d flags sections:\n%s", cmd, code, n, out)
			}
		})
	}
}
