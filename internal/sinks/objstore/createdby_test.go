package objstore

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/sluice-data/sluice/internal/buildinfo"
)

// TestParquetCreatedBy: a Parquet file names the Sluice that wrote it,
// with its version and build, in the form readers parse.
func TestParquetCreatedBy(t *testing.T) {
	defer func(v, r string) { buildinfo.Version, buildinfo.Revision = v, r }(buildinfo.Version, buildinfo.Revision)
	buildinfo.Version, buildinfo.Revision = "0.4.0", "0123456789abcdef"
	s, dir := newSink(t, typedSchema, nil)
	if fails := feed(t, s, nil, `{"project_id":"P-1","ts":1730617200}`); len(fails) != 0 {
		t.Fatalf("failures: %+v", fails[0])
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := files(t, dir)
	if len(got) != 1 {
		t.Fatalf("files = %v", got)
	}
	f, err := os.Open(filepath.Join(dir, got[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if cb, want := pf.Metadata().CreatedBy, "sluice version 0.4.0 (build 0123456789ab)"; cb != want {
		t.Errorf("created_by = %q, want %q", cb, want)
	}
}
