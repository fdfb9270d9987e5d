// Package iampolicy derives the least-privilege IAM policy a Sluice task
// role needs for one configuration: exactly the actions the code calls
// (see the coverage test, which records every AWS request the emulator
// tests make and checks it against this policy), on exactly the resources
// the configuration names. A resource is "*" only in the parts of an ARN
// the configuration cannot know (the account when not given, an MSK
// cluster's UUID).
package iampolicy

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/configsrc"
)

// Options fill the parts of ARNs that a configuration does not hold.
type Options struct {
	// Partition is the AWS partition; default "aws".
	Partition string
	// Account is the account id in ARNs; default "*".
	Account string
	// Region is used where a component names no region; default "*".
	Region string
	// ConfigRef is the -c reference the task reads its configuration
	// from; s3:// and ssm: references add the read of that document.
	ConfigRef string
	// ConfigKMSKey is the KMS key of an ssm: SecureString configuration
	// (id, alias/name or ARN); empty allows any key, but only through
	// SSM (kms:ViaService).
	ConfigKMSKey string
}

// Policy is an IAM policy document.
type Policy struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one IAM policy statement.
type Statement struct {
	Sid       string                         `json:"Sid"`
	Effect    string                         `json:"Effect"`
	Action    []string                       `json:"Action"`
	Resource  []string                       `json:"Resource"`
	Condition map[string]map[string][]string `json:"Condition,omitempty"`
}

// JSON renders the policy indented, with a trailing newline.
func (p Policy) JSON() []byte {
	b, _ := json.MarshalIndent(p, "", "  ")
	return append(b, '\n')
}

// Actions returns every action the policy allows, sorted and unique.
func (p Policy) Actions() []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range p.Statement {
		for _, a := range s.Action {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	sort.Strings(out)
	return out
}

// The actions each component calls. Keep them in step with the code: the
// coverage test fails when the code calls an action not listed here.
var (
	s3WriteActions   = []string{"s3:PutObject", "s3:AbortMultipartUpload"}
	s3ListActions    = []string{"s3:ListBucket"}
	s3ReadActions    = []string{"s3:GetObject"}
	kmsSinkActions   = []string{"kms:GenerateDataKey", "kms:Decrypt"}
	glueActions      = []string{"glue:BatchCreatePartition"}
	kinesisActions   = []string{"kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords"}
	leaseActions     = []string{"dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:Scan", "dynamodb:PutItem", "dynamodb:UpdateItem"}
	mskClusterAction = []string{"kafka-cluster:Connect"}
	mskTopicActions  = []string{"kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"}
	mskGroupActions  = []string{"kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"}
	esActions        = []string{"es:ESHttpPost", "es:ESHttpPut"}
	aossActions      = []string{"aoss:APIAccessAll"}
	ssmActions       = []string{"ssm:GetParameter"}
)

// Generate returns the policy for cfg. Statements come in configuration
// order (config read, sources, sinks), one per component, with Sids from
// the component names, so a diff between two configurations reads well.
func Generate(cfg *config.Config, o Options) (Policy, error) {
	if o.Partition == "" {
		o.Partition = "aws"
	}
	if o.Account == "" {
		o.Account = "*"
	}
	if o.Region == "" {
		o.Region = "*"
	}
	g := &gen{o: o, out: []Statement{}}
	if o.ConfigRef != "" {
		if err := g.configRead(); err != nil {
			return Policy{}, err
		}
	}
	for i := range cfg.Sources {
		if err := g.source(&cfg.Sources[i]); err != nil {
			return Policy{}, err
		}
	}
	for i := range cfg.Sinks {
		if err := g.sink(&cfg.Sinks[i]); err != nil {
			return Policy{}, err
		}
	}
	return Policy{Version: "2012-10-17", Statement: g.out}, nil
}

type gen struct {
	o   Options
	out []Statement
}

func (g *gen) add(sid string, actions, resources []string, cond map[string]map[string][]string) {
	g.out = append(g.out, Statement{Sid: sid, Effect: "Allow", Action: actions, Resource: resources, Condition: cond})
}

func (g *gen) region(r ...string) string {
	for _, v := range r {
		if v != "" {
			return v
		}
	}
	return g.o.Region
}

func (g *gen) arn(service, region, resource string) string {
	return fmt.Sprintf("arn:%s:%s:%s:%s:%s", g.o.Partition, service, region, g.o.Account, resource)
}

func (g *gen) s3Object(bucket, key string) string {
	return fmt.Sprintf("arn:%s:s3:::%s/%s", g.o.Partition, bucket, key)
}

func (g *gen) s3Bucket(bucket string) string {
	return fmt.Sprintf("arn:%s:s3:::%s", g.o.Partition, bucket)
}

func (g *gen) configRead() error {
	ref, err := configsrc.Parse(g.o.ConfigRef)
	if err != nil {
		return err
	}
	switch ref.Kind {
	case configsrc.S3:
		g.add("ReadConfig", s3ReadActions, []string{g.s3Object(ref.Bucket, ref.Path)}, nil)
	case configsrc.SSM:
		name := strings.TrimPrefix(ref.Path, "/")
		g.add("ReadConfig", ssmActions, []string{g.arn("ssm", g.o.Region, "parameter/"+name)}, nil)
		// A SecureString parameter is decrypted by SSM on the caller's
		// behalf: the caller needs kms:Decrypt, through SSM only.
		res, cond := g.kmsKey(g.o.ConfigKMSKey, g.o.Region)
		if cond == nil {
			cond = map[string]map[string][]string{}
		}
		region := g.o.Region
		if region == "*" {
			cond["StringLike"] = map[string][]string{"kms:ViaService": {"ssm.*.amazonaws.com"}}
		} else {
			cond["StringEquals"] = map[string][]string{"kms:ViaService": {"ssm." + region + ".amazonaws.com"}}
		}
		g.add("DecryptConfig", []string{"kms:Decrypt"}, res, cond)
	}
	return nil
}

// kmsKey returns the resource (and condition, for an alias) that names
// a KMS key given as an id, an alias or an ARN; "" means any key.
func (g *gen) kmsKey(key, region string) ([]string, map[string]map[string][]string) {
	switch {
	case key == "":
		return []string{g.arn("kms", region, "key/*")}, nil
	case strings.HasPrefix(key, "arn:") && strings.Contains(key, ":key/"):
		return []string{key}, nil
	case strings.HasPrefix(key, "arn:") && strings.Contains(key, ":alias/"):
		// IAM evaluates a key's permissions on the key, never on an
		// alias: name the key by its alias through kms:ResourceAliases.
		parts := strings.SplitN(key, ":", 6)
		return []string{g.arn("kms", parts[3], "key/*")},
			map[string]map[string][]string{"ForAnyValue:StringEquals": {"kms:ResourceAliases": {parts[5]}}}
	case strings.HasPrefix(key, "alias/"):
		return []string{g.arn("kms", region, "key/*")},
			map[string]map[string][]string{"ForAnyValue:StringEquals": {"kms:ResourceAliases": {key}}}
	}
	return []string{g.arn("kms", region, "key/"+key)}, nil
}

// splitS3 returns bucket and key prefix ("" or ending in "/") of an
// s3:// URL.
func splitS3(raw string) (bucket, prefix string, ok bool) {
	if !strings.HasPrefix(raw, "s3://") {
		return "", "", false
	}
	bucket, prefix, _ = strings.Cut(strings.TrimPrefix(raw, "s3://"), "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return bucket, prefix, bucket != ""
}

var sidClean = regexp.MustCompile(`[^A-Za-z0-9]+`)

// sid makes a statement id from a kind and a component name: IAM allows
// only [A-Za-z0-9] in a Sid.
func sid(kind, name string) string {
	var b strings.Builder
	b.WriteString(kind)
	for _, w := range sidClean.Split(name, -1) {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

func (g *gen) source(s *config.Source) error {
	switch s.Type {
	case "archive":
		bucket, prefix, ok := splitS3(s.Archive.URL)
		if !ok {
			return nil // file: archives need no permission
		}
		g.add(sid("ReadArchive", s.Name), s3ReadActions, []string{g.s3Object(bucket, prefix+"*")}, nil)
		g.add(sid("ListArchive", s.Name), s3ListActions, []string{g.s3Bucket(bucket)}, prefixCondition(prefix))
	case "kinesis":
		k := s.Kinesis
		region := g.region(k.Region)
		g.add(sid("ReadStream", s.Name), kinesisActions, []string{g.arn("kinesis", region, "stream/"+k.Stream)}, nil)
		g.add(sid("LeaseTable", s.Name), leaseActions, []string{g.arn("dynamodb", region, "table/"+k.LeaseTable)}, nil)
	case "kafka":
		if s.Kafka.SASL.Mechanism != "aws-msk-iam" {
			return nil
		}
		k := s.Kafka
		cluster, brokerRegion := mskCluster(k.Brokers)
		region := g.region(k.SASL.Region, brokerRegion)
		g.add(sid("ConnectMSK", s.Name), mskClusterAction, []string{g.arn("kafka", region, "cluster/"+cluster+"/*")}, nil)
		var topics []string
		for _, t := range k.Topics {
			topics = append(topics, g.arn("kafka", region, "topic/"+cluster+"/*/"+t))
		}
		g.add(sid("ReadTopics", s.Name), mskTopicActions, topics, nil)
		g.add(sid("ConsumerGroup", s.Name), mskGroupActions, []string{g.arn("kafka", region, "group/"+cluster+"/*/"+k.Group)}, nil)
	}
	return nil
}

// prefixCondition limits ListBucket to keys under the prefixes.
func prefixCondition(prefixes ...string) map[string]map[string][]string {
	var like []string
	for _, p := range prefixes {
		if p == "" {
			return nil // the whole bucket is the sink's
		}
		like = append(like, p+"*")
	}
	return map[string]map[string][]string{"StringLike": {"s3:prefix": like}}
}

// mskBroker matches MSK provisioned brokers:
// b-1.CLUSTER.ID.c2.kafka.REGION.amazonaws.com[:port].
var mskBroker = regexp.MustCompile(`^b-\d+(?:-public)?\.([A-Za-z0-9-]+)\.[a-z0-9]+\.c\d+\.kafka\.([a-z0-9-]+)\.amazonaws\.com(?::\d+)?$`)

// mskCluster reads the cluster name and region from the brokers' MSK
// host names; "*" when they do not name one (serverless, a custom name).
func mskCluster(brokers []string) (name, region string) {
	name = ""
	for _, b := range config.SeedBrokers(brokers) {
		m := mskBroker.FindStringSubmatch(b)
		if m == nil {
			return "*", ""
		}
		if name != "" && m[1] != name {
			return "*", ""
		}
		name, region = m[1], m[2]
	}
	if name == "" {
		return "*", ""
	}
	return name, region
}

func (g *gen) sink(s *config.Sink) error {
	switch s.Type {
	case "s3":
		bucket, prefix, ok := splitS3(s.URL)
		if !ok {
			return nil // file: sinks need no permission
		}
		prefixes := []string{prefix}
		// Error records go where the sink writes them
		// (config.Sink.ErrorLocation): by default to the sibling prefix
		// <url without trailing slash>-errors/ (outside the table's
		// location, as Firehose's error prefix is); under the url itself
		// with error_prefix set, for a pure error output, or at a bucket
		// root, which the url's prefix already covers.
		if eurl, _ := s.ErrorLocation(); eurl != s.URL {
			if _, ep, ok := splitS3(eurl); ok {
				prefixes = append(prefixes, ep)
			}
		}
		var objects []string
		for _, p := range prefixes {
			objects = append(objects, g.s3Object(bucket, p+"*"))
		}
		g.add(sid("Write", s.Name), s3WriteActions, objects, nil)
		// Recovery lists each partition once per run to find what is
		// already durable.
		g.add(sid("List", s.Name), s3ListActions, []string{g.s3Bucket(bucket)}, prefixCondition(prefixes...))
		if s.KMSKeyID != "" {
			// SSE-KMS: PutObject needs GenerateDataKey; a multipart
			// upload's parts need Decrypt of the data key too.
			res, cond := g.kmsKey(s.KMSKeyID, g.region(s.Region))
			g.add(sid("Encrypt", s.Name), kmsSinkActions, res, cond)
		}
		if s.Glue.Database != "" {
			region := g.region(s.Glue.Region, s.Region)
			g.add(sid("Catalog", s.Name), glueActions, []string{
				g.arn("glue", region, "catalog"),
				g.arn("glue", region, "database/"+s.Glue.Database),
				g.arn("glue", region, "table/"+s.Glue.Database+"/"+s.Glue.Table),
			}, nil)
		}
	case "opensearch":
		if s.Auth.Type != "sigv4" {
			return nil
		}
		var res []string
		seen := map[string]bool{}
		for _, ep := range s.Endpoints {
			var r string
			if s.Auth.Service == "aoss" {
				id, region := aossCollection(ep)
				r = g.arn("aoss", g.region(s.Auth.Region, region), "collection/"+id)
			} else {
				domain, region := esDomain(ep)
				r = g.arn("es", g.region(s.Auth.Region, region), "domain/"+domain+"/*")
			}
			if !seen[r] {
				seen[r] = true
				res = append(res, r)
			}
		}
		if s.Auth.Service == "aoss" {
			g.add(sid("Index", s.Name), aossActions, res, nil)
		} else {
			g.add(sid("Index", s.Name), esActions, res, nil)
		}
	}
	return nil
}

// esDomainHost matches search-DOMAIN-ID.REGION.es.amazonaws.com and the
// vpc- form.
var esDomainHost = regexp.MustCompile(`^(?:search|vpc)-([a-z][a-z0-9-]*)-[a-z0-9]+\.([a-z0-9-]+)\.es\.amazonaws\.com$`)

func esDomain(endpoint string) (domain, region string) {
	m := esDomainHost.FindStringSubmatch(host(endpoint))
	if m == nil {
		return "*", ""
	}
	return m[1], m[2]
}

var aossHost = regexp.MustCompile(`^([a-z0-9]+)\.([a-z0-9-]+)\.aoss\.amazonaws\.com$`)

func aossCollection(endpoint string) (id, region string) {
	m := aossHost.FindStringSubmatch(host(endpoint))
	if m == nil {
		return "*", ""
	}
	return m[1], m[2]
}

func host(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		return u.Hostname()
	}
	return endpoint
}
