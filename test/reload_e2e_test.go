package test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaVersion is one version of the configuration TestReloadKafkaE2E
// steps through; the checks at the end recompute, from the version that
// routed a record, where that version must have put it.
type kafkaVersion struct {
	v         int
	key       string // partition key of sink "all": jq
	threshold int    // route "high" takes sev >= threshold
	mid       string // the sink route "mid" (p = P2) writes to: east or west
	extra     bool   // sink "extra" and route "extra" (sev = 0) exist
	squares   bool   // route "all" transforms with jq, adding sq = sev*sev
	batch     int    // source batch_size
	linger    string // source batch_linger
	pending   int    // source max_pending
	watch     bool   // service.reload.watch
}

const kafkaReloadVersions = 20 // v0 runs first; v1..v20 are reloaded

func kafkaReloadVersion(v int) kafkaVersion {
	kv := kafkaVersion{v: v, key: ".p", threshold: 5 + v%4, mid: "east", batch: 256, linger: "50ms", pending: 20000}
	if v%3 == 1 {
		kv.key = ".sev" // a changed partition key
	}
	if (v/3)%2 == 1 {
		kv.mid = "west" // a route that moves to another sink
	}
	kv.extra = v >= 4 && v <= 8    // one sink added (v4) and removed (v9)
	kv.squares = v >= 5 && v <= 14 // a changed transform
	kv.watch = v >= 6 && v <= 8    // v7..v9 arrive through the file watch
	// The source's settings change four times (it restarts each time),
	// under load, so that some reload catches a batch in flight.
	if v >= 13 {
		kv.batch = 128
	}
	if v >= 15 {
		kv.linger = "30ms"
	}
	if v >= 17 {
		kv.pending = 15000
	}
	if v >= 19 {
		kv.batch = 200
	}
	return kv
}

// sourceChanged reports whether the version changes the source's
// settings against the one before.
func (kv kafkaVersion) sourceChanged() bool {
	prev := kafkaReloadVersion(kv.v - 1)
	return kv.batch != prev.batch || kv.linger != prev.linger || kv.pending != prev.pending
}

// viaWatch: versions the file watch reloads (written by rename, no
// SIGHUP); the others are reloaded by SIGHUP.
func (kv kafkaVersion) viaWatch() bool { return kafkaReloadVersion(kv.v - 1).watch }

const kafkaReloadSchema = `
    schema:
      - {name: id, type: string, required: true}
      - {name: sev, type: int64}
      - {name: p, type: string}
      - {name: version, type: int64}
      - {name: sq, type: int64}
      - {name: kafka.partition, column: kpart, type: int64}
      - {name: kafka.offset, column: koff, type: int64}
    extra_column: ""
    buffer: {max_records: 2000, interval: 500ms}`

// render writes the version's document. bad adds a route to a sink that
// does not exist and moves route "all" to version 99: a document that
// must be rejected whole.
func (kv kafkaVersion) render(broker, out, httpAddr string, bad bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# version %d
service:
  name: reload-e2e
  http_listen: "%s"
  log_level: info
  error_sink: errors
  workers: 2
  shutdown_timeout: 30s
  reload: {watch: %t}
sources:
  - name: app
    type: kafka
    format: json
    batch_size: %d
    batch_linger: %s
    max_pending: %d
    kafka: {brokers: ["%s"], topics: [logs], group: reload-e2e, session_timeout: 10s, metadata_field: kafka}
routes:
`, kv.v, httpAddr, kv.watch, kv.batch, kv.linger, kv.pending, broker)
	version := kv.v
	if bad {
		version = 99
	}
	set := fmt.Sprintf("{set: {version: %d}}", version)
	allT := set
	if kv.squares {
		allT = fmt.Sprintf(`{jq: '.version = %d | .sq = (.sev * .sev)'}`, version)
	}
	fmt.Fprintf(&b, "  - {name: all, from: [app], to: [all], transforms: [%s]}\n", allT)
	fmt.Fprintf(&b, "  - {name: high, from: [app], to: [high], match: {sev: [{numeric: [\">=\", %d]}]}, transforms: [%s]}\n", kv.threshold, set)
	fmt.Fprintf(&b, "  - {name: mid, from: [app], to: [%s], match: {p: [P2]}, transforms: [%s]}\n", kv.mid, set)
	if kv.extra {
		fmt.Fprintf(&b, "  - {name: extra, from: [app], to: [extra], match: {sev: [0]}, transforms: [%s]}\n", set)
	}
	if bad {
		b.WriteString("  - {name: bad, from: [app], to: [nowhere]}\n")
	}
	b.WriteString("sinks:\n")
	fmt.Fprintf(&b, `  - name: all
    type: s3
    url: "file:%s/all/"
    format: parquet
    partition_keys: {k: '%s'}
    prefix: "v%02d/k=!{partitionKeyFromQuery:k}/"%s
`, out, kv.key, version, kafkaReloadSchema)
	sinks := []string{"high", "east", "west"}
	if kv.extra {
		sinks = append(sinks, "extra")
	}
	for _, name := range sinks {
		fmt.Fprintf(&b, "  - name: %s\n    type: s3\n    url: \"file:%s/%s/\"\n    format: parquet%s\n", name, out, name, kafkaReloadSchema)
	}
	fmt.Fprintf(&b, "  - {name: errors, type: s3, url: \"file:%s/errors/\", format: ndjson}\n", out)
	return b.String()
}

// producer writes {"id","sev","p"} records to topic logs, numbered
// r0, r1, ... in the order they were sent, and remembers where each
// landed.
type producer struct {
	cl   *kgo.Client
	send sync.Mutex // one send at a time, so that ids follow one another
	mu   sync.Mutex
	at   []kafkaPos // at[n]: where r<n> is
	done chan struct{}
}

type kafkaPos struct {
	part int32
	off  int64
}

func (p *producer) n() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.at)
}

// produce sends the next k records.
func (p *producer) produce(k int) error {
	p.send.Lock()
	defer p.send.Unlock()
	next := p.n()
	recs := make([]*kgo.Record, k)
	for j := range recs {
		n := next + j
		recs[j] = &kgo.Record{Topic: "logs", Value: fmt.Appendf(nil, `{"id":"r%d","sev":%d,"p":"P%d"}`, n, n%10, n%3)}
	}
	if err := p.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range recs {
		p.at = append(p.at, kafkaPos{r.Partition, r.Offset})
	}
	return nil
}

// produceContinuously produces 200 records every 10 ms or so until ctx
// ends, pausing while the group is more than 30,000 records behind, so
// that a slow machine does not pile up a backlog to drain at the end.
func produceContinuously(ctx context.Context, t *testing.T, cl *kgo.Client, adm *kadm.Client, group string) *producer {
	p := &producer{cl: cl, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for ctx.Err() == nil {
			if int64(p.n())-committedIn(adm, group) > 30_000 {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			if err := p.produce(200); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return p
}

// groupMember returns the member id of the group's only member once the
// group is Stable with one member; "" while it is not.
func groupMember(adm *kadm.Client, group string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ds, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return ""
	}
	d := ds[group]
	if d.Err != nil || d.State != "Stable" || len(d.Members) != 1 {
		return ""
	}
	return d.Members[0].MemberID
}

// TestReloadKafkaE2E is the end-to-end test of hot reload: the
// built binary reads a Kafka topic (kfake in its own process) while a
// producer writes on; its configuration file is replaced and reloaded 20
// times, by SIGHUP and through the file watch (write a temporary file,
// rename it over the config), and once with an invalid document that
// must change nothing. The versions move route "all" to a new prefix each
// time, change its partition key and its transform, move route "mid" from
// one sink to another, change route "high"'s threshold, add a sink and
// remove it, and change the source's settings (four times, under load).
//
// Afterwards, Apache Arrow reads the lake: every record is in route
// "all"'s sink exactly once, under the prefix, partition and transform of
// the version that read it, and that version never goes back within a
// Kafka partition; every other route holds exactly the records that the
// version that read them sends there, once. The Kafka consumer keeps its
// group membership across every reload but those that change its source;
// /readyz stays 200.
func TestReloadKafkaE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: a broker process, the processor, 21 reloads while producing")
	}
	broker := startBroker(t, 3)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	cfgPath := filepath.Join(dir, "sluice.yaml")
	httpAddr := freeAddr(t)
	doc := func(v int) string { return kafkaReloadVersion(v).render(broker, out, httpAddr, false) }
	replaceFile(t, cfgPath, doc(0))

	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, stopProducing := context.WithCancel(context.Background())
	defer stopProducing()
	prod := produceContinuously(ctx, t, cl, adm, "reload-e2e")

	svc := startService(t, "processor", cfgPath, httpAddr)
	svc.waitLog(t, `"pipeline starting"`, logged("pipeline starting"))
	eventually(t, 30*time.Second, "/readyz 200 and the consumer in the group", func() bool {
		return svc.ready() && groupMember(adm, "reload-e2e") != ""
	})
	if info := series(svc.metrics(), "sluice_config_info"); len(info) != 1 || !strings.Contains(info[0], configHash(doc(0))) {
		t.Errorf("at the start sluice_config_info is %q, want version 0's hash %s only", info, configHash(doc(0)))
	}
	stopReady := svc.readiness()
	routed := func() float64 { v, _ := svc.metric(`sluice_source_messages_total{source="app"}`); return v }
	// Each version must route records of its own: wait until this many
	// more messages went through after a reload.
	const perVersion = 300
	eventually(t, 30*time.Second, "the first records routed", func() bool { return routed() >= perVersion })

	member := groupMember(adm, "reload-e2e")
	reload := func(v int) {
		t.Helper()
		kv := kafkaReloadVersion(v)
		if kv.sourceChanged() {
			// A backlog, so that the source is stopped with batches in
			// flight: they must finish under the old version, and the
			// source restart at their end, neither read twice nor lost.
			for range 5 {
				if err := prod.produce(2000); err != nil {
					t.Fatal(err)
				}
			}
			from := routed()
			eventually(t, 30*time.Second, "the backlog being read", func() bool { return routed() >= from+1000 })
		}
		if kv.viaWatch() {
			// The version before turned the watch on: wait until it is set.
			svc.waitLog(t, `"watching the configuration file"`, logged("watching the configuration file"))
		}
		replaceFile(t, cfgPath, doc(v))
		want := "file change"
		if !kv.viaWatch() {
			want = "SIGHUP"
			svc.cmd.Process.Signal(syscall.SIGHUP)
		}
		line := svc.waitReloaded(t, fmt.Sprintf("version %d", v), doc(v))
		// Every batch of the version before was processed before the swap:
		// what is counted from here on, this version routed.
		routedBefore := routed()
		if trig, _ := line["trigger"].(string); !strings.Contains(trig, want) {
			t.Errorf("version %d was reloaded by %q, want %q", v, trig, want)
		}
		// The consumer keeps its membership unless its source changed.
		if kv.sourceChanged() {
			old := member
			eventually(t, 30*time.Second, "the restarted consumer back in the group", func() bool {
				member = groupMember(adm, "reload-e2e")
				return member != "" && member != old
			})
		} else if got := groupMember(adm, "reload-e2e"); got != member {
			t.Errorf("reload %d changed no source, but the group member went from %q to %q", v, member, got)
			member = got
		}
		eventually(t, 30*time.Second, fmt.Sprintf("records routed under version %d", v), func() bool { return routed() >= routedBefore+perVersion })
	}
	for v := 1; v <= 10; v++ {
		reload(v)
	}
	// An invalid document in the middle: rejected with the same
	// file:line text as validate, counted, and without effect.
	badDoc := kafkaReloadVersion(10).render(broker, out, httpAddr, true)
	badLine := slices.IndexFunc(strings.Split(badDoc, "\n"), func(l string) bool { return strings.Contains(l, "name: bad") }) + 1
	replaceFile(t, cfgPath, badDoc)
	svc.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 30*time.Second, "sluice_config_reloads_total{result=\"rejected\"} 1", func() bool {
		v, _ := svc.metric(`sluice_config_reloads_total{result="rejected"}`)
		return v == 1
	})
	wantAt, wantWhat := fmt.Sprintf("%s:%d: ", cfgPath, badLine), `unknown sink "nowhere"`
	svc.waitLog(t, fmt.Sprintf(`"configuration error" with problem %s...%s`, wantAt, wantWhat), func(l map[string]any) bool {
		p, _ := l["problem"].(string)
		return l["msg"] == "configuration error" && strings.HasPrefix(p, wantAt) && strings.Contains(p, wantWhat)
	})
	before := routed()
	eventually(t, 30*time.Second, "records routed after the rejected reload", func() bool { return routed() >= before+perVersion })
	if info := series(svc.metrics(), "sluice_config_info"); len(info) != 1 || !strings.Contains(info[0], configHash(doc(10))) {
		t.Errorf("after the rejected reload sluice_config_info is %q, want version 10's hash %s only", info, configHash(doc(10)))
	}
	if got := groupMember(adm, "reload-e2e"); got != member {
		t.Errorf("the rejected reload changed the group member from %q to %q", member, got)
	}
	for v := 11; v <= kafkaReloadVersions; v++ {
		reload(v)
	}
	bad, polls, first := stopReady()
	if bad > 0 {
		t.Errorf("/readyz was not 200 in %d of %d polls during the reloads; first: %s", bad, polls, first)
	}
	m := svc.metrics()
	if v, _ := metricIn(m, `sluice_config_reloads_total{result="applied"}`); v != kafkaReloadVersions {
		t.Errorf("sluice_config_reloads_total{result=\"applied\"} is %v, want %d", v, kafkaReloadVersions)
	}
	if v, _ := metricIn(m, `sluice_config_reloads_total{result="rejected"}`); v != 1 {
		t.Errorf("sluice_config_reloads_total{result=\"rejected\"} is %v, want 1", v)
	}

	// Stop producing; once the group has committed every record, every
	// record is durable in the lake.
	stopProducing()
	<-prod.done
	n := prod.n()
	eventually(t, 60*time.Second, fmt.Sprintf("the group committing all %d records", n), func() bool { return committedIn(adm, "reload-e2e") >= int64(n) })
	svc.stop(t)

	checkKafkaReloadLake(t, out, prod.at)
}

// committedIn sums the group's committed offsets.
func committedIn(adm *kadm.Client, group string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0
	}
	var total int64
	offs.Each(func(o kadm.OffsetResponse) { total += o.At })
	return total
}

// checkKafkaReloadLake checks the lake against the versions: at[n] is
// where record r<n> is in Kafka.
func checkKafkaReloadLake(t *testing.T, out string, at []kafkaPos) {
	t.Helper()
	n := len(at)
	idNum := func(id string) int {
		var i int
		if _, err := fmt.Sscanf(id, "r%d", &i); err != nil || i < 0 || i >= n {
			return -1
		}
		return i
	}
	noErrorOutput(t, out, "all", "high", "east", "west", "extra")

	// Route "all": every record exactly once, under its version's prefix
	// and partition key, transformed by its version.
	version := make([]int, n)
	allCount := make([]int, n)
	seen := map[int]int{}
	misplaced := &capped{t: t, what: "route all's records"}
	for _, r := range lakeRows(t, filepath.Join(out, "all")) {
		i := idNum(r.str("id"))
		if i < 0 {
			misplaced.errorf("all/%s: unknown id %q", r.rel, r.str("id"))
			continue
		}
		allCount[i]++
		v64, _ := r.num("version")
		v := int(v64)
		version[i] = v
		seen[v]++
		if v < 0 || v > kafkaReloadVersions {
			misplaced.errorf("all/%s: %s routed by version %d", r.rel, r.str("id"), v)
			continue
		}
		kv := kafkaReloadVersion(v)
		sev, _ := r.num("sev")
		key := r.str("p")
		if kv.key == ".sev" {
			key = fmt.Sprint(sev)
		}
		if wantDir := fmt.Sprintf("v%02d/k=%s", v, key); filepath.Dir(r.rel) != wantDir {
			misplaced.errorf("all/%s: %s (version %d) is not under %s/", r.rel, r.str("id"), v, wantDir)
		}
		sq, hasSq := r.num("sq")
		if hasSq != kv.squares || (hasSq && sq != sev*sev) {
			misplaced.errorf("all/%s: %s (version %d, sev %d) has sq %v (set: %t); version %d's transform adds it: %t", r.rel, r.str("id"), v, sev, sq, hasSq, v, kv.squares)
		}
		part, _ := r.num("kpart")
		off, hasOff := r.num("koff")
		if !hasOff || at[i] != (kafkaPos{int32(part), off}) {
			misplaced.errorf("all/%s: %s has Kafka position %d/%d, was produced to %d/%d", r.rel, r.str("id"), part, off, at[i].part, at[i].off)
		}
	}
	misplaced.done()
	once := &capped{t: t, what: "route all exactly once"}
	for i, c := range allCount {
		if c != 1 {
			once.errorf("r%d is in route all's sink %d times", i, c)
		}
	}
	once.done()
	if once.n > 0 {
		t.FailNow() // what follows needs each record's version
	}
	for v := 0; v <= kafkaReloadVersions; v++ {
		if seen[v] == 0 {
			t.Errorf("version %d routed no record", v)
		}
	}
	// A version, once it read a partition, never hands it back to an
	// older one: by offset, versions never go down.
	byPart := map[int32][]int{}
	for i, p := range at {
		byPart[p.part] = append(byPart[p.part], i)
	}
	for part, ids := range byPart {
		slices.SortFunc(ids, func(a, b int) int { return int(at[a].off - at[b].off) })
		for k := 1; k < len(ids); k++ {
			if a, b := ids[k-1], ids[k]; version[b] < version[a] {
				t.Errorf("partition %d: offset %d routed by version %d after offset %d by version %d", part, at[b].off, version[b], at[a].off, version[a])
				break
			}
		}
	}

	// The other routes: each record where the version that read it (its
	// version in "all": a batch is routed by one version) sends it, once,
	// and nowhere else.
	type where struct {
		sink string
		i    int
	}
	count := map[where]int{}
	others := &capped{t: t, what: "the other routes"}
	for _, sink := range []string{"high", "east", "west", "extra"} {
		for _, r := range lakeRows(t, filepath.Join(out, sink)) {
			i := idNum(r.str("id"))
			if i < 0 {
				others.errorf("%s/%s: unknown id %q", sink, r.rel, r.str("id"))
				continue
			}
			count[where{sink, i}]++
			if v, _ := r.num("version"); int(v) != version[i] {
				others.errorf("%s/%s: r%d routed by version %d there, by version %d in route all", sink, r.rel, i, v, version[i])
			}
		}
	}
	for i := range n {
		kv := kafkaReloadVersion(version[i])
		sev, p := i%10, fmt.Sprintf("P%d", i%3)
		want := map[string]bool{
			"high":  sev >= kv.threshold,
			"east":  p == "P2" && kv.mid == "east",
			"west":  p == "P2" && kv.mid == "west",
			"extra": sev == 0 && kv.extra,
		}
		for sink, w := range want {
			wantN := 0
			if w {
				wantN = 1
			}
			if c := count[where{sink, i}]; c != wantN {
				others.errorf("r%d (sev %d, %s, read by version %d) is in sink %s %d times, want %d", i, sev, p, version[i], sink, c, wantN)
			}
		}
	}
	others.done()
	t.Logf("%d records in %d versions; %v per version", n, len(seen), seen)
}
