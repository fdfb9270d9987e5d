package blob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/template"
	"github.com/sluice-data/sluice/internal/testutil"
)

var unsafeKeys = []string{"../x.ndjson", "a/../../x.ndjson", "/abs.ndjson", "a//b.ndjson", "./a.ndjson", "a/./b.ndjson", `a\..\b.ndjson`, "a\x00b", "", "a/"}

func TestS3MultipartAndAbort(t *testing.T) {
	f := testutil.NewS3Fake(t)
	st, err := NewS3Store(context.Background(), S3Options{Bucket: "lake", Endpoint: f.URL, PartSize: 5 << 20, MultipartThreshold: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("0123456789abcdef"), (12<<20)/16) // 12 MiB: three parts
	if err := st.Put(context.Background(), "big/object.ndjson", Bytes(body)); err != nil {
		t.Fatal(err)
	}
	if n := f.Requests("partNumber="); n != 3 {
		t.Errorf("UploadPart requests = %d, want 3", n)
	}
	if got := f.Get(t, "big/object.ndjson"); !bytes.Equal(got, body) {
		t.Errorf("object differs: %d bytes, want %d", len(got), len(body))
	}
	// A part that keeps failing fails the upload, and the upload is aborted.
	f.Inject(func(r *http.Request) (int, bool) {
		return 500, r.URL.Query().Get("partNumber") == "2"
	})
	if err := st.Put(context.Background(), "big/failed.ndjson", Bytes(body)); err == nil {
		t.Fatal("upload succeeded with a failing part")
	}
	if n := f.Requests("DELETE /lake/big/failed.ndjson?uploadId="); n != 1 {
		t.Errorf("AbortMultipartUpload requests = %d, want 1", n)
	}
}

// TestS3StreamedBody: an object is streamed from its Body a part at a time;
// a Body that fails part-way fails the Put, the multipart upload is
// aborted and no object appears.
func TestS3StreamedBody(t *testing.T) {
	f := testutil.NewS3Fake(t)
	st, err := NewS3Store(context.Background(), S3Options{Bucket: "lake", Endpoint: f.URL, PartSize: 5 << 20, MultipartThreshold: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("sluice-"), 9362) // ~64 KiB
	gen := func(n int, fail error) Body {
		return func(w io.Writer) error {
			for i := 0; i < n; i++ {
				if _, err := w.Write(chunk); err != nil {
					return err
				}
			}
			return fail
		}
	}
	if err := st.Put(context.Background(), "s/ok.ndjson", gen(200, nil)); err != nil { // 12.5 MiB
		t.Fatal(err)
	}
	if got := f.Get(t, "s/ok.ndjson"); len(got) != 200*len(chunk) || !bytes.Equal(got[:len(chunk)], chunk) {
		t.Errorf("object: %d bytes, want %d", len(got), 200*len(chunk))
	}
	if n := f.Requests("partNumber="); n != 3 {
		t.Errorf("UploadPart requests = %d, want 3", n)
	}
	err = st.Put(context.Background(), "s/broken.ndjson", gen(150, errors.New("encoder failed")))
	if err == nil || !strings.Contains(err.Error(), "encoder failed") {
		t.Fatalf("Put with a failing body = %v", err)
	}
	if n := f.Requests("DELETE /lake/s/broken.ndjson?uploadId="); n != 1 {
		t.Errorf("AbortMultipartUpload requests = %d, want 1", n)
	}
	if keys, _ := st.List(context.Background(), "s/"); strings.Join(keys, ",") != "s/ok.ndjson" {
		t.Errorf("objects = %v", keys)
	}
}

func TestS3ListAndGet(t *testing.T) {
	f := testutil.NewS3Fake(t)
	st, err := NewS3Store(context.Background(), S3Options{Bucket: "lake", Prefix: "archive/", Endpoint: f.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"dt=2024-11-03/hour=09/b.ndjson.gz", "dt=2024-11-03/hour=09/a.ndjson.gz", "dt=2024-11-03/hour=09/.tmp", "dt=2024-11-03/hour=10/c.ndjson.gz"} {
		if err := st.Put(context.Background(), k, Bytes([]byte(k))); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := st.List(context.Background(), "dt=2024-11-03/hour=09/")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, ",") != "dt=2024-11-03/hour=09/a.ndjson.gz,dt=2024-11-03/hour=09/b.ndjson.gz" {
		t.Errorf("keys = %v", keys)
	}
	got, err := st.Get(context.Background(), keys[1])
	if err != nil || string(got) != keys[1] {
		t.Errorf("get = %q, %v", got, err)
	}
}

// TestStoresRefuseUnsafeKeys: whatever reaches a store, it writes nothing
// outside its root: a key that is not a clean relative path is an error.
func TestStoresRefuseUnsafeKeys(t *testing.T) {
	dir := t.TempDir()
	fs, err := NewFileStore(filepath.Join(dir, "root", "lake"))
	if err != nil {
		t.Fatal(err)
	}
	f := testutil.NewS3Fake(t)
	s3s, err := NewS3Store(context.Background(), S3Options{Bucket: "lake", Prefix: "root/lake/", Endpoint: f.URL})
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
	if got := testutil.Files(t, dir); len(got) != 0 {
		t.Errorf("files written: %v", got)
	}
	if got := f.Keys(t); len(got) != 0 {
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
	if got := testutil.Files(t, outside); len(got) != 0 {
		t.Errorf("files outside the root: %v", got)
	}
}

// TestFileStoreSweepsStaleTemporaryFiles: a process killed during Put
// leaves its temporary file (.name.tmp-XXXXXXXXXXXX) in the partition
// directory, where a reader of the whole table (DuckDB's
// read_parquet('lake/**'), which does not skip hidden files) fails on it
// ("No magic bytes"). A file store removes those a previous process left
// when it is first used; a temporary file newer than this process (another
// writer's, in flight) and other hidden files stay.
func TestFileStoreSweepsStaleTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	part := filepath.Join(dir, "project_id=P1", "year=2024")
	if err := os.MkdirAll(part, 0o755); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(part, ".a+0+1-9.parquet.tmp-0123456789ab")
	fresh := filepath.Join(part, ".a+0+10-19.parquet.tmp-ba9876543210")
	hidden := filepath.Join(part, ".keep")
	for _, f := range []string{stale, fresh, hidden} {
		if err := os.WriteFile(f, []byte("PAR1 half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	past := processStart.Add(-time.Hour)
	if err := os.Chtimes(stale, past, past); err != nil {
		t.Fatal(err)
	}
	future := processStart.Add(time.Hour)
	if err := os.Chtimes(fresh, future, future); err != nil {
		t.Fatal(err)
	}
	st, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(context.Background(), "project_id=P2/x.parquet", Bytes([]byte("PAR1"))); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file still there (stat: %v)", err)
	}
	for _, f := range []string{fresh, hidden} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s removed: %v", filepath.Base(f), err)
		}
	}
}
