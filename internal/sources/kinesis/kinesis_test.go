package kinesis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/record"
)

func TestKPLRoundTrip(t *testing.T) {
	in := []userRecord{{"k1", []byte(`{"a":1}`)}, {"k2", []byte(`{"a":2}`)}, {"k1", []byte(`{"a":3}`)}}
	agg := aggregate(in)
	if !isAggregated(agg) {
		t.Fatal("not recognised as an aggregate")
	}
	out, err := deaggregate(agg)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out) != fmt.Sprint(in) {
		t.Errorf("got %v, want %v", out, in)
	}
	bad := append([]byte(nil), agg...)
	bad[10] ^= 0xff
	if _, err := deaggregate(bad); err == nil || !strings.Contains(err.Error(), "MD5") {
		t.Errorf("corrupted aggregate: %v", err)
	}
	if isAggregated([]byte(`{"a":1}`)) {
		t.Error("plain JSON taken for an aggregate")
	}
}

// emulators returns the kinesalite and dynalite endpoints test/run.sh
// started, or skips.
func emulators(t *testing.T) (string, string) {
	kin, ddb := os.Getenv("SLUICE_TEST_KINESIS_ENDPOINT"), os.Getenv("SLUICE_TEST_DYNAMODB_ENDPOINT")
	if kin == "" || ddb == "" {
		t.Skip("SLUICE_TEST_KINESIS_ENDPOINT / SLUICE_TEST_DYNAMODB_ENDPOINT unset: run test/run.sh, which starts kinesalite and dynalite")
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	return kin, ddb
}

func client(t *testing.T, endpoint string) *kinesis.Client {
	cfg, err := awsConfig("us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// createStream makes a stream and polls until it is ACTIVE.
func createStream(t *testing.T, kc *kinesis.Client, name string, shards int32) {
	ctx := context.Background()
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, kc, name)
}

func waitActive(t *testing.T, kc *kinesis.Client, name string) {
	for range 200 {
		out, err := kc.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("stream %s not ACTIVE", name)
}

func put(t *testing.T, kc *kinesis.Client, stream string, from, n int, key func(i int) string) {
	for i := from; i < from+n; i += 500 {
		var entries []ktypes.PutRecordsRequestEntry
		for j := i; j < min(i+500, from+n); j++ {
			entries = append(entries, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(key(j)), Data: []byte(fmt.Sprintf(`{"id":"r%d","key":"%s"}`, j, key(j)))})
		}
		out, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToInt32(out.FailedRecordCount) > 0 {
			t.Fatalf("%d records failed", aws.ToInt32(out.FailedRecordCount))
		}
	}
}

func sourceConfig(name, kin, ddb, stream string) *config.Source {
	return &config.Source{Name: name, Type: "kinesis", BatchSize: 200, MaxPending: 10000,
		Kinesis: config.Kinesis{Stream: stream, Region: "us-east-1", Endpoint: kin, DynamoDBEndpoint: ddb, LeaseTable: "leases-" + stream,
			Start: "trim_horizon", LeaseDuration: config.Duration(2 * time.Second), MaxLeasesPerTake: 2}}
}

// consumer reads a source, acking every batch, and records what it read.
type consumer struct {
	mu   sync.Mutex
	seen map[string]int
	log  []record.Message
	done chan struct{}
}

func consume(ctx context.Context, s *Source) *consumer { return consumeAcking(ctx, s, 0) }

// consumeAcking is consume with acks delay late, as from sinks that buffer:
// a record is durable only some time after it is read.
func consumeAcking(ctx context.Context, s *Source, delay time.Duration) *consumer {
	c := &consumer{seen: map[string]int{}, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			b, ack, err := s.ReadBatch(ctx)
			if err != nil {
				return
			}
			c.mu.Lock()
			for _, m := range b.Messages {
				c.seen[string(m.Data)]++
				c.log = append(c.log, m)
			}
			c.mu.Unlock()
			if delay == 0 {
				ack(nil)
			} else {
				time.AfterFunc(delay, func() { ack(nil) })
			}
		}
	}()
	return c
}

func (c *consumer) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// start runs s's background work for the test; after the test, whether or
// not it closed s, Run must have returned.
func start(t *testing.T, s *Source) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, ErrLeaseGone) {
			t.Errorf("run: %v", err)
		}
	})
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLeasesBalanceAndFailover: two workers on 4 shards settle at 2/2;
// one dies without releasing (a crash); the other takes all four after the
// leases expire, and every record is read.
func TestLeasesBalanceAndFailover(t *testing.T) {
	kin, ddb := emulators(t)
	kc := client(t, kin)
	stream := fmt.Sprintf("balance-%d", time.Now().UnixNano())
	createStream(t, kc, stream, 4)
	put(t, kc, stream, 0, 2000, func(i int) string { return fmt.Sprintf("k%d", i%50) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := New(sourceConfig("k", kin, ddb, stream), nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	start(t, a)
	b, err := New(sourceConfig("k", kin, ddb, stream), nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	start(t, b)
	ca, cb := consume(ctx, a), consume(ctx, b)
	eventually(t, 20*time.Second, "leases settle 2/2", func() bool { return len(a.Held()) == 2 && len(b.Held()) == 2 })
	eventually(t, 20*time.Second, "all records read", func() bool {
		ca.mu.Lock()
		defer ca.mu.Unlock()
		cb.mu.Lock()
		defer cb.mu.Unlock()
		all := map[string]bool{}
		for k := range ca.seen {
			all[k] = true
		}
		for k := range cb.seen {
			all[k] = true
		}
		return len(all) == 2000
	})
	a.Abandon()
	put(t, kc, stream, 2000, 1000, func(i int) string { return fmt.Sprintf("k%d", i%50) })
	eventually(t, 30*time.Second, "the survivor takes all four shards", func() bool { return len(b.Held()) == 4 })
	eventually(t, 30*time.Second, "records after the crash read", func() bool {
		cb.mu.Lock()
		defer cb.mu.Unlock()
		for i := 2000; i < 3000; i++ {
			if cb.seen[fmt.Sprintf(`{"id":"r%d","key":"k%d"}`, i, i%50)] == 0 {
				return false
			}
		}
		return true
	})
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestHandoffReadsEachRecordOnce: a worker holding all four shards while
// records stream in is joined by a second one. Leases move by handoff, not
// by stealing: the holder stops reading the shard, waits until what it
// read is durable (acks come 400 ms late here), checkpoints, and hands the
// lease over; the new holder starts at that checkpoint. So the workers
// settle 2/2 and no record is read by both, which a stolen lease (the new
// holder starting from an older checkpoint while the old one still
// writes) would not give.
func TestHandoffReadsEachRecordOnce(t *testing.T) {
	kin, ddb := emulators(t)
	kc := client(t, kin)
	stream := fmt.Sprintf("handoff-%d", time.Now().UnixNano())
	createStream(t, kc, stream, 4)
	key := func(i int) string { return fmt.Sprintf("k%d", i%50) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := New(sourceConfig("k", kin, ddb, stream), nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	start(t, a)
	ca := consumeAcking(ctx, a, 400*time.Millisecond)
	eventually(t, 20*time.Second, "the first worker takes all four shards", func() bool { return len(a.Held()) == 4 })
	stopPut := make(chan struct{})
	var putWG sync.WaitGroup
	putWG.Add(1)
	total := 0
	go func() { // records keep arriving through the handoffs
		defer putWG.Done()
		for ; total < 4000; total += 200 {
			select {
			case <-stopPut:
				return
			case <-time.After(100 * time.Millisecond):
			}
			put(t, kc, stream, total, 200, key)
		}
	}()
	b, err := New(sourceConfig("k", kin, ddb, stream), nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	start(t, b)
	cb := consumeAcking(ctx, b, 400*time.Millisecond)
	eventually(t, 30*time.Second, "leases settle 2/2 by handoff", func() bool { return len(a.Held()) == 2 && len(b.Held()) == 2 })
	putWG.Wait()
	close(stopPut)
	eventually(t, 30*time.Second, "every record read", func() bool {
		ca.mu.Lock()
		defer ca.mu.Unlock()
		cb.mu.Lock()
		defer cb.mu.Unlock()
		n := 0
		for i := range total {
			if ca.seen[fmt.Sprintf(`{"id":"r%d","key":"%s"}`, i, key(i))]+cb.seen[fmt.Sprintf(`{"id":"r%d","key":"%s"}`, i, key(i))] > 0 {
				n++
			}
		}
		return n == total
	})
	ca.mu.Lock()
	cb.mu.Lock()
	twice, fromA, fromB := 0, 0, 0
	for i := range total {
		k := fmt.Sprintf(`{"id":"r%d","key":"%s"}`, i, key(i))
		if ca.seen[k]+cb.seen[k] > 1 {
			twice++
		}
		if ca.seen[k] > 0 {
			fromA++
		}
		if cb.seen[k] > 0 {
			fromB++
		}
	}
	ca.mu.Unlock()
	cb.mu.Unlock()
	t.Logf("%d records: %d read by the first worker, %d by the second", total, fromA, fromB)
	if twice > 0 {
		t.Errorf("%d records read more than once across the handoffs", twice)
	}
	if fromB == 0 {
		t.Error("the second worker read nothing")
	}
	cancel()
	a.Close(context.Background())
	b.Close(context.Background())
}

// TestSplitReadsParentsFirst: a shard split in the middle of the stream;
// every record of the parent is read before any of its children, and each
// partition key's records come in order.
func TestSplitReadsParentsFirst(t *testing.T) {
	kin, ddb := emulators(t)
	kc := client(t, kin)
	stream := fmt.Sprintf("split-%d", time.Now().UnixNano())
	createStream(t, kc, stream, 1)
	key := func(i int) string { return fmt.Sprintf("k%d", i%20) }
	put(t, kc, stream, 0, 600, key)
	shards, _ := kc.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	parent := shards.Shards[0]
	if _, err := kc.SplitShard(context.Background(), &kinesis.SplitShardInput{StreamName: aws.String(stream), ShardToSplit: parent.ShardId,
		NewStartingHashKey: aws.String("170141183460469231731687303715884105728")}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, kc, stream)
	put(t, kc, stream, 600, 600, key)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := New(sourceConfig("k", kin, ddb, stream), nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	c := consume(ctx, s)
	eventually(t, 30*time.Second, "all 1,200 records read", func() bool { return c.count() == 1200 })
	s.Close(context.Background())
	c.mu.Lock()
	defer c.mu.Unlock()
	lastParent, firstChild := -1, -1
	perKey := map[string]int{}
	for i, m := range c.log {
		if m.Pos.Partition == aws.ToString(parent.ShardId) {
			lastParent = i
		} else if firstChild < 0 {
			firstChild = i
		}
		var id int
		var k string
		fmt.Sscanf(strings.NewReplacer(`{"id":"r`, "", `","key":"`, " ", `"}`, "").Replace(string(m.Data)), "%d %s", &id, &k)
		if id < perKey[k] {
			t.Fatalf("key %s: r%d after r%d", k, id, perKey[k])
		}
		perKey[k] = id
	}
	if firstChild < lastParent {
		t.Errorf("a child record (at %d) was read before the parent's last (at %d)", firstChild, lastParent)
	}
}

// TestKPLThroughTheStream: an aggregated record de-aggregates with
// sub-sequence positions; a corrupted one comes out whole with its error.
func TestKPLThroughTheStream(t *testing.T) {
	kin, ddb := emulators(t)
	kc := client(t, kin)
	stream := fmt.Sprintf("kpl-%d", time.Now().UnixNano())
	createStream(t, kc, stream, 1)
	agg := aggregate([]userRecord{{"a", []byte(`{"n":0}`)}, {"b", []byte(`{"n":1}`)}, {"a", []byte(`{"n":2}`)}})
	bad := append([]byte(nil), agg...)
	bad[len(bad)-1] ^= 1
	for _, data := range [][]byte{agg, bad} {
		if _, err := kc.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("a"), Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := New(sourceConfig("k", kin, ddb, stream), nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	c := consume(ctx, s)
	eventually(t, 20*time.Second, "four messages", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.log) == 4 })
	s.Close(context.Background())
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range 3 {
		m := c.log[i]
		if m.Pos.Sub != fmt.Sprintf("/%d", i) || string(m.Data) != fmt.Sprintf(`{"n":%d}`, i) || m.Pos.Token != c.log[0].Pos.Token || m.Err != nil {
			t.Errorf("message %d: %+v", i, m)
		}
	}
	if m := c.log[3]; m.Err == nil || !strings.Contains(m.Err.Error(), "MD5") || m.Pos.Sub != "" {
		t.Errorf("corrupt aggregate: %+v", m)
	}
}

// TestReplayMatchesLive: a time range replayed reads exactly the records
// a live pass read in that range, and writes no lease.
func TestReplayMatchesLive(t *testing.T) {
	kin, ddb := emulators(t)
	kc := client(t, kin)
	stream := fmt.Sprintf("replay-%d", time.Now().UnixNano())
	createStream(t, kc, stream, 2)
	put(t, kc, stream, 0, 300, func(i int) string { return fmt.Sprintf("k%d", i) })
	time.Sleep(1100 * time.Millisecond)
	from := time.Now()
	put(t, kc, stream, 300, 300, func(i int) string { return fmt.Sprintf("k%d", i) })
	time.Sleep(1100 * time.Millisecond)
	to := time.Now()
	put(t, kc, stream, 600, 300, func(i int) string { return fmt.Sprintf("k%d", i) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	live, err := New(sourceConfig("k", kin, ddb, stream), nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	start(t, live)
	c := consume(ctx, live)
	eventually(t, 20*time.Second, "live pass", func() bool { return c.count() == 900 })
	live.Close(context.Background())
	rs, err := NewReplay(sourceConfig("k", kin, ddb, stream), from, to, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	start(t, rs)
	var got []string
	for {
		b, ack, err := rs.ReadBatch(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range b.Messages {
			got = append(got, m.Pos.String())
		}
		ack(nil)
	}
	var want []string
	c.mu.Lock()
	for _, m := range c.log {
		if !m.Arrival.Before(from) && m.Arrival.Before(to) {
			want = append(want, m.Pos.String())
		}
	}
	c.mu.Unlock()
	sort.Strings(got)
	sort.Strings(want)
	if len(want) == 0 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("replay read %d records, the live pass %d in the range", len(got), len(want))
	}
}
