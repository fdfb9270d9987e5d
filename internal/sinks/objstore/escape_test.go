package objstore

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/internal/testutil"
)

// dotsSink partitions by two record fields, the layout issue 9 escaped
// the lake with.
const dotsSink = `    format: ndjson
    partition_keys: {a: .a, b: .b}
    prefix: "!{partitionKeyFromQuery:a}/!{partitionKeyFromQuery:b}/"
`

// dotsRecords are values that name other directories, as the issue's.
var dotsRecords = []string{`{"a":"..","b":".."}`, `{"a":"/etc","b":"."}`, `{"a":"..\\..","b":"x"}`, `{"a":".","b":"a/../../b"}`}

// TestFileKeysStayUnderURL: {"a":"..","b":".."} used to write two
// directories above url: file:.../root/lake/.
func TestFileKeysStayUnderURL(t *testing.T) {
	dir := t.TempDir()
	s, _ := newSink(t, "    url: 'file:"+dir+"/root/lake/'\n"+dotsSink, nil)
	if fails := feed(t, s, nil, dotsRecords...); len(fails) != 0 {
		t.Fatalf("failures: %v", fails)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"root/lake/%2E%2E/%2E%2E/src+f+000000000001-000000000001.ndjson",
		"root/lake/%2E/a%2F..%2F..%2Fb/src+f+000000000004-000000000004.ndjson",
		"root/lake/%2Fetc/%2E/src+f+000000000002-000000000002.ndjson",
		"root/lake/..%5C../x/src+f+000000000003-000000000003.ndjson",
	}
	if got := files(t, dir); !slices.Equal(got, want) {
		t.Errorf("files under %s:\n%s\nwant\n%s", dir, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestS3KeysStayUnderURL: on S3 the key app/../../… left the sink's
// folder of the bucket.
func TestS3KeysStayUnderURL(t *testing.T) {
	f := testutil.NewS3Fake(t)
	s, _ := newSink(t, "    url: s3://lake/root/lake/\n    endpoint: "+f.URL+"\n"+dotsSink, nil)
	if fails := feed(t, s, nil, dotsRecords...); len(fails) != 0 {
		t.Fatalf("failures: %v", fails)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"root/lake/%2E%2E/%2E%2E/src+f+000000000001-000000000001.ndjson",
		"root/lake/%2E/a%2F..%2F..%2Fb/src+f+000000000004-000000000004.ndjson",
		"root/lake/%2Fetc/%2E/src+f+000000000002-000000000002.ndjson",
		"root/lake/..%5C../x/src+f+000000000003-000000000003.ndjson",
	}
	if got := f.Keys(t); !slices.Equal(got, want) {
		t.Errorf("keys:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDefaultErrorsBesideTable: with error_prefix unset, a Parquet sink's
// error records go to <url>-errors/, so the table location holds only
// Parquet (DuckDB's read_parquet('out/lake/app-logs/**') failed with "No
// magic bytes" on out/lake/app-logs/errors/...). A second run over the
// same records lists the error location and writes nothing twice.
func TestDefaultErrorsBesideTable(t *testing.T) {
	dir := t.TempDir()
	body := "    url: 'file:" + dir + "/lake/app-logs/'\n" + typedSchema
	lines := []string{
		`{"project_id":"P-1","ts":1730617200,"n":1}`,
		`{"project_id":"P-1","ts":1730617200,"n":1.5}`,
		`{"ts":1730617200}`,
	}
	for run := 0; run < 2; run++ {
		s, _ := newSink(t, body, nil)
		feed(t, s, nil, lines...)
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if run == 1 && s.Stats().Skipped != 3 {
			t.Errorf("second run skipped %d records, want 3", s.Stats().Skipped)
		}
	}
	table := files(t, filepath.Join(dir, "lake", "app-logs"))
	if len(table) != 1 {
		t.Errorf("table location holds %v, want one object", table)
	}
	for _, f := range table {
		if !strings.HasSuffix(f, ".parquet") {
			t.Errorf("table location holds %s, not Parquet", f)
		}
	}
	want := []string{
		"processing-failed/2024/11/03/src+f+000000000003-000000000003.ndjson",
		"schema-mismatch/2024/11/03/src+f+000000000002-000000000002.ndjson",
	}
	if got := files(t, filepath.Join(dir, "lake", "app-logs-errors")); !slices.Equal(got, want) {
		t.Errorf("error location holds:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestS3DefaultErrorsBesideTable: the same on S3, for
// url: s3://lake/lake/app-logs/.
func TestS3DefaultErrorsBesideTable(t *testing.T) {
	f := testutil.NewS3Fake(t)
	s, _ := newSink(t, "    url: s3://lake/lake/app-logs/\n    endpoint: "+f.URL+"\n"+typedSchema, nil)
	feed(t, s, nil, `{"project_id":"P-1","ts":1730617200,"n":1}`, `{"project_id":"P-1","ts":1730617200,"n":1.5}`)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"lake/app-logs-errors/schema-mismatch/2024/11/03/src+f+000000000002-000000000002.ndjson",
		"lake/app-logs/project_id=P-1/hour=07/src+f+000000000001-000000000001.parquet",
	}
	if got := f.Keys(t); !slices.Equal(got, want) {
		t.Errorf("keys:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestLongPartitionValueFailsItsRecord: a partition value too long for a
// key fails its record to the error output, and the rest are written. A
// 5,000-byte project_id once made every write of its object fail with
// ENAMETOOLONG for retry.max_elapsed, then the run exited 1, and every
// re-run met the same record.
func TestLongPartitionValueFailsItsRecord(t *testing.T) {
	dir := t.TempDir()
	s, _ := newSink(t, "    url: 'file:"+dir+"/lake/'\n    error_prefix: errors/\n    retry: {max_elapsed: 1s}\n"+dotsSink, nil)
	long := strings.Repeat("x", 5000)
	fails := feed(t, s, nil, `{"a":"`+long+`","b":"y"}`, `{"a":"ok","b":"y"}`, `{"a":"ok","b":"`+strings.Repeat("/", 100)+`"}`)
	if len(fails) != 2 || fails[0].Type != "processing-failed" || !strings.Contains(fails[0].Message, "too long") || len(fails[0].Message) > 400 {
		t.Fatalf("failures: %v", fails)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"lake/errors/src+f+000000000001-000000000003.ndjson",
		"lake/ok/y/src+f+000000000002-000000000002.ndjson",
	}
	if got := files(t, dir); !slices.Equal(got, want) {
		t.Errorf("files under %s:\n%s\nwant\n%s", dir, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
