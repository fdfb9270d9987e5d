// Package blob holds the object stores Sluice reads and writes: a local
// directory (FileStore) and Amazon S3 or an S3-compatible server (S3Store).
// Both the object-store sink and the archive source use them; neither
// knows the other.
package blob

import (
	"context"
	"fmt"
	"strings"

	"github.com/sluice-data/sluice/internal/config"
)

// OpenStore opens the store at url (file: or s3://); o supplies the S3
// settings other than bucket and prefix.
func OpenStore(url string, o S3Options) (Lister, error) {
	scheme, loc, err := config.ParseObjectURL(url)
	if err != nil {
		return nil, err
	}
	switch scheme {
	case "file":
		return NewFileStore(loc)
	case "s3":
		bucket, prefix, _ := strings.Cut(loc, "/")
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		o.Bucket, o.Prefix = bucket, prefix
		return NewS3Store(context.Background(), o)
	}
	return nil, fmt.Errorf("no store for %s", url)
}
