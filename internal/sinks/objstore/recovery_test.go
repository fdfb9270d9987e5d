package objstore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"github.com/sluice-data/sluice/internal/blob"
	"github.com/sluice-data/sluice/internal/record"
)

func TestSeqText(t *testing.T) {
	tests := []struct {
		give seq
		want string
	}{
		{seq{off: 1}, "000000000001"},
		{seq{off: 123456789012345}, "123456789012345"},
		{seq{off: 7, k: 3}, "000000000007.3"},
		{seq{tok: "49590338271490256608559692538361571095921575989136588898", k: 1}, "49590338271490256608559692538361571095921575989136588898.1"},
	}
	for _, tt := range tests {
		got := string(tt.give.appendText(nil))
		if got != tt.want {
			t.Errorf("appendText(%+v) = %q, want %q", tt.give, got, tt.want)
		}
		back, rest, ok := parseSeq(got + ".parquet")
		if !ok || rest != ".parquet" || cmpSeq(back, tt.give) != 0 {
			t.Errorf("parseSeq(%q) = %+v, %q, %v", got, back, rest, ok)
		}
	}
}

func TestCmpSeq(t *testing.T) {
	ordered := []seq{{off: 0}, {off: 1}, {off: 1, k: 1}, {off: 1, k: 2}, {off: 2}, {tok: "0000123"}, {off: 124}, {tok: "99999999999999999999"}, {tok: "100000000000000000000"}}
	for i := range ordered {
		for j := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := cmpSeq(ordered[i], ordered[j]); got != want {
				t.Errorf("cmpSeq(%+v, %+v) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}

func TestParseObjectName(t *testing.T) {
	tests := []struct {
		name string
		id   string
		sp   span
		ok   bool
	}{
		{"app+f+000000000001-000000000009.parquet", "app+f", span{seq{off: 1}, seq{off: 9}}, true},
		{"app+logs_a.jsonl.1x2y3z+000000000004.2-000000000010.1.ndjson.gz", "app+logs_a.jsonl.1x2y3z", span{seq{off: 4, k: 2}, seq{off: 10, k: 1}}, true},
		{"app+f+000000000009-000000000001.parquet", "", span{}, false}, // reversed
		{"app+f+000000000001.parquet", "", span{}, false},              // no range
		{"app+f+000000000001-000000000002.txt", "", span{}, false},
		{"a+b+c+000000000001-000000000002.csv", "", span{}, false},
		{"sub/app+f+000000000001-000000000002.csv", "", span{}, false},
		{"part-00000.snappy.parquet", "", span{}, false},
	}
	for _, tt := range tests {
		id, sp, ok := parseObjectName(tt.name)
		if ok != tt.ok || id != tt.id || ok && (cmpSeq(sp.first, tt.sp.first) != 0 || cmpSeq(sp.last, tt.sp.last) != 0) {
			t.Errorf("parseObjectName(%q) = %q, %+v, %v; want %q, %+v, %v", tt.name, id, sp, ok, tt.id, tt.sp, tt.ok)
		}
	}
}

func TestMergeSpans(t *testing.T) {
	in := []span{{seq{off: 10}, seq{off: 12}}, {seq{off: 1}, seq{off: 3}}, {seq{off: 3}, seq{off: 5, k: 1}}, {seq{off: 4}, seq{off: 4}}, {seq{off: 7}, seq{off: 8}}}
	got := mergeSpans(in)
	want := []span{{seq{off: 1}, seq{off: 5, k: 1}}, {seq{off: 7}, seq{off: 8}}, {seq{off: 10}, seq{off: 12}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("mergeSpans = %v, want %v", got, want)
	}
}

func TestStreamIDsNeverCollide(t *testing.T) {
	a, b := StreamID("src", "logs/a_b.jsonl"), StreamID("src", "logs_a/b.jsonl")
	if a == b {
		t.Fatalf("%q and %q share stream id %q", "logs/a_b.jsonl", "logs_a/b.jsonl", a)
	}
	if got := StreamID("app", "shardId-000000000001"); got != "app+shardId-000000000001" {
		t.Errorf("safe partition changed: %q", got)
	}
	// Long names are cut, keeping a hash of the whole: a file name of 247
	// bytes made object names over a file system's 255.
	long := strings.Repeat("a", 247)
	for _, tt := range [][2]string{{"src", long + ".ndjson"}, {"src", "in/" + long}, {long, "f"}, {"src", long + "b"}} {
		id := StreamID(tt[0], tt[1])
		if len(id) > 2*maxIDPart+1 || strings.Count(id, "+") != 1 {
			t.Errorf("StreamID(%d bytes, %d bytes) = %q (%d bytes)", len(tt[0]), len(tt[1]), id, len(id))
		}
	}
	if StreamID("src", long+"b") == StreamID("src", long+"c") {
		t.Error("two long partitions share a stream id")
	}
}

// memStore is a Lister in memory: the crash tests write thousands of
// objects, and the file store's fsyncs would dominate.
type memStore struct {
	mu   sync.Mutex
	objs map[string][]byte
}

func newMemStore() *memStore { return &memStore{objs: map[string][]byte{}} }

func (m *memStore) Put(_ context.Context, key string, body blob.Body) error {
	var buf bytes.Buffer
	if err := body(&buf); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[key] = buf.Bytes()
	return nil
}

func (m *memStore) Location() string { return "mem:" }

func (m *memStore) List(_ context.Context, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.objs {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

func (m *memStore) Get(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b, ok := m.objs[key]; ok {
		return b, nil
	}
	return nil, os.ErrNotExist
}

// counts counts each record id in the store's NDJSON objects.
func (m *memStore) counts() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	counts := map[string]int{}
	for _, body := range m.objs {
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			counts[fastjson.GetString(sc.Bytes(), "id")]++
		}
	}
	return counts
}

// crashStore writes through to a store until it is told to crash;
// from then on every Put hangs until the test ends and then fails, as if
// the process had died with those writes in flight.
type crashStore struct {
	*memStore
	crashed atomic.Bool
	dead    chan struct{}
	puts    atomic.Int64
	after   int64 // crash once this many puts have landed; 0 = never
	kill    context.CancelFunc
}

func (c *crashStore) Put(ctx context.Context, key string, body blob.Body) error {
	if c.crashed.Load() || c.after > 0 && c.puts.Load() >= c.after {
		c.crashed.Store(true)
		c.kill()
		<-c.dead
		return errors.New("process died")
	}
	if err := c.memStore.Put(ctx, key, body); err != nil {
		return err
	}
	c.puts.Add(1)
	return nil
}

// die stops a sink as a crash would: buffered records are lost, and the
// writes already handed to workers finish (failing, after the crash).
func die(s *Sink) {
	s.bg.Stop() // a Run not started yet starts no workers
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
		close(s.jobs)
	}
	s.order = nil
	s.mu.Unlock()
	s.bg.Wait()
}

// input is a test stream: message offsets 1..n of partitions p0..p2, each
// message giving 1-3 records (an explode), spread over lake partitions by
// key. Records are identified by id.
type testMsg struct {
	pos  record.Position
	recs []string
}

func testInput(n int, rng *rand.Rand) []testMsg {
	var msgs []testMsg
	for off := 1; off <= n; off++ {
		for p := range 3 {
			m := testMsg{pos: record.Position{Partition: fmt.Sprintf("logs/p%d.jsonl", p), Offset: int64(off)}}
			for k := range 1 + rng.IntN(3) {
				m.recs = append(m.recs, fmt.Sprintf(`{"id":"p%d-%d-%d","k":"%c"}`, p, off, k, 'a'+rune(rng.IntN(4))))
			}
			msgs = append(msgs, m)
		}
	}
	return msgs
}

// run appends msgs in batches of up to 7 messages; acked reports, per
// partition, the offsets whose batch was acked.
func run(t *testing.T, s *Sink, msgs []testMsg, acked func(batch []testMsg)) {
	runCtx(context.Background(), t, s, msgs, acked)
}

func runCtx(ctx context.Context, t *testing.T, s *Sink, msgs []testMsg, acked func(batch []testMsg)) {
	t.Helper()
	w := s.NewWriter()
	var parser fastjson.Parser
	for i := 0; i < len(msgs); i += 7 {
		batch := msgs[i:min(i+7, len(msgs))]
		for _, m := range batch {
			for j, r := range m.recs {
				v, err := parser.Parse(r)
				if err != nil {
					t.Fatal(err)
				}
				pos := m.pos
				if len(m.recs) > 1 {
					pos = pos.Child(j)
				}
				if f := w.Write(&record.Record{Source: "src", Value: v, Raw: []byte(r), Pos: pos}); f != nil {
					t.Fatal(f.Message)
				}
			}
		}
		p := w.Take()
		if p == nil {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if err := s.Append(ctx, p, func(err error) {
			if err == nil && acked != nil {
				acked(batch)
			}
		}); err != nil {
			return // the sink has failed: the "process" is dead
		}
	}
}

// countLake counts each record id in the NDJSON objects under dir.
func countLake(t *testing.T, dir string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || strings.HasPrefix(info.Name(), ".") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			counts[fastjson.GetString(sc.Bytes(), "id")]++
		}
		return nil
	})
	return counts
}

// TestCrashRecoveryExactlyOnce crashes a sink at random points, with
// objects in flight and random cut points, then restarts from a
// checkpoint at or before what was acked, with different cut points; the
// lake holds every record exactly once.
func TestCrashRecoveryExactlyOnce(t *testing.T) {
	for trial := range 200 {
		t.Run(fmt.Sprint(trial), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(trial), 7))
			msgs := testInput(60, rng)
			lake := newMemStore()
			want := map[string]int{}
			for _, m := range msgs {
				for _, r := range m.recs {
					want[fastjson.GetString([]byte(r), "id")] = 1
				}
			}
			start := 0 // index of the first message to deliver
			for attempt := 0; ; attempt++ {
				ctx, kill := context.WithCancel(context.Background())
				st := &crashStore{memStore: lake, dead: make(chan struct{}), kill: kill}
				if attempt < 3 {
					st.after = 1 + rng.Int64N(12)
				}
				body := fmt.Sprintf("    format: ndjson\n    partition_keys: {k: .k}\n    buffer: {max_records: %d}\n    concurrency: %d\n",
					1+rng.IntN(9), 1+rng.IntN(3))
				// A dead process does not retry.
				s, _ := newSink(t, body, st, func(s *Sink) { s.backoff.MaxElapsed = 0 })
				// The checkpoint: the longest prefix of messages whose
				// batches were all acked.
				var mu sync.Mutex
				ackedMsgs := map[*testMsg]bool{}
				runCtx(ctx, t, s, msgs[start:], func(batch []testMsg) {
					mu.Lock()
					for i := range batch {
						ackedMsgs[&batch[i]] = true
					}
					mu.Unlock()
				})
				done := make(chan error, 1)
				go func() { done <- s.Flush(ctx) }()
				var err error
				select {
				case err = <-done:
				case <-time.After(2 * time.Second):
					err = errors.New("hung")
				}
				if !st.crashed.Load() {
					if err != nil {
						t.Fatal(err)
					}
					break
				}
				close(st.dead)
				// No write of the dead process may land after this point:
				// wait for its workers (their Puts now fail).
				die(s)
				mu.Lock()
				next := start
				for next < len(msgs) && ackedMsgs[&msgs[next]] {
					next++
				}
				mu.Unlock()
				// Restart from the checkpoint or earlier (a source may
				// re-deliver more than it must).
				start = next - rng.IntN(next-start+1)
			}
			got := lake.counts()
			for id := range want {
				if got[id] != 1 {
					t.Errorf("record %s is in the lake %d times", id, got[id])
				}
			}
			for id, n := range got {
				if want[id] == 0 {
					t.Errorf("unexpected record %s (%d times)", id, n)
				}
			}
		})
	}
}

// TestRedeliveryInOneRun re-delivers part of a stream to the same sink
// (a Kafka partition revoked and assigned back): nothing is written twice.
func TestRedeliveryInOneRun(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	msgs := testInput(40, rng)
	s, dir := newSink(t, "    format: ndjson\n    partition_keys: {k: .k}\n    buffer: {max_records: 5}\n", nil)
	run(t, s, msgs[:90], nil)
	run(t, s, msgs[30:], nil)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := countLake(t, dir)
	for _, m := range msgs {
		for _, r := range m.recs {
			if id := fastjson.GetString([]byte(r), "id"); got[id] != 1 {
				t.Errorf("record %s is in the lake %d times", id, got[id])
			}
		}
	}
	if st := s.Stats(); st.Skipped == 0 {
		t.Error("nothing counted as skipped")
	}
}

// TestRerunWritesNothing runs the same input twice into one lake: the
// second run skips every record and writes no object.
func TestRerunWritesNothing(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	msgs := testInput(30, rng)
	dir := t.TempDir()
	body := "    url: 'file:" + dir + "/'\n    format: ndjson\n    partition_keys: {k: .k}\n    buffer: {max_records: 4}\n"
	s1, _ := newSink(t, body, nil)
	run(t, s1, msgs, nil)
	if err := s1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := files(t, dir)
	s2, _ := newSink(t, strings.Replace(body, "max_records: 4", "max_records: 9", 1), nil)
	run(t, s2, msgs, nil)
	if err := s2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := s2.Stats()
	if st.Objects != 0 || st.Skipped != s1.Stats().Records {
		t.Errorf("second run: %+v; first wrote %d records", st, s1.Stats().Records)
	}
	if after := files(t, dir); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("objects changed:\n%v\n%v", before, after)
	}
}
