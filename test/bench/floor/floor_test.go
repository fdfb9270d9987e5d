package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/valyala/fastjson"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/testutil"
)

// TestFloorWritesTheBenchJob: the floor writes every record once, one
// object per partition of the seed's keys, with the bench sink's columns
// in order, and each row's values where the record had them.
func TestFloorWritesTheBenchJob(t *testing.T) {
	t.Setenv("BENCH_INPUT", "in")
	t.Setenv("BENCH_OUT", "out")
	cfg, err := config.Load("../bench.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sink := &cfg.Sinks[0]
	var in bytes.Buffer
	const n = 5000
	if err := testutil.WriteAppLogs(&in, n); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // trace_id -> partition
	var p fastjson.Parser
	for line := range strings.Lines(in.String()) {
		v, err := p.Parse(line)
		if err != nil {
			t.Fatal(err)
		}
		want[string(v.GetStringBytes("trace_id"))] = "project_id=" + string(v.GetStringBytes("project_id"))
	}
	dir := t.TempDir()
	f, err := newFloor(sink, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.copy(&in); err != nil {
		t.Fatal(err)
	}
	if f.records != n {
		t.Errorf("records = %d, want %d", f.records, n)
	}
	var objects, rows int
	parts := map[string]bool{}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		objects++
		rel, _ := filepath.Rel(dir, filepath.Dir(path))
		if parts[rel] {
			t.Errorf("%s: a second object", rel)
		}
		parts[rel] = true
		if got := strings.Count(rel, "/"); got != 5 {
			t.Errorf("%s: %d levels, want the six keys", rel, got+1)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		pf, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var names []string
		for _, fld := range pf.Schema().Fields() {
			names = append(names, fld.Name())
		}
		if got := strings.Join(names, ","); got != "project_id,plan_ver,event_timestamp,level,message,_extra" {
			t.Fatalf("%s: columns %s", path, got)
		}
		r := parquet.NewReader(pf)
		defer r.Close()
		buf := make([]parquet.Row, 64)
		for {
			k, err := r.ReadRows(buf)
			for _, row := range buf[:k] {
				rows++
				id := string(fastjson.MustParseBytes(row[5].ByteArray()).GetStringBytes("trace_id"))
				if w, ok := want[id]; !ok || !strings.HasPrefix(rel, w+"/") {
					t.Errorf("%s: trace_id %q (partition %q)", rel, id, w)
				}
				if row[0].String() == "" || row[4].String() == "" {
					t.Errorf("%s: row %v", rel, row)
				}
				delete(want, id)
			}
			if err != nil {
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rows != n || len(want) != 0 || objects != f.objects {
		t.Errorf("rows = %d, objects = %d (floor says %d), records not found: %d; want %d rows", rows, objects, f.objects, len(want), n)
	}
}
