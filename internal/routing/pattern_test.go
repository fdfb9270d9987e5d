package routing

import (
	"encoding/json"
	"testing"

	"github.com/valyala/fastjson"
)

const guardDuty = `{"version":"0","id":"cd2d","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"111122223333","time":"2024-11-03T10:00:00Z","region":"ap-northeast-2","resources":[],"detail":{"severity":8.0,"type":"UnauthorizedAccess:EC2/SSHBruteForce","service":{"archived":false},"remoteIp":"198.51.100.23"}}`
const securityHub = `{"source":"aws.securityhub","detail-type":"Security Hub Findings - Imported","resources":["arn:a","arn:b"],"detail":{"findings":[{"Severity":{"Label":"MEDIUM"},"Workflow":{"Status":"NEW"}},{"Severity":{"Label":"CRITICAL"},"Workflow":{"Status":"RESOLVED"}}]}}`

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		name, pattern, event string
		want                 bool
	}{
		{"exact", `{"source":["aws.guardduty"]}`, guardDuty, true},
		{"exact miss", `{"source":["aws.securityhub"]}`, guardDuty, false},
		{"scalar shorthand", `{"source":"aws.guardduty"}`, guardDuty, true},
		{"several values", `{"source":["aws.securityhub","aws.guardduty"]}`, guardDuty, true},
		{"and of fields", `{"source":["aws.guardduty"],"region":["us-east-1"]}`, guardDuty, false},
		{"prefix", `{"detail-type":[{"prefix":"GuardDuty"}]}`, guardDuty, true},
		{"prefix ignore case", `{"detail-type":[{"prefix":{"equals-ignore-case":"guardduty"}}]}`, guardDuty, true},
		{"suffix", `{"source":[{"suffix":".guardduty"}]}`, guardDuty, true},
		{"suffix miss", `{"source":[{"suffix":".hub"}]}`, guardDuty, false},
		{"anything-but value", `{"source":[{"anything-but":"aws.securityhub"}]}`, guardDuty, true},
		{"anything-but list miss", `{"source":[{"anything-but":["aws.guardduty","x"]}]}`, guardDuty, false},
		{"anything-but prefix", `{"source":[{"anything-but":{"prefix":"aws."}}]}`, guardDuty, false},
		{"anything-but missing field", `{"nope":[{"anything-but":"x"}]}`, guardDuty, false},
		{"exists true", `{"detail":{"severity":[{"exists":true}]}}`, guardDuty, true},
		{"exists false", `{"detail":{"nope":[{"exists":false}]}}`, guardDuty, true},
		{"exists false on present", `{"detail":{"severity":[{"exists":false}]}}`, guardDuty, false},
		{"numeric range", `{"detail":{"severity":[{"numeric":[">=",7,"<",9]}]}}`, guardDuty, true},
		{"numeric miss", `{"detail":{"severity":[{"numeric":["<",4]}]}}`, guardDuty, false},
		{"number equality", `{"detail":{"severity":[8]}}`, guardDuty, true},
		{"number does not match string", `{"version":[0]}`, guardDuty, false},
		{"bool", `{"detail":{"service":{"archived":[false]}}}`, guardDuty, true},
		{"wildcard", `{"detail":{"type":[{"wildcard":"UnauthorizedAccess:*/SSH*"}]}}`, guardDuty, true},
		{"wildcard miss", `{"detail":{"type":[{"wildcard":"Recon:*"}]}}`, guardDuty, false},
		{"equals-ignore-case", `{"source":[{"equals-ignore-case":"AWS.GuardDuty"}]}`, guardDuty, true},
		{"cidr", `{"detail":{"remoteIp":[{"cidr":"198.51.100.0/24"}]}}`, guardDuty, true},
		{"array any element", `{"resources":["arn:b"]}`, securityHub, true},
		{"empty array never matches value", `{"resources":["x"]}`, guardDuty, false},
		{"arrays of objects flatten", `{"detail":{"findings":{"Severity":{"Label":["CRITICAL"]}}}}`, securityHub, true},
		{"arrays of objects miss", `{"detail":{"findings":{"Severity":{"Label":["LOW"]}}}}`, securityHub, false},
		{"$or", `{"$or":[{"source":["aws.securityhub"]},{"detail":{"severity":[{"numeric":[">",7]}]}}]}`, guardDuty, true},
		{"$or miss", `{"$or":[{"source":["aws.securityhub"]},{"detail":{"severity":[{"numeric":[">",9]}]}}]}`, guardDuty, false},
		{"empty pattern", `{}`, guardDuty, true},
	}
	for _, tt := range tests {
		var x any
		if err := json.Unmarshal([]byte(tt.pattern), &x); err != nil {
			t.Fatal(err)
		}
		p, err := CompilePattern(x)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := p.Match(fastjson.MustParse(tt.event)); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestPatternErrors(t *testing.T) {
	tests := []struct{ pattern, want string }{
		{`{"source":[{"prefx":"a"}]}`, `source[0]: unknown operator "prefx" (want one of: anything-but, cidr, equals-ignore-case, exists, numeric, prefix, suffix, wildcard)`},
		{`{"detail":{"severity":[{"numeric":[">"]}]}}`, `detail.severity[0]: numeric takes one or two [operator, number] pairs, e.g. [">", 0, "<=", 5]`},
		{`{"detail":{"severity":[{"numeric":["~",1]}]}}`, `detail.severity[0]: numeric operator ~: want one of =, <, <=, >, >=`},
		{`{"source":[]}`, `source: an empty list matches nothing`},
		{`{"$or":[{"a":["b"]}]}`, `$or: $or needs a list of at least two patterns`},
		{`{"a":[{"exists":"yes"}]}`, `a[0]: exists takes true or false`},
		{`{"a":[{"wildcard":"a**"}]}`, `a[0]: wildcard "a**": consecutive * are not allowed`},
	}
	for _, tt := range tests {
		var x any
		if err := json.Unmarshal([]byte(tt.pattern), &x); err != nil {
			t.Fatal(err)
		}
		_, err := CompilePattern(x)
		if err == nil || err.Error() != tt.want {
			t.Errorf("CompilePattern(%s) = %v, want %q", tt.pattern, err, tt.want)
		}
	}
}

func FuzzPattern(f *testing.F) {
	f.Add(`{"source":["aws.guardduty"]}`, guardDuty)
	f.Add(`{"detail":{"findings":{"Severity":{"Label":[{"anything-but":"LOW"}]}}}}`, securityHub)
	f.Add(`{"a":[{"wildcard":"*x*y"}]}`, `{"a":"zxqy"}`)
	f.Fuzz(func(t *testing.T, pattern, event string) {
		var x any
		if json.Unmarshal([]byte(pattern), &x) != nil {
			return
		}
		p, err := CompilePattern(x)
		if err != nil {
			return
		}
		v, err := fastjson.Parse(event)
		if err != nil {
			return
		}
		p.Match(v)
	})
}
