package test

import (
	"context"
	"fmt"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

const kinesisReloadVersions = 6 // v0 runs first; v1..v6 are reloaded

// kinesisVersion is one version of TestReloadKinesisE2E's configuration:
// the source never changes; routes and sinks do.
type kinesisVersion struct {
	v     int
	pick  string // the sink route "pick" (key k0..k9) writes to: east or west
	extra bool   // sink "extra" and route "extra" (sev = 0) exist
}

func kinesisReloadVersion(v int) kinesisVersion {
	kv := kinesisVersion{v: v, pick: "east", extra: v >= 2 && v <= 3}
	if v%2 == 1 {
		kv.pick = "west"
	}
	return kv
}

const kinesisReloadSchema = `
    schema:
      - {name: id, type: string, required: true}
      - {name: key, type: string}
      - {name: sev, type: int64}
      - {name: version, type: int64}
    extra_column: ""
    buffer: {max_records: 2000, interval: 500ms}`

// render writes the version's document. Both processors read it; each
// gets its own HTTP listener from ${HTTP}.
func (kv kinesisVersion) render(stream, kin, ddb, out string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# version %d
service: {name: reload-kinesis, http_listen: "${HTTP}", log_level: info, error_sink: errors, workers: 2, shutdown_timeout: 30s}
sources:
  - name: security
    type: kinesis
    format: json
    batch_size: 200
    batch_linger: 50ms
    kinesis: {stream: "%s", region: us-east-1, endpoint: "%s", dynamodb_endpoint: "%s", lease_table: "%s-leases", lease_duration: 6s}
routes:
`, kv.v, stream, kin, ddb, stream)
	set := fmt.Sprintf("{set: {version: %d}}", kv.v)
	fmt.Fprintf(&b, "  - {name: all, from: [security], to: [all], transforms: [%s]}\n", set)
	fmt.Fprintf(&b, "  - {name: pick, from: [security], to: [%s], match: {key: [k0, k1, k2, k3, k4, k5, k6, k7, k8, k9]}, transforms: [%s]}\n", kv.pick, set)
	if kv.extra {
		fmt.Fprintf(&b, "  - {name: extra, from: [security], to: [extra], match: {sev: [0]}, transforms: [%s]}\n", set)
	}
	fmt.Fprintf(&b, `sinks:
  - name: all
    type: s3
    url: "file:%s/all/"
    format: parquet
    prefix: "v%02d/"%s
`, out, kv.v, kinesisReloadSchema)
	sinks := []string{"east", "west"}
	if kv.extra {
		sinks = append(sinks, "extra")
	}
	for _, name := range sinks {
		fmt.Fprintf(&b, "  - name: %s\n    type: s3\n    url: \"file:%s/%s/\"\n    format: parquet%s\n", name, out, name, kinesisReloadSchema)
	}
	fmt.Fprintf(&b, "  - {name: errors, type: s3, url: \"file:%s/errors/\", format: ndjson}\n", out)
	return b.String()
}

// leaseState is the lease table as the test reads it: shard → owner, and
// shard → checkpoint.
type leaseState struct {
	owner, checkpoint, handoff map[string]string
}

func scanLeases(t *testing.T, ddb *dynamodb.Client, table string) leaseState {
	t.Helper()
	ls := leaseState{owner: map[string]string{}, checkpoint: map[string]string{}, handoff: map[string]string{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := dynamodb.NewScanPaginator(ddb, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return leaseState{} // not there yet
		}
		for _, it := range page.Items {
			s := func(k string) string {
				v, _ := it[k].(*ddbtypes.AttributeValueMemberS)
				if v == nil {
					return ""
				}
				return v.Value
			}
			key := s("leaseKey")
			ls.owner[key], ls.checkpoint[key], ls.handoff[key] = s("leaseOwner"), s("checkpoint"), s("handoffTo")
		}
	}
	return ls
}

// balanced reports whether the leases of the shards are split evenly
// between two owners, with no handoff under way.
func (ls leaseState) balanced(shards int) bool {
	per := map[string]int{}
	for k, o := range ls.owner {
		if o == "" || ls.handoff[k] != "" {
			return false
		}
		per[o]++
	}
	if len(ls.owner) != shards || len(per) != 2 {
		return false
	}
	for _, n := range per {
		if n != shards/2 {
			return false
		}
	}
	return true
}

// leaseMoves are the log messages of a Kinesis lease changing hands.
var leaseMoves = []string{"kinesis lease taken", "kinesis lease asked for", "kinesis lease handed over", "kinesis lease lost"}

// TestReloadKinesisE2E: two processors share a stream's leases (kinesalite
// and dynalite) while a producer writes on. Both are reloaded six times
// with documents that move routes between sinks, move route "all" to a
// new prefix, and add and remove a sink, but leave the source alone: no
// lease moves (the lease table's owners stay the same, and neither
// processor logs a lease taken, asked for, handed over or lost), and every
// record is in route "all"'s sink exactly once, under the prefix of the
// version that read it, and in each other sink as that version says.
func TestReloadKinesisE2E(t *testing.T) {
	kin, ddbURL := os.Getenv("SLUICE_TEST_KINESIS_ENDPOINT"), os.Getenv("SLUICE_TEST_DYNAMODB_ENDPOINT")
	if kin == "" || ddbURL == "" {
		t.Skip("SLUICE_TEST_KINESIS_ENDPOINT / SLUICE_TEST_DYNAMODB_ENDPOINT unset: run test/run.sh, which starts kinesalite and dynalite")
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	const shards = 4
	awsCfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	kc := kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(kin) })
	ddb := dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(ddbURL) })
	stream := fmt.Sprintf("reload-%d", time.Now().UnixNano())
	if _, err := kc.CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "stream ACTIVE", func() bool {
		out, err := kc.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		return err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive
	})

	// The producer: records r0, r1, ... with 40 partition keys, and the
	// highest sequence number written to each shard.
	var (
		mu      sync.Mutex
		n       int
		lastSeq = map[string]*big.Int{}
	)
	ctx, stopProducing := context.WithCancel(context.Background())
	defer stopProducing()
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		for ctx.Err() == nil {
			mu.Lock()
			next := n
			mu.Unlock()
			var entries []ktypes.PutRecordsRequestEntry
			for i := next; i < next+100; i++ {
				key := fmt.Sprintf("k%d", i%40)
				entries = append(entries, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(key), Data: fmt.Appendf(nil, `{"id":"r%d","key":"%s","sev":%d}`, i, key, i%10)})
			}
			out, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
			if err == nil && aws.ToInt32(out.FailedRecordCount) > 0 {
				err = fmt.Errorf("%d records failed", aws.ToInt32(out.FailedRecordCount))
			}
			if err != nil {
				t.Errorf("put records: %v", err)
				return
			}
			mu.Lock()
			for _, r := range out.Records {
				seq, _ := new(big.Int).SetString(aws.ToString(r.SequenceNumber), 10)
				if cur := lastSeq[aws.ToString(r.ShardId)]; cur == nil || seq.Cmp(cur) > 0 {
					lastSeq[aws.ToString(r.ShardId)] = seq
				}
			}
			n += len(entries)
			mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()

	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	cfgPath := filepath.Join(dir, "sluice.yaml")
	doc := func(v int) string { return kinesisReloadVersion(v).render(stream, kin, ddbURL, out) }
	replaceFile(t, cfgPath, doc(0))
	var svcs []*service
	for _, name := range []string{"a", "b"} {
		addr := freeAddr(t)
		svcs = append(svcs, startService(t, name, cfgPath, addr, "HTTP="+addr))
	}
	table := stream + "-leases"
	// Wait until the two share the shards two and two, and stay so for
	// two lease rounds.
	var owners map[string]string
	eventually(t, 40*time.Second, "the leases balanced two and two", func() bool {
		ls := scanLeases(t, ddb, table)
		if !ls.balanced(shards) {
			owners = nil
			return false
		}
		if owners == nil || !maps.Equal(owners, ls.owner) {
			owners = ls.owner
			time.Sleep(4 * time.Second) // two lease rounds
			return false
		}
		return true
	})
	moves := make([]int, len(svcs))
	for i, s := range svcs {
		moves[i] = s.countLogs(leaseMoves...)
	}
	t.Logf("leases: %v", owners)
	routed := func(s *service) float64 {
		v, _ := s.metric(`sluice_source_messages_total{source="security"}`)
		return v
	}
	const perVersion = 150
	var stopReady []func() (int, int, string)
	for _, s := range svcs {
		stopReady = append(stopReady, s.readiness())
	}
	for v := 1; v <= kinesisReloadVersions; v++ {
		replaceFile(t, cfgPath, doc(v))
		for _, s := range svcs {
			s.cmd.Process.Signal(syscall.SIGHUP)
		}
		for _, s := range svcs {
			line := s.waitReloaded(t, fmt.Sprintf("version %d", v), doc(v))
			// Counted from here on: batches this version routed.
			before := routed(s)
			if ch, _ := line["changes"].(string); !strings.HasPrefix(ch, "sources: unchanged;") {
				t.Errorf("%s: reload %d changed a source: %q", s.name, v, ch)
			}
			eventually(t, 30*time.Second, fmt.Sprintf("%s routing under version %d", s.name, v), func() bool { return routed(s) >= before+perVersion })
		}
		if ls := scanLeases(t, ddb, table); !maps.Equal(ls.owner, owners) {
			t.Errorf("after reload %d the leases are %v, were %v", v, ls.owner, owners)
		}
		for i, s := range svcs {
			if got := s.countLogs(leaseMoves...); got != moves[i] {
				t.Errorf("%s: %d lease moves logged by reload %d", s.name, got-moves[i], v)
				moves[i] = got
			}
		}
	}

	for i, stop := range stopReady {
		if bad, polls, first := stop(); bad > 0 {
			t.Errorf("%s: /readyz was not 200 in %d of %d polls during the reloads; first: %s", svcs[i].name, bad, polls, first)
		}
	}

	// Stop producing; once every shard's checkpoint has reached the last
	// record written to it, every record is durable in the lake.
	stopProducing()
	<-prodDone
	eventually(t, 60*time.Second, "every shard checkpointed at its last record", func() bool {
		ls := scanLeases(t, ddb, table)
		for shard, last := range lastSeq {
			cp, ok := new(big.Int).SetString(ls.checkpoint[shard], 10)
			if !ok || cp.Cmp(last) < 0 {
				return false
			}
		}
		return true
	})
	if ls := scanLeases(t, ddb, table); !maps.Equal(ls.owner, owners) {
		t.Errorf("at the end the leases are %v, were %v", ls.owner, owners)
	}
	for _, s := range svcs {
		s.stop(t)
	}
	checkKinesisReloadLake(t, out, n)
}

func checkKinesisReloadLake(t *testing.T, out string, n int) {
	t.Helper()
	noErrorOutput(t, out, "all", "east", "west", "extra")
	idNum := func(id string) int {
		var i int
		if _, err := fmt.Sscanf(id, "r%d", &i); err != nil || i < 0 || i >= n {
			return -1
		}
		return i
	}
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
		v, _ := r.num("version")
		allCount[i]++
		version[i] = int(v)
		seen[int(v)]++
		if want := fmt.Sprintf("v%02d", v); filepath.Dir(r.rel) != want {
			misplaced.errorf("all/%s: r%d (version %d) is not under %s/", r.rel, i, v, want)
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
	for v := 0; v <= kinesisReloadVersions; v++ {
		if seen[v] == 0 {
			t.Errorf("version %d routed no record", v)
		}
	}
	type where struct {
		sink string
		i    int
	}
	count := map[where]int{}
	others := &capped{t: t, what: "the other routes"}
	for _, sink := range []string{"east", "west", "extra"} {
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
		kv := kinesisReloadVersion(version[i])
		picked := i%40 < 10 // keys k0..k9
		want := map[string]bool{
			"east":  picked && kv.pick == "east",
			"west":  picked && kv.pick == "west",
			"extra": i%10 == 0 && kv.extra,
		}
		for sink, w := range want {
			wantN := 0
			if w {
				wantN = 1
			}
			if c := count[where{sink, i}]; c != wantN {
				others.errorf("r%d (read by version %d) is in sink %s %d times, want %d", i, version[i], sink, c, wantN)
			}
		}
	}
	others.done()
	t.Logf("%d records in %d versions; %v per version", n, len(seen), seen)
}
