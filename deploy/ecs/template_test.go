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
	"regexp"
	"slices"
	"sort"
	"strconv"
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
//
// Conditions are applied as CloudFormation applies them. goformation,
// asked to evaluate conditions, replaces a resource or output that has a
// Condition with that condition's value (true or false) instead of keeping
// or dropping it, so conditional resources are wrapped first and pruned
// after evaluation (conditional). A Ref or Fn::GetAtt of a resource becomes
// "{{ref:Name}}" or "{{getatt:Name.Attribute}}" (goformation resolves
// neither) and must name a resource that exists (resolvable), as
// CloudFormation requires.
func validate(data []byte, overrides map[string]any) (*cloudformation.Template, error) {
	processed, err := conditional(data, overrides)
	if err != nil {
		return nil, err
	}
	if err := resolvable(processed); err != nil {
		return nil, err
	}
	tpl, err := goformation.ParseJSONWithOptions(processed, &intrinsics.ProcessorOptions{NoProcess: true})
	if err != nil {
		return nil, err
	}
	if err := strictKeys(processed); err != nil {
		return nil, err
	}
	return tpl, nil
}

// conditional evaluates the template's intrinsics and conditions with the
// parameter overrides and drops the resources and outputs whose Condition
// is false. It returns the processed template as JSON.
func conditional(data []byte, overrides map[string]any) ([]byte, error) {
	raw, err := intrinsics.ProcessYAML(data, &intrinsics.ProcessorOptions{NoProcess: true})
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	// A CommaDelimitedList is a list, also when given as one string.
	params, _ := doc["Parameters"].(map[string]any)
	for name, p := range params {
		m, _ := p.(map[string]any)
		if v, ok := overrides[name]; ok {
			m["Default"] = v
		}
		if s, ok := m["Default"].(string); ok && m["Type"] == "CommaDelimitedList" {
			m["Default"] = strings.Split(s, ",")
		}
	}
	// {"Condition": name} is what goformation evaluates to a bool.
	names := map[string]map[string]string{}
	for _, section := range []string{"Resources", "Outputs"} {
		names[section] = map[string]string{}
		entries, _ := doc[section].(map[string]any)
		for id, e := range entries {
			m, _ := e.(map[string]any)
			if c, ok := m["Condition"].(string); ok {
				names[section][id] = c
				m["Condition"] = map[string]any{"Condition": c}
			}
		}
	}
	wrapped, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	resources, _ := doc["Resources"].(map[string]any)
	opts := &intrinsics.ProcessorOptions{
		EvaluateConditions: true,
		IntrinsicHandlerOverrides: map[string]intrinsics.IntrinsicHandler{
			"Ref": func(name string, input, template any) any {
				if id, ok := input.(string); ok && resources[id] != nil {
					return "{{ref:" + id + "}}"
				}
				return intrinsics.Ref(name, input, template)
			},
			"Fn::GetAtt": func(_ string, input, _ any) any {
				var parts []string
				switch v := input.(type) {
				case string:
					parts = []string{v}
				case []any:
					for _, p := range v {
						s, _ := p.(string)
						parts = append(parts, s)
					}
				}
				return "{{getatt:" + strings.Join(parts, ".") + "}}"
			},
		},
	}
	processed, err := intrinsics.ProcessJSON(wrapped, opts)
	if err != nil {
		return nil, err
	}
	doc = nil
	if err := json.Unmarshal(processed, &doc); err != nil {
		return nil, err
	}
	for _, section := range []string{"Resources", "Outputs"} {
		entries, _ := doc[section].(map[string]any)
		for id, c := range names[section] {
			m, _ := entries[id].(map[string]any)
			keep, ok := m["Condition"].(bool)
			if !ok {
				return nil, fmt.Errorf("%s %s: condition %s did not evaluate to true or false", section, id, c)
			}
			if !keep {
				delete(entries, id)
				continue
			}
			m["Condition"] = c
		}
	}
	return json.Marshal(doc)
}

var refPattern = regexp.MustCompile(`\{\{(ref|getatt):([A-Za-z0-9]+)[^}]*\}\}`)

// resolvable checks that every Ref, Fn::GetAtt and DependsOn left after
// conditions names a resource that exists.
func resolvable(processed []byte) error {
	var doc struct {
		Resources map[string]struct{ DependsOn any }
	}
	if err := json.Unmarshal(processed, &doc); err != nil {
		return err
	}
	var errs []string
	for _, m := range refPattern.FindAllSubmatch(processed, -1) {
		if _, ok := doc.Resources[string(m[2])]; !ok {
			errs = append(errs, fmt.Sprintf("%s of resource %s, which does not exist", m[1], m[2]))
		}
	}
	for name, r := range doc.Resources {
		deps, _ := r.DependsOn.([]any)
		if d, ok := r.DependsOn.(string); ok {
			deps = []any{d}
		}
		for _, d := range deps {
			if _, ok := doc.Resources[fmt.Sprint(d)]; !ok {
				errs = append(errs, fmt.Sprintf("%s depends on %v, which does not exist", name, d))
			}
		}
	}
	sort.Strings(errs)
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
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
	// An idle Kafka source publishes no lag (it is measured on fetched
	// records): a running task with nothing to read is not "no progress".
	// Only RecordsOut, which every task publishes each minute, may go
	// missing and breach (no task running).
	if np, ok := alarms["NoProgressAlarm"]; ok {
		for _, m := range np.Metrics {
			if m.Expression != nil && !strings.Contains(*m.Expression, "FILL(lag, 0)") {
				t.Errorf("no-progress expression %q does not fill a missing lag with 0", *m.Expression)
			}
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

const firehoseConfig = "../../configs/metric-streams.yaml"

// firehoseResources are the resources that exist only with the intake.
var firehoseResources = []string{"FirehoseSecurityGroup", "FirehoseTaskIngress", "FirehoseLoadBalancer", "FirehoseTargetGroup", "FirehoseListener", "FirehoseDnsRecord"}

// TestTemplateFirehoseIntake checks the load balancer in front of a
// firehose_http source (configs/metric-streams.yaml): with a certificate
// an HTTPS listener forwards to the source's port and path and waits as
// long as Firehose does; without one nothing of it exists.
func TestTemplateFirehoseIntake(t *testing.T) {
	for k, v := range testutil.ProdExampleEnv {
		t.Setenv(k, v)
	}
	t.Setenv("FIREHOSE_ACCESS_KEY", "test-key")
	cfg, err := config.Load(firehoseConfig)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := config.Load(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	var src *config.FirehoseHTTP
	for i := range cfg.Sources {
		if cfg.Sources[i].Type == "firehose_http" {
			src = &cfg.Sources[i].Firehose
		}
	}
	if src == nil {
		t.Fatalf("%s has no firehose_http source", firehoseConfig)
	}
	_, portStr, err := net.SplitHostPort(src.Listen)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)

	// The defaults are the source's defaults and the example's values.
	tpl := parse(t, read(t), nil)
	// A firehose_http source has no Kafka or Kinesis lag: scaling and the
	// lag and no-progress alarms read its records in flight.
	if lm := tpl.Parameters["LagMetric"]; !slices.Contains(lm.AllowedValues, any("PendingRecords")) {
		t.Errorf("LagMetric allows %v; a firehose_http deployment needs PendingRecords", lm.AllowedValues)
	}
	if !cfg.Service.CloudWatchEMF {
		t.Errorf("%s: service.cloudwatch_emf is off; the alarms and scaling of the stack it is deployed with read its metrics", firehoseConfig)
	}
	if got := fmt.Sprint(tpl.Parameters["FirehosePort"].Default); got != portStr {
		t.Errorf("FirehosePort default %s, %s listens on %s", got, firehoseConfig, src.Listen)
	}
	if got := fmt.Sprint(tpl.Parameters["FirehosePath"].Default); got != src.Path {
		t.Errorf("FirehosePath default %s, %s's path is %s", got, firehoseConfig, src.Path)
	}
	ft := reflect.TypeFor[config.FirehoseHTTP]()
	for field, v := range map[string]string{"Listen": src.Listen, "Path": src.Path} {
		if f, _ := ft.FieldByName(field); f.Tag.Get("default") != v {
			t.Errorf("%s: firehose_http %s %s; the template's defaults are the source's, %s", firehoseConfig, f.Tag.Get("yaml"), v, f.Tag.Get("default"))
		}
	}

	t.Run("without certificate", func(t *testing.T) {
		for _, name := range firehoseResources {
			if _, ok := tpl.Resources[name]; ok {
				t.Errorf("resource %s exists without FirehoseCertificateArn", name)
			}
		}
		for name := range tpl.Outputs {
			if strings.HasPrefix(name, "Firehose") {
				t.Errorf("output %s exists without FirehoseCertificateArn", name)
			}
		}
		svc, err := tpl.GetECSServiceWithName("Service")
		if err != nil {
			t.Fatal(err)
		}
		if len(svc.LoadBalancers) != 0 || svc.HealthCheckGracePeriodSeconds != nil {
			t.Errorf("service load balancers %+v, grace period %v", svc.LoadBalancers, svc.HealthCheckGracePeriodSeconds)
		}
		td, _ := tpl.GetECSTaskDefinitionWithName("TaskDefinition")
		for _, pm := range td.ContainerDefinitions[0].PortMappings {
			if pm.ContainerPort != nil && *pm.ContainerPort != 8080 { // NoValue items stay as zero values
				t.Errorf("port mapping %d without FirehoseCertificateArn", *pm.ContainerPort)
			}
		}
	})

	t.Run("with certificate", func(t *testing.T) {
		const cert = "arn:aws:acm:ap-northeast-2:111122223333:certificate/0f1e2d3c-aaaa-bbbb-cccc-123456789abc"
		tpl := parse(t, read(t), map[string]any{
			"FirehoseCertificateArn": cert,
			"FirehoseDomainName":     "firehose.example.com",
			"FirehoseHostedZoneId":   "Z0123456789ABCDEFGHIJ",
			"VpcId":                  "vpc-0a1b2c",
			"LoadBalancerSubnets":    []any{"subnet-pub1", "subnet-pub2"},
			"Subnets":                []any{"subnet-priv1", "subnet-priv2"},
			"SecurityGroups":         []any{"sg-task", "sg-other"},
		})
		for _, name := range firehoseResources {
			if _, ok := tpl.Resources[name]; !ok {
				t.Errorf("no resource %s with FirehoseCertificateArn", name)
			}
		}

		l, err := tpl.GetElasticLoadBalancingV2ListenerWithName("FirehoseListener")
		if err != nil {
			t.Fatal(err)
		}
		if l.Protocol == nil || *l.Protocol != "HTTPS" || l.Port == nil || *l.Port != 443 {
			t.Errorf("listener %s:%d, want HTTPS:443", deref(l.Protocol), deref(l.Port))
		}
		if len(l.Certificates) != 1 || l.Certificates[0].CertificateArn == nil || *l.Certificates[0].CertificateArn != cert {
			t.Errorf("listener certificates %+v, want %s", l.Certificates, cert)
		}
		tls12 := map[string]bool{"ELBSecurityPolicy-TLS13-1-2-2021-06": true, "ELBSecurityPolicy-TLS13-1-2-Res-2021-06": true, "ELBSecurityPolicy-TLS-1-2-2017-01": true, "ELBSecurityPolicy-TLS-1-2-Ext-2018-06": true}
		if l.SslPolicy == nil || !tls12[*l.SslPolicy] {
			t.Errorf("listener SslPolicy %q does not require TLS 1.2 or later", deref(l.SslPolicy))
		}
		if l.LoadBalancerArn != "{{ref:FirehoseLoadBalancer}}" || len(l.DefaultActions) != 1 || l.DefaultActions[0].Type != "forward" ||
			l.DefaultActions[0].TargetGroupArn == nil || *l.DefaultActions[0].TargetGroupArn != "{{ref:FirehoseTargetGroup}}" {
			t.Errorf("listener on %s with actions %+v, want forward to FirehoseTargetGroup", l.LoadBalancerArn, l.DefaultActions)
		}

		tg, err := tpl.GetElasticLoadBalancingV2TargetGroupWithName("FirehoseTargetGroup")
		if err != nil {
			t.Fatal(err)
		}
		if deref(tg.TargetType) != "ip" || deref(tg.Protocol) != "HTTP" || tg.Port == nil || *tg.Port != port || deref(tg.VpcId) != "vpc-0a1b2c" {
			t.Errorf("target group %s %s:%d in %s, want ip HTTP:%d in vpc-0a1b2c", deref(tg.TargetType), deref(tg.Protocol), deref(tg.Port), deref(tg.VpcId), port)
		}
		if deref(tg.HealthCheckPath) != src.Path || deref(tg.HealthCheckPort) != "traffic-port" || deref(tg.HealthCheckProtocol) != "HTTP" ||
			tg.Matcher == nil || deref(tg.Matcher.HttpCode) != "200" {
			t.Errorf("health check %s %s on %s, want HTTP %s on the traffic port matching 200", deref(tg.HealthCheckProtocol), deref(tg.HealthCheckPath), deref(tg.HealthCheckPort), src.Path)
		}
		tgAttrs := map[string]string{}
		for _, a := range tg.TargetGroupAttributes {
			tgAttrs[deref(a.Key)] = deref(a.Value)
		}
		dereg, err := strconv.Atoi(tgAttrs["deregistration_delay.timeout_seconds"])
		if err != nil {
			t.Fatalf("deregistration delay %q: %v", tgAttrs["deregistration_delay.timeout_seconds"], err)
		}
		for file, c := range map[string]*config.Config{exampleFile: prod, firehoseConfig: cfg} {
			if time.Duration(dereg)*time.Second < time.Duration(c.Service.ShutdownTimeout) {
				t.Errorf("deregistration delay %d s is shorter than %s's shutdown_timeout %v", dereg, file, time.Duration(c.Service.ShutdownTimeout))
			}
		}
		// Draining lets a request in flight wait for its objects' cut.
		for _, s := range cfg.Sinks {
			if s.Type == "s3" && time.Duration(dereg)*time.Second < time.Duration(s.Buffer.Interval) {
				t.Errorf("deregistration delay %d s is shorter than sink %s's buffer.interval %v", dereg, s.Name, time.Duration(s.Buffer.Interval))
			}
		}

		lb, err := tpl.GetElasticLoadBalancingV2LoadBalancerWithName("FirehoseLoadBalancer")
		if err != nil {
			t.Fatal(err)
		}
		if deref(lb.Scheme) != "internet-facing" || deref(lb.Type) != "application" || strings.Join(lb.Subnets, ",") != "subnet-pub1,subnet-pub2" {
			t.Errorf("load balancer %s %s in %v, want an internet-facing application load balancer in the public subnets", deref(lb.Scheme), deref(lb.Type), lb.Subnets)
		}
		if strings.Join(lb.SecurityGroups, ",") != "{{getatt:FirehoseSecurityGroup.GroupId}}" {
			t.Errorf("load balancer security groups %v", lb.SecurityGroups)
		}
		lbAttrs := map[string]string{}
		for _, a := range lb.LoadBalancerAttributes {
			lbAttrs[deref(a.Key)] = deref(a.Value)
		}
		if idle, err := strconv.Atoi(lbAttrs["idle_timeout.timeout_seconds"]); err != nil || idle <= 180 {
			t.Errorf("idle timeout %q: Firehose waits up to 180 s for an answer", lbAttrs["idle_timeout.timeout_seconds"])
		}
		if time.Duration(src.RequestTimeout) >= 180*time.Second {
			t.Errorf("%s: request_timeout %v, Firehose gives up at 180 s", firehoseConfig, time.Duration(src.RequestTimeout))
		}

		// 443 in from FirehoseAllowedCidr; only the source's port out, to the
		// tasks, whose first security group lets the load balancer in.
		sg, err := tpl.GetEC2SecurityGroupWithName("FirehoseSecurityGroup")
		if err != nil {
			t.Fatal(err)
		}
		if deref(sg.VpcId) != "vpc-0a1b2c" || len(sg.SecurityGroupIngress) != 1 || len(sg.SecurityGroupEgress) != 1 {
			t.Fatalf("security group in %s with ingress %+v egress %+v", deref(sg.VpcId), sg.SecurityGroupIngress, sg.SecurityGroupEgress)
		}
		in, out := sg.SecurityGroupIngress[0], sg.SecurityGroupEgress[0]
		if in.IpProtocol != "tcp" || deref(in.FromPort) != 443 || deref(in.ToPort) != 443 || deref(in.CidrIp) != tpl.Parameters["FirehoseAllowedCidr"].Default {
			t.Errorf("load balancer ingress %+v, want tcp 443 from FirehoseAllowedCidr", in)
		}
		if out.IpProtocol != "tcp" || deref(out.FromPort) != port || deref(out.ToPort) != port || deref(out.DestinationSecurityGroupId) != "sg-task" {
			t.Errorf("load balancer egress %+v, want tcp %d to sg-task", out, port)
		}
		ti, err := tpl.GetEC2SecurityGroupIngressWithName("FirehoseTaskIngress")
		if err != nil {
			t.Fatal(err)
		}
		if deref(ti.GroupId) != "sg-task" || ti.IpProtocol != "tcp" || deref(ti.FromPort) != port || deref(ti.ToPort) != port ||
			deref(ti.SourceSecurityGroupId) != "{{getatt:FirehoseSecurityGroup.GroupId}}" {
			t.Errorf("task ingress %+v, want tcp %d into sg-task from FirehoseSecurityGroup", ti, port)
		}

		svc, err := tpl.GetECSServiceWithName("Service")
		if err != nil {
			t.Fatal(err)
		}
		if len(svc.LoadBalancers) != 1 || deref(svc.LoadBalancers[0].ContainerName) != "processor" || deref(svc.LoadBalancers[0].ContainerPort) != port ||
			deref(svc.LoadBalancers[0].TargetGroupArn) != "{{ref:FirehoseTargetGroup}}" {
			t.Errorf("service load balancers %+v, want processor:%d in FirehoseTargetGroup", svc.LoadBalancers, port)
		}
		if svc.HealthCheckGracePeriodSeconds == nil || *svc.HealthCheckGracePeriodSeconds <= 0 {
			t.Errorf("service health check grace period %d", deref(svc.HealthCheckGracePeriodSeconds))
		}
		// The service starts after the listener (through the handle).
		if strings.Join(svc.AWSCloudFormationDependsOn, ",") != "FirehoseListenerReady" {
			t.Errorf("service depends on %v", svc.AWSCloudFormationDependsOn)
		}
		h, err := tpl.GetCloudFormationWaitConditionHandleWithName("FirehoseListenerReady")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(h.AWSCloudFormationMetadata["Listener"]) != "{{ref:FirehoseListener}}" {
			t.Errorf("FirehoseListenerReady metadata %v does not refer to the listener", h.AWSCloudFormationMetadata)
		}

		td, _ := tpl.GetECSTaskDefinitionWithName("TaskDefinition")
		var ports []string
		for _, pm := range td.ContainerDefinitions[0].PortMappings {
			if pm.ContainerPort != nil {
				ports = append(ports, fmt.Sprintf("%s=%d", deref(pm.Name), *pm.ContainerPort))
			}
		}
		if strings.Join(ports, ",") != fmt.Sprintf("metrics=8080,firehose=%d", port) {
			t.Errorf("port mappings %v", ports)
		}

		rec, err := tpl.GetRoute53RecordSetWithName("FirehoseDnsRecord")
		if err != nil {
			t.Fatal(err)
		}
		if rec.Name != "firehose.example.com" || deref(rec.HostedZoneId) != "Z0123456789ABCDEFGHIJ" || rec.AliasTarget == nil || rec.AliasTarget.DNSName != "{{getatt:FirehoseLoadBalancer.DNSName}}" {
			t.Errorf("DNS record %+v", rec)
		}
		if got := fmt.Sprint(tpl.Outputs["FirehoseEndpointUrl"].Value); got != "https://firehose.example.com"+src.Path {
			t.Errorf("endpoint output %q, want https://firehose.example.com%s", got, src.Path)
		}
	})

	// Without a hosted zone the stack makes no DNS record.
	tpl2 := parse(t, read(t), map[string]any{"FirehoseCertificateArn": "arn:aws:acm:ap-northeast-2:111122223333:certificate/x", "SecurityGroups": []any{"sg-task"}})
	if _, ok := tpl2.Resources["FirehoseDnsRecord"]; ok {
		t.Error("FirehoseDnsRecord exists without FirehoseHostedZoneId")
	}
	if _, ok := tpl2.Resources["FirehoseListener"]; !ok {
		t.Error("no FirehoseListener with FirehoseCertificateArn and no hosted zone")
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
