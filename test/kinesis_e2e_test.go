package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/valyala/fastjson"
)

const kinesisConfig = `
service: {name: kinesis-e2e, http_listen: "", log_level: warn, error_sink: lake, workers: 2}
sources:
  - name: security
    type: kinesis
    format: json
    kinesis: {stream: "${STREAM}", region: us-east-1, endpoint: "${KIN}", dynamodb_endpoint: "${DDB}", lease_table: "${STREAM}-leases", lease_duration: 2s}
routes:
  - {name: all, from: [security], to: [lake]}
sinks:
  - name: lake
    type: s3
    url: "file:${OUT}/"
    format: ndjson
    partition_keys: {key: .key}
    buffer: {max_records: 300, interval: 200ms}
`

// TestKinesisKillOneOfTwo: kinesalite with 4 shards, two processors sharing
// the lease table; one is killed with SIGKILL; the other takes its shards
// after the leases expire; every record id is in the lake exactly once.
func TestKinesisKillOneOfTwo(t *testing.T) {
	kin, ddb := os.Getenv("SLUICE_TEST_KINESIS_ENDPOINT"), os.Getenv("SLUICE_TEST_DYNAMODB_ENDPOINT")
	if kin == "" || ddb == "" {
		t.Skip("SLUICE_TEST_KINESIS_ENDPOINT / SLUICE_TEST_DYNAMODB_ENDPOINT unset: run test/run.sh, which starts kinesalite and dynalite")
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	const n = 20000
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	kc := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(kin) })
	stream := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	if _, err := kc.CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(4)}); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		out, err := kc.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive {
			break
		}
		if i > 200 {
			t.Fatal("stream not ACTIVE")
		}
		time.Sleep(50 * time.Millisecond)
	}
	putRange := func(from, to int) {
		for i := from; i < to; i += 500 {
			var entries []ktypes.PutRecordsRequestEntry
			for j := i; j < min(i+500, to); j++ {
				key := fmt.Sprintf("k%d", j%40)
				entries = append(entries, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(key), Data: []byte(fmt.Sprintf(`{"id":"r%06d","key":"%s"}`, j, key))})
			}
			if _, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries}); err != nil {
				t.Fatal(err)
			}
		}
	}
	putRange(0, n/2)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "kinesis.yaml")
	os.WriteFile(cfgPath, []byte(kinesisConfig), 0o644)
	out := filepath.Join(dir, "out")
	start := func(name string) *exec.Cmd {
		cmd := exec.Command(processor, "run", "-c", cfgPath)
		cmd.Env = append(os.Environ(), "STREAM="+stream, "KIN="+kin, "DDB="+ddb, "OUT="+out)
		cmd.Stderr = &prefixWriter{t: t, prefix: name}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	a, b := start("a"), start("b")
	for waited := 0; lakeCount(t, out) < n/4 && waited < 400; waited++ {
		time.Sleep(50 * time.Millisecond)
	}
	a.Process.Signal(syscall.SIGKILL)
	a.Wait()
	t.Logf("a killed with %d records in the lake", lakeCount(t, out))
	putRange(n/2, n)
	deadline := time.Now().Add(2 * time.Minute)
	for lakeCount(t, out) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the lake has %d of %d records", lakeCount(t, out), n)
		}
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(time.Second) // anything written twice would land by now
	b.Process.Signal(syscall.SIGTERM)
	if err := b.Wait(); err != nil {
		t.Errorf("b: %v", err)
	}
	counts := lakeIDs(t, out)
	bad := 0
	for i := range n {
		if c := counts[fmt.Sprintf("r%06d", i)]; c != 1 {
			if bad++; bad <= 10 {
				t.Errorf("r%06d is in the lake %d times", i, c)
			}
		}
	}
	if bad > 0 || len(counts) != n {
		t.Fatalf("%d records not exactly once; %d distinct ids", bad, len(counts))
	}
}

func lakeIDs(t *testing.T, dir string) map[string]int {
	counts := map[string]int{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || strings.HasPrefix(info.Name(), ".") || strings.Contains(p, "/errors/") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			counts[fastjson.GetString(sc.Bytes(), "id")]++
		}
		return nil
	})
	return counts
}

func lakeCount(t *testing.T, dir string) int {
	n := 0
	for _, c := range lakeIDs(t, dir) {
		n += c
	}
	return n
}
