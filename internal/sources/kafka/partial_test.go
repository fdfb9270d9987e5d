package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestPartialBatchAndShutdown: with fewer records than batch_size waiting
// and the producer quiet, ReadBatch hands on what there is instead of
// waiting for a full batch, and a read waiting for more ends when its
// context does.
func TestPartialBatchAndShutdown(t *testing.T) {
	c := cluster(t, 1)
	produce(t, c, 150, time.Now())
	s, err := New(sourceConfig(c, "gp", 0), nil, zap.NewNop()) // batch_size 100
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	seen := 0
	var sizes []int
	for seen < 150 {
		b, ack, err := s.ReadBatch(ctx)
		if err != nil {
			t.Fatalf("after %d of 150 records (batches %v): %v", seen, sizes, err)
		}
		seen += len(b.Messages)
		sizes = append(sizes, len(b.Messages))
		ack(nil)
	}
	if seen != 150 || sizes[len(sizes)-1] >= 100 {
		t.Errorf("batches %v: want the last one partial", sizes)
	}
	t.Logf("batch sizes %v", sizes)
	stop, cancelStop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := s.ReadBatch(stop)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // let the read start waiting for records
	cancelStop()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a waiting ReadBatch did not end with its context")
	}
}
