package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/sluice-data/sluice/internal/testutil"
)

// fakeS3 is gofakes3 behind httptest, with a request log and a hook that
// may answer a request instead of the fake (to inject failures).
type fakeS3 struct {
	srv    *httptest.Server
	mu     sync.Mutex
	log    []string
	inject func(r *http.Request) (status int, handled bool)
}

func newFakeS3(t *testing.T) *fakeS3 {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	backend := s3mem.New()
	if err := backend.CreateBucket("lake"); err != nil {
		t.Fatal(err)
	}
	f := &fakeS3{}
	h := gofakes3.New(backend).Server()
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.log = append(f.log, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		inject := f.inject
		f.mu.Unlock()
		if inject != nil {
			if status, ok := inject(r); ok {
				if status == 0 { // drop the connection
					if hj, ok := w.(http.Hijacker); ok {
						conn, _, _ := hj.Hijack()
						conn.Close()
						return
					}
				}
				io.Copy(io.Discard, r.Body)
				w.WriteHeader(status)
				fmt.Fprintf(w, `<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>`)
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeS3) requests(substr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, l := range f.log {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

func (f *fakeS3) client(t *testing.T) *s3.Client {
	st, err := NewS3Store(context.Background(), S3Options{Bucket: "lake", Endpoint: f.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return st.client
}

func (f *fakeS3) get(t *testing.T, key string) []byte {
	t.Helper()
	out, err := f.client(t).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("lake"), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	return b
}

func TestS3SinkWritesPartitionedParquet(t *testing.T) {
	f := newFakeS3(t)
	s, _ := newSink(t, typedSchema+"    endpoint: "+f.srv.URL+"\n    region: ap-northeast-2\n", nil)
	// newSink opened a file store; point this sink at S3 instead.
	st, err := NewS3Store(context.Background(), S3Options{Bucket: "lake", Prefix: "app-logs/", Endpoint: f.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	s.store = st
	feed(t, s, nil,
		`{"project_id":"P-1","ts":1730617200,"n":1}`,
		`{"project_id":"P-2","ts":1730620800,"n":2}`,
		`{"project_id":"P-1","ts":1730617201,"n":3}`)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Listing with a delimiter shows the Hive partitions.
	out, err := f.client(t).ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("lake"), Prefix: aws.String("app-logs/"), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatal(err)
	}
	var prefixes []string
	for _, p := range out.CommonPrefixes {
		prefixes = append(prefixes, *p.Prefix)
	}
	if strings.Join(prefixes, ",") != "app-logs/project_id=P-1/,app-logs/project_id=P-2/" {
		t.Errorf("common prefixes = %v", prefixes)
	}
	body := f.get(t, "app-logs/project_id=P-1/hour=07/src+f+000000000001-000000000003.parquet")
	path := filepath.Join(t.TempDir(), "x.parquet")
	os.WriteFile(path, body, 0o644)
	pf, err := testutil.ReadParquet(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(pf.Rows) != 2 {
		t.Errorf("rows = %d", len(pf.Rows))
	}
}

func TestS3MultipartAndAbort(t *testing.T) {
	f := newFakeS3(t)
	st, err := NewS3Store(context.Background(), S3Options{Bucket: "lake", Endpoint: f.srv.URL, PartSize: 5 << 20, MultipartThreshold: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("0123456789abcdef"), (12<<20)/16) // 12 MiB: three parts
	if err := st.Put(context.Background(), "big/object.ndjson", Bytes(body)); err != nil {
		t.Fatal(err)
	}
	if n := f.requests("partNumber="); n != 3 {
		t.Errorf("UploadPart requests = %d, want 3", n)
	}
	if got := f.get(t, "big/object.ndjson"); !bytes.Equal(got, body) {
		t.Errorf("object differs: %d bytes, want %d", len(got), len(body))
	}
	// A part that keeps failing fails the upload, and the upload is aborted.
	f.mu.Lock()
	f.inject = func(r *http.Request) (int, bool) {
		return 500, r.URL.Query().Get("partNumber") == "2"
	}
	f.mu.Unlock()
	if err := st.Put(context.Background(), "big/failed.ndjson", Bytes(body)); err == nil {
		t.Fatal("upload succeeded with a failing part")
	}
	if n := f.requests("DELETE /lake/big/failed.ndjson?uploadId="); n != 1 {
		t.Errorf("AbortMultipartUpload requests = %d, want 1", n)
	}
}

// TestS3StreamedBody: an object is streamed from its Body a part at a time;
// a Body that fails part-way fails the Put, the multipart upload is
// aborted and no object appears.
func TestS3StreamedBody(t *testing.T) {
	f := newFakeS3(t)
	st, err := NewS3Store(context.Background(), S3Options{Bucket: "lake", Endpoint: f.srv.URL, PartSize: 5 << 20, MultipartThreshold: 5 << 20})
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
	if got := f.get(t, "s/ok.ndjson"); len(got) != 200*len(chunk) || !bytes.Equal(got[:len(chunk)], chunk) {
		t.Errorf("object: %d bytes, want %d", len(got), 200*len(chunk))
	}
	if n := f.requests("partNumber="); n != 3 {
		t.Errorf("UploadPart requests = %d, want 3", n)
	}
	err = st.Put(context.Background(), "s/broken.ndjson", gen(150, errors.New("encoder failed")))
	if err == nil || !strings.Contains(err.Error(), "encoder failed") {
		t.Fatalf("Put with a failing body = %v", err)
	}
	if n := f.requests("DELETE /lake/s/broken.ndjson?uploadId="); n != 1 {
		t.Errorf("AbortMultipartUpload requests = %d, want 1", n)
	}
	if keys, _ := st.List(context.Background(), "s/"); strings.Join(keys, ",") != "s/ok.ndjson" {
		t.Errorf("objects = %v", keys)
	}
}

// TestS3FaultWindow: S3 answers 503 or drops connections for a while. The
// write is retried, the ack is held until the object is stored, and the
// object is complete.
func TestS3FaultWindow(t *testing.T) {
	f := newFakeS3(t)
	var until atomic.Int64
	until.Store(time.Now().Add(1500 * time.Millisecond).UnixNano())
	var n atomic.Int64
	f.inject = func(r *http.Request) (int, bool) {
		if time.Now().UnixNano() > until.Load() {
			return 0, false
		}
		if n.Add(1)%2 == 1 {
			return 0, true // connection reset
		}
		return 503, true
	}
	st, err := NewS3Store(context.Background(), S3Options{Bucket: "lake", Endpoint: f.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newSink(t, "    format: ndjson\n", st)
	s.retryBase, s.maxElapsed = 50*time.Millisecond, 30*time.Second
	acked := make(chan error, 1)
	// The recovery listing and the write both meet the faults.
	start := time.Now()
	feed(t, s, func(err error) { acked <- err }, `{"a":1}`, `{"a":2}`)
	go s.Flush(context.Background())
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 1400*time.Millisecond {
		t.Errorf("acked after %v, inside the fault window", time.Since(start))
	}
	if got := string(f.get(t, "src+f+000000000001-000000000002.ndjson")); got != "{\"a\":1}\n{\"a\":2}\n" {
		t.Errorf("object = %q", got)
	}
	if n.Load() < 2 { // at least one reset and one 503
		t.Errorf("only %d injected failures; the window did not bite", n.Load())
	}
}

func TestS3ListAndGet(t *testing.T) {
	f := newFakeS3(t)
	st, err := NewS3Store(context.Background(), S3Options{Bucket: "lake", Prefix: "archive/", Endpoint: f.srv.URL})
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
