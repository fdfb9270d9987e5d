package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"

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

// BenchmarkKafkaToParquet runs the BenchmarkStores workload (200,000 bench
// records, the seed's six keys, ~1,500 objects to a file store) from a
// kfake topic of 8 partitions instead of a file. The source reads the whole
// topic as a replay range (same fetch path as the group, which never
// ends); compare with BenchmarkStores/file. Records are keyed by
// project_id, as the planning engines produce them ("keyed"), or spread
// round-robin ("roundrobin": every lake partition then gets records from
// all 8 partitions, so 8 times the objects, each an eighth the size).
func BenchmarkKafkaToParquet(b *testing.B) {
	for _, keyed := range []bool{true, false} {
		name := map[bool]string{true: "keyed", false: "roundrobin"}[keyed]
		b.Run(name, func(b *testing.B) { benchKafka(b, keyed) })
	}
}

func benchKafka(b *testing.B, keyed bool) {
	const n = 200000
	var buf bytes.Buffer
	if err := testutil.WriteAppLogs(&buf, n); err != nil {
		b.Fatal(err)
	}
	broker, at := benchTopic(b, buf.Bytes(), keyed)
	dir := b.TempDir()
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		runYAML(b, benchKafkaConfig(broker, dir), Replay(at.Add(-time.Hour), at.Add(time.Hour)))
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkKafkaVsFile runs the BenchmarkStores workload (200,000 bench
// records into the file-store lake) from a file and from a keyed 8-partition
// kfake topic holding the same records, alternating the two in every
// iteration so that both see the same machine load, and reports each rate
// and kafka/file, the Kafka path's rate as a fraction of the file path's.
func BenchmarkKafkaVsFile(b *testing.B) {
	const n = 200000
	var buf bytes.Buffer
	if err := testutil.WriteAppLogs(&buf, n); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	if err := os.WriteFile(in, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	broker, at := benchTopic(b, buf.Bytes(), true)
	var fileTime, kafkaTime, fileCPU, kafkaCPU time.Duration
	var ratios []float64 // per iteration: kafka's rate over file's
	var fileObjects, kafkaObjects int64
	runFile := func() {
		start, cpu := time.Now(), processCPU()
		// Labelled, so that a CPU profile (-cpuprofile) splits by path:
		// pprof -tagfocus path=file; kfake's goroutines have no label.
		pprof.Do(context.Background(), pprof.Labels("path", "file"), func(context.Context) {
			fileObjects = runYAML(b, benchLakeConfig(fmt.Sprintf(`{name: app, type: file, format: app_log, file: {paths: ["%s"]}}`, in), dir)).Sinks[0].Objects
		})
		fileTime += time.Since(start)
		fileCPU += processCPU() - cpu
	}
	runKafka := func() {
		start, cpu := time.Now(), processCPU()
		pprof.Do(context.Background(), pprof.Labels("path", "kafka"), func(context.Context) {
			kafkaObjects = runYAML(b, benchKafkaConfig(broker, dir), Replay(at.Add(-time.Hour), at.Add(time.Hour))).Sinks[0].Objects
		})
		kafkaTime += time.Since(start)
		kafkaCPU += processCPU() - cpu
	}
	// One untimed run of each first: the first run of a process pays for
	// growing the heap (more GC) and the first objects' directories.
	runFile()
	runKafka()
	fileTime, kafkaTime, fileCPU, kafkaCPU = 0, 0, 0, 0
	i := 0
	for b.Loop() {
		f, k := fileTime, kafkaTime
		// Alternate which goes first, so that neither always follows the
		// other's garbage.
		if i%2 == 0 {
			runFile()
			runKafka()
		} else {
			runKafka()
			runFile()
		}
		ratios = append(ratios, float64(fileTime-f)/float64(kafkaTime-k))
		b.Logf("pair %d: file %v, kafka %v, kafka/file %.3f", i, (fileTime - f).Round(time.Millisecond), (kafkaTime - k).Round(time.Millisecond), ratios[i])
		i++
	}
	fileRate := float64(n*i) / fileTime.Seconds()
	kafkaRate := float64(n*i) / kafkaTime.Seconds()
	b.ReportMetric(fileRate, "file-records/s")
	b.ReportMetric(kafkaRate, "kafka-records/s")
	b.ReportMetric(kafkaRate/fileRate, "kafka/file")
	// The median of the pairs' ratios shrugs off a pair that met a burst
	// of other load on the machine.
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "kafka/file-median")
	// CPU time of the whole process, kfake's broker included: less
	// sensitive to other load on the machine than the rates.
	b.ReportMetric(float64(kafkaCPU)/float64(fileCPU), "kafka/file-cpu")
	b.ReportMetric(float64(fileObjects), "file-objects")
	b.ReportMetric(float64(kafkaObjects), "kafka-objects")
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchTopic fills an 8-partition kfake topic with the lines of data, all
// stamped with the returned time, keyed by project_id or round-robin, and
// returns the broker's address.
func benchTopic(b *testing.B, data []byte, keyed bool) (string, time.Time) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(8, "logs"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	part := kgo.StickyKeyPartitioner(nil)
	if !keyed {
		part = kgo.RoundRobinPartitioner()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(part), kgo.ProducerBatchMaxBytes(4<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	at := time.Date(2024, 11, 3, 0, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		r := &kgo.Record{Topic: "logs", Value: line, Timestamp: at}
		if keyed {
			r.Key = []byte(fastjson.GetString(line, "project_id"))
		}
		recs = append(recs, r)
	}
	for i := 0; i < len(recs); i += 20000 {
		if err := cl.ProduceSync(context.Background(), recs[i:min(i+20000, len(recs))]...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	return c.ListenAddrs()[0], at
}

func benchKafkaConfig(broker, dir string) string {
	return benchLakeConfig(fmt.Sprintf(`{name: app, type: kafka, format: app_log, kafka: {brokers: ["%s"], topics: [logs], group: bench}}`, broker), dir)
}

// benchLakeConfig is the BenchmarkStores pipeline from source (a flow
// mapping) into a fresh prefix under dir: a second run into the same
// prefix would find every record written and skip it.
func benchLakeConfig(source, dir string) string {
	return fmt.Sprintf(`
service: {http_listen: "", error_sink: lake}
sources: [%s]
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
`, source, dir, benchRuns.Add(1))
}

// TestKafkaMetadata: with metadata_field set, the key, headers, topic,
// partition, offset and timestamp are usable in a route's match, in
// partition keys and in the record written.
func TestKafkaMetadata(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 11, 3, 7, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for i := range 40 {
		tenant := []string{"acme", "globex"}[i%2]
		recs = append(recs, &kgo.Record{Topic: "logs", Key: []byte(fmt.Sprintf("plant-%d", i%4)), Timestamp: at,
			Headers: []kgo.RecordHeader{{Key: "tenant", Value: []byte(tenant)}}, Value: []byte(fmt.Sprintf(`{"i":%d}`, i))})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	dir := t.TempDir()
	sum := runYAML(t, fmt.Sprintf(`
service: {http_listen: "", error_sink: out}
sources:
  - {name: k, type: kafka, format: json, kafka: {brokers: ["%s"], topics: [logs], group: g, metadata_field: _kafka}}
routes:
  - {name: acme, from: [k], match: {_kafka: {headers: {tenant: [acme]}}}, to: [out]}
sinks:
  - {name: out, type: s3, url: "file:%s/", format: ndjson, partition_keys: {key: ._kafka.key}}
`, c.ListenAddrs()[0], dir), Replay(at.Add(-time.Minute), at.Add(time.Minute)))
	if sum.Sinks[0].Written != 20 || sum.Sources[0].Unmatched != 20 {
		t.Fatalf("written %d, unmatched %d; want 20, 20", sum.Sinks[0].Written, sum.Sources[0].Unmatched)
	}
	tree := testutil.TreeHashes(dir)
	keys := map[string]bool{}
	for rel := range tree {
		keys[filepath.Dir(rel)] = true
		b, _ := os.ReadFile(filepath.Join(dir, rel))
		for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			v, err := fastjson.ParseBytes(line)
			if err != nil {
				t.Fatal(err)
			}
			m := v.Get("_kafka")
			if string(m.GetStringBytes("topic")) != "logs" || string(m.GetStringBytes("headers", "tenant")) != "acme" ||
				string(m.GetStringBytes("timestamp")) != "2024-11-03T07:00:00.000Z" || m.Get("offset") == nil || m.Get("partition") == nil {
				t.Errorf("metadata: %s", line)
			}
		}
	}
	if len(keys) != 2 || !keys["key=plant-0"] || !keys["key=plant-2"] {
		t.Errorf("partitions by key: %v", keys)
	}
}
