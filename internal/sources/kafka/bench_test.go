package kafka

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/testutil"
)

// BenchmarkReplayRead reads 200,000 bench records (about 260 bytes each)
// from a keyed 8-partition kfake topic through the source alone, as the
// pipeline does (batches of 1,024, each acked at once): what the source and
// the client cost per record, and how fast they can feed the pipeline.
func BenchmarkReplayRead(b *testing.B) {
	const n = 200000
	var buf bytes.Buffer
	if err := testutil.WriteAppLogs(&buf, n); err != nil {
		b.Fatal(err)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(8, "logs"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerBatchMaxBytes(4<<20))
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2024, 11, 3, 0, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for i, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		recs = append(recs, &kgo.Record{Topic: "logs", Key: []byte(fmt.Sprint(i % 20)), Value: line, Timestamp: at})
	}
	for i := 0; i < len(recs); i += 20000 {
		if err := cl.ProduceSync(context.Background(), recs[i:min(i+20000, len(recs))]...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	cl.Close()
	cfg := &config.Source{Name: "k", Type: "kafka", BatchSize: 1024, MaxPending: 100000,
		Kafka: config.Kafka{Brokers: c.ListenAddrs(), Topics: []string{"logs"}, Group: "bench"}}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		s, err := NewReplay(cfg, at.Add(-time.Hour), at.Add(time.Hour), zap.NewNop())
		if err != nil {
			b.Fatal(err)
		}
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
		s.Close(context.Background())
		if got != n {
			b.Fatalf("read %d records, want %d", got, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
