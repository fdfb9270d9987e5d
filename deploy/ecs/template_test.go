// Package ecs holds the CloudFormation template that runs Sluice on ECS
// Fargate (sluice.yaml) and the test that validates it.
package ecs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/intrinsics"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/iampolicy"
	"github.com/sluice-data/sluice/internal/testutil"
)

const (
	templateFile = "sluice.yaml"
	exampleFile  = "../../configs/prod.example.yaml"
	// goformation resolves ${AWS::AccountId} to this.
	resolvedAccount = "123456789012"
)

// validate parses the template into goformation's typed resources and
// checks every property name case-sensitively against those types.
func validate(data []byte, overrides map[string]any) (*cloudformation.Template, error) {
	opts := &intrinsics.ProcessorOptions{ParameterOverrides: overrides, EvaluateConditions: true}
	tpl, err := goformation.ParseYAMLWithOptions(data, opts)
	if err != nil {
		return nil, err
	}
	processed, err := intrinsics.ProcessYAML(data, opts)
	if err != nil {
		return nil, err
	}
	if err := strictKeys(processed); err != nil {
		return nil, err
	}
	return tpl, nil
}

func parse(t *testing.T, data []byte, overrides map[string]any) *cloudformation.Template {
	t.Helper()
	tpl, err := validate(data, overrides)
	if err != nil {
		t.Fatalf("%s: %v", templateFile, err)
	}
	return tpl
}

// strictKeys checks property names against goformation's types
// case-sensitively. goformation decodes with DisallowUnknownFields, but
// encoding/json matches names without regard to case, and CloudFormation
// rejects ReadOnlyRootFileSystem where ReadonlyRootFilesystem is meant.
func strictKeys(processed []byte) error {
	var doc struct {
		Resources map[string]struct {
			Type       string
			Properties map[string]any
		}
	}
	if err := json.Unmarshal(processed, &doc); err != nil {
		return err
	}
	all := cloudformation.AllResources()
	var errs []string
	for name, r := range doc.Resources {
		typed, ok := all[r.Type]
		if !ok {
			errs = append(errs, fmt.Sprintf("%s: unknown resource type %s", name, r.Type))
			continue
		}
		walkKeys(r.Properties, reflect.TypeOf(typed), name+".Properties", &errs)
	}
	sort.Strings(errs)
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func walkKeys(v any, t reflect.Type, path string, errs *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		fields := map[string]reflect.StructField{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.IsExported() && name != "" && name != "-" {
				fields[name] = f
			}
		}
		for k, val := range m {
			f, ok := fields[k]
			if !ok {
				*errs = append(*errs, fmt.Sprintf("%s.%s: unknown property", path, k))
				continue
			}
			walkKeys(val, f.Type, path+"."+k, errs)
		}
	case reflect.Slice:
		if s, ok := v.([]any); ok {
			for i, e := range s {
				walkKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
			}
		}
	case reflect.Map:
		if m, ok := v.(map[string]any); ok {
			for k, e := range m {
				walkKeys(e, t.Elem(), path+"."+k, errs)
			}
		}
	}
}

func read(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(templateFile)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestTemplateRejectsUnknown makes sure the validation means something:
// a misspelt property, nested or not, in any letter case, an unknown
// resource type or a value of the wrong type is an error.
func TestTemplateRejectsUnknown(t *testing.T) {
	data := read(t)
	tests := []struct {
		name, old, new string
	}{
		{"top-level property", "      RequiresCompatibilities: [FARGATE]\n", "      RequiresCompatibilities: [FARGATE]\n      BogusProperty: 1\n"},
		{"nested property", "          ReadonlyRootFilesystem: true\n", "          ReadonlyRootFilesystem: true\n          ReadOnlyRootFileSystem: true\n"},
		{"deep property", "          Enable: true\n", "          Enable: true\n          Bogus: true\n"},
		{"unknown type", "    Type: AWS::ECS::TaskDefinition\n", "    Type: AWS::ECS::TaskDefinitio\n"},
		{"wrong value type", "          StopTimeout: 30\n", "          StopTimeout: [30]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Contains(data, []byte(tt.old)) {
				t.Fatalf("template has no %q", tt.old)
			}
			bad := bytes.Replace(data, []byte(tt.old), []byte(tt.new), 1)
			if _, err := validate(bad, nil); err == nil {
				t.Errorf("goformation accepted the template with %s", tt.name)
			}
		})
	}
}

func TestTemplate(t *testing.T) {
	for k, v := range testutil.ProdExampleEnv {
		t.Setenv(k, v)
	}
	tpl := parse(t, read(t), nil)
	cfg, err := config.Load(exampleFile)
	if err != nil {
		t.Fatal(err)
	}

	td, err := tpl.GetECSTaskDefinitionWithName("TaskDefinition")
	if err != nil {
		t.Fatal(err)
	}
	if len(td.ContainerDefinitions) != 1 {
		t.Fatalf("%d containers, want 1", len(td.ContainerDefinitions))
	}
	c := td.ContainerDefinitions[0]
	if c.StopTimeout == nil || time.Duration(*c.StopTimeout)*time.Second <= time.Duration(cfg.Service.ShutdownTimeout) {
		t.Errorf("StopTimeout %v must exceed shutdown_timeout %v of %s", c.StopTimeout, time.Duration(cfg.Service.ShutdownTimeout), exampleFile)
	}
	if c.ReadonlyRootFilesystem == nil || !*c.ReadonlyRootFilesystem {
		t.Error("ReadonlyRootFilesystem is not true")
	}
	if c.User == nil || strings.HasPrefix(*c.User, "0") || strings.HasPrefix(*c.User, "root") || *c.User == "" {
		t.Errorf("User %v is not a nonroot user", c.User)
	} else if *c.User != "65532:65532" {
		t.Errorf("User %q, want distroless nonroot 65532:65532", *c.User)
	}
	for _, m := range c.MountPoints {
		if m.ContainerPath == nil || *m.ContainerPath != "/tmp" {
			t.Errorf("writable mount %v: only /tmp is writable", m.ContainerPath)
		}
	}
	if c.HealthCheck == nil || strings.Join(c.HealthCheck.Command, " ") != "CMD /usr/local/bin/processor healthcheck" {
		t.Errorf("health check %v, want [CMD /usr/local/bin/processor healthcheck]", c.HealthCheck)
	}
	// processor healthcheck without --url asks port 8080.
	if _, port, err := net.SplitHostPort(cfg.Service.HTTPListen); err != nil || port != "8080" {
		t.Errorf("%s: service.http_listen %q: the health check asks :8080", exampleFile, cfg.Service.HTTPListen)
	}
	if strings.Join(c.Command, " ") != "run -c s3://mozart-config/sluice/prod.yaml" {
		t.Errorf("Command %v", c.Command)
	}
	if c.LogConfiguration == nil || c.LogConfiguration.LogDriver != "awslogs" {
		t.Error("logs do not go to awslogs (EMF metrics need them)")
	}
	if td.RuntimePlatform == nil || td.RuntimePlatform.CpuArchitecture == nil {
		t.Error("no RuntimePlatform.CpuArchitecture")
	}

	// The service rolls back a deployment that does not become healthy.
	svc, err := tpl.GetECSServiceWithName("Service")
	if err != nil {
		t.Fatal(err)
	}
	if dc := svc.DeploymentConfiguration; dc == nil || dc.DeploymentCircuitBreaker == nil || !dc.DeploymentCircuitBreaker.Enable || !dc.DeploymentCircuitBreaker.Rollback {
		t.Error("no deployment circuit breaker with rollback")
	}

	// Scaling: at most the documented source parallelism.
	st, err := tpl.GetApplicationAutoScalingScalableTargetWithName("ScalableTarget")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Sluice struct{ SourceParallelism int }
	}
	b, _ := json.Marshal(tpl.Metadata)
	json.Unmarshal(b, &meta)
	if meta.Sluice.SourceParallelism == 0 {
		t.Fatal("no Metadata Sluice.SourceParallelism")
	}
	if st.MaxCapacity > meta.Sluice.SourceParallelism || st.MinCapacity > st.MaxCapacity {
		t.Errorf("scaling %d..%d tasks; the sources can use at most %d", st.MinCapacity, st.MaxCapacity, meta.Sluice.SourceParallelism)
	}
	for _, d := range []string{*tpl.Parameters["MaxTasks"].Description} {
		if !strings.Contains(d, "partition") || !strings.Contains(d, "shard") {
			t.Errorf("MaxTasks's description does not give the bound (partitions, shards): %q", d)
		}
	}
	var policies []string
	for name, p := range tpl.GetAllApplicationAutoScalingScalingPolicyResources() {
		policies = append(policies, name+"="+p.PolicyType)
	}
	for _, want := range []string{"CpuScaling=TargetTrackingScaling", "LagScaleOut=StepScaling"} {
		if !strings.Contains(strings.Join(policies, " "), want) {
			t.Errorf("no scaling policy %s (have %v)", want, policies)
		}
	}
	alarms := tpl.GetAllCloudWatchAlarmResources()
	for _, name := range []string{"LagAlarm", "ErrorRecordsAlarm", "FlushFailuresAlarm", "NoProgressAlarm"} {
		if _, ok := alarms[name]; !ok {
			t.Errorf("no alarm %s", name)
		}
	}
	if ms, _ := tpl.Parameters["MetricsServiceName"].Default.(string); ms != cfg.Service.Name {
		t.Errorf("MetricsServiceName default %q, the example's service.name is %q", ms, cfg.Service.Name)
	}
	if !cfg.Service.CloudWatchEMF {
		t.Errorf("%s: service.cloudwatch_emf is off; the alarms and lag scaling read its metrics", exampleFile)
	}
	if _, err := tpl.GetCloudWatchDashboardWithName("Dashboard"); err != nil {
		t.Error(err)
	}

	// Task role = processor iam-policy for the example config.
	role, err := tpl.GetIAMRoleWithName("TaskRole")
	if err != nil {
		t.Fatal(err)
	}
	if len(role.Policies) != 1 {
		t.Fatalf("task role has %d inline policies, want 1", len(role.Policies))
	}
	want, err := iampolicy.Generate(cfg, iampolicy.Options{Account: resolvedAccount, ConfigRef: strings.Join(c.Command[2:], "")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.MarshalIndent(role.Policies[0].PolicyDocument, "", "  ")
	var gotP iampolicy.Policy
	if err := json.Unmarshal(got, &gotP); err != nil {
		t.Fatal(err)
	}
	if g, w := gotP.JSON(), want.JSON(); !bytes.Equal(g, w) {
		t.Errorf("the task role's policy is not `processor iam-policy -c %s --config-url %s --account '${AWS::AccountId}'`:\ntemplate:\n%s\nwant:\n%s", exampleFile, strings.Join(c.Command[2:], ""), g, w)
	}

	// With TaskPolicyArn the role takes that managed policy instead.
	tpl2 := parse(t, read(t), map[string]any{"TaskPolicyArn": "arn:aws:iam::111122223333:policy/sluice"})
	role2, _ := tpl2.GetIAMRoleWithName("TaskRole")
	if len(role2.ManagedPolicyArns) != 1 || role2.ManagedPolicyArns[0] != "arn:aws:iam::111122223333:policy/sluice" {
		t.Errorf("with TaskPolicyArn: managed %v", role2.ManagedPolicyArns)
	}
	for _, p := range role2.Policies {
		if p.PolicyName != "" {
			t.Errorf("with TaskPolicyArn the inline policy %q stays", p.PolicyName)
		}
	}

	// A secret reaches ${VAR} through ECS secrets; the execution role may read it.
	const secret = "arn:aws:secretsmanager:ap-northeast-2:111122223333:secret:sluice/opensearch-AbCdEf"
	tpl3 := parse(t, read(t), map[string]any{"Secret1Name": "OPENSEARCH_PASSWORD", "Secret1Arn": secret})
	td3, _ := tpl3.GetECSTaskDefinitionWithName("TaskDefinition")
	var secrets []string
	for _, s := range td3.ContainerDefinitions[0].Secrets {
		if s.Name != "" { // goformation keeps AWS::NoValue list items as zero values; CloudFormation drops them
			secrets = append(secrets, s.Name+"="+s.ValueFrom)
		}
	}
	if strings.Join(secrets, ",") != "OPENSEARCH_PASSWORD="+secret {
		t.Errorf("container secrets %v", secrets)
	}
	exec3, _ := tpl3.GetIAMRoleWithName("ExecutionRole")
	if b, _ := json.Marshal(exec3.Policies); !strings.Contains(string(b), secret) || !strings.Contains(string(b), "secretsmanager:GetSecretValue") {
		t.Errorf("the execution role cannot read the secret: %s", b)
	}
}
