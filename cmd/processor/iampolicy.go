package main

import (
	"context"
	"flag"
	"io"

	"github.com/sluice-data/sluice/internal/iampolicy"
)

// iamPolicy prints the task role's least-privilege policy for -c's
// configuration (see internal/iampolicy).
func iamPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("iam-policy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("c", "", "configuration: a path, s3://bucket/key or ssm:/name")
	var o iampolicy.Options
	fs.StringVar(&o.Account, "account", "", "account id in ARNs (default *)")
	fs.StringVar(&o.Region, "region", "", "region where the configuration names none (default *)")
	fs.StringVar(&o.Partition, "partition", "aws", "AWS partition")
	fs.StringVar(&o.ConfigRef, "config-url", "", "where the task reads its config (s3://bucket/key or ssm:/name); default -c when -c is one")
	fs.StringVar(&o.ConfigKMSKey, "config-kms-key", "", "KMS key of an ssm: SecureString config (default: any key, through SSM only)")
	if help, err := parseOwn(fs, args, iamPolicyUsage, stdout, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return ownUsageError(stderr, fs, iamPolicyUsage, "iam-policy: unexpected argument %q", fs.Arg(0))
	}
	if *file == "" {
		return ownUsageError(stderr, fs, iamPolicyUsage, "iam-policy: -c FILE is required")
	}
	if o.ConfigRef == "" {
		o.ConfigRef = *file
	}
	cfg, err := loadConfig(ctx, *file)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	p, err := iampolicy.Generate(cfg, o)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	_, err = stdout.Write(p.JSON())
	return err
}

const iamPolicyUsage = `usage: processor iam-policy -c FILE [--account ID] [--region R] [--config-url URL]

Print, as JSON, the least-privilege IAM policy of the task role that FILE
needs: each sink's bucket and prefix, KMS, Glue, Kinesis and its lease
table, MSK IAM, OpenSearch, and the read of the configuration itself when
it comes from s3:// or ssm:.
`
