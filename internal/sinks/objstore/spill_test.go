package objstore

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"github.com/sluice-data/sluice/internal/blob"
	"github.com/sluice-data/sluice/internal/record"
)

// countingStore keeps no content, only how many objects and bytes it was
// given.
type countingStore struct {
	objects, bytes atomic.Int64
}

func (c *countingStore) Put(_ context.Context, _ string, body blob.Body) error {
	cw := &countingWriter{w: io.Discard}
	if err := body(cw); err != nil {
		return err
	}
	c.objects.Add(1)
	c.bytes.Add(cw.n)
	return nil
}

func (c *countingStore) Location() string                               { return "counting" }
func (c *countingStore) List(context.Context, string) ([]string, error) { return nil, nil }
func (c *countingStore) Get(context.Context, string) ([]byte, error)    { return nil, os.ErrNotExist }

// manyPartitions is the workload of TestManyRandomPartitions: records of
// about 500 bytes spread at random over 5,000 lake partitions, appended in
// batches of 500, with the sink's default limits.
const (
	manyParts   = 5000
	manyRecords = 500_000
	manyBatch   = 500
	// rssBound is the peak RSS the run must stay under: the defaults allow
	// max_buffered_bytes (256 MiB) of rows, but 5,000 small partitions
	// must not need it.
	rssBound = 300 << 20
)

// TestManyRandomPartitions: with defaults, 500k records over 5,000 random
// lake partitions make at most three objects per partition, and the
// process's peak RSS stays bounded. It runs the workload in a child
// process, so that the peak RSS is the workload's alone.
func TestManyRandomPartitions(t *testing.T) {
	if os.Getenv("SLUICE_MANY_PARTITIONS_CHILD") == "1" {
		manyPartitionsChild(t)
		return
	}
	if testing.Short() {
		t.Skip("writes 500k records")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestManyRandomPartitions$", "-test.v")
	cmd.Env = append(os.Environ(), "SLUICE_MANY_PARTITIONS_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	res := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "many-partitions:") {
			continue
		}
		for _, f := range strings.Fields(strings.TrimPrefix(line, "many-partitions:")) {
			k, v, _ := strings.Cut(f, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			res[k] = n
		}
	}
	if res["records"] != manyRecords {
		t.Fatalf("records written = %d, want %d\n%s", res["records"], manyRecords, out)
	}
	t.Logf("%d objects, %d bytes, %d records/s, peak RSS %d MiB, %d small objects",
		res["objects"], res["bytes"], res["rps"], res["vmhwm"]>>20, res["small"])
	if res["objects"] > 3*manyParts {
		t.Errorf("%d objects for %d partitions, want at most %d", res["objects"], manyParts, 3*manyParts)
	}
	if res["vmhwm"] > rssBound {
		t.Errorf("peak RSS %d MiB, want under %d MiB", res["vmhwm"]>>20, rssBound>>20)
	}
	if res["acked"] != manyRecords/manyBatch || res["ackErrors"] != 0 {
		t.Errorf("acks = %d (%d errors), want %d without errors", res["acked"], res["ackErrors"], manyRecords/manyBatch)
	}
}

func manyPartitionsChild(t *testing.T) {
	store := &countingStore{}
	s, _ := newSink(t, "    format: parquet\n    partition_keys: {p: .p}\n"+
		"    schema:\n      - {name: p, type: string}\n      - {name: n, type: int64}\n      - {name: msg, type: string}\n", store)
	var acked, ackErrors atomic.Int64
	ack := func(err error) {
		acked.Add(1)
		if err != nil {
			ackErrors.Add(1)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	letters := []byte("abcdefghijklmnopqrstuvwxyz ")
	msg := make([]byte, 460)
	var line []byte
	var p fastjson.Parser
	w := s.NewWriter()
	start := time.Now()
	for i := range manyRecords {
		for j := range msg {
			msg[j] = letters[rng.IntN(len(letters))]
		}
		line = fmt.Appendf(line[:0], `{"p":"%04d","n":%d,"msg":"%s"}`, rng.IntN(manyParts), i, msg)
		v, err := p.ParseBytes(line)
		if err != nil {
			t.Fatal(err)
		}
		rec := &record.Record{Source: "src", Value: v, Raw: line, Pos: record.Position{Partition: "f", Offset: int64(i + 1)},
			EventTime: time.Unix(1730617200, 0), Arrival: time.Unix(1730617200, 0)}
		if f := w.Write(rec); f != nil {
			t.Fatalf("write: %+v", f)
		}
		if (i+1)%manyBatch == 0 {
			if err := s.Append(context.Background(), w.Take(), ack); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	objects, bytes := store.objects.Load(), store.bytes.Load()
	fmt.Printf("many-partitions: records=%d objects=%d bytes=%d rps=%d vmhwm=%d acked=%d ackErrors=%d small=%d\n",
		s.Stats().Records, objects, bytes, int64(float64(manyRecords)/el.Seconds()), vmHWM(t), acked.Load(), ackErrors.Load(), smallObjects(s))
}

// vmHWM returns the process's peak resident set size in bytes.
func vmHWM(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

func smallObjects(s *Sink) int64 { return s.stats.small.Load() }

// TestSpillKeepsRowsInOrder: rows moved to the spill and back come out in
// the order they came, with those still in memory after them, and the
// spill leaves no file in its directory.
func TestSpillKeepsRowsInOrder(t *testing.T) {
	spillDir := t.TempDir()
	s, dir := newSink(t, "    format: ndjson\n    partition_keys: {k: .k}\n    max_open_partitions: 1\n    spill_dir: '"+spillDir+"'\n", nil)
	var lines []string
	for i := range 10 {
		lines = append(lines, fmt.Sprintf(`{"k":"%c","i":%d}`, "ab"[i%2], i+1))
	}
	feed(t, s, nil, lines...)
	s.mu.Lock()
	spilled, held := s.spilled, s.bufRecs
	s.mu.Unlock()
	if spilled != 9 || held != 1 {
		t.Errorf("spilled %d, in memory %d; want 9 and 1", spilled, held)
	}
	if ents, _ := os.ReadDir(spillDir); len(ents) != 0 {
		t.Errorf("spill files in %s: %v", spillDir, ents)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"k=a/src+f+000000000001-000000000009.ndjson": `{"k":"a","i":1}` + "\n" + `{"k":"a","i":3}` + "\n" + `{"k":"a","i":5}` + "\n" + `{"k":"a","i":7}` + "\n" + `{"k":"a","i":9}` + "\n",
		"k=b/src+f+000000000002-000000000010.ndjson": `{"k":"b","i":2}` + "\n" + `{"k":"b","i":4}` + "\n" + `{"k":"b","i":6}` + "\n" + `{"k":"b","i":8}` + "\n" + `{"k":"b","i":10}` + "\n",
	}
	got := files(t, dir)
	if len(got) != len(want) {
		t.Fatalf("files = %v", got)
	}
	for _, f := range got {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != want[f] {
			t.Errorf("%s:\n%s\nwant\n%s", f, b, want[f])
		}
	}
	if n := smallObjects(s); n != 2 {
		t.Errorf("small objects = %d, want 2", n)
	}
	s.spill.mu.Lock()
	disk := s.spill.disk
	s.spill.mu.Unlock()
	if disk != 0 {
		t.Errorf("spill holds %d bytes after the flush", disk)
	}
}

// TestSpillRelievesMemory: with every write blocked, appends past
// max_buffered_bytes move rows to the spill instead of waiting, and memory
// for rows stays under the cap; the objects come out whole afterwards.
func TestSpillRelievesMemory(t *testing.T) {
	store := &blockingStore{release: make(chan struct{})}
	s, _ := newSink(t, "    format: ndjson\n    partition_keys: {k: .k}\n    max_buffered_bytes: 4KiB\n    small_object_bytes: 0\n", store)
	var once sync.Once
	release := func() { once.Do(func() { close(store.release) }) }
	t.Cleanup(release)
	big := `{"k":"%d","pad":"` + strings.Repeat("x", 900) + `"}`
	var lines []string
	for i := range 20 {
		lines = append(lines, fmt.Sprintf(big, i))
	}
	feed(t, s, nil, lines...)
	s.mu.Lock()
	buffered, spilled := s.buffered, s.spilled
	s.mu.Unlock()
	if buffered > 4096 || spilled == 0 {
		t.Errorf("%d bytes in memory, %d records spilled; want under 4 KiB and some", buffered, spilled)
	}
	release()
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(store.puts) != 20 {
		t.Errorf("puts = %d, want 20", len(store.puts))
	}
	if st := s.Stats(); st.Records != 20 || smallObjects(s) != 0 {
		t.Errorf("records = %d, small objects = %d; want 20 and 0", st.Records, smallObjects(s))
	}
}

// TestIdlePartitionsAreWrittenNotSpilled: on input ordered by partition
// (logs by hour), relief writes out the partitions that stopped getting
// rows instead of spilling them, and each still makes one whole object.
func TestIdlePartitionsAreWrittenNotSpilled(t *testing.T) {
	s, dir := newSink(t, "    format: ndjson\n    partition_keys: {k: .k}\n    max_buffered_records: 100\n    small_object_bytes: 0\n", nil)
	var lines []string
	for p := range 10 {
		for range 30 {
			lines = append(lines, fmt.Sprintf(`{"k":"%d"}`, p))
		}
	}
	feed(t, s, nil, lines...)
	s.mu.Lock()
	spilled, held := s.spilled, s.bufRecs
	s.mu.Unlock()
	if spilled != 0 || held > 100 {
		t.Errorf("spilled %d, in memory %d; want 0 and at most 100", spilled, held)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := files(t, dir)
	if len(got) != 10 {
		t.Fatalf("files = %v, want one per partition", got)
	}
	for _, f := range got {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "\n"); n != 30 {
			t.Errorf("%s: %d records, want 30", f, n)
		}
	}
}
