package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-data/sluice/internal/testutil"
)

const kafkaConfig = `
service: {name: kafka-e2e, http_listen: "", log_level: warn, error_sink: lake, workers: 2, shutdown_timeout: 60s}
sources:
  - name: app-logs
    type: kafka
    format: app_log
    batch_size: 500
    max_pending: 20000
    kafka: {brokers: ["${BROKER}"], topics: [logs], group: sluice-e2e, session_timeout: 3s}
routes:
  - {name: all, from: [app-logs], to: [lake]}
sinks:
  - name: lake
    type: s3
    url: "file:${OUT}/"
    format: parquet
    partition_keys:
      project_id: .project_id
      day: '.event_timestamp| strftime("%d")'
    schema:
      - {name: id, type: string}
      - {name: project_id, type: string}
      - {name: event_timestamp, type: int64}
    buffer: {max_records: 1500, interval: 300ms}
`

// startBroker runs test/kafkabroker (kfake) in its own process.
func startBroker(t *testing.T, partitions int) string {
	t.Helper()
	bin := filepath.Join(filepath.Dir(processor), "kafkabroker")
	if _, err := os.Stat(bin); err != nil {
		if bin, err = testutil.BuildBinary(filepath.Dir(processor), "./kafkabroker", "kafkabroker"); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "-port", fmt.Sprint(port), "-topic", "logs", "-partitions", fmt.Sprint(partitions))
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("broker: %v", err)
	}
	return strings.TrimSpace(line)
}

// TestKafkaKillOneOfTwo is the end-to-end test: a broker in its own
// process with 8 partitions and 200,000 records; two processors in one
// group; one is killed with SIGKILL mid-stream and later restarted. When
// the group has committed everything, both are stopped, and Apache Arrow
// finds every record id in the lake exactly once.
func TestKafkaKillOneOfTwo(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: a broker process, two processors, 200,000 records")
	}
	const n = 200_000
	broker := startBroker(t, 8)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	writeIdentifiedLogs(t, in, n)
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerBatchMaxBytes(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	data, _ := os.ReadFile(in)
	var recs []*kgo.Record
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		recs = append(recs, &kgo.Record{Topic: "logs", Value: line})
	}
	for i := 0; i < len(recs); i += 20000 {
		if err := cl.ProduceSync(context.Background(), recs[i:min(i+20000, len(recs))]...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "kafka.yaml")
	os.WriteFile(cfgPath, []byte(kafkaConfig), 0o644)
	out := filepath.Join(dir, "out")
	start := func(name string) (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(processor, "run", "-c", cfgPath)
		cmd.Env = append(os.Environ(), "BROKER="+broker, "OUT="+out)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		cmd.Stderr = &prefixWriter{t: t, prefix: name}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &stdout
	}
	a, _ := start("a")
	b, bOut := start("b")
	// Kill a once the group is well under way but far from done.
	for waited := 0; committedTotal(t, cl) < n/5 && waited < 600; waited++ {
		time.Sleep(50 * time.Millisecond)
	}
	a.Process.Signal(syscall.SIGKILL)
	a.Wait()
	t.Logf("a killed at %d committed records", committedTotal(t, cl))
	time.Sleep(time.Second)
	a, aOut := start("a2")
	deadline := time.Now().Add(3 * time.Minute)
	for committedTotal(t, cl) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the group committed %d of %d records in time", committedTotal(t, cl), n)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Let the restarted processor finish starting (it may have nothing
	// left to read) before asking both to stop.
	time.Sleep(time.Second)
	for _, c := range []*exec.Cmd{a, b} {
		c.Process.Signal(syscall.SIGTERM)
	}
	for i, c := range []*exec.Cmd{a, b} {
		if err := c.Wait(); err != nil {
			t.Errorf("processor %d: %v", i, err)
		}
	}
	t.Logf("restarted a:\n%s\nb:\n%s", aOut, bOut)
	counts, objects := parquetIDs(t, out)
	exactlyOnce(t, counts, n)
	t.Logf("%d objects; every one of %d records exactly once", objects, n)
}

func committedTotal(t *testing.T, cl *kgo.Client) int64 {
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), "sluice-e2e")
	if err != nil {
		return 0
	}
	var total int64
	offs.Each(func(o kadm.OffsetResponse) { total += o.At })
	return total
}

// prefixWriter forwards a processor's log lines to the test log.
type prefixWriter struct {
	t      *testing.T
	prefix string
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line != "" {
			w.t.Logf("%s: %s", w.prefix, line)
		}
	}
	return len(p), nil
}
