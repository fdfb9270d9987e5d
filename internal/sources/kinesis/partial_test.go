package kinesis

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestPartialBatchAndShutdown: with fewer records than batch_size in the
// shard and the producer quiet, ReadBatch hands on what there is instead
// of waiting for a full batch, and a read waiting for more ends when its
// context does.
func TestPartialBatchAndShutdown(t *testing.T) {
	kin, ddb := emulators(t)
	kc := client(t, kin)
	stream := fmt.Sprintf("partial-%d", time.Now().UnixNano())
	createStream(t, kc, stream, 1)
	put(t, kc, stream, 0, 250, func(int) string { return "k" })
	s, err := New(sourceConfig("k", kin, ddb, stream), nil, zap.NewNop()) // batch_size 200
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	defer s.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := 0
	var sizes []int
	for seen < 250 {
		b, ack, err := s.ReadBatch(ctx)
		if err != nil {
			t.Fatalf("after %d of 250 records (batches %v): %v", seen, sizes, err)
		}
		seen += len(b.Messages)
		sizes = append(sizes, len(b.Messages))
		ack(nil)
	}
	if seen != 250 || sizes[len(sizes)-1] >= 200 {
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
