package testutil

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3Fake is gofakes3 behind httptest with one bucket, "lake": a request
// log, and a hook that may answer a request instead of the fake (to inject
// failures). It sets fake credentials in the test's environment, so the
// SDK's default chain finds them and nothing else.
type S3Fake struct {
	// URL is the endpoint to give an S3 client or store.
	URL string

	mu     sync.Mutex
	log    []string // "METHOD /path?query" of each request
	inject func(r *http.Request) (status int, handled bool)
}

// TB is the part of testing.TB the fakes use; this package is linked into
// tools too, which should not import testing.
type TB interface {
	Helper()
	Setenv(key, value string)
	TempDir() string
	Cleanup(func())
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// NewS3Fake starts a fake; it stops when the test ends.
func NewS3Fake(t TB) *S3Fake {
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
	f := &S3Fake{}
	h := gofakes3.New(backend).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// Inject sets the hook that sees every request first: when it returns
// handled, the fake answers status instead (0 drops the connection). nil
// removes it.
func (f *S3Fake) Inject(hook func(r *http.Request) (status int, handled bool)) {
	f.mu.Lock()
	f.inject = hook
	f.mu.Unlock()
}

// Requests counts the requests whose "METHOD /path?query" contains substr.
func (f *S3Fake) Requests(substr string) int {
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

// Client returns an S3 client of the fake.
func (f *S3Fake) Client(t TB) *s3.Client {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(f.URL)
		o.UsePathStyle = true
		o.DisableLogOutputChecksumValidationSkipped = true
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})
}

// Get returns an object of the bucket.
func (f *S3Fake) Get(t TB, key string) []byte {
	t.Helper()
	out, err := f.Client(t).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("lake"), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	return b
}

// Keys returns every key of the bucket, sorted.
func (f *S3Fake) Keys(t TB) []string {
	t.Helper()
	out, err := f.Client(t).ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("lake")})
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
