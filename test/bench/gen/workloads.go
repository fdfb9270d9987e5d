package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// writeFindings writes n Security Hub "Findings - Imported" EventBridge
// events, each with one to three ASFF findings of mixed severity (the
// shape of test/testdata/samples/eventbridge_securityhub.ndjson).
func writeFindings(w io.Writer, n int) error {
	rng := rand.New(rand.NewPCG(42, 8))
	labels := []string{"INFORMATIONAL", "LOW", "MEDIUM", "MEDIUM", "HIGH", "HIGH", "CRITICAL"}
	controls := []string{"EC2.8", "S3.1", "IAM.6", "RDS.3", "Lambda.1", "KMS.4", "CloudTrail.1"}
	start := time.Date(2024, 11, 3, 0, 0, 0, 0, time.UTC)
	enc := json.NewEncoder(w)
	for i := range n {
		at := start.Add(time.Duration(i) * 48 * time.Hour / time.Duration(n))
		var findings []map[string]any
		for range rng.IntN(3) + 1 {
			c := controls[rng.IntN(len(controls))]
			id := fmt.Sprintf("arn:aws:securityhub:ap-northeast-2:111122223333:subscription/aws-foundational-security-best-practices/v/1.0.0/%s/finding/%016x", c, rng.Uint64())
			label := labels[rng.IntN(len(labels))]
			findings = append(findings, map[string]any{
				"SchemaVersion": "2018-10-08", "Id": id,
				"ProductArn":    "arn:aws:securityhub:ap-northeast-2::product/aws/securityhub",
				"GeneratorId":   "aws-foundational-security-best-practices/v/1.0.0/" + c,
				"AwsAccountId":  "111122223333",
				"Types":         []string{"Software and Configuration Checks/Industry and Regulatory Standards/AWS-Foundational-Security-Best-Practices"},
				"CreatedAt":     at.Add(-5 * time.Minute).Format(time.RFC3339Nano),
				"UpdatedAt":     at.Format(time.RFC3339Nano),
				"Severity":      map[string]any{"Label": label, "Original": label},
				"Title":         c + " control failed",
				"Compliance":    map[string]any{"Status": "FAILED"},
				"Workflow":      map[string]any{"Status": "NEW"},
				"RecordState":   "ACTIVE",
				"Region":        "ap-northeast-2",
				"ProductFields": map[string]any{"ControlId": c},
				"Resources": []map[string]any{{"Partition": "aws", "Type": "AwsEc2Instance", "Region": "ap-northeast-2",
					"Id": fmt.Sprintf("arn:aws:ec2:ap-northeast-2:111122223333:instance/i-%017x", rng.Uint64()>>4)}},
			})
		}
		ev := map[string]any{
			"version": "0", "id": fmt.Sprintf("%08x-0000-4000-8000-%012x", rng.Uint32(), rng.Uint64()>>16),
			"detail-type": "Security Hub Findings - Imported", "source": "aws.securityhub",
			"account": "111122223333", "time": at.Format(time.RFC3339), "region": "ap-northeast-2",
			"resources": []string{findings[0]["Id"].(string)},
			"detail":    map[string]any{"findings": findings},
		}
		if err := enc.Encode(ev); err != nil {
			return err
		}
	}
	return nil
}

// writeMetrics writes n CloudWatch Metric Streams JSON records (the shape
// of test/testdata/samples/metric_stream.ndjson).
func writeMetrics(w io.Writer, n int) error {
	rng := rand.New(rand.NewPCG(42, 9))
	type metric struct{ ns, name, dim, unit string }
	ms := []metric{{"AWS/EC2", "CPUUtilization", "InstanceId", "Percent"}, {"AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier", "Count"},
		{"AWS/ApplicationELB", "RequestCount", "LoadBalancer", "Count"}, {"AWS/Lambda", "Duration", "FunctionName", "Milliseconds"}}
	const start = 1730592000000 // 2024-11-03T00:00:00Z, ms
	enc := json.NewEncoder(w)
	for i := range n {
		m := ms[rng.IntN(len(ms))]
		lo := float64(rng.IntN(100))
		if err := enc.Encode(map[string]any{
			"metric_stream_name": "mozart-metrics", "account_id": "111122223333", "region": "ap-northeast-2",
			"namespace": m.ns, "metric_name": m.name, "dimensions": map[string]string{m.dim: fmt.Sprintf("res-%03d", rng.IntN(500))},
			"timestamp": start + int64(i)*48*3600*1000/int64(n),
			"value":     map[string]float64{"max": lo + float64(rng.IntN(50)), "min": lo, "sum": lo * 10, "count": 10},
			"unit":      m.unit,
		}); err != nil {
			return err
		}
	}
	return nil
}
