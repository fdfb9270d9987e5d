package configsrc

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/sluice-data/sluice/internal/testutil"
)

func awsTestEnv(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
}

func TestParse(t *testing.T) {
	tests := []struct {
		give    string
		want    Ref
		wantErr string
	}{
		{give: "configs/local.yaml", want: Ref{Raw: "configs/local.yaml", Kind: File, Path: "configs/local.yaml"}},
		{give: "s3://b/conf/sluice.yaml", want: Ref{Raw: "s3://b/conf/sluice.yaml", Kind: S3, Bucket: "b", Path: "conf/sluice.yaml"}},
		{give: "ssm:/sluice/prod/config", want: Ref{Raw: "ssm:/sluice/prod/config", Kind: SSM, Path: "/sluice/prod/config"}},
		{give: "ssm:plain", want: Ref{Raw: "ssm:plain", Kind: SSM, Path: "plain"}},
		{give: "s3://b", wantErr: "want s3://bucket/key"},
		{give: "s3://b/dir/", wantErr: "want s3://bucket/key"},
		{give: "s3:///key", wantErr: "want s3://bucket/key"},
		{give: "ssm:", wantErr: "want ssm:/parameter/name"},
		{give: "", wantErr: "empty"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.give)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%q) error %v, want %q", tt.give, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.give, got, err, tt.want)
		}
	}
}

func TestFetchFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("service: {}\n"), 0o644)
	f, err := New(context.Background(), p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d1, err := f.Fetch(context.Background())
	if err != nil || string(d1.Data) != "service: {}\n" || d1.Name != p {
		t.Fatalf("Fetch = %+v, %v", d1, err)
	}
	os.WriteFile(p, []byte("service: {name: x}\n"), 0o644)
	d2, _ := f.Fetch(context.Background())
	if d2.Version == d1.Version {
		t.Error("a changed file kept its version")
	}
	os.WriteFile(p, bytes.Repeat([]byte("#"), MaxSize+1), 0o644)
	if _, err := f.Fetch(context.Background()); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a 4 MiB + 1 file: %v, want ErrTooLarge", err)
	}
}

func TestFetchS3(t *testing.T) {
	awsTestEnv(t)
	backend := s3mem.New()
	backend.CreateBucket("conf")
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()
	put := func(body string) {
		if _, err := backend.PutObject("conf", "prod/sluice.yaml", nil, strings.NewReader(body), int64(len(body)), nil); err != nil {
			t.Fatal(err)
		}
	}
	put("service: {name: one}\n")
	f, err := New(context.Background(), "s3://conf/prod/sluice.yaml", Options{S3Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	d1, err := f.Fetch(context.Background())
	if err != nil || string(d1.Data) != "service: {name: one}\n" || d1.Version == "" {
		t.Fatalf("Fetch = %+v, %v", d1, err)
	}
	d1b, _ := f.Fetch(context.Background())
	if d1b.Version != d1.Version {
		t.Errorf("the same object read twice: versions %q and %q", d1.Version, d1b.Version)
	}
	put("service: {name: two}\n")
	d2, err := f.Fetch(context.Background())
	if err != nil || string(d2.Data) != "service: {name: two}\n" || d2.Version == d1.Version {
		t.Errorf("after an overwrite: %+v, %v (was version %q)", d2, err, d1.Version)
	}
	missing, _ := New(context.Background(), "s3://conf/none.yaml", Options{S3Endpoint: srv.URL})
	if _, err := missing.Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "s3://conf/none.yaml") {
		t.Errorf("a missing object: %v", err)
	}
}

func TestFetchSSM(t *testing.T) {
	awsTestEnv(t)
	fake := testutil.NewSSMFake(t)
	fake.Put("/sluice/prod", "SecureString", "service: {name: secret}\n")
	f, err := New(context.Background(), "ssm:/sluice/prod", Options{SSMEndpoint: fake.Server.URL})
	if err != nil {
		t.Fatal(err)
	}
	d1, err := f.Fetch(context.Background())
	if err != nil || string(d1.Data) != "service: {name: secret}\n" || d1.Version != "1" {
		t.Fatalf("Fetch = %+v, %v", d1, err)
	}
	fake.Put("/sluice/prod", "SecureString", "service: {name: rotated}\n")
	d2, err := f.Fetch(context.Background())
	if err != nil || string(d2.Data) != "service: {name: rotated}\n" || d2.Version != "2" {
		t.Errorf("after a new version: %+v, %v", d2, err)
	}
	missing, _ := New(context.Background(), "ssm:/nope", Options{SSMEndpoint: fake.Server.URL})
	if _, err := missing.Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "ssm:/nope") {
		t.Errorf("a missing parameter: %v", err)
	}
	for _, c := range fake.Calls() {
		if c != "AmazonSSM.GetParameter" {
			t.Errorf("unexpected SSM call %s", c)
		}
	}
}
