// Package configsrc fetches the configuration document that -c names: a
// local path, an S3 object (s3://bucket/key) or an SSM Parameter Store
// parameter (ssm:/name, SecureString decrypted). It only fetches bytes;
// internal/config parses them. Each fetch carries a version (the object's
// ETag, the parameter's version, a hash of a file's bytes) so that a
// reload can tell a changed document from the same one read again.
package configsrc

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// MaxSize bounds a configuration document: a config is a few KB, and a
// misnamed -c pointing at a data object must not be read whole.
const MaxSize = 4 << 20

// ErrTooLarge is returned for a document over MaxSize.
var ErrTooLarge = errors.New("configuration larger than 4 MiB")

// Doc is one fetched configuration document.
type Doc struct {
	// Name is what errors call the document: the path, s3://bucket/key or
	// ssm:/name, as given to -c.
	Name string
	Data []byte
	// Version identifies this content at its origin: the S3 ETag, the SSM
	// parameter version, or for a file the SHA-256 of its bytes.
	Version string
}

// Hash is the SHA-256 of the document's bytes, hex: the config hash the
// service logs and exposes.
func (d Doc) Hash() string {
	h := sha256.Sum256(d.Data)
	return hex.EncodeToString(h[:])
}

// Kind says where a reference points.
type Kind int

// The kinds of reference -c accepts.
const (
	File Kind = iota
	S3
	SSM
)

// Ref is a parsed -c reference.
type Ref struct {
	Raw  string
	Kind Kind
	// Path is the file path (File), the parameter name (SSM) or the key (S3).
	Path   string
	Bucket string // S3 only
}

// Remote reports whether the document is fetched over the network, so a
// reload polls it instead of watching a file.
func (r Ref) Remote() bool { return r.Kind != File }

// Parse reads a -c reference: s3://bucket/key, ssm:/name (or ssm:name for
// a parameter outside a hierarchy), or a local path.
func Parse(raw string) (Ref, error) {
	switch {
	case strings.HasPrefix(raw, "s3://"):
		rest := strings.TrimPrefix(raw, "s3://")
		bucket, key, ok := strings.Cut(rest, "/")
		if !ok || bucket == "" || key == "" || strings.HasSuffix(key, "/") {
			return Ref{}, fmt.Errorf("%s: want s3://bucket/key of one object", raw)
		}
		return Ref{Raw: raw, Kind: S3, Bucket: bucket, Path: key}, nil
	case strings.HasPrefix(raw, "ssm:"):
		name := strings.TrimPrefix(raw, "ssm:")
		if name == "" || name == "/" {
			return Ref{}, fmt.Errorf("%s: want ssm:/parameter/name", raw)
		}
		return Ref{Raw: raw, Kind: SSM, Path: name}, nil
	case raw == "":
		return Ref{}, errors.New("empty configuration reference")
	}
	return Ref{Raw: raw, Kind: File, Path: raw}, nil
}

// Fetcher fetches one reference. It is safe for concurrent use; build it
// once and fetch again on every reload.
type Fetcher struct {
	ref Ref
	s3  *s3.Client
	ssm *ssm.Client
}

// Options override how a Fetcher reaches AWS; the zero value uses the
// default credential chain, AWS_REGION, and AWS_ENDPOINT_URL_S3 /
// AWS_ENDPOINT_URL_SSM for emulators.
type Options struct {
	Region      string
	S3Endpoint  string
	SSMEndpoint string
}

// New builds a Fetcher for raw. Nothing is fetched yet.
func New(ctx context.Context, raw string, o Options) (*Fetcher, error) {
	ref, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	f := &Fetcher{ref: ref}
	if ref.Kind == File {
		return f, nil
	}
	region := cmp.Or(o.Region, os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION"), "us-east-1")
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return nil, fmt.Errorf("%s: aws config: %w", raw, err)
	}
	switch ref.Kind {
	case S3:
		endpoint := cmp.Or(o.S3Endpoint, os.Getenv("AWS_ENDPOINT_URL_S3"))
		f.s3 = s3.NewFromConfig(cfg, func(so *s3.Options) {
			so.DisableLogOutputChecksumValidationSkipped = true
			if endpoint != "" {
				so.BaseEndpoint = aws.String(endpoint)
				so.UsePathStyle = true
			}
		})
	case SSM:
		endpoint := cmp.Or(o.SSMEndpoint, os.Getenv("AWS_ENDPOINT_URL_SSM"))
		f.ssm = ssm.NewFromConfig(cfg, func(so *ssm.Options) {
			if endpoint != "" {
				so.BaseEndpoint = aws.String(endpoint)
			}
		})
	}
	return f, nil
}

// Ref returns the parsed reference.
func (f *Fetcher) Ref() Ref { return f.ref }

// Fetch reads the document now.
func (f *Fetcher) Fetch(ctx context.Context) (Doc, error) {
	doc := Doc{Name: f.ref.Raw}
	switch f.ref.Kind {
	case File:
		fh, err := os.Open(f.ref.Path)
		if err != nil {
			return doc, err
		}
		defer fh.Close()
		if doc.Data, err = readLimited(fh); err != nil {
			return doc, fmt.Errorf("%s: %w", f.ref.Raw, err)
		}
		doc.Version = doc.Hash()
	case S3:
		out, err := f.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(f.ref.Bucket), Key: aws.String(f.ref.Path)})
		if err != nil {
			return doc, fmt.Errorf("get %s: %w", f.ref.Raw, err)
		}
		defer out.Body.Close()
		if doc.Data, err = readLimited(out.Body); err != nil {
			return doc, fmt.Errorf("get %s: %w", f.ref.Raw, err)
		}
		doc.Version = strings.Trim(aws.ToString(out.ETag), `"`)
		if doc.Version == "" {
			doc.Version = doc.Hash()
		}
	case SSM:
		out, err := f.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(f.ref.Path), WithDecryption: aws.Bool(true)})
		if err != nil {
			return doc, fmt.Errorf("get parameter %s: %w", f.ref.Raw, err)
		}
		if out.Parameter == nil || out.Parameter.Value == nil {
			return doc, fmt.Errorf("get parameter %s: no value", f.ref.Raw)
		}
		doc.Data = []byte(aws.ToString(out.Parameter.Value))
		if len(doc.Data) > MaxSize {
			return doc, fmt.Errorf("get parameter %s: %w", f.ref.Raw, ErrTooLarge)
		}
		doc.Version = fmt.Sprint(out.Parameter.Version)
	}
	return doc, nil
}

func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSize {
		return nil, ErrTooLarge
	}
	return b, nil
}
