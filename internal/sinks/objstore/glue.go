package objstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/glue"
	gluetypes "github.com/aws/aws-sdk-go-v2/service/glue/types"

	"github.com/sluice-data/sluice/internal/config"
)

// catalog registers a Parquet sink's partitions in the Glue Data Catalog
// the first time each is written, so Athena, Spark and Redshift Spectrum
// see them without MSCK REPAIR TABLE or a crawler. Registration is
// idempotent: AlreadyExistsException counts as done.
type catalog struct {
	client   *glue.Client
	database string
	table    string
	location string // s3://bucket/prefix/
	keys     []string
	columns  []gluetypes.Column
	compress string
	mu       sync.Mutex
	known    map[string]bool
}

// newCatalogFromSettings builds the Glue client alone.
func newCatalogFromSettings(region, endpoint string) (*catalog, error) {
	opts := []func(*awsconfig.LoadOptions) error{}
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	ac, err := awsconfig.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("glue: aws config: %w", err)
	}
	client := glue.NewFromConfig(ac, func(o *glue.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	return &catalog{client: client, known: map[string]bool{}}, nil
}

func newCatalog(cfg *config.Sink) (*catalog, error) {
	region := cfg.Glue.Region
	if region == "" {
		region = cfg.Region
	}
	c, err := newCatalogFromSettings(region, cfg.Glue.Endpoint)
	if err != nil {
		return nil, err
	}
	c.database, c.table, c.compress = cfg.Glue.Database, cfg.Glue.Table, strings.ToUpper(cfg.Compression)
	c.location = cfg.URL
	if !strings.HasSuffix(c.location, "/") {
		c.location += "/"
	}
	isKey := map[string]bool{}
	for _, kv := range cfg.PartitionKeys {
		c.keys = append(c.keys, kv.Key)
		isKey[kv.Key] = true
	}
	for _, col := range cfg.Schema {
		name := col.Column
		if name == "" {
			name = col.Name
		}
		if !isKey[name] {
			c.columns = append(c.columns, gluetypes.Column{Name: aws.String(strings.ToLower(name)), Type: aws.String(hiveType(col.Type))})
		}
	}
	if cfg.ExtraColumn != "" {
		c.columns = append(c.columns, gluetypes.Column{Name: aws.String(cfg.ExtraColumn), Type: aws.String("string")})
	}
	return c, nil
}

func hiveType(t string) string {
	switch t {
	case "int64":
		return "bigint"
	case "double":
		return "double"
	case "bool":
		return "boolean"
	case "timestamp_ms", "timestamp_us":
		return "timestamp"
	case "date":
		return "date"
	}
	return "string"
}

// values reads the partition values back from a Hive-style prefix
// (k1=v1/k2=v2/), undoing the escaping the sink applied.
func (c *catalog) values(prefix string) ([]string, error) {
	segs := strings.Split(strings.TrimSuffix(prefix, "/"), "/")
	if len(segs) != len(c.keys) {
		return nil, fmt.Errorf("prefix %q does not hold the %d partition keys", prefix, len(c.keys))
	}
	vals := make([]string, len(segs))
	for i, seg := range segs {
		k, v, ok := strings.Cut(seg, "=")
		if !ok || k != c.keys[i] {
			return nil, fmt.Errorf("prefix %q: segment %q is not %s=value", prefix, seg, c.keys[i])
		}
		u, err := url.PathUnescape(v)
		if err != nil {
			return nil, err
		}
		vals[i] = u
	}
	return vals, nil
}

// register adds the partition at prefix once per process. Calls are
// serialised: two flush workers writing the first objects of one partition
// must not both register it, and only a partition's first object calls
// Glue at all.
func (c *catalog) register(ctx context.Context, prefix string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known[prefix] {
		return nil
	}
	vals, err := c.values(prefix)
	if err != nil {
		return err
	}
	in := &glue.BatchCreatePartitionInput{
		DatabaseName: aws.String(c.database),
		TableName:    aws.String(c.table),
		PartitionInputList: []gluetypes.PartitionInput{{
			Values: vals,
			StorageDescriptor: &gluetypes.StorageDescriptor{
				Columns:      c.columns,
				Location:     aws.String(c.location + prefix),
				InputFormat:  aws.String("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"),
				OutputFormat: aws.String("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"),
				SerdeInfo: &gluetypes.SerDeInfo{
					SerializationLibrary: aws.String("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"),
				},
				Parameters: map[string]string{"classification": "parquet", "parquet.compression": c.compress},
			},
		}},
	}
	out, err := c.client.BatchCreatePartition(ctx, in)
	if err != nil {
		return fmt.Errorf("glue BatchCreatePartition %s.%s %v: %w", c.database, c.table, vals, err)
	}
	for _, e := range out.Errors {
		if e.ErrorDetail != nil && aws.ToString(e.ErrorDetail.ErrorCode) == "AlreadyExistsException" {
			continue
		}
		msg := "unknown error"
		if e.ErrorDetail != nil {
			msg = aws.ToString(e.ErrorDetail.ErrorCode) + ": " + aws.ToString(e.ErrorDetail.ErrorMessage)
		}
		return errors.New("glue BatchCreatePartition " + c.database + "." + c.table + " " + strings.Join(e.PartitionValues, "/") + ": " + msg)
	}
	c.known[prefix] = true
	return nil
}
