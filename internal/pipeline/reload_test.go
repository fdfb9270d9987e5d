package pipeline

import (
	"bufio"
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
)

// reloadConfig is version v of a configuration that a reload test steps
// through: each version moves route "all" to another prefix, and the
// versions change the severity threshold of route "high", add and remove
// sink "extra", change a partition key, a transform, and the source's
// batch size.
func reloadConfig(broker, dir string, v int) string {
	batch := 256
	if v >= 10 {
		batch = 64 // the source's settings change once: it is restarted
	}
	key := ".p"
	if v%4 == 3 {
		key = ".sev"
	}
	extraRoute, extraSink := "", ""
	if v%5 >= 2 {
		extraRoute = "\n  - {name: extra, from: [app], to: [extra], match: {sev: [7]}}"
		extraSink = fmt.Sprintf("\n  - {name: extra, type: s3, url: \"file:%s/extra/\", format: ndjson}", dir)
	}
	return fmt.Sprintf(`
service: {http_listen: "", error_sink: all}
sources:
  - {name: app, type: kafka, format: json, batch_size: %d, batch_linger: 20ms, kafka: {brokers: ["%s"], topics: [logs], group: g, metadata_field: kafka}}
routes:
  - {name: all, from: [app], to: [all], transforms: [{set: {version: %d}}]}
  - {name: high, from: [app], to: [high], match: {sev: [{numeric: [">=", %d]}]}}%s
sinks:
  - name: all
    type: s3
    url: "file:%s/all/"
    prefix: "v%02d/!{partitionKeyFromQuery:k}/"
    partition_keys: {k: '%s'}
    format: ndjson
    buffer: {max_records: 50, interval: 1s}
  - {name: high, type: s3, url: "file:%s/high/", format: ndjson, buffer: {interval: 1s}}%s
`, batch, broker, v, 5+v%4, extraRoute, dir, v, key, dir, extraSink)
}

// idsUnder counts each record id in the NDJSON objects under dir, and
// which top-level prefix ("v03") each was found under.
func idsUnder(t *testing.T, dir string) (map[string]int, map[string]string) {
	counts, where, _ := readReloadLake(t, dir)
	return counts, where
}

// readReloadLake reads the NDJSON objects under dir: how often each id is
// there, under which top-level prefix, and the records themselves.
func readReloadLake(t *testing.T, dir string) (map[string]int, map[string]string, []*fastjson.Value) {
	t.Helper()
	counts, where := map[string]int{}, map[string]string{}
	var recs []*fastjson.Value
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.HasSuffix(p, ".ndjson") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rel, _ := filepath.Rel(dir, p)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			v, err := fastjson.ParseBytes(sc.Bytes())
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			id := string(v.GetStringBytes("id"))
			counts[id]++
			where[id] = strings.Split(rel, string(filepath.Separator))[0]
			recs = append(recs, v)
		}
		return nil
	})
	return counts, where, recs
}

// reloading is a pipeline running version 0 of reloadConfig, reading a
// kfake topic "logs".
type reloading struct {
	broker, dir string
	parse       func(v int) *config.Config // version v of reloadConfig
	p           *Pipeline
	stop        func() error // ends Run and returns its error
}

func startReloading(t *testing.T, partitions int32) *reloading {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	r := &reloading{broker: c.ListenAddrs()[0], dir: t.TempDir()}
	r.parse = func(v int) *config.Config {
		cfg, err := config.Parse(fmt.Sprintf("v%d.yaml", v), []byte(reloadConfig(r.broker, r.dir, v)), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if r.p, err = New(r.parse(0), zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.p.Run(ctx) }()
	var once sync.Once
	var runErr error
	r.stop = func() error {
		once.Do(func() { stop(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { r.stop() })
	return r
}

// TestReloadUnderLoad: while a producer writes to a Kafka topic, the
// pipeline is reloaded 20 times (routes to other prefixes, a changed
// threshold, a changed partition key, a sink added and removed, the
// source's settings changed once). Every record is in route "all"'s sink
// exactly once, under the prefix of one version, and each version's
// records are a contiguous stretch of each Kafka partition; every record
// that passes every threshold is in "high" exactly once; none anywhere
// twice.
func TestReloadUnderLoad(t *testing.T) {
	// Not skipped with -short: the race detector run in CI needs it.
	r := startReloading(t, 3)
	broker, dir, parse, p := r.broker, r.dir, r.parse, r.p

	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var produced atomic.Int64
	prodDone := make(chan struct{})
	prodCtx, stopProd := context.WithCancel(context.Background())
	go func() {
		defer close(prodDone)
		for i := 0; prodCtx.Err() == nil; i++ {
			var recs []*kgo.Record
			for j := range 50 {
				n := i*50 + j
				recs = append(recs, &kgo.Record{Topic: "logs", Value: fmt.Appendf(nil, `{"id":"r%d","sev":%d,"p":"P%d"}`, n, n%10, n%3)})
			}
			if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Error(err)
				return
			}
			produced.Add(50)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var changedSource bool
	for v := 1; v <= 20; v++ {
		time.Sleep(150 * time.Millisecond)
		ch, err := p.Reload(context.Background(), parse(v))
		if err != nil {
			t.Fatalf("reload %d: %v", v, err)
		}
		if len(ch.Sources.Changed) > 0 {
			changedSource = true
		}
		if got := p.Config().File; got != fmt.Sprintf("v%d.yaml", v) {
			t.Fatalf("after reload %d the pipeline runs %s", v, got)
		}
		if !p.Ready() {
			t.Fatalf("not ready after reload %d", v)
		}
	}
	if !changedSource {
		t.Error("no reload changed the source")
	}
	stopProd()
	<-prodDone
	n := int(produced.Load())
	deadline := time.Now().Add(60 * time.Second)
	for {
		all, _ := idsUnder(t, filepath.Join(dir, "all"))
		if len(all) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	all, where, recs := readReloadLake(t, filepath.Join(dir, "all"))
	// A batch is routed under one version, and versions follow one another
	// in each Kafka partition: by offset, a partition's records never go
	// back to an older version.
	type pos struct{ part, off int }
	version := map[pos]int{}
	for _, r := range recs {
		version[pos{r.GetInt("kafka", "partition"), r.GetInt("kafka", "offset")}] = r.GetInt("version")
	}
	for part := range 3 {
		last, lastOff := 0, -1
		for off := 0; ; off++ {
			v, ok := version[pos{part, off}]
			if !ok {
				break
			}
			if v < last {
				t.Errorf("partition %d offset %d routed by version %d after offset %d by version %d", part, off, v, lastOff, last)
			}
			last, lastOff = v, off
		}
	}
	high, _ := idsUnder(t, filepath.Join(dir, "high"))
	extra, _ := idsUnder(t, filepath.Join(dir, "extra"))
	versions := map[string]bool{}
	for i := range n {
		id := fmt.Sprintf("r%d", i)
		if all[id] != 1 {
			t.Errorf("%s in route all's sink %d times", id, all[id])
		}
		versions[where[id]] = true
		if i%10 >= 8 && high[id] != 1 { // sev 8 and 9 pass every threshold (5..8)
			t.Errorf("%s (sev %d) in route high's sink %d times", id, i%10, high[id])
		}
		if high[id] > 1 || extra[id] > 1 {
			t.Errorf("%s twice: high %d, extra %d", id, high[id], extra[id])
		}
	}
	if len(all) != n {
		t.Errorf("%d distinct ids in all, want %d", len(all), n)
	}
	if len(versions) < 10 {
		t.Errorf("records were written under %d versions' prefixes, want most of 21", len(versions))
	}
	if len(extra) == 0 {
		t.Error("sink extra, added by reloads, got nothing")
	}
	sum := p.Summary()
	if in, out := sum.Balance(); in != out {
		t.Errorf("accounting across reloads: %d in, %d out", in, out)
	}
	t.Logf("%d records, %d versions, %d in high, %d in extra", n, len(versions), len(high), len(extra))
}

// TestReloadThatCannotOpenKeepsRunning: a new configuration whose new
// source cannot be opened is refused with the reason, and the running
// configuration reads and writes on as before.
func TestReloadThatCannotOpenKeepsRunning(t *testing.T) {
	r := startReloading(t, 1)
	broker, dir, p := r.broker, r.dir, r.p
	// A new source whose CA file is gone after validation cannot be
	// opened.
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	tlsSrv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(reloadConfig(broker, dir, 1), "routes:\n", fmt.Sprintf(
		"  - {name: other, type: kafka, kafka: {brokers: [%q], topics: [logs], group: o, tls: {enabled: true, ca_file: %q}}}\nroutes:\n  - {name: o, from: [other], to: [all]}\n", broker, ca), 1)
	bad, err := config.Parse("bad.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(ca); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Reload(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "source other") {
		t.Fatalf("reload with a source that cannot open: %v, want an error naming it", err)
	}
	if got := p.Config().File; got != "v0.yaml" {
		t.Fatalf("after a refused reload the pipeline runs %s", got)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "logs", Value: []byte(`{"id":"r0","sev":9,"p":"P0"}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if all, where := idsUnder(t, filepath.Join(dir, "all")); all["r0"] == 1 {
			if where["r0"] != "v00" {
				t.Errorf("r0 written under %s, want v00", where["r0"])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the running configuration wrote nothing after the refused reload")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestReloadRotatesFirehoseKeysInPlace: a reload that changes only a
// firehose_http source's access keys keeps the source (and its listener)
// and swaps the keys; one that changes its path reopens it.
func TestReloadRotatesFirehoseKeysInPlace(t *testing.T) {
	dir := t.TempDir()
	y := func(keys, path string) *config.Config {
		cfg, err := config.Parse("f.yaml", []byte(fmt.Sprintf(`
service: {http_listen: "", error_sink: lake}
sources:
  - {name: fh, type: firehose_http, firehose_http: {listen: "127.0.0.1:0", path: %s, access_keys: [%s]}}
routes: [{name: all, from: [fh], to: [lake]}]
sinks: [{name: lake, type: s3, url: "file:%s/", format: ndjson}]
`, path, keys, dir)), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	p, err := New(y("k1", "/firehose"), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	src := func() any { return p.cur.Load().sources[0].src }
	before := src()
	ch, err := p.Reload(context.Background(), y("k1, k2", "/firehose"))
	if err != nil {
		t.Fatal(err)
	}
	if got := ch.String(); got != "sources: ~fh; routes: unchanged; sinks: unchanged" {
		t.Errorf("changes: %s", got)
	}
	if src() != before {
		t.Error("a change of access keys alone reopened the source")
	}
	if _, err := p.Reload(context.Background(), y("k1, k2", "/other")); err != nil {
		t.Fatal(err)
	}
	if src() == before {
		t.Error("a change of path did not reopen the source")
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
