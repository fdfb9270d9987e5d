// Command lakespec prints, as JSON, what a Parquet sink of a config writes:
// its columns, its extra column and its partition keys. test/bench/duckdb.mjs
// turns it into DuckDB SQL, so the DuckDB comparison and the lake check
// follow the bench config instead of a copy of it.
//
// Only the shapes the bench configs use are supported: partition keys
// `.field` or `.field | strftime("FMT")` on epoch seconds; anything else is
// an error rather than a silently different query. Columns may name nested
// fields (a.b); duckdb.mjs refuses those it cannot express.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"

	"github.com/sluice-data/sluice/internal/config"
)

type column struct {
	Name  string `json:"name"`
	Field string `json:"field"`
	Type  string `json:"type"`
}

type partition struct {
	Name     string `json:"name"`
	Field    string `json:"field"`
	Strftime string `json:"strftime,omitempty"`
}

type spec struct {
	Columns     []column    `json:"columns"`
	Extra       string      `json:"extra"`
	Partitions  []partition `json:"partitions"`
	Compression string      `json:"compression"`
}

var keyExpr = regexp.MustCompile(`^\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|\s*strftime\("([^"]*)"\)\s*)?$`)

func main() {
	file := flag.String("c", "test/bench/bench.yaml", "config file")
	name := flag.String("sink", "", "sink name (default: the only parquet sink)")
	flag.Parse()
	if err := run(*file, *name); err != nil {
		fmt.Fprintln(os.Stderr, "lakespec:", err)
		os.Exit(1)
	}
}

func run(file, name string) error {
	// The bench configs take their paths from the environment; any value
	// does here.
	for _, v := range []string{"BENCH_INPUT", "BENCH_OUT"} {
		if _, ok := os.LookupEnv(v); !ok {
			os.Setenv(v, "/tmp/lakespec/")
		}
	}
	cfg, err := config.Load(file)
	if err != nil {
		return err
	}
	var sink *config.Sink
	for i := range cfg.Sinks {
		s := &cfg.Sinks[i]
		if s.Type == "s3" && s.Format == "parquet" && (name == "" || s.Name == name) {
			if sink != nil {
				return fmt.Errorf("%s: several parquet sinks; name one with -sink", file)
			}
			sink = s
		}
	}
	if sink == nil {
		return fmt.Errorf("%s: no parquet sink %q", file, name)
	}
	out := spec{Extra: sink.ExtraColumn, Compression: sink.Compression}
	for _, c := range sink.Schema {
		col := column{Name: c.Column, Field: c.Name, Type: c.Type}
		if col.Name == "" {
			col.Name = c.Name
		}
		out.Columns = append(out.Columns, col)
	}
	for _, kv := range sink.PartitionKeys {
		m := keyExpr.FindStringSubmatch(kv.Value)
		if m == nil {
			return fmt.Errorf("partition key %s: %q is not .field or .field|strftime(FMT)", kv.Key, kv.Value)
		}
		out.Partitions = append(out.Partitions, partition{Name: kv.Key, Field: m[1], Strftime: m[2]})
	}
	enc := json.NewEncoder(os.Stdout)
	return enc.Encode(out)
}
