package objstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluice-data/sluice/internal/template"
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
	f := newFakeS3(t)
	s, _ := newSink(t, "    url: s3://lake/root/lake/\n    endpoint: "+f.srv.URL+"\n"+dotsSink, nil)
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
	if got := bucketKeys(t, f); !slices.Equal(got, want) {
		t.Errorf("keys:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func bucketKeys(t *testing.T, f *fakeS3) []string {
	t.Helper()
	out, err := f.client(t).ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("lake")})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	slices.Sort(keys)
	return keys
}

var unsafeKeys = []string{"../x.ndjson", "a/../../x.ndjson", "/abs.ndjson", "a//b.ndjson", "./a.ndjson", "a/./b.ndjson", `a\..\b.ndjson`, "a\x00b", "", "a/"}

// TestStoresRefuseUnsafeKeys: whatever reaches a store, it writes nothing
// outside its root: a key that is not a clean relative path is an error.
func TestStoresRefuseUnsafeKeys(t *testing.T) {
	dir := t.TempDir()
	fs, err := NewFileStore(filepath.Join(dir, "root", "lake"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeS3(t)
	s3s, err := NewS3Store(context.Background(), S3Options{Bucket: "lake", Prefix: "root/lake/", Endpoint: f.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []Lister{fs, s3s} {
		for _, key := range unsafeKeys {
			if err := st.Put(context.Background(), key, Bytes([]byte("x"))); !errors.Is(err, template.ErrUnsafeKey) {
				t.Errorf("%s: Put(%q) = %v, want ErrUnsafeKey", st.Location(), key, err)
			}
			if _, err := st.Get(context.Background(), key); !errors.Is(err, template.ErrUnsafeKey) {
				t.Errorf("%s: Get(%q) = %v, want ErrUnsafeKey", st.Location(), key, err)
			}
		}
		if _, err := st.List(context.Background(), "../"); !errors.Is(err, template.ErrUnsafeKey) {
			t.Errorf("%s: List(../) = %v, want ErrUnsafeKey", st.Location(), err)
		}
	}
	if got := files(t, dir); len(got) != 0 {
		t.Errorf("files written: %v", got)
	}
	if got := bucketKeys(t, f); len(got) != 0 {
		t.Errorf("objects written: %v", got)
	}
}

// TestFileStoreSymlinkOut: a symbolic link inside the root that points
// outside it is not followed.
func TestFileStoreSymlinkOut(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "lake")
	outside := filepath.Join(dir, "outside")
	for _, d := range []string{root, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	fs, err := NewFileStore(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Put(context.Background(), "link/x.ndjson", Bytes([]byte("x"))); err == nil {
		t.Error("Put through a symlink out of the root succeeded")
	}
	if got := files(t, outside); len(got) != 0 {
		t.Errorf("files outside the root: %v", got)
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
	f := newFakeS3(t)
	s, _ := newSink(t, "    url: s3://lake/lake/app-logs/\n    endpoint: "+f.srv.URL+"\n"+typedSchema, nil)
	feed(t, s, nil, `{"project_id":"P-1","ts":1730617200,"n":1}`, `{"project_id":"P-1","ts":1730617200,"n":1.5}`)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"lake/app-logs-errors/schema-mismatch/2024/11/03/src+f+000000000002-000000000002.ndjson",
		"lake/app-logs/project_id=P-1/hour=07/src+f+000000000001-000000000001.parquet",
	}
	if got := bucketKeys(t, f); !slices.Equal(got, want) {
		t.Errorf("keys:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
