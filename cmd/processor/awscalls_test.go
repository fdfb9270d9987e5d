package main

// The AWS-call coverage test: run the processor against S3 (gofakes3),
// Glue, SSM, OpenSearch (fakes) and Kinesis/DynamoDB (the emulators),
// each behind a recording proxy that turns every HTTP request into the
// IAM action and resource it needs, and check that the policy
// `processor iam-policy` prints for the same configuration allows each.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/iampolicy"
	"github.com/sluice-data/sluice/internal/testutil"
)

const (
	testAccount = "123456789012"
	testRegion  = "us-east-1"
)

// recorder is an HTTP proxy in front of one AWS endpoint (or fake) that
// records each request as the IAM request it needs.
type recorder struct {
	t      *testing.T
	mu     sync.Mutex
	reqs   []iampolicy.Request
	stream string // the Kinesis stream last named (GetRecords names only an iterator)
	URL    string
}

func newRecorder(t *testing.T, next http.Handler) *recorder {
	rc := &recorder{t: t}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rc.record(r, body)
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	rc.URL = srv.URL
	return rc
}

func proxyTo(t *testing.T, raw string) http.Handler {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return httputil.NewSingleHostReverseProxy(u)
}

func arn(service, resource string) string {
	return fmt.Sprintf("arn:aws:%s:%s:%s:%s", service, testRegion, testAccount, resource)
}

func (rc *recorder) add(r ...iampolicy.Request) {
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, r...)
	rc.mu.Unlock()
}

func (rc *recorder) requests() []iampolicy.Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]iampolicy.Request(nil), rc.reqs...)
}

func (rc *recorder) record(r *http.Request, body []byte) {
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		rc.recordJSON(target, body)
		return
	}
	if strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") && strings.Contains(r.Header.Get("Authorization"), "/es/aws4_request") {
		rc.add(iampolicy.Request{Action: "es:ESHttp" + strings.ToUpper(r.Method[:1]) + strings.ToLower(r.Method[1:]), Resource: arn("es", "domain/local"+r.URL.Path)})
		return
	}
	rc.recordS3(r)
}

func (rc *recorder) recordJSON(target string, body []byte) {
	prefix, op, _ := strings.Cut(target, ".")
	var in map[string]any
	json.Unmarshal(body, &in)
	str := func(k string) string { s, _ := in[k].(string); return s }
	switch prefix {
	case "Kinesis_20131202":
		name := str("StreamName")
		if a := str("StreamARN"); a != "" {
			name = a[strings.LastIndex(a, "/")+1:]
		}
		rc.mu.Lock()
		if name != "" {
			rc.stream = name
		}
		name = rc.stream
		rc.mu.Unlock()
		rc.add(iampolicy.Request{Action: "kinesis:" + op, Resource: arn("kinesis", "stream/"+name)})
	case "DynamoDB_20120810":
		rc.add(iampolicy.Request{Action: "dynamodb:" + op, Resource: arn("dynamodb", "table/"+str("TableName"))})
	case "AWSGlue":
		db, table := str("DatabaseName"), str("TableName")
		for _, res := range []string{arn("glue", "catalog"), arn("glue", "database/"+db), arn("glue", "table/"+db+"/"+table)} {
			rc.add(iampolicy.Request{Action: "glue:" + op, Resource: res})
		}
	case "AmazonSSM":
		rc.add(iampolicy.Request{Action: "ssm:" + op, Resource: arn("ssm", "parameter/"+strings.TrimPrefix(str("Name"), "/"))})
		if d, _ := in["WithDecryption"].(bool); d {
			// SSM decrypts a SecureString with the caller's kms:Decrypt.
			rc.add(iampolicy.Request{Action: "kms:Decrypt", Resource: arn("kms", "key/aws-ssm-default"),
				Keys: map[string]string{"kms:ViaService": "ssm." + testRegion + ".amazonaws.com"}})
		}
	default:
		rc.t.Errorf("unknown AWS JSON target %s", target)
	}
}

func (rc *recorder) recordS3(r *http.Request) {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	obj := "arn:aws:s3:::" + bucket + "/" + key
	var req iampolicy.Request
	switch {
	case key == "" && r.Method == http.MethodGet && q.Has("location"):
		req = iampolicy.Request{Action: "s3:GetBucketLocation", Resource: "arn:aws:s3:::" + bucket}
	case key == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		req = iampolicy.Request{Action: "s3:ListBucket", Resource: "arn:aws:s3:::" + bucket}
		if r.Method == http.MethodGet {
			req.Keys = map[string]string{"s3:prefix": q.Get("prefix")}
		}
	case key == "":
		req = iampolicy.Request{Action: "s3:Bucket" + r.Method, Resource: "arn:aws:s3:::" + bucket}
	case r.Method == http.MethodGet && q.Has("uploadId"):
		req = iampolicy.Request{Action: "s3:ListMultipartUploadParts", Resource: obj}
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		req = iampolicy.Request{Action: "s3:GetObject", Resource: obj}
	case r.Method == http.MethodPut || r.Method == http.MethodPost:
		// PutObject, CreateMultipartUpload, UploadPart and
		// CompleteMultipartUpload are all s3:PutObject.
		req = iampolicy.Request{Action: "s3:PutObject", Resource: obj}
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		req = iampolicy.Request{Action: "s3:AbortMultipartUpload", Resource: obj}
	default:
		req = iampolicy.Request{Action: "s3:" + r.Method + "Object", Resource: obj}
	}
	rc.add(req)
	// SSE-KMS: S3 asks KMS for a data key with the caller's permission
	// (and a multipart upload's parts need kms:Decrypt of it).
	if k := r.Header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"); k != "" {
		rc.add(iampolicy.Request{Action: "kms:GenerateDataKey", Resource: k})
		if q.Has("uploads") {
			rc.add(iampolicy.Request{Action: "kms:Decrypt", Resource: k})
		}
	}
}

// fakeGlue answers BatchCreatePartition as if every partition were new.
func fakeGlue() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		io.WriteString(w, `{"Errors":[]}`)
	})
}

func awsEnv(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", testRegion)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
}

// checkCovered fails for every recorded request the policy of cfgText
// (read from ref) does not allow, and returns the actions seen.
func checkCovered(t *testing.T, ref, cfgText string, recs ...*recorder) map[string]bool {
	t.Helper()
	cfg, err := config.Parse(ref, []byte(cfgText), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := iampolicy.Generate(cfg, iampolicy.Options{Account: testAccount, Region: testRegion, ConfigRef: ref})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, rc := range recs {
		for _, r := range rc.requests() {
			seen[r.Action] = true
			if !p.Allows(r) {
				t.Errorf("the policy does not allow %s on %s (keys %v); policy:\n%s", r.Action, r.Resource, r.Keys, p.JSON())
			}
		}
	}
	return seen
}

func wantSeen(t *testing.T, seen map[string]bool, actions ...string) {
	t.Helper()
	for _, a := range actions {
		if !seen[a] {
			t.Errorf("no %s call was recorded (seen %v): the test no longer exercises it", a, seen)
		}
	}
}

func runProcessor(t *testing.T, ctx context.Context, args ...string) {
	t.Helper()
	var out, errb bytes.Buffer
	if err := run(ctx, args, &out, &errb); err != nil {
		t.Fatalf("processor %v: %v\n%s\n%s", args, err, out.String(), errb.String())
	}
}

// TestAWSCallsCoveredLake: config from SSM; a file source into an
// SSE-KMS Parquet lake with Glue and error records (at the default error
// prefix, and in a second sink at an explicit one), a raw archive and an
// OpenSearch domain with SigV4; then the archive read back through a
// config from S3.
func TestAWSCallsCoveredLake(t *testing.T) {
	awsEnv(t)
	backend := s3mem.New()
	backend.CreateBucket("lake")
	backend.CreateBucket("conf")
	s3rec := newRecorder(t, gofakes3.New(backend).Server())
	glueRec := newRecorder(t, fakeGlue())
	search := testutil.NewSearchFake(t)
	searchRec := newRecorder(t, proxyTo(t, search.Server.URL))
	ssm := testutil.NewSSMFake(t)
	ssmRec := newRecorder(t, proxyTo(t, ssm.Server.URL))
	t.Setenv("AWS_ENDPOINT_URL_SSM", ssmRec.URL)
	t.Setenv("AWS_ENDPOINT_URL_S3", s3rec.URL)

	dir := t.TempDir()
	var in strings.Builder
	for i := range 200 {
		if i%10 == 0 {
			fmt.Fprintf(&in, `{"event_timestamp": %d, "project_id": "p%d"}`+"\n", 1700000000+i*3600, i%3) // no message: schema-mismatch
			continue
		}
		fmt.Fprintf(&in, `{"event_timestamp": %d, "project_id": "p%d", "message": "m%d"}`+"\n", 1700000000+i*3600, i%3, i)
	}
	os.WriteFile(filepath.Join(dir, "a.ndjson"), []byte(in.String()), 0o644)
	kmsKey := arn("kms", "key/1234abcd-12ab-34cd-56ef-1234567890ab")
	lakeCfg := fmt.Sprintf(`service: {http_listen: "", error_sink: lake, shutdown_timeout: 5s}
sources:
  - {name: logs, type: file, format: app_log, file: {paths: [%q]}}
routes:
  - {name: all, from: [logs], to: [lake, strict, archive, search]}
sinks:
  - name: lake
    type: s3
    url: s3://lake/app-logs/
    endpoint: %s
    region: us-east-1
    kms_key_id: %s
    partition_keys: {project_id: .project_id}
    schema: [{name: message, type: string, required: true}, {name: event_timestamp, type: int64}]
    glue: {database: db, table: app_logs, endpoint: %s}
  - name: strict
    type: s3
    url: s3://lake/strict/
    endpoint: %s
    error_prefix: "bad/!{error-output-type}/"
    schema: [{name: message, type: string, required: true}]
  - {name: archive, type: s3, url: "s3://lake/archive/", endpoint: %s, format: raw}
  - name: search
    type: opensearch
    endpoints: [%s]
    auth: {type: sigv4, service: es, region: us-east-1}
    index: logs
    error_sink: lake
`, filepath.Join(dir, "*.ndjson"), s3rec.URL, kmsKey, glueRec.URL, s3rec.URL, s3rec.URL, searchRec.URL)
	ssm.Put("/sluice/test", "SecureString", lakeCfg)
	runProcessor(t, context.Background(), "run", "-c", "ssm:/sluice/test")
	if search.Docs() != 200 {
		t.Errorf("OpenSearch has %d documents, want 200", search.Docs())
	}
	errorObjects := 0
	for _, r := range s3rec.requests() {
		if r.Action == "s3:PutObject" && strings.Contains(r.Resource, "bad/schema-mismatch/") {
			errorObjects++
		}
	}
	if errorObjects == 0 {
		t.Error("the strict sink wrote no error object at its explicit error_prefix")
	}
	seen := checkCovered(t, "ssm:/sluice/test", lakeCfg, s3rec, glueRec, searchRec, ssmRec)
	wantSeen(t, seen, "ssm:GetParameter", "kms:Decrypt", "s3:PutObject", "s3:ListBucket", "kms:GenerateDataKey", "glue:BatchCreatePartition", "es:ESHttpPost")

	// Read the archive back, with the config in S3.
	s3rec.reqs, ssmRec.reqs = nil, nil
	archiveCfg := fmt.Sprintf(`service: {http_listen: "", error_sink: replayed, shutdown_timeout: 5s}
sources:
  - name: old
    type: archive
    format: app_log
    archive: {url: "s3://lake/archive/", from: %q, endpoint: %s, region: us-east-1}
routes:
  - {name: all, from: [old], to: [replayed]}
sinks:
  - {name: replayed, type: s3, url: "s3://lake/replayed/", endpoint: %s, format: ndjson}
`, time.Now().Add(-2*time.Hour).UTC().Format(time.RFC3339), s3rec.URL, s3rec.URL)
	if _, err := backend.PutObject("conf", "sluice/archive.yaml", nil, strings.NewReader(archiveCfg), int64(len(archiveCfg)), nil); err != nil {
		t.Fatal(err)
	}
	s3rec.reqs = nil
	runProcessor(t, context.Background(), "run", "-c", "s3://conf/sluice/archive.yaml")
	seen = checkCovered(t, "s3://conf/sluice/archive.yaml", archiveCfg, s3rec)
	wantSeen(t, seen, "s3:GetObject", "s3:ListBucket", "s3:PutObject")
}

// TestAWSCallsCoveredKinesis: a Kinesis source with its lease table
// (kinesalite and dynalite) into an S3 sink.
func TestAWSCallsCoveredKinesis(t *testing.T) {
	kin, ddb := os.Getenv("SLUICE_TEST_KINESIS_ENDPOINT"), os.Getenv("SLUICE_TEST_DYNAMODB_ENDPOINT")
	if kin == "" || ddb == "" {
		t.Skip("SLUICE_TEST_KINESIS_ENDPOINT / SLUICE_TEST_DYNAMODB_ENDPOINT unset: run test/run.sh, which starts kinesalite and dynalite")
	}
	awsEnv(t)
	backend := s3mem.New()
	backend.CreateBucket("lake")
	s3rec := newRecorder(t, gofakes3.New(backend).Server())
	kinRec := newRecorder(t, proxyTo(t, kin))
	ddbRec := newRecorder(t, proxyTo(t, ddb))

	ac, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion(testRegion))
	if err != nil {
		t.Fatal(err)
	}
	kc := kinesis.NewFromConfig(ac, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(kin) })
	stream := fmt.Sprintf("iam-%d", time.Now().UnixNano())
	if _, err := kc.CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(2)}); err != nil {
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
	const n = 50
	var entries []ktypes.PutRecordsRequestEntry
	for i := range n {
		entries = append(entries, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(i)), Data: []byte(fmt.Sprintf(`{"id": %d}`, i))})
	}
	if _, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries}); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "kinesis.yaml")
	cfgText := fmt.Sprintf(`service: {http_listen: "", error_sink: lake, shutdown_timeout: 5s}
sources:
  - name: kin
    type: kinesis
    kinesis: {stream: %s, region: us-east-1, endpoint: %s, dynamodb_endpoint: %s, lease_table: lease-%s}
routes:
  - {name: all, from: [kin], to: [lake]}
sinks:
  - {name: lake, type: s3, url: "s3://lake/kinesis/", endpoint: %s, format: ndjson, buffer: {interval: 1s}}
`, stream, kinRec.URL, ddbRec.URL, stream, s3rec.URL)
	os.WriteFile(cfgFile, []byte(cfgText), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runProcessor(t, ctx, "run", "-c", cfgFile)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for lakeRecords(t, backend, "kinesis/") < n && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	<-done
	if got := lakeRecords(t, backend, "kinesis/"); got < n {
		t.Fatalf("lake has %d records, want %d", got, n)
	}
	seen := checkCovered(t, cfgFile, cfgText, s3rec, kinRec, ddbRec)
	wantSeen(t, seen, "kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords", "dynamodb:CreateTable", "dynamodb:Scan", "dynamodb:UpdateItem", "s3:PutObject", "s3:ListBucket")
}

// lakeRecords counts NDJSON lines under prefix in the fake bucket.
func lakeRecords(t *testing.T, backend *s3mem.Backend, prefix string) int {
	list, err := backend.ListBucket("lake", &gofakes3.Prefix{HasPrefix: true, Prefix: prefix}, gofakes3.ListBucketPage{})
	if err != nil {
		return 0
	}
	n := 0
	for _, o := range list.Contents {
		obj, err := backend.GetObject("lake", o.Key, nil)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(obj.Contents)
		obj.Contents.Close()
		n += bytes.Count(b, []byte("\n"))
	}
	return n
}
