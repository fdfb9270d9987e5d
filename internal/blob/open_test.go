package blob

import (
	"context"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/internal/testutil"
)

// TestOpenStore: a URL opens the store it names, rooted where it says; an
// s3:// prefix without a trailing slash still names a folder.
func TestOpenStore(t *testing.T) {
	f := testutil.NewS3Fake(t)
	dir := t.TempDir()
	tests := []struct {
		url, location string
	}{
		{"file:" + dir + "/lake", dir + "/lake"},
		{"file://" + dir + "/lake", dir + "/lake"},
		{"s3://lake", "s3://lake/"},
		{"s3://lake/archive", "s3://lake/archive/"},
		{"s3://lake/archive/", "s3://lake/archive/"},
	}
	for _, tt := range tests {
		st, err := OpenStore(tt.url, S3Options{Endpoint: f.URL})
		if err != nil {
			t.Fatalf("OpenStore(%s): %v", tt.url, err)
		}
		if st.Location() != tt.location {
			t.Errorf("OpenStore(%s).Location() = %s, want %s", tt.url, st.Location(), tt.location)
		}
		if err := st.Put(context.Background(), "k/x.ndjson", Bytes([]byte("x"))); err != nil {
			t.Fatalf("%s: %v", tt.url, err)
		}
		if got, err := st.Get(context.Background(), "k/x.ndjson"); err != nil || string(got) != "x" {
			t.Errorf("%s: Get = %q, %v", tt.url, got, err)
		}
	}
	if got := f.Keys(t); strings.Join(got, ",") != "archive/k/x.ndjson,k/x.ndjson" {
		t.Errorf("bucket keys = %v", got)
	}
	for _, url := range []string{"http://x/", "s3://Lake/", "file:"} {
		if _, err := OpenStore(url, S3Options{}); err == nil {
			t.Errorf("OpenStore(%s) opened a store", url)
		}
	}
}
