package test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/testutil"
)

const firehoseConfig = `
service: {name: firehose-load, http_listen: "", log_level: warn, error_sink: errors, workers: 2}
sources:
  - name: metric-streams
    type: firehose_http
    format: metric_stream
    firehose_http: {listen: "${LISTEN}", path: /firehose, access_keys: ["load-test-key"], request_timeout: 20s}
routes:
  - name: metrics
    from: [metric-streams]
    transforms:
      - epoch_to_utc: {field: timestamp, target: time_utc, unit: ms}
    to: [lake, search]
sinks:
  - name: lake
    type: s3
    url: "file:${OUT}/lake/"
    format: parquet
    partition_keys:
      namespace: .namespace
      dt: '.time_utc | fromdateiso8601 | strftime("%Y-%m-%d")'
      hour: '.time_utc | fromdateiso8601 | strftime("%H")'
    schema:
      - {name: time_utc, type: timestamp_ms}
      - {name: namespace, type: string}
      - {name: metric_name, type: string}
      - {name: dimensions.Point, column: point, type: string}
      - {name: value.sum, column: sum, type: double}
    buffer: {interval: 300ms}
  - name: search
    type: opensearch
    endpoints: ["${SEARCH}"]
    index: "metrics-!{timestamp:yyyy.MM.dd}"
    bulk: {interval: 100ms, max_docs: 5000}
  - name: errors
    type: s3
    url: "file:${OUT}/errors/"
    format: ndjson
`

// TestFirehoseLoadKill plays Firehose against the built processor: 100,000
// metric data points in requests of 250 records over 16 concurrent
// connections, each request retried with the same id and a doubling
// backoff until it gets 200. The processor is killed with SIGKILL when a
// third of the requests have succeeded, and restarted on the same port.
// Afterwards the OpenSearch fake holds every data point exactly once, and
// the lake every data point at least once; duplicates are counted.
func TestFirehoseLoadKill(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: 100,000 data points and two processes")
	}
	const points, perReq, conns = 100_000, 250, 16
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	cfgPath := filepath.Join(dir, "firehose.yaml")
	os.WriteFile(cfgPath, []byte(firehoseConfig), 0o644)
	search := testutil.NewSearchFake(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var stderr bytes.Buffer
	start := func() *exec.Cmd {
		cmd := exec.Command(processor, "run", "-c", cfgPath)
		cmd.Env = append(os.Environ(), "LISTEN="+addr, "OUT="+out, "SEARCH="+search.Server.URL)
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	cmd := start()

	// The requests: point i is metric "M<i%50>" in namespace "Load/NS<i%4>"
	// with dimension Point "p<i>", in the current hour.
	nreq := points / perReq
	bodies := make([][]byte, nreq)
	ts := time.Now().Truncate(time.Minute).UnixMilli()
	for r := range nreq {
		var b bytes.Buffer
		fmt.Fprintf(&b, `{"requestId":"req-%04d","timestamp":%d,"records":[`, r, ts)
		for k := range perReq {
			i := r*perReq + k
			line := fmt.Sprintf(`{"metric_stream_name":"load","account_id":"123456789012","region":"us-east-1","namespace":"Load/NS%d","metric_name":"M%d","dimensions":{"Point":"p%06d"},"timestamp":%d,"value":{"max":1,"min":1,"sum":%d,"count":1},"unit":"Count"}`, i%4, i%50, i, ts, i)
			if k > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"data":%q}`, base64.StdEncoding.EncodeToString([]byte(line+"\n")))
		}
		b.WriteString("]}")
		bodies[r] = b.Bytes()
	}

	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conns}}
	var okReqs, attempts, refused atomic.Int64
	var latMu sync.Mutex
	var latencies []time.Duration
	killAt := int64(nreq / 3)
	killed := make(chan struct{})
	next := atomic.Int64{}
	began := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				r := int(next.Add(1) - 1)
				if r >= nreq {
					return
				}
				id := fmt.Sprintf("req-%04d", r)
				backoff := 50 * time.Millisecond
				for {
					attempts.Add(1)
					t0 := time.Now()
					req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/firehose", bytes.NewReader(bodies[r]))
					req.Header.Set("X-Amz-Firehose-Request-Id", id)
					req.Header.Set("X-Amz-Firehose-Access-Key", "load-test-key")
					req.Header.Set("X-Amz-Firehose-Protocol-Version", "1.0")
					resp, err := client.Do(req)
					if err == nil {
						var rb struct{ RequestID string }
						json.NewDecoder(resp.Body).Decode(&rb)
						resp.Body.Close()
						if resp.StatusCode == 200 && rb.RequestID == id {
							latMu.Lock()
							latencies = append(latencies, time.Since(t0))
							latMu.Unlock()
							if okReqs.Add(1) == killAt {
								close(killed)
							}
							break
						}
					}
					refused.Add(1)
					time.Sleep(backoff)
					backoff = min(backoff*2, 2*time.Second)
				}
			}
		}()
	}
	<-killed
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	t.Logf("SIGKILL after %d of %d requests succeeded", killAt, nreq)
	cmd = start()
	wg.Wait()
	elapsed := time.Since(began)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("processor: %v\n%s", err, stderr.String())
	}

	// OpenSearch: ids are source:requestId:index, so each data point has
	// one id; every id must hold its own data point.
	seen := map[string]int{}
	for key := range search.AllAttempts() {
		index, id, _ := strings.Cut(key, "/")
		var doc struct {
			Dimensions struct{ Point string }
		}
		if err := json.Unmarshal(search.Doc(index, id), &doc); err != nil {
			t.Fatalf("doc %s: %v", key, err)
		}
		seen[doc.Dimensions.Point]++
	}
	bad := 0
	for i := range points {
		if c := seen[fmt.Sprintf("p%06d", i)]; c != 1 {
			if bad++; bad <= 5 {
				t.Errorf("point p%06d is in OpenSearch %d times", i, c)
			}
		}
	}
	if bad > 0 || search.Docs() != points {
		t.Fatalf("OpenSearch: %d documents, %d points not exactly once", search.Docs(), bad)
	}

	// The lake: at least once; duplicates counted.
	counts := map[string]int{}
	objects := 0
	filepath.Walk(filepath.Join(out, "lake"), func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.HasSuffix(p, ".parquet") {
			return err
		}
		objects++
		pf, err := testutil.ReadParquet(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, row := range pf.Rows {
			pt, _ := row["point"].(string)
			counts[pt]++
		}
		return nil
	})
	missing, dups := 0, 0
	for i := range points {
		c := counts[fmt.Sprintf("p%06d", i)]
		if c == 0 {
			missing++
		}
		if c > 1 {
			dups += c - 1
		}
	}
	if missing > 0 {
		t.Fatalf("lake: %d data points missing", missing)
	}
	slices.Sort(latencies)
	p := func(q float64) time.Duration { return latencies[int(q*float64(len(latencies)-1))] }
	t.Logf("%d requests (%d attempts, %d refused or failed while killed) in %v: %.0f requests/s, %.0f records/s; 200 latency p50 %v, p99 %v",
		nreq, attempts.Load(), refused.Load(), elapsed.Round(time.Millisecond), float64(nreq)/elapsed.Seconds(), float64(points)/elapsed.Seconds(), p(0.5), p(0.99))
	t.Logf("OpenSearch: %d documents, each data point once; lake: %d objects, every data point present, %d duplicate rows", search.Docs(), objects, dups)
}
