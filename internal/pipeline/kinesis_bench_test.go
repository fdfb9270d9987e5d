package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	ksrc "github.com/sluice-data/sluice/internal/sources/kinesis"
	"github.com/sluice-data/sluice/internal/testutil"
)

// BenchmarkKinesisToParquet reads 50,000 bench records from a 4-shard
// kinesalite stream into the BenchmarkStores lake (replay path), and, for
// comparison, the same stream through the source alone: the difference
// says whether the emulator or the pipeline bounds the rate.
func BenchmarkKinesisToParquet(b *testing.B) {
	kin, ddb := os.Getenv("SLUICE_TEST_KINESIS_ENDPOINT"), os.Getenv("SLUICE_TEST_DYNAMODB_ENDPOINT")
	if kin == "" {
		b.Skip("SLUICE_TEST_KINESIS_ENDPOINT unset: run under test/run.sh's emulators")
	}
	b.Setenv("AWS_ACCESS_KEY_ID", "test")
	b.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	const n = 50000
	var buf bytes.Buffer
	testutil.WriteAppLogs(&buf, n)
	cfg, _ := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion("us-east-1"))
	kc := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(kin) })
	stream := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	kc.CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(4)})
	for range 200 {
		out, err := kc.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	from := time.Now().Add(-time.Minute)
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	for i := 0; i < len(lines); i += 500 {
		var entries []ktypes.PutRecordsRequestEntry
		for j := i; j < min(i+500, len(lines)); j++ {
			entries = append(entries, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(j % 97)), Data: lines[j]})
		}
		if _, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries}); err != nil {
			b.Fatal(err)
		}
	}
	to := time.Now().Add(time.Minute)
	src := &config.Source{Name: "app", Type: "kinesis", BatchSize: 1024, MaxPending: 1000000,
		Kinesis: config.Kinesis{Stream: stream, Region: "us-east-1", Endpoint: kin, DynamoDBEndpoint: ddb, LeaseTable: stream, Start: "trim_horizon"}}
	b.Run("source-only", func(b *testing.B) {
		for b.Loop() {
			s, err := ksrc.NewReplay(src, from, to, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			ran := make(chan error, 1)
			go func() { ran <- s.Run(context.Background()) }()
			got := 0
			for {
				bt, ack, err := s.ReadBatch(context.Background())
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				got += len(bt.Messages)
				ack(nil)
			}
			if err := <-ran; err != nil {
				b.Fatal(err)
			}
			if got != n {
				b.Fatalf("read %d", got)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("to-parquet", func(b *testing.B) {
		dir := b.TempDir()
		for b.Loop() {
			run := benchRuns.Add(1)
			runYAML(b, fmt.Sprintf(`
service: {http_listen: "", error_sink: lake}
sources: [{name: app, type: kinesis, format: app_log, kinesis: {stream: %s, region: us-east-1, endpoint: "%s", dynamodb_endpoint: "%s", lease_table: %s}}]
routes: [{name: r, from: [app], to: [lake]}]
sinks:
  - name: lake
    type: s3
    url: "file:%s/%d/"
    format: parquet
`+seedKeys+`
      - {name: event_timestamp, type: int64}
      - {name: level, type: string}
      - {name: message, type: string}
`, stream, kin, ddb, stream, dir, run), Replay(from, to))
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}

// BenchmarkKinesisToS3Latency reads 50,000 bench records from an 8-shard
// kinesalite stream (partition keys spread, so every lake partition gets
// an object per shard: about 11,000 small objects) into the seed-keyed
// Parquet lake on S3 (gofakes3), with 25 ms added to every S3 request, as
// a store in another region or a slow S3-compatible server would. It
// reports records/s per shard and the most PUTs the store saw at once,
// for the sink's concurrency at 8 (what the fixed pool of flush workers
// was), at its default and above it.
func BenchmarkKinesisToS3Latency(b *testing.B) {
	kin, ddb := os.Getenv("SLUICE_TEST_KINESIS_ENDPOINT"), os.Getenv("SLUICE_TEST_DYNAMODB_ENDPOINT")
	if kin == "" {
		b.Skip("SLUICE_TEST_KINESIS_ENDPOINT unset: run under test/run.sh's emulators")
	}
	const n, shards, latency = 50000, 8, 25 * time.Millisecond
	stream, from, to := benchStream(b, kin, shards, n)
	for _, conc := range []string{"8", "default", "128"} {
		b.Run("concurrency="+conc, func(b *testing.B) {
			set := ""
			if conc != "default" {
				set = "\n    concurrency: " + conc
			}
			// A fake of its own: gofakes3 lists a prefix by scanning the
			// whole bucket, so the objects of earlier runs would slow the
			// recovery LISTs.
			s3 := testutil.NewS3Fake(b)
			var puts, peak atomic.Int64
			s3.Inject(func(r *http.Request) (int, bool) {
				if r.Method == http.MethodPut {
					for now, was := puts.Add(1), peak.Load(); now > was && !peak.CompareAndSwap(was, now); was = peak.Load() {
					}
					defer puts.Add(-1)
				}
				time.Sleep(latency)
				return 0, false
			})
			for b.Loop() {
				run := benchRuns.Add(1)
				sum := runYAML(b, fmt.Sprintf(`
service: {http_listen: "", error_sink: lake}
sources: [{name: app, type: kinesis, format: app_log, kinesis: {stream: %s, region: us-east-1, endpoint: "%s", dynamodb_endpoint: "%s", lease_table: %s}}]
routes: [{name: r, from: [app], to: [lake]}]
sinks:
  - name: lake
    type: s3
    url: s3://lake/app/%d/
    endpoint: %s%s
    format: parquet
`+seedKeys+`
      - {name: event_timestamp, type: int64}
      - {name: level, type: string}
      - {name: message, type: string}
`, stream, kin, ddb, stream, run, s3.URL, set), Replay(from, to))
				if sum.Sinks[0].Written != n {
					b.Fatalf("wrote %d records, want %d", sum.Sinks[0].Written, n)
				}
				b.ReportMetric(float64(sum.Sinks[0].Objects), "objects")
			}
			rate := float64(n) * float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(rate, "records/s")
			b.ReportMetric(rate/shards, "records/s/shard")
			b.ReportMetric(float64(peak.Load()), "max-puts-at-once")
		})
	}
}

// benchStream creates a stream of the given shards in kinesalite and puts
// n bench records on it, partition keys spread over 97 values; it returns
// the stream and a time range that holds every record.
func benchStream(b *testing.B, endpoint string, shards int32, n int) (string, time.Time, time.Time) {
	b.Setenv("AWS_ACCESS_KEY_ID", "test")
	b.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	var buf bytes.Buffer
	if err := testutil.WriteAppLogs(&buf, n); err != nil {
		b.Fatal(err)
	}
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion("us-east-1"))
	if err != nil {
		b.Fatal(err)
	}
	kc := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(endpoint) })
	stream := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	if _, err := kc.CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(shards)}); err != nil {
		b.Fatal(err)
	}
	for range 200 {
		out, err := kc.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	from := time.Now().Add(-time.Minute)
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	for i := 0; i < len(lines); i += 500 {
		var entries []ktypes.PutRecordsRequestEntry
		for j := i; j < min(i+500, len(lines)); j++ {
			entries = append(entries, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(j % 97)), Data: lines[j]})
		}
		if _, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries}); err != nil {
			b.Fatal(err)
		}
	}
	return stream, from, time.Now().Add(time.Minute)
}
