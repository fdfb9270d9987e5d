package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestQueuedRecordsOfAPausedPartition: the source drains whole fetches
// into its queue, so records of a partition that reaches its pending cap
// can be queued when it pauses. They wait, and the other partition's
// records go out meanwhile; once acks resume the partition, its queued
// records go out in offset order even though no fetch brings anything new
// (the producer is quiet, and the client fetched them already).
func TestQueuedRecordsOfAPausedPartition(t *testing.T) {
	c := cluster(t, 2)
	produce(t, c, 1000, time.Now())                              // 500 per partition, well inside one fetch
	s, err := New(sourceConfig(c, "gq", 100), nil, zap.NewNop()) // batch_size and max_pending 100
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	next := map[string]int64{}
	var held []func(error)
	for seen := 0; seen < 1000; {
		b, ack, err := s.ReadBatch(ctx)
		if err != nil {
			t.Fatalf("after %d of 1000 records: %v", seen, err)
		}
		parts := map[string]bool{}
		for _, m := range b.Messages {
			if m.Pos.Offset != next[m.Pos.Partition] {
				t.Fatalf("%s: offset %d, want %d", m.Pos.Partition, m.Pos.Offset, next[m.Pos.Partition])
			}
			next[m.Pos.Partition]++
			parts[m.Pos.Partition] = true
		}
		seen += len(b.Messages)
		held = append(held, ack)
		if len(parts) == 1 && seen < 200 {
			// The first batch of each partition reaches its cap: hold the
			// acks until both have been read from, which needs the
			// second partition's records to pass the first's queued ones.
			continue
		}
		for _, a := range held {
			go func() {
				time.Sleep(20 * time.Millisecond)
				a(nil)
			}()
		}
		held = nil
	}
	if fmt.Sprint(next) != "map[logs/0:500 logs/1:500]" {
		t.Errorf("read %v", next)
	}
}
