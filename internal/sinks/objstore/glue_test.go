package objstore

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-data/sluice/internal/testutil"
)

// fakeGlue answers BatchCreatePartition like the Glue API: the first
// request for a partition creates it, later ones report AlreadyExists.
type fakeGlue struct {
	mu       sync.Mutex
	requests []map[string]any
	created  map[string]bool
}

func (g *fakeGlue) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get("X-Amz-Target") != "AWSGlue.BatchCreatePartition" || !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		w.WriteHeader(400)
		return
	}
	var req map[string]any
	json.Unmarshal(body, &req)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.requests = append(g.requests, req)
	var errs []map[string]any
	for _, p := range req["PartitionInputList"].([]any) {
		vals, _ := json.Marshal(p.(map[string]any)["Values"])
		if g.created[string(vals)] {
			errs = append(errs, map[string]any{"PartitionValues": p.(map[string]any)["Values"], "ErrorDetail": map[string]any{"ErrorCode": "AlreadyExistsException", "ErrorMessage": "exists"}})
		}
		g.created[string(vals)] = true
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(map[string]any{"Errors": errs})
}

func TestGlueRegistersEachPartitionOnce(t *testing.T) {
	f := testutil.NewS3Fake(t)
	g := &fakeGlue{created: map[string]bool{}}
	gs := httptest.NewServer(g)
	defer gs.Close()
	s, _ := newSink(t, `    format: parquet
    partition_keys:
      project_id: .project_id
      hour: '.ts | strftime("%H")'
    schema:
      - {name: project_id, type: string}
      - {name: n, type: int64}
    buffer: {max_records: 1}
    url: s3://lake/app/
    endpoint: "`+f.URL+`"
    region: ap-northeast-2
    glue: {database: telemetry, table: app_lake, endpoint: "`+gs.URL+`"}
`, nil)
	feed(t, s, nil, `{"project_id":"P/1","ts":1730617200,"n":1}`, `{"project_id":"P/1","ts":1730617200,"n":2}`, `{"project_id":"P-2","ts":1730620800,"n":3}`)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.requests) != 2 {
		t.Fatalf("requests = %d, want one per new partition (2)", len(g.requests))
	}
	// Flush workers run concurrently: find the request for P/1.
	var req, p map[string]any
	var vals []byte
	for _, r := range g.requests {
		pi := r["PartitionInputList"].([]any)[0].(map[string]any)
		if v, _ := json.Marshal(pi["Values"]); string(v) == `["P/1","07"]` {
			req, p, vals = r, pi, v
		}
	}
	if req == nil {
		t.Fatalf("no request for partition P/1: %v", g.requests)
	}
	sd := p["StorageDescriptor"].(map[string]any)
	if req["DatabaseName"] != "telemetry" || req["TableName"] != "app_lake" || string(vals) != `["P/1","07"]` ||
		sd["Location"] != "s3://lake/app/project_id=P%2F1/hour=07/" ||
		sd["SerdeInfo"].(map[string]any)["SerializationLibrary"] != "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe" {
		t.Errorf("request = %v", req)
	}
	cols, _ := json.Marshal(sd["Columns"])
	if string(cols) != `[{"Name":"n","Type":"bigint"},{"Name":"_extra","Type":"string"}]` {
		t.Errorf("columns = %s", cols)
	}
}

func TestGlueAlreadyExistsIsFine(t *testing.T) {
	g := &fakeGlue{created: map[string]bool{`["P-1"]`: true}}
	gs := httptest.NewServer(g)
	defer gs.Close()
	testutil.NewS3Fake(t) // credentials
	c := &catalog{database: "d", table: "t", location: "s3://lake/x/", keys: []string{"project_id"}, known: map[string]bool{}}
	cat, err := newCatalogForTest(gs.URL)
	if err != nil {
		t.Fatal(err)
	}
	c.client = cat.client
	if err := c.register(context.Background(), "project_id=P-1/"); err != nil {
		t.Fatalf("AlreadyExists was an error: %v", err)
	}
	if !c.known["project_id=P-1/"] {
		t.Error("partition not remembered")
	}
}

func newCatalogForTest(endpoint string) (*catalog, error) {
	return newCatalogFromSettings("ap-northeast-2", endpoint)
}
