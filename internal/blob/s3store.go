package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluice-data/sluice/internal/template"
)

// S3Store writes objects to Amazon S3 or an S3-compatible server through
// the SDK's transfer manager: one PUT for small objects, a multipart upload
// above MultipartThreshold (aborted if any part fails, so no orphaned parts
// are billed). The SDK retries throttling and 5xx with backoff and jitter;
// the sink retries the whole object on top of that. An S3 PUT is atomic
// and durable when it returns.
type S3Store struct {
	client *s3.Client
	tm     *transfermanager.Client
	bucket string
	prefix string
	kms    string
	class  string
}

// S3Options configure an S3Store.
type S3Options struct {
	Bucket, Prefix string
	Region         string
	Endpoint       string // override; path-style addressing is used with it
	KMSKeyID       string
	StorageClass   string
	// PartSize and MultipartThreshold tune multipart uploads (both 8 MiB by
	// default; S3's minimum part is 5 MiB).
	PartSize, MultipartThreshold int64
	// Conns is how many requests the caller may have in flight at once:
	// the client keeps that many idle connections, so a busy sink does
	// not open (and handshake) a new one for every request past the SDK's
	// default of 10. 0 keeps the default.
	Conns int
}

// NewS3Store builds a store with the default credential chain (environment,
// shared config, ECS task role, IMDS).
func NewS3Store(ctx context.Context, o S3Options) (*S3Store, error) {
	region := o.Region
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	if region == "" {
		region = "us-east-1"
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return nil, fmt.Errorf("s3://%s: aws config: %w", o.Bucket, err)
	}
	endpoint := o.Endpoint
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL_S3")
	}
	// The loaded client carries settings from the environment (a CA
	// bundle): add to them rather than replace the client.
	if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok && o.Conns > awshttp.DefaultHTTPTransportMaxIdleConnsPerHost {
		cfg.HTTPClient = bc.WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConnsPerHost = o.Conns
			t.MaxIdleConns = max(t.MaxIdleConns, o.Conns)
		})
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		// Sluice logs JSON through zap; the SDK's plain-text notices about
		// skipped response checksums would break that.
		so.DisableLogOutputChecksumValidationSkipped = true
		if endpoint != "" {
			so.BaseEndpoint = aws.String(endpoint)
			so.UsePathStyle = true
			// S3-compatible servers often do not read aws-chunked checksum
			// trailers; send checksums only where the API requires them.
			so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		}
	})
	part, threshold := o.PartSize, o.MultipartThreshold
	if part == 0 {
		part = 8 << 20
	}
	if threshold == 0 {
		threshold = 8 << 20
	}
	tm := transfermanager.New(client, func(to *transfermanager.Options) {
		to.PartSizeBytes = part
		to.MultipartUploadThreshold = threshold
		// Two parts in flight per object: part buffers stay a bounded
		// share of memory (threshold + (2+1) × part size per object), and
		// the sink starts another object only while the bytes its writes
		// hold fit its max_buffered_bytes.
		to.Concurrency = 2
	})
	return &S3Store{client: client, tm: tm, bucket: o.Bucket, prefix: o.Prefix, kms: o.KMSKeyID, class: o.StorageClass}, nil
}

// Location returns s3://bucket/prefix.
func (s *S3Store) Location() string { return "s3://" + s.bucket + "/" + s.prefix }

// Put streams body to key under the store's prefix through a pipe: the
// transfer manager reads it a part at a time, so an object of any size
// costs the part buffers, not its whole size. A key that is not a clean
// relative path (CheckKey) is refused: S3 does not resolve "..", but
// S3-compatible servers that store objects as files, proxies and readers
// that clean URL paths do.
func (s *S3Store) Put(ctx context.Context, key string, body Body) error {
	if err := template.CheckKey(key); err != nil {
		return fmt.Errorf("put s3://%s/%s%s: %w", s.bucket, s.prefix, key, err)
	}
	pr, pw := io.Pipe()
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		pw.CloseWithError(writeBody(pw, body))
	}()
	in := &transfermanager.UploadObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
		Body:   pr,
	}
	if ct := contentType(key); ct != "" {
		in.ContentType = aws.String(ct)
	}
	if s.kms != "" {
		in.ServerSideEncryption = tmtypes.ServerSideEncryptionAwsKms
		in.SSEKMSKeyID = aws.String(s.kms)
	}
	if s.class != "" {
		in.StorageClass = tmtypes.StorageClass(s.class)
	}
	_, err := s.tm.UploadObject(ctx, in)
	// If the upload stopped reading (it failed), unblock the writer; then
	// wait for it, since body reads the caller's buffers.
	pr.CloseWithError(errUploadEnded)
	<-produced
	if err != nil {
		return fmt.Errorf("put s3://%s/%s%s: %w", s.bucket, s.prefix, key, err)
	}
	return nil
}

var errUploadEnded = errors.New("upload ended")

func contentType(key string) string {
	switch {
	case strings.HasSuffix(key, ".parquet"):
		return "application/vnd.apache.parquet"
	case strings.HasSuffix(key, ".gz"):
		return "application/gzip"
	case strings.HasSuffix(key, ".ndjson"):
		return "application/x-ndjson"
	case strings.HasSuffix(key, ".csv"):
		return "text/csv"
	}
	return ""
}

// List returns the keys under prefix (relative to the store's prefix),
// sorted, following every page.
func (s *S3Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := template.CheckPrefix(prefix); err != nil {
		return nil, fmt.Errorf("list s3://%s/%s%s: %w", s.bucket, s.prefix, prefix, err)
	}
	var keys []string
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix + prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s%s: %w", s.bucket, s.prefix, prefix, err)
		}
		for _, o := range page.Contents {
			k := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if i := strings.LastIndexByte(k, '/'); strings.HasPrefix(k[i+1:], ".") {
				continue
			}
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// Get downloads one object.
func (s *S3Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := template.CheckKey(key); err != nil {
		return nil, fmt.Errorf("get s3://%s/%s%s: %w", s.bucket, s.prefix, key, err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key)})
	if err != nil {
		return nil, fmt.Errorf("get s3://%s/%s%s: %w", s.bucket, s.prefix, key, err)
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}
