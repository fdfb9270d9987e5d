package iampolicy

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/internal/testutil"

	"github.com/sluice-data/sluice/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func load(t *testing.T, path string) *config.Config {
	t.Helper()
	for k, v := range testutil.ProdExampleEnv {
		t.Setenv(k, v)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	return cfg
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name   string
		config string
		opts   Options
	}{
		{name: "s3_kms_glue", config: "s3_kms_glue.yaml", opts: Options{Account: "111122223333"}},
		{name: "kinesis_archive", config: "kinesis_archive.yaml", opts: Options{Account: "111122223333"}},
		{name: "msk_opensearch", config: "msk_opensearch.yaml"},
		{name: "local", config: "local.yaml"},
		{name: "local_from_s3", config: "local.yaml", opts: Options{ConfigRef: "s3://conf-bucket/sluice/prod.yaml"}},
		{name: "local_from_ssm", config: "local.yaml", opts: Options{ConfigRef: "ssm:/sluice/prod/config", Region: "eu-central-1", Account: "111122223333"}},
		{name: "local_from_ssm_cmk", config: "local.yaml", opts: Options{ConfigRef: "ssm:/sluice/prod/config", ConfigKMSKey: "alias/sluice-config", Region: "eu-central-1"}},
		{name: "prod_example", config: "../../../configs/prod.example.yaml", opts: Options{ConfigRef: "s3://mozart-config/sluice/prod.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Generate(load(t, filepath.Join("testdata", tt.config)), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := p.JSON()
			golden := filepath.Join("testdata", tt.name+".json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("policy differs from %s (run with -update):\n%s", golden, got)
			}
		})
	}
}

// TestNoStarWhereNamed checks that no resource is a bare "*" and that
// every configured name appears in some resource.
func TestNoStarWhereNamed(t *testing.T) {
	for _, f := range []string{"s3_kms_glue.yaml", "kinesis_archive.yaml", "msk_opensearch.yaml"} {
		p, err := Generate(load(t, filepath.Join("testdata", f)), Options{})
		if err != nil {
			t.Fatal(err)
		}
		all := string(p.JSON())
		for _, s := range p.Statement {
			for _, r := range s.Resource {
				if r == "*" {
					t.Errorf("%s: statement %s has resource *", f, s.Sid)
				}
			}
		}
		for _, name := range map[string][]string{
			"s3_kms_glue.yaml":     {"data-lake/app-logs/*", "data-lake/app-logs-errors/*", "other-bucket/copies/raw/*", "database/lake", "table/lake/app_logs", "alias/lake", "key/1234abcd"},
			"kinesis_archive.yaml": {"stream/security-findings", "table/sluice-findings", "archive-bucket/raw/findings/*", "lake/findings/*"},
			"msk_opensearch.yaml":  {"cluster/prod-msk/*", "topic/prod-msk/*/app-logs", "topic/prod-msk/*/audit", "group/prod-msk/*/sluice", "domain/logs-prod/*", "collection/k2t0x3u9v8q7", "lake/errors/*"},
		}[f] {
			if !strings.Contains(all, name) {
				t.Errorf("%s: no resource names %q:\n%s", f, name, all)
			}
		}
	}
}

func TestAllows(t *testing.T) {
	p, err := Generate(load(t, "testdata/kinesis_archive.yaml"), Options{Account: "111122223333"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		give Request
		want bool
	}{
		{Request{Action: "s3:PutObject", Resource: "arn:aws:s3:::lake/findings/year=2024/a.ndjson"}, true},
		{Request{Action: "s3:PutObject", Resource: "arn:aws:s3:::lake/findings-errors/processing-failed/a.ndjson"}, true},
		{Request{Action: "s3:PutObject", Resource: "arn:aws:s3:::lake/other/a.ndjson"}, false},
		{Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::lake/findings/a.ndjson"}, false},
		{Request{Action: "s3:ListBucket", Resource: "arn:aws:s3:::lake", Keys: map[string]string{"s3:prefix": "findings/year=2024/"}}, true},
		{Request{Action: "s3:ListBucket", Resource: "arn:aws:s3:::lake", Keys: map[string]string{"s3:prefix": "secret/"}}, false},
		{Request{Action: "s3:ListBucket", Resource: "arn:aws:s3:::lake"}, false},
		{Request{Action: "kinesis:GetRecords", Resource: "arn:aws:kinesis:ap-northeast-2:111122223333:stream/security-findings"}, true},
		{Request{Action: "kinesis:GetRecords", Resource: "arn:aws:kinesis:ap-northeast-2:111122223333:stream/other"}, false},
		{Request{Action: "kinesis:PutRecord", Resource: "arn:aws:kinesis:ap-northeast-2:111122223333:stream/security-findings"}, false},
		{Request{Action: "dynamodb:UpdateItem", Resource: "arn:aws:dynamodb:ap-northeast-2:111122223333:table/sluice-findings"}, true},
		{Request{Action: "dynamodb:DeleteTable", Resource: "arn:aws:dynamodb:ap-northeast-2:111122223333:table/sluice-findings"}, false},
	}
	for _, tt := range tests {
		if got := p.Allows(tt.give); got != tt.want {
			t.Errorf("Allows(%+v) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

// TestMSKCluster: the cluster is named from the brokers however they are
// given, also as one comma-separated bootstrap string
// (brokers: ["${KAFKA_BROKERS}"]), which the Kafka source splits too.
func TestMSKCluster(t *testing.T) {
	const b1, b2 = "b-1.prod-msk.x1y2z3.c3.kafka.us-east-1.amazonaws.com:9098", "b-2.prod-msk.x1y2z3.c3.kafka.us-east-1.amazonaws.com:9098"
	tests := []struct {
		give       []string
		wantName   string
		wantRegion string
	}{
		{[]string{b1, b2}, "prod-msk", "us-east-1"},
		{[]string{b1 + "," + b2}, "prod-msk", "us-east-1"},
		{[]string{b1 + ", " + b2 + ","}, "prod-msk", "us-east-1"},
		{[]string{b1 + ",localhost:9092"}, "*", ""},
		{[]string{"boot-abc.c2.kafka-serverless.us-east-1.amazonaws.com:9098"}, "*", ""},
	}
	for _, tt := range tests {
		name, region := mskCluster(tt.give)
		if name != tt.wantName || region != tt.wantRegion {
			t.Errorf("mskCluster(%q) = %q, %q; want %q, %q", tt.give, name, region, tt.wantName, tt.wantRegion)
		}
	}
}
