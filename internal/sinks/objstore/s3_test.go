package objstore

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluice-data/sluice/internal/blob"
	"github.com/sluice-data/sluice/internal/testutil"
)

func TestS3SinkWritesPartitionedParquet(t *testing.T) {
	f := testutil.NewS3Fake(t)
	st, err := blob.NewS3Store(context.Background(), blob.S3Options{Bucket: "lake", Prefix: "app-logs/", Endpoint: f.URL})
	if err != nil {
		t.Fatal(err)
	}
	// newSink opens a file store; point this sink at S3 instead.
	s, _ := newSink(t, typedSchema+"    endpoint: "+f.URL+"\n    region: ap-northeast-2\n", nil, func(s *Sink) { s.store = st })
	feed(t, s, nil,
		`{"project_id":"P-1","ts":1730617200,"n":1}`,
		`{"project_id":"P-2","ts":1730620800,"n":2}`,
		`{"project_id":"P-1","ts":1730617201,"n":3}`)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Listing with a delimiter shows the Hive partitions.
	out, err := f.Client(t).ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("lake"), Prefix: aws.String("app-logs/"), Delimiter: aws.String("/")})
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
	body := f.Get(t, "app-logs/project_id=P-1/hour=07/src+f+000000000001-000000000003.parquet")
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

// TestS3FaultWindow: S3 answers 503 or drops connections for a while. The
// write is retried, the ack is held until the object is stored, and the
// object is complete.
func TestS3FaultWindow(t *testing.T) {
	f := testutil.NewS3Fake(t)
	var until atomic.Int64
	until.Store(time.Now().Add(1500 * time.Millisecond).UnixNano())
	var n atomic.Int64
	f.Inject(func(r *http.Request) (int, bool) {
		if time.Now().UnixNano() > until.Load() {
			return 0, false
		}
		if n.Add(1)%2 == 1 {
			return 0, true // connection reset
		}
		return 503, true
	})
	st, err := blob.NewS3Store(context.Background(), blob.S3Options{Bucket: "lake", Endpoint: f.URL})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newSink(t, "    format: ndjson\n", st, func(s *Sink) { s.backoff.Base, s.backoff.MaxElapsed = 50*time.Millisecond, 30*time.Second })
	acked := make(chan error, 1)
	// The recovery listing and the write both meet the faults.
	feed(t, s, func(err error) { acked <- err }, `{"a":1}`, `{"a":2}`)
	go s.Flush(context.Background())
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	// S3 stored nothing before the window closed, so the ack cannot have
	// come earlier.
	if end := time.Unix(0, until.Load()); time.Now().Before(end) {
		t.Errorf("acked %v before the fault window closed", time.Until(end))
	}
	if got := string(f.Get(t, "src+f+000000000001-000000000002.ndjson")); got != "{\"a\":1}\n{\"a\":2}\n" {
		t.Errorf("object = %q", got)
	}
	if n.Load() < 2 { // at least one reset and one 503
		t.Errorf("only %d injected failures; the window did not bite", n.Load())
	}
}
