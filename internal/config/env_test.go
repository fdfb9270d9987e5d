package config

import (
	"strings"
	"testing"
)

// secret holds what broke text expansion: a comment start, an alias, a
// quote, a newline that would start new keys, and a mapping separator.
const secret = "Zq9 #SECRET*anchor \"quoted\" 'single'\nsources:\n  - {name: evil, type: file, file: {paths: [/etc/passwd]}}\nkey: value"

// secretParts are pieces of the secret none of which may be printed.
var secretParts = []string{"Zq9", "SECRET", "anchor", "quoted", "single", "evil", "passwd", "key: value"}

const envBase = `service: {error_sink: lake}
sources:
  - name: logs
    type: kafka
    kafka:
      brokers: [b:9092]
      topics: [t]
      group: g
      start: ${START:-earliest}
      sasl: {mechanism: plain, username: u, password: ${PW}}   # not ${UNSET_IN_COMMENT}
# ${UNSET_IN_COMMENT} is a comment
routes:
  - {name: r, from: [logs], to: [lake]}
sinks:
  - {name: lake, type: s3, url: "file:out/", format: ndjson}
`

func TestEnvSecretParsesExactly(t *testing.T) {
	tests := []struct {
		name string
		give string
		get  func(*Config) string
		want string
	}{
		{"plain", envBase, func(c *Config) string { return c.Sources[0].Kafka.SASL.Password }, secret},
		{"double quoted", strings.Replace(envBase, "password: ${PW}", `password: "${PW}"`, 1),
			func(c *Config) string { return c.Sources[0].Kafka.SASL.Password }, secret},
		{"single quoted in text", strings.Replace(envBase, "password: ${PW}", `password: 'p-${PW}-s'`, 1),
			func(c *Config) string { return c.Sources[0].Kafka.SASL.Password }, "p-" + secret + "-s"},
		{"block scalar", strings.Replace(envBase, "group: g", "group: g\n      client_id: |-\n        ${PW}", 1),
			func(c *Config) string { return c.Sources[0].Kafka.ClientID }, secret},
		{"escape", strings.Replace(envBase, "group: g", "group: g-$${PW}", 1),
			func(c *Config) string { return c.Sources[0].Kafka.Group }, "g-${PW}"},
		{"not expanded twice", strings.Replace(envBase, "group: g", "group: ${NESTED}", 1),
			func(c *Config) string { return c.Sources[0].Kafka.Group }, "${PW}"},
		{"default", strings.Replace(envBase, "group: g", "group: ${UNSET:-grp}", 1),
			func(c *Config) string { return c.Sources[0].Kafka.Group }, "grp"},
	}
	env := lookup(map[string]string{"PW": secret, "NESTED": "${PW}"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("env.yaml", []byte(tt.give), env)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.get(c); got != tt.want {
				t.Errorf("value = %q, want %q", got, tt.want)
			}
			if len(c.Sources) != 1 {
				t.Errorf("the value changed the document: %d sources", len(c.Sources))
			}
		})
	}
}

// TestEnvTyping: an unquoted reference is typed by its value, as if
// written in its place; a quoted one stays a string.
func TestEnvTyping(t *testing.T) {
	y := strings.Replace(envBase, "service: {error_sink: lake}", "service: {error_sink: lake, workers: ${N}, name: \"${N}\", http_listen: ${EMPTY:-}}", 1)
	c, err := Parse("env.yaml", []byte(y), lookup(map[string]string{"PW": "s", "N": "3"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Service.Workers != 3 || c.Service.Name != "3" || c.Service.HTTPListen != "" {
		t.Errorf("service = %+v", c.Service)
	}
}

// TestEnvSecretNeverPrinted puts the secret where each kind of check
// quotes the value, and requires the reference instead.
func TestEnvSecretNeverPrinted(t *testing.T) {
	sink := "  - {name: lake, type: s3, url: \"file:out/\", format: ndjson}\n"
	tests := []struct {
		name string
		give string // replaces the lake sink line
		want string // the error must contain this
	}{
		{"url", "  - {name: lake, type: s3, url: \"s3://${PW}/x\", format: ndjson}\n", `sinks[0].url: invalid S3 URL "s3://${PW}/x"`},
		{"opensearch endpoint", sink + "  - {name: s, type: opensearch, index: i, endpoints: [\"http://admin:${PW}@h:9200\"]}\n", `sinks[1].endpoints[0]: "http://admin:${PW}@h:9200" is not an http(s) URL`},
		{"enum", "  - {name: lake, type: s3, url: \"file:out/\", format: ${PW}}\n", `sinks[0].format: invalid value "${PW}"`},
		{"duration", sink + "  - {name: s, type: opensearch, index: i, endpoints: [\"http://h\"], bulk: {interval: \"${PW}\"}}\n", `sinks[1].bulk.interval: invalid duration "${PW}"`},
		{"size", sink + "  - {name: s, type: opensearch, index: i, endpoints: [\"http://h\"], bulk: {max_bytes: 1${PW}}}\n", `sinks[1].bulk.max_bytes: invalid size "1${PW}"`},
		{"jq", "  - {name: lake, type: s3, url: \"file:out/\", format: ndjson, partition_keys: {k: '.a | ${PW}'}}\n", `sinks[0].partition_keys.k: invalid jq ".a | ${PW}": unexpected token "${PW}"`},
		{"kafka start", sink, `sources[0].kafka.start: want earliest, latest or an RFC 3339 time, not "${START:-earliest}"`},
		{"template", "  - {name: lake, type: s3, url: \"file:out/\", format: ndjson, prefix: '!{${PW}}/'}\n", `sinks[0].prefix: unknown template expression !{${PW} (want`},
		{"route", "  - {name: lake, type: s3, url: \"file:out/\", format: ndjson}\n  - {name: '${PW}', type: s3, url: \"file:out2/\", format: ndjson}\n", `sinks[1].name: name "${PW}" must not contain spaces or slashes`},
	}
	env := lookup(map[string]string{"PW": secret, "START": secret})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := strings.Replace(envBase, sink, tt.give, 1)
			_, err := Parse("env.yaml", []byte(y), env)
			if err == nil {
				t.Fatal("config was accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error:\n%s\nwant it to contain:\n%s", msg, tt.want)
			}
			for _, part := range secretParts {
				if strings.Contains(msg, part) {
					t.Errorf("error prints %q of the secret:\n%s", part, msg)
				}
			}
		})
	}
}

func TestEnvMissing(t *testing.T) {
	y := strings.Replace(envBase, "group: g", "group: ${GROUP}\n      client_id: \"${A}-${B:-b}-${C}\"", 1)
	_, err := Parse("env.yaml", []byte(y), lookup(map[string]string{"PW": secret, "C": ""}))
	want := `env.yaml:8: sources[0].kafka.group: environment variable GROUP is not set
env.yaml:9: sources[0].kafka.client_id: environment variable A is not set
env.yaml:9: sources[0].kafka.client_id: environment variable C is empty (write ${C:-default} for a default)`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}

// TestEnvNotUTF8: a YAML document is UTF-8, and so must a value be that
// takes the place of a reference (names become metric labels, which
// must be UTF-8); the error names the variable, not the value.
func TestEnvNotUTF8(t *testing.T) {
	y := strings.Replace(envBase, "group: g", "group: ${GROUP}", 1)
	_, err := Parse("env.yaml", []byte(y), lookup(map[string]string{"PW": secret, "GROUP": "g\xff\xfeSECRET"}))
	want := `env.yaml:8: sources[0].kafka.group: environment variable GROUP is not valid UTF-8`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}
