package main

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/iampolicy"
	"github.com/sluice-data/sluice/internal/testutil"
)

// TestIAMPolicyCommand: the command prints iampolicy.Generate's output,
// and with -c ssm: it reads the config from Parameter Store and adds the
// read of that parameter.
func TestIAMPolicyCommand(t *testing.T) {
	awsEnv(t)
	const example = "../../configs/prod.example.yaml"
	for k, v := range testutil.ProdExampleEnv {
		t.Setenv(k, v)
	}
	cfg, err := config.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := iampolicy.Generate(cfg, iampolicy.Options{Account: "111122223333", ConfigRef: "s3://c/prod.yaml"})
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"iam-policy", "-c", example, "--account", "111122223333", "--config-url", "s3://c/prod.yaml"}, &out, &errb); err != nil {
		t.Fatalf("iam-policy: %v %s", err, errb.String())
	}
	if !bytes.Equal(out.Bytes(), want.JSON()) {
		t.Errorf("iam-policy printed\n%s\nwant\n%s", out.String(), want.JSON())
	}

	ssm := testutil.NewSSMFake(t)
	data, _ := os.ReadFile(example)
	ssm.Put("/sluice/prod", "SecureString", string(data))
	t.Setenv("AWS_ENDPOINT_URL_SSM", ssm.Server.URL)
	out.Reset()
	if err := run(context.Background(), []string{"iam-policy", "-c", "ssm:/sluice/prod", "--region", "ap-northeast-2"}, &out, &errb); err != nil {
		t.Fatalf("iam-policy -c ssm: %v %s", err, errb.String())
	}
	for _, s := range []string{`"ssm:GetParameter"`, `arn:aws:ssm:ap-northeast-2:*:parameter/sluice/prod"`, `"kms:ViaService"`, `"ssm.ap-northeast-2.amazonaws.com"`, `"kinesis:GetRecords"`} {
		if !bytes.Contains(out.Bytes(), []byte(s)) {
			t.Errorf("iam-policy -c ssm:/sluice/prod lacks %s:\n%s", s, out.String())
		}
	}

	if code := exitCode(run(context.Background(), []string{"iam-policy"}, &out, &errb)); code != 2 {
		t.Errorf("iam-policy without -c: exit %d, want 2", code)
	}
}
