package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-data/sluice/internal/testutil"
)

// TestKafkaReplayTwice replays a time range of a topic (kfake) into a
// partitioned Parquet lake twice: the second replay writes nothing new,
// the lake is byte for byte what one pass into an empty lake gives, and
// Arrow reads exactly the records of the range.
func TestKafkaReplayTwice(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2024, 11, 3, 0, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for i := range 2000 {
		ts := base.Add(time.Duration(i) * 10 * time.Second)
		recs = append(recs, &kgo.Record{Topic: "logs", Timestamp: ts,
			Value: []byte(fmt.Sprintf(`{"id":"r%d","project_id":"P-%d","event_timestamp":%d,"level":"INFO","message":"m"}`, i, i%3, ts.Unix()))})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	dir := t.TempDir()
	y := func(out string) string {
		return fmt.Sprintf(`
service: {http_listen: "", error_sink: lake}
sources:
  - {name: app, type: kafka, format: app_log, kafka: {brokers: ["%s"], topics: [logs], group: live}}
routes: [{name: all, from: [app], to: [lake]}]
sinks:
  - name: lake
    type: s3
    url: "file:%s/"
    format: parquet
    buffer: {max_records: 97}
    partition_keys: {project_id: .project_id, hour: '.event_timestamp| strftime("%%H")'}
    schema:
      - {name: id, type: string}
      - {name: project_id, type: string}
      - {name: event_timestamp, type: int64}
`, c.ListenAddrs()[0], out)
	}
	from, to := base.Add(2000*time.Second), base.Add(12000*time.Second) // records 200..1199
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	first := runYAML(t, y(a), Replay(from, to))
	if first.Sinks[0].Written != 1000 {
		t.Fatalf("first replay wrote %d records, want 1000", first.Sinks[0].Written)
	}
	treeA := testutil.TreeHashes(a)
	second := runYAML(t, y(a), Replay(from, to))
	if second.Sinks[0].Written != 0 || second.Sinks[0].Skipped != 1000 {
		t.Errorf("second replay: %+v", second.Sinks[0])
	}
	if got := testutil.TreeHashes(a); fmt.Sprint(got) != fmt.Sprint(treeA) {
		t.Error("the second replay changed the lake")
	}
	runYAML(t, y(b), Replay(from, to))
	if fmt.Sprint(testutil.TreeHashes(b)) != fmt.Sprint(treeA) {
		t.Error("a single pass into an empty lake differs from the replayed lake")
	}
	ids := map[string]int{}
	for rel := range treeA {
		pf, err := testutil.ReadParquet(filepath.Join(a, rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range pf.Rows {
			ids[r["id"].(string)]++
		}
	}
	for i := 200; i < 1200; i++ {
		if n := ids[fmt.Sprintf("r%d", i)]; n != 1 {
			t.Errorf("r%d in the lake %d times", i, n)
		}
	}
	if len(ids) != 1000 {
		t.Errorf("%d distinct ids, want 1000", len(ids))
	}
}
