package athena

import (
	"flag"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/jq"
)

var update = flag.Bool("update", false, "rewrite golden files")

func load(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("testdata/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestDDLGolden(t *testing.T) {
	cfg := load(t)
	for _, sink := range []string{"app-lake", "security-lake", "by-day"} {
		got, err := DDL(cfg, sink, "telemetry")
		if err != nil {
			t.Fatal(err)
		}
		path := "testdata/" + sink + ".sql"
		if *update {
			os.WriteFile(path, []byte(got), 0o644)
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("%s DDL:\n%s\nwant\n%s", sink, got, want)
		}
	}
}

// TestProjectionCoversWrittenKeys evaluates the sink's partition keys on
// sample records, as the sink does, and checks each value lies inside the
// projection the DDL declares for it.
func TestProjectionCoversWrittenKeys(t *testing.T) {
	cfg := load(t)
	recs := []string{
		`{"project_id":"P-1","plan_ver":"v7","event_timestamp":1730617200}`,
		`{"project_id":"P-2","plan_ver":"v1","event_timestamp":1735689599}`,
		`{"project_id":"P-3","plan_ver":"v2","event_timestamp":946684800}`,
	}
	for _, kv := range cfg.Sinks[0].PartitionKeys {
		props := map[string]string{}
		for _, p := range project(kv.Key, kv.Value).props {
			props[p[0]] = p[1]
		}
		e, _ := jq.Compile(kv.Value)
		for _, r := range recs {
			val, err := e.AppendText(nil, fastjson.MustParse(r))
			if err != nil {
				t.Fatal(err)
			}
			switch props["type"] {
			case "integer":
				lohi := strings.Split(props["range"], ",")
				lo, _ := strconv.Atoi(lohi[0])
				hi, _ := strconv.Atoi(lohi[1])
				n, err := strconv.Atoi(string(val))
				digits, _ := strconv.Atoi(props["digits"])
				if err != nil || n < lo || n > hi || len(val) != digits {
					t.Errorf("key %s value %q outside projection %v", kv.Key, val, props)
				}
			case "injected":
			default:
				t.Errorf("key %s: unexpected projection %v", kv.Key, props)
			}
		}
	}
}

func TestDDLErrors(t *testing.T) {
	cfg := load(t)
	if _, err := DDL(cfg, "nope", ""); err == nil || !strings.Contains(err.Error(), `no sink "nope" (defined: app-lake, security-lake, by-day)`) {
		t.Errorf("err = %v", err)
	}
}
