package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/record"
)

// cluster starts an in-process Kafka (kfake, the real wire protocol) with
// one topic of parts partitions.
func cluster(t *testing.T, parts int32) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// produce writes n records spread round-robin over the partitions, with
// timestamps base + i seconds; the value is {"i":i}.
func produce(t *testing.T, c *kfake.Cluster, n int, base time.Time) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: "logs", Value: []byte(fmt.Sprintf(`{"i":%d}`, i)), Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func sourceConfig(c *kfake.Cluster, group string, maxPending int) *config.Source {
	return &config.Source{Name: "k", Type: "kafka", BatchSize: 100, MaxPending: maxPending,
		Kafka: config.Kafka{Brokers: c.ListenAddrs(), Topics: []string{"logs"}, Group: group, Start: "earliest", ClientID: "test"}}
}

// committed returns the group's committed offsets per partition.
func committed(t *testing.T, c *kfake.Cluster, group string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[int32]int64{}
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) { out[o.Partition] = o.At })
	return out
}

// TestCommitsOnlyWhatIsAcked: offsets are committed only up to the end of
// the longest acked prefix per partition, never past an unacked batch, and
// everything acked is committed at Close.
func TestCommitsOnlyWhatIsAcked(t *testing.T) {
	c := cluster(t, 4)
	produce(t, c, 2000, time.Now())
	s, err := New(sourceConfig(c, "g1", 0), nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type held struct {
		b   record.Batch
		ack record.AckFunc
	}
	var batches []held
	seen := 0
	for seen < 2000 {
		b, ack, err := s.ReadBatch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen += len(b.Messages)
		batches = append(batches, held{b, ack})
	}
	// Ack every batch but the third.
	hole := batches[2].b.Messages[0].Pos
	for i, h := range batches {
		if i != 2 {
			h.ack(nil)
		}
	}
	time.Sleep(1500 * time.Millisecond) // past the autocommit interval
	var holePart int32
	fmt.Sscanf(hole.Partition, "logs/%d", &holePart)
	if got := committed(t, c, "g1")[holePart]; got > hole.Offset {
		t.Fatalf("partition %d committed at %d, past the unacked record at offset %d", holePart, got, hole.Offset)
	}
	batches[2].ack(nil)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for _, off := range committed(t, c, "g1") {
		total += off
	}
	if total != 2000 {
		t.Errorf("committed offsets sum to %d after acking everything, want 2000", total)
	}
}

// TestErrorNeverCommits: a batch acked with an error stops its
// partition's checkpoint for good.
func TestErrorNeverCommits(t *testing.T) {
	c := cluster(t, 1)
	produce(t, c, 300, time.Now())
	s, err := New(sourceConfig(c, "g2", 0), nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var acks []record.AckFunc
	for n := 0; n < 300; {
		b, ack, err := s.ReadBatch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(b.Messages)
		acks = append(acks, ack)
	}
	acks[0](nil)
	acks[1](fmt.Errorf("sink failed"))
	for _, a := range acks[2:] {
		a(nil)
	}
	s.Close(context.Background())
	if got := committed(t, c, "g2")[0]; got != 100 {
		t.Errorf("committed %d, want 100 (the end of the first batch)", got)
	}
}

// TestRebalanceWhileSlowLosesNothing: two members of one group; the first
// holds its acks as a slow sink would, the second joins, the cooperative
// rebalance revokes partitions from the first while their records are not
// yet durable. The revoke waits for them; every record is processed and
// every committed offset was durable when committed.
func TestRebalanceWhileSlowLosesNothing(t *testing.T) {
	c := cluster(t, 8)
	produce(t, c, 8000, time.Now())
	var mu sync.Mutex
	durable := map[string]map[int64]bool{}
	var maxCommitViolation string
	var read [2]int64
	member := func(ctx context.Context, idx int, delay time.Duration) (*Source, chan struct{}) {
		s, err := New(sourceConfig(c, "g3", 100), nil, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				b, ack, err := s.ReadBatch(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				read[idx] += int64(len(b.Messages))
				mu.Unlock()
				go func() {
					time.Sleep(delay + time.Duration(rand.IntN(50))*time.Millisecond)
					mu.Lock()
					for _, m := range b.Messages {
						if durable[m.Pos.Partition] == nil {
							durable[m.Pos.Partition] = map[int64]bool{}
						}
						durable[m.Pos.Partition][m.Pos.Offset] = true
					}
					mu.Unlock()
					ack(nil)
				}()
			}
		}()
		return s, done
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s1, done1 := member(ctx, 0, time.Second)
	time.Sleep(time.Second)
	s2, done2 := member(ctx, 1, 10*time.Millisecond)
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := 0
		for _, m := range durable {
			n += len(m)
		}
		mu.Unlock()
		if n == 8000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 8000 records processed", n)
		}
		// Every committed offset must be covered by durable records.
		for p, off := range committed(t, c, "g3") {
			part := fmt.Sprintf("logs/%d", p)
			mu.Lock()
			for o := int64(0); o < off; o++ {
				if !durable[part][o] {
					maxCommitViolation = fmt.Sprintf("%s committed at %d but offset %d was not durable", part, off, o)
				}
			}
			mu.Unlock()
		}
		time.Sleep(100 * time.Millisecond)
	}
	if maxCommitViolation != "" {
		t.Error(maxCommitViolation)
	}
	mu.Lock()
	if read[0] == 0 || read[1] == 0 {
		t.Errorf("records read per member: %v; the rebalance did not share the partitions", read)
	}
	t.Logf("records read per member (a re-read after a revoke counts twice): %v", read)
	mu.Unlock()
	cancel()
	<-done1
	<-done2
	s1.Close(context.Background())
	s2.Close(context.Background())
	total := int64(0)
	for _, off := range committed(t, c, "g3") {
		total += off
	}
	if total != 8000 {
		t.Errorf("committed offsets sum to %d, want 8000", total)
	}
}

// TestRevokedWithPendingStops: a member whose sinks cannot make its
// records durable (acks never come) has partitions revoked by a second
// member joining. After revokeWait it must stop: its ReadBatch fails with
// ErrPartitionGone, so the pipeline gives up its writes instead of landing
// them after the next owner has read the records again. Nothing of its
// is committed.
func TestRevokedWithPendingStops(t *testing.T) {
	defer func(d time.Duration) { revokeWait = d }(revokeWait)
	revokeWait = 300 * time.Millisecond
	c := cluster(t, 4)
	produce(t, c, 400, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s1, err := New(sourceConfig(c, "g5", 0), nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close(context.Background())
	read := 0
	for read < 400 { // never acked
		b, _, err := s1.ReadBatch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		read += len(b.Messages)
	}
	failed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := s1.ReadBatch(ctx); err != nil {
				failed <- err
				return
			}
		}
	}()
	s2, err := New(sourceConfig(c, "g5", 0), nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close(context.Background())
	go func() {
		for ctx.Err() == nil {
			s2.ReadBatch(ctx)
		}
	}()
	select {
	case err := <-failed:
		if !errors.Is(err, ErrPartitionGone) {
			t.Fatalf("ReadBatch = %v, want ErrPartitionGone", err)
		}
		t.Log(err)
	case <-ctx.Done():
		t.Fatal("the member kept reading after losing partitions with undurable records")
	}
	for p, off := range committed(t, c, "g5") {
		if off > 0 {
			t.Errorf("partition %d committed at %d, though nothing was durable", p, off)
		}
	}
}

// TestReplayRange reads a time range without a group: exactly the records
// whose timestamps fall in it, then io.EOF; nothing is committed.
func TestReplayRange(t *testing.T) {
	c := cluster(t, 3)
	base := time.Date(2024, 11, 3, 0, 0, 0, 0, time.UTC)
	produce(t, c, 900, base)
	from, to := base.Add(100*time.Second), base.Add(400*time.Second)
	s, err := NewReplay(sourceConfig(c, "g4", 0), from, to, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := map[string]bool{}
	for {
		b, ack, err := s.ReadBatch(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range b.Messages {
			if m.Arrival.Before(from) || !m.Arrival.Before(to) {
				t.Errorf("record at %v outside the range", m.Arrival)
			}
			got[string(m.Data)] = true
		}
		ack(nil)
	}
	s.Close(context.Background())
	if len(got) != 300 {
		t.Errorf("replayed %d records, want 300", len(got))
	}
	for _, p := range s.Progress() {
		if !p.Finished || p.Done != p.Total {
			t.Errorf("progress %+v", p)
		}
	}
	if offs := committed(t, c, "g4"); len(offs) != 0 {
		t.Errorf("replay committed %v", offs)
	}
}

// TestCommaSeparatedBrokers: one entry holding a comma-separated list (as
// brokers: ["${KAFKA_BROKERS}"] gives) reaches the cluster.
func TestCommaSeparatedBrokers(t *testing.T) {
	c := cluster(t, 1)
	produce(t, c, 10, time.Now())
	cfg := sourceConfig(c, "g-comma", 0)
	addr := c.ListenAddrs()[0]
	cfg.Kafka.Brokers = []string{addr + ", " + addr}
	s, err := New(cfg, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, ack, err := s.ReadBatch(ctx)
	if err != nil {
		t.Fatalf("read with brokers %q: %v", cfg.Kafka.Brokers, err)
	}
	ack(nil)
	if len(b.Messages) == 0 {
		t.Fatal("no records")
	}
}
