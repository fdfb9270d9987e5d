package pipeline

import (
	"strings"
	"testing"

	"github.com/sluice-data/sluice/internal/config"
)

func parseCfg(t *testing.T, y string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const diffBase = `
service: {http_listen: "", error_sink: errors}
sources:
  - {name: a, type: kafka, kafka: {brokers: [b:9092], topics: [t], group: g}}
  - {name: b, type: kafka, kafka: {brokers: [b:9092], topics: [u], group: g}}
routes:
  - {name: all, from: [a], to: [lake], match: {level: [ERROR]}}
  - {name: index, from: [b], to: [search]}
sinks:
  - {name: lake, type: s3, url: "s3://bucket/lake/", format: ndjson}
  - {name: errors, type: s3, url: "s3://bucket/errors/", format: ndjson}
  - {name: search, type: opensearch, endpoints: ["https://search:9200"], index: logs}
`

// TestDiff: comments, key order, flow or block style and line numbers do
// not count as changes; settings do, and a sink whose error sink is
// replaced is replaced with it.
func TestDiff(t *testing.T) {
	old := parseCfg(t, diffBase)
	same := parseCfg(t, "# a comment\n\n"+strings.Replace(diffBase, "  - {name: all, from: [a], to: [lake], match: {level: [ERROR]}}",
		"  - name: all\n    match:\n      level:\n        - ERROR\n    from: [a]\n    to: [lake]", 1))
	if ch := Diff(old, same); !ch.Empty() || len(ch.Restart) > 0 {
		t.Errorf("the same configuration, restyled: %s", ch)
	}
	cur := parseCfg(t, strings.NewReplacer(
		"topics: [u]", "topics: [u, v]", // source b changed
		"match: {level: [ERROR]}", "match: {level: [WARN]}", // route all changed
		`url: "s3://bucket/errors/"`, `url: "s3://bucket/errors2/"`, // errors changed: search follows
		`http_listen: ""`, `http_listen: ":9090"`,
	).Replace(diffBase)+"  - {name: extra, type: s3, url: \"s3://bucket/extra/\", format: ndjson}\n")
	ch := Diff(old, cur)
	want := "sources: ~b; routes: ~all; sinks: +extra ~errors ~search; at next start: service.http_listen"
	if got := ch.String(); got != want {
		t.Errorf("Diff:\n got %s\nwant %s", got, want)
	}
}
