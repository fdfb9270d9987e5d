package hostile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/testutil"
)

// head is the service and file source every case shares.
func head(format string, paths ...string) string {
	q := make([]string, len(paths))
	for i, p := range paths {
		q[i] = fmt.Sprintf("%q", p)
	}
	return `service: {name: hostile, http_listen: "", log_level: warn, shutdown_timeout: 10s, error_sink: errors}
sources:
  - name: in
    type: file
    format: ` + format + `
    file: {paths: [` + strings.Join(q, ", ") + `]}
`
}

// TestLargeValues: values from 100 KiB to 16 MiB in every column type.
// Each is written or refused as schema-mismatch; either way every object
// opens in Arrow and no other row of its object is lost.
func TestLargeValues(t *testing.T) {
	cols := []struct{ name, typ string }{
		{"s", "string"}, {"i", "int64"}, {"d", "double"}, {"b", "bool"},
		{"ts", "timestamp_ms"}, {"tu", "timestamp_us"}, {"dt", "date"}, {"j", "json"},
	}
	var in bytes.Buffer
	normal := 0
	line := func(v map[string]any) {
		b, _ := json.Marshal(v)
		in.Write(b)
		in.WriteByte('\n')
	}
	for i := 0; i < 20; i++ {
		line(map[string]any{"k": "p", "s": "ok", "i": i, "d": 1.5, "b": true, "ts": 1700000000000, "tu": 1700000000000000, "dt": "2024-01-02", "j": map[string]any{"a": i}})
		normal++
	}
	big := 0
	for _, size := range []int{100 << 10, 1 << 20, 4 << 20, 16 << 20} {
		str := strings.Repeat("x", size)
		for _, c := range cols {
			rec := map[string]any{"k": "p"}
			switch c.typ {
			case "json":
				rec[c.name] = []string{str}
			case "int64", "double":
				rec[c.name] = json.RawMessage(strings.Repeat("7", size))
			default:
				rec[c.name] = str
			}
			line(rec)
			big++
		}
		// And in the extra column.
		line(map[string]any{"k": "p", "unlisted": str})
		big++
	}
	var schema strings.Builder
	for _, c := range cols {
		fmt.Fprintf(&schema, "      - {name: %s, type: %s}\n", c.name, c.typ)
	}
	r := runCase(t, hcase{
		name:   "large values",
		inputs: map[string][]byte{"big.ndjson": in.Bytes()},
		config: head("json", "in/*.ndjson") + `routes:
  - {name: all, from: [in], to: [lake]}
sinks:
  - name: lake
    type: s3
    url: file:lake/t/
    format: parquet
    partition_keys: {k: .k}
    schema:
` + schema.String() + errorsSink,
		// Lines up to file.max_line_bytes (16 MiB) pass through decode, the
		// schema check and, when refused, the error record with the raw
		// bytes in base64: a few transient copies each; the file source
		// ends a batch at 8 MiB of lines. On ECS the process sets
		// GOMEMLIMIT to 90 % of the task's memory; here 1 GiB.
		env:       []string{"GOMEMLIMIT=1GiB"},
		maxRSSMiB: 1280,
	})
	if rows := totalRows(r); rows < normal {
		t.Errorf("%d rows in the lake, fewer than the %d ordinary records", rows, normal)
	}
	errs := 0
	for _, n := range r.errorsByType {
		errs += int(n)
	}
	if got := totalRows(r) + errs; got != normal+big {
		t.Errorf("%d rows + %d error records, want %d records accounted for", totalRows(r), errs, normal+big)
	}
	// A 100 KiB string is an ordinary value: it must be written.
	pf := readAll(t, filepath.Join(r.work, "lake/t/k=p"))
	found := false
	for _, row := range pf {
		if s, _ := row["s"].(string); len(s) == 100<<10 {
			found = true
		}
	}
	if !found {
		t.Error("the 100 KiB string was not written")
	}
}

func readAll(t *testing.T, dir string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	files, _ := filepath.Glob(filepath.Join(dir, "*.parquet"))
	for _, f := range files {
		pf, err := testutil.ReadParquet(f)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, pf.Rows...)
	}
	return rows
}

// TestJQBounds: jq that never ends, or never stops producing, in a
// transform, a partition key and an OpenSearch id: the record goes to the
// error output as processing-failed and the rest is written.
func TestJQBounds(t *testing.T) {
	search := testutil.NewSearchFake(t)
	var in []string
	for i := 0; i < 50; i++ {
		in = append(in, fmt.Sprintf(`{"n":%d,"k":"a"}`, i%5))
	}
	in = append(in, `{"n":-1,"k":"a"}`)
	tests := []struct {
		name, route, sink string
	}{
		{"until in a transform", `until(.n == 0; .n -= 1)`, `
  - name: lake
    type: s3
    url: file:lake/t/
    format: parquet
    partition_keys: {k: .k}
    schema: [{name: n, type: int64}]`},
		{"repeat as a partition key", ".", `
  - name: lake
    type: s3
    url: file:lake/t/
    format: parquet
    partition_keys: {k: 'if .n < 0 then ("a" | repeat("a")) else .k end'}
    schema: [{name: n, type: int64}]`},
		{"repeat in a transform", `if .n < 0 then [repeat(1)] | length else . end`, `
  - name: lake
    type: s3
    url: file:lake/t/
    format: parquet
    partition_keys: {k: .k}
    schema: [{name: n, type: int64}]`},
		{"repeat as an OpenSearch id", ".", `
  - name: lake
    type: opensearch
    endpoints: ["` + search.Server.URL + `"]
    index: hostile
    id: 'if .n < 0 then ("a" | repeat("a")) else "\(.k)-\(.n)" end'
    bulk: {interval: 100ms}
    error_sink: errors`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCase(t, hcase{
				name:   tt.name,
				inputs: map[string][]byte{"x.ndjson": ndjson(in...)},
				config: head("json", "in/*.ndjson") + `routes:
  - name: all
    from: [in]
    transforms:
      - jq: '` + tt.route + `'

    to: [lake]
sinks:` + tt.sink + errorsSink,
				maxRSSMiB: 600,
			})
			if r.errorsByType["processing-failed"] < 1 {
				t.Errorf("the unbounded jq record is not in the error output: %v", r.errorsByType)
			}
			if msg := firstError(t, r, "processing-failed"); !strings.Contains(msg, "jq") {
				t.Errorf("error reason %q does not name the jq bound", msg)
			}
		})
	}
}

// TestJQShutdown: SIGTERM while a jq evaluation runs (its bound set far
// beyond the test) ends the process within shutdown_timeout, with the
// documented error; the record is not acked, so nothing past it is
// checkpointed.
func TestJQShutdown(t *testing.T) {
	runCase(t, hcase{
		inputs: map[string][]byte{"x.ndjson": ndjson(`{"n":1}`, `{"n":-1}`, `{"n":2}`)},
		config: `service: {name: hostile, http_listen: "", log_level: warn, shutdown_timeout: 2s, error_sink: errors, jq: {timeout: 10m}}
sources:
  - {name: in, type: file, format: json, file: {paths: ["in/*.ndjson"]}}
routes:
  - name: all
    from: [in]
    transforms:
      - jq: 'until(.n == 0; .n -= 1)'
    to: [lake]
sinks:
  - {name: lake, type: s3, url: "file:lake/t/", format: ndjson}
` + errorsSink,
		stop:     func(t *testing.T, work string) { time.Sleep(time.Second) },
		shutdown: 2 * time.Second,
		wantCode: 1,
		wantOut:  []string{"shutdown_timeout 2s exceeded", "checkpoints: in in/x.ndjson: none"},
	})
}

// TestBlankLinesShutdown: SIGTERM while a .gz of 512 MiB of blank lines
// is read. Only non-blank lines ended a batch and nothing else looked at
// the context, so 2 GiB of "\n" once held shutdown for 70 s, past
// shutdown_timeout. The record after the blank lines is read next run.
func TestBlankLinesShutdown(t *testing.T) {
	runCase(t, hcase{
		inputs: map[string][]byte{"x.ndjson.gz": gz(append(bytes.Repeat([]byte("\n"), 512<<20), `{"n":1}`+"\n"...))},
		config: `service: {name: hostile, http_listen: "", log_level: warn, shutdown_timeout: 2s, error_sink: errors}
sources:
  - {name: in, type: file, format: json, file: {paths: ["in/*.ndjson.gz"]}}
routes:
  - {name: all, from: [in], to: [lake]}
sinks:
  - {name: lake, type: s3, url: "file:lake/t/", format: ndjson}
` + errorsSink,
		stop:     func(t *testing.T, work string) { time.Sleep(time.Second) },
		shutdown: 2 * time.Second,
		wantOut:  []string{"checkpoints: in in/x.ndjson.gz: none"},
	})
}

// firstError returns the errorMessage of the first error record of typ,
// wherever under lake/ its error output put it.
func firstError(t *testing.T, r *result, typ string) string {
	t.Helper()
	msg := ""
	filepath.WalkDir(filepath.Join(r.work, "lake"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || msg != "" || errorType(p) != typ {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, l := range strings.Split(string(b), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(l), &e) == nil {
				msg = fmt.Sprint(e["errorMessage"])
				break
			}
		}
		return nil
	})
	return msg
}

// TestKeysStayInRoot: partition values and prefixes cannot leave the lake
// root; literal `..` in url, prefix or error_prefix fails validation.
func TestKeysStayInRoot(t *testing.T) {
	records := ndjson(`{"a":"..","b":".."}`, `{"a":".","b":"x"}`, `{"a":"/etc","b":"passwd"}`,
		`{"a":"a/../../b","b":"c"}`, `{"a":"..\\..","b":"\\"}`, `{"a":"","b":""}`, `{"a":"ok","b":"ok"}`)
	sink := func(url, prefix, errPrefix string) string {
		s := `
  - name: lake
    type: s3
    url: "` + url + `"
    format: ndjson
    partition_keys: {a: .a, b: .b}
    prefix: "` + prefix + `"`
		if errPrefix != "" {
			s += `
    error_prefix: "` + errPrefix + `"`
		}
		return s
	}
	run := func(t *testing.T, s string, validate bool, code int, want ...string) *result {
		return runCase(t, hcase{
			inputs:   map[string][]byte{"x.ndjson": records},
			config:   head("json", "in/*.ndjson") + "routes:\n  - {name: all, from: [in], to: [lake]}\nsinks:" + s + errorsSink,
			validate: validate,
			wantCode: code,
			wantOut:  want,
		})
	}
	// An empty value fails its key (processing-failed); the other six
	// records are written.
	const written = 6
	t.Run("record values", func(t *testing.T) {
		r := run(t, sink("file:lake/t/", "!{partitionKeyFromQuery:a}/!{partitionKeyFromQuery:b}/", ""), false, 0)
		if n := summaryCount(t, r.stdout, "in", "records"); n != 7 {
			t.Errorf("%d records read, want 7", n)
		}
		if n := summaryCount(t, r.stdout, "lake", "rows"); n != written {
			t.Errorf("%d rows written, want %d", n, written)
		}
		// Within lake/, too, every file is under the sink's root, its
		// error location beside it, or the errors sink.
		filepath.WalkDir(filepath.Join(r.work, "lake"), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(filepath.Join(r.work, "lake"), p)
			if top := strings.Split(rel, string(filepath.Separator))[0]; top != "t" && top != "t-errors" && top != "errors" {
				t.Errorf("%s is outside the sink's root lake/t/", rel)
			}
			return nil
		})
	})
	t.Run("record values on S3", func(t *testing.T) {
		s3 := testutil.NewS3Fake(t)
		s := sink("s3://lake/app/", "!{partitionKeyFromQuery:a}/!{partitionKeyFromQuery:b}/", "") + `
    endpoint: "` + s3.URL + `"
    region: us-east-1`
		// The sink's errors go, by default, beside its data: app-errors/.
		r := runCase(t, hcase{
			inputs: map[string][]byte{"x.ndjson": records},
			config: head("json", "in/*.ndjson") + "routes:\n  - {name: all, from: [in], to: [lake]}\nsinks:" + s + errorsSink,
			remoteErrors: func(t *testing.T) map[string]int {
				m := map[string]int{}
				for _, k := range s3.Keys(t) {
					if typ := errorType(k); typ != "" && strings.HasPrefix(k, "app-errors/") {
						m[typ] += strings.Count(string(s3.Get(t, k)), "\n")
					}
				}
				return m
			},
		})
		if n := summaryCount(t, r.stdout, "lake", "rows"); n != written {
			t.Errorf("%d rows written to S3, want %d", n, written)
		}
		data := 0
		for _, k := range s3.Keys(t) {
			segs := strings.Split(k, "/")
			switch {
			case strings.HasPrefix(k, "/") || slices.Contains(segs, "..") || slices.Contains(segs, "."):
				t.Errorf("key %q is not a clean relative key", k)
			case strings.HasPrefix(k, "app/"):
				data += strings.Count(string(s3.Get(t, k)), "\n")
			case !strings.HasPrefix(k, "app-errors/"):
				t.Errorf("key %q is outside app/ and app-errors/", k)
			}
		}
		if data != written {
			t.Errorf("%d records under app/, want %d", data, written)
		}
	})
	for _, tt := range []struct{ name, url, prefix, errPrefix, want string }{
		{"literal prefix", "file:lake/t/", "../../x/", "", "prefix"},
		{"literal url", "file:lake/t/../../x/", "a=!{partitionKeyFromQuery:a}/", "", "url"},
		{"literal error_prefix", "file:lake/t/", "a=!{partitionKeyFromQuery:a}/", "../../e/", "error_prefix"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			run(t, sink(tt.url, tt.prefix, tt.errPrefix), true, 1, tt.want, "config.yaml:")
			run(t, sink(tt.url, tt.prefix, tt.errPrefix), false, 1, tt.want)
		})
	}
}

// TestLongNames: a record value too long for a key, on the seed's
// Firehose layout, and an input file whose name is 247 bytes. Each once
// made every write of its object fail with ENAMETOOLONG until
// retry.max_elapsed ended the run with exit 1, on every re-run. Now the
// long value is processing-failed and the rest is written.
func TestLongNames(t *testing.T) {
	line := func(project string) string {
		return `{"project_id":"` + project + `","plan_ver":"v1","event_timestamp":1730617200,"level":"INFO","message":"m"}`
	}
	r := runCase(t, hcase{
		inputs: map[string][]byte{
			"a.ndjson":                           ndjson(line(strings.Repeat("x", 5000)), line("P-1"), line(strings.Repeat("/", 100))),
			strings.Repeat("n", 240) + ".ndjson": ndjson(line("P-2")),
		},
		config: head("app_log", "in/*.ndjson") + `routes:
  - {name: all, from: [in], to: [lake]}
sinks:
  - name: lake
    type: s3
    url: file:lake/t/
    format: parquet
    retry: {max_elapsed: 2s}
    partition_keys:
      project_id: .project_id
      plan_ver: .plan_ver
      year: '.event_timestamp| strftime("%Y")'
      hour: '.event_timestamp| strftime("%H")'
    schema:
      - {name: project_id, type: string}
      - {name: message, type: string}
` + errorsSink,
	})
	if got := totalRows(r); got != 2 {
		t.Errorf("%d rows, want 2", got)
	}
	if got := r.errorsByType["processing-failed"]; got != 2 {
		t.Errorf("processing-failed %d, want 2", got)
	}
}

// TestBadFiles: a truncated .gz, a file that is not gzip, a directory
// matched by the glob, a symlink loop and a dangling symlink are each
// reported in the error output; every other file is read. (An unreadable
// file is not among them: the tests may run as root, who reads it.)
func TestBadFiles(t *testing.T) {
	var good []string
	for i := 0; i < 100; i++ {
		good = append(good, fmt.Sprintf(`{"i":%d}`, i))
	}
	full := gz(ndjson(good...))
	r := runCase(t, hcase{
		inputs: map[string][]byte{
			"1-good.ndjson":     ndjson(good[:50]...),
			"2-trunc.ndjson.gz": full[:len(full)/2],
			"3-notgz.ndjson.gz": ndjson(good[:3]...),
			"6-good.ndjson":     ndjson(good[50:]...),
			// A name that is not UTF-8 is an ordinary file.
			"7-name-\xff\xfe.ndjson": ndjson(`{"i":100}`),
		},
		prepare: func(t *testing.T, work string) {
			os.Mkdir(filepath.Join(work, "in/4-dir.ndjson"), 0o755)
			os.Symlink("5-loop.ndjson", filepath.Join(work, "in/5-loop.ndjson"))
			os.Symlink("no-such-file", filepath.Join(work, "in/5-dangling.ndjson"))
		},
		config: head("json", "in/*") + `routes:
  - {name: all, from: [in], to: [lake]}
sinks:
  - name: lake
    type: s3
    url: file:lake/t/
    format: parquet
    schema: [{name: i, type: int64}]
` + errorsSink,
	})
	if rows := totalRows(r); rows < 101 {
		t.Errorf("%d rows from the good files, want at least 101", rows)
	}
	if n := r.errorsByType["processing-failed"]; n < 5 {
		t.Errorf("%d processing-failed records, want one at least for each of the 5 bad inputs", n)
	}
}

// TestGlobMatchesNothing: a validation warning, and a clear error at run
// time.
func TestGlobMatchesNothing(t *testing.T) {
	cfg := head("json", "in/nothing-*.ndjson") + `routes:
  - {name: all, from: [in], to: [lake]}
sinks:
  - name: lake
    type: s3
    url: file:lake/t/
    format: ndjson
` + errorsSink
	runCase(t, hcase{config: cfg, validate: true, wantCode: 0, wantOut: []string{"warning", "in/nothing-*.ndjson"}})
	runCase(t, hcase{config: cfg, wantCode: 1, wantOut: []string{"in/nothing-*.ndjson"}})
}

// TestDeadSinkIsolated: a source whose records wait for a dead OpenSearch
// does not hold back another source that feeds only the lake; the dead
// sink is logged with its endpoint.
func TestDeadSinkIsolated(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	var a, b []string
	for i := 0; i < 2000; i++ {
		a = append(a, fmt.Sprintf(`{"a":%d}`, i))
	}
	for i := 0; i < 500; i++ {
		b = append(b, fmt.Sprintf(`{"b":%d}`, i))
	}
	cfg := `service: {name: hostile, http_listen: "", log_level: warn, shutdown_timeout: 5s, error_sink: errors}
sources:
  - {name: a, type: file, format: json, file: {paths: [in/a.ndjson]}}
  - {name: b, type: file, format: json, file: {paths: [in/b.ndjson]}}
routes:
  - {name: to-search, from: [a], to: [search]}
  - {name: to-lake, from: [b], to: [lake]}
sinks:
  - name: search
    type: opensearch
    endpoints: ["http://` + dead + `"]
    index: hostile
    bulk: {max_docs: 10, concurrency: 1, interval: 100ms}
    retry: {max_elapsed: 10m}
    error_sink: errors
  - name: lake
    type: s3
    url: file:lake/b/
    format: parquet
    schema: [{name: b, type: int64}]
    buffer: {interval: 300ms}
` + errorsSink
	runCase(t, hcase{
		inputs:   map[string][]byte{"a.ndjson": ndjson(a...), "b.ndjson": ndjson(b...)},
		config:   cfg,
		shutdown: 5 * time.Second,
		stop: func(t *testing.T, work string) {
			// The lake gets all of b while a still waits for the dead sink.
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				if n := len(readAllQuiet(filepath.Join(work, "lake/b"))); n == 500 {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Errorf("source b's 500 records were not all in the lake while the OpenSearch sink was dead")
		},
		// Stopped while the dead sink still holds a's records: they are
		// not written, nothing is checkpointed past them, and the exit
		// says why.
		wantCode: 1,
		wantOut:  []string{dead, "shutdown_timeout"},
	})
}

func readAllQuiet(dir string) []map[string]any {
	var rows []map[string]any
	files, _ := filepath.Glob(filepath.Join(dir, "*.parquet"))
	for _, f := range files {
		pf, err := testutil.ReadParquet(f)
		if err != nil {
			return nil
		}
		rows = append(rows, pf.Rows...)
	}
	return rows
}

// TestManyPartitions: 5,000 randomly ordered lake partitions, 500,000
// records, default settings: at most 3 objects per partition, bounded
// memory.
func TestManyPartitions(t *testing.T) {
	if testing.Short() {
		t.Skip("500,000 records; runs without -short")
	}
	const parts, n = 5000, 500000
	var in bytes.Buffer
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < n; i++ {
		fmt.Fprintf(&in, `{"p":"p%04d","i":%d,"msg":"some ordinary log line text of moderate length %d"}`+"\n", rng.IntN(parts), i, i)
	}
	r := runCase(t, hcase{
		inputs: map[string][]byte{"x.ndjson": in.Bytes()},
		config: head("json", "in/*.ndjson") + `routes:
  - {name: all, from: [in], to: [lake]}
sinks:
  - name: lake
    type: s3
    url: file:lake/t/
    format: parquet
    partition_keys: {p: .p}
    schema: [{name: i, type: int64}, {name: msg, type: string}]
` + errorsSink,
		maxRSSMiB: 320,
	})
	if got := totalRows(r); got != n {
		t.Errorf("%d rows, want %d", got, n)
	}
	if r.objects > 3*parts {
		t.Errorf("%d objects for %d partitions, want at most %d", r.objects, parts, 3*parts)
	}
}

// TestVariables: ${VAR} values are data, never YAML, and never echoed.
func TestVariables(t *testing.T) {
	base := func(endpoint string) string {
		return `service: {name: "${NAME}", http_listen: "", log_level: warn, error_sink: errors}  # ${UNSET_IN_COMMENT}
# a comment is not expanded: ${UNSET_IN_COMMENT} "  *anchor
sources:
  - {name: in, type: file, format: json, file: {paths: ["in/*.ndjson"]}}
routes:
  - {name: all, from: [in], to: [lake, search]}
sinks:
  - name: lake
    type: s3
    url: file:lake/t/
    format: ndjson
  - name: search
    type: opensearch
    endpoints: [` + endpoint + `]
    index: hostile
    auth: {type: basic, username: admin, password: ${PW}}
    error_sink: errors
` + errorsSink
	}
	t.Run("secret in a bad URL", func(t *testing.T) {
		runCase(t, hcase{
			config:   base(`"${OS_URL}"`),
			env:      []string{"OS_URL=ftp://admin:Zq9 #SECRET@host", "PW=*SECRET", "NAME=n"},
			validate: true,
			wantCode: 1,
			wantOut:  []string{"${OS_URL}", "config.yaml:"},
			notOut:   []string{"Zq9", "SECRET"},
		})
	})
	t.Run("newline does not inject keys", func(t *testing.T) {
		search := testutil.NewSearchFake(t)
		r := runCase(t, hcase{
			inputs: map[string][]byte{"x.ndjson": ndjson(`{"a":1}`)},
			config: base(`"` + search.Server.URL + `"`),
			env: []string{"PW=pa\"ss: *SECRET #x", "NAME=n\n  - {name: evil, type: file, format: raw, file: {paths: [/etc/passwd]}}\nx: y",
				"OS_URL=unused"},
			notOut: []string{"SECRET"},
		})
		if n := summaryCount(t, r.stdout, "in", "records"); n != 1 {
			t.Errorf("source in read %d records, want 1", n)
		}
		// The name is data: no source "evil" was injected and read.
		if strings.Contains(r.stdout, "\nevil ") || strings.Contains(r.stdout, "/etc/passwd") {
			t.Errorf("an injected source ran:\n%s", r.stdout)
		}
	})
	t.Run("missing variable names its key", func(t *testing.T) {
		runCase(t, hcase{
			config:   base(`"${OS_URL}"`),
			env:      []string{"PW=x", "NAME=n"},
			validate: true,
			wantCode: 1,
			wantOut:  []string{"OS_URL", "endpoints"},
		})
	})
}

// TestLooseValues: numbers that do not fit, tokens that are not JSON,
// invalid UTF-8, and event times out of any calendar's range.
func TestLooseValues(t *testing.T) {
	lines := [][]byte{
		[]byte(`{"p":"a","d":1e400,"t":1700000000}`),
		[]byte(`{"p":"a","d":NaN,"t":1700000000}`),
		[]byte(`{"p":"a","d":nan,"t":1700000000}`),
		[]byte(`{"p":"a","d":inf,"t":1700000000}`),
		[]byte(`{"p":"a","d":-Infinity,"t":1700000000}`),
		[]byte("{\"p\":\"a\",\"s\":\"bad \xff\xfe utf8\",\"t\":1700000000}"),
		[]byte("{\"p\":\"\xff\xc0\",\"t\":1700000000}"),
		[]byte(`{"p":"a","t":-99999999999}`),
		[]byte(`{"p":"a","t":99999999999999999}`),
		[]byte(`{"p":"a","d":2.5,"s":"fine","t":1700000000}`),
	}
	var in bytes.Buffer
	for _, l := range lines {
		in.Write(l)
		in.WriteByte('\n')
	}
	r := runCase(t, hcase{
		inputs: map[string][]byte{"x.ndjson": in.Bytes()},
		config: `service: {name: hostile, http_listen: "", log_level: warn, error_sink: errors}
sources:
  - name: in
    type: file
    format: json
    event_time: {field: t, unit: s}
    file: {paths: ["in/*.ndjson"]}
routes:
  - {name: all, from: [in], to: [lake]}
sinks:
  - name: lake
    type: s3
    url: file:lake/t/
    format: parquet
    partition_keys: {p: .p}
    prefix: "p=!{partitionKeyFromQuery:p}/day=!{timestamp:yyyy-MM-dd}/"
    schema: [{name: d, type: double}, {name: s, type: string}]
` + errorsSink,
	})
	for dir, rows := range r.parquetRows {
		if strings.Contains(dir, "day=-") || strings.Contains(dir, "day=+") {
			t.Errorf("partition %s (%d rows) from an out-of-range event time", dir, rows)
		}
	}
	filepath.WalkDir(filepath.Join(r.work, "lake/t"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".parquet") {
			return nil
		}
		pf, _ := testutil.ReadParquet(p)
		for _, row := range pf.Rows {
			if s, ok := row["s"].(string); ok && !isValidUTF8(s) {
				t.Errorf("invalid UTF-8 %q written to a string column", s)
			}
			switch d := row["d"].(type) {
			case float64:
				if math.IsInf(d, 0) || math.IsNaN(d) {
					t.Errorf("non-finite double %v written", d)
				}
			case json.Number:
				if f, err := d.Float64(); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
					t.Errorf("non-finite double %v written", d)
				}
			case string:
				t.Errorf("double column holds %q", d)
			}
		}
		return nil
	})
}

// TestLooseValuesThroughJQ: a number no double holds keeps its value
// through a jq transform (gojq would make it null): the double column
// refuses it as it does without the transform, and NDJSON keeps the number.
func TestLooseValuesThroughJQ(t *testing.T) {
	r := runCase(t, hcase{
		inputs: map[string][]byte{"x.ndjson": ndjson(`{"d":1e400}`, `{"d":2.5}`)},
		config: head("json", "in/*.ndjson") + `routes:
  - name: all
    from: [in]
    transforms:
      - jq: '.x = 1'
    to: [lake, nd]
sinks:
  - name: lake
    type: s3
    url: file:lake/t/
    format: parquet
    schema: [{name: d, type: double}, {name: x, type: int64}]
  - name: nd
    type: s3
    url: file:lake/nd/
    format: ndjson
` + errorsSink,
	})
	if n := r.errorsByType["schema-mismatch"]; n != 1 || totalRows(r) != 1 {
		t.Errorf("%d rows, %d schema-mismatch; want the 1e400 record refused by the double column", totalRows(r), n)
	}
	files, _ := filepath.Glob(filepath.Join(r.work, "lake/nd/*.ndjson"))
	var out []byte
	for _, f := range files {
		b, _ := os.ReadFile(f)
		out = append(out, b...)
	}
	if want := `{"d":1` + strings.Repeat("0", 400) + `,"x":1}`; !bytes.Contains(out, []byte(want)) {
		t.Errorf("NDJSON lacks 1e400 as its exact integer:\n%.300s", out)
	}
}

func isValidUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// TestCounts: records OpenSearch refuses are counted in the summary's
// errors by type; an alias bomb and an illegal index name fail validate.
func TestCounts(t *testing.T) {
	search := testutil.NewSearchFake(t)
	search.Set(func(f *testutil.SearchFake) {
		f.Item = func(index, id string, doc []byte, attempt int) int {
			if bytes.Contains(doc, []byte(`"bad":true`)) {
				return 400
			}
			return 201
		}
	})
	var in []string
	for i := 0; i < 300; i++ {
		in = append(in, fmt.Sprintf(`{"i":%d,"bad":%v}`, i, i%3 == 0))
	}
	r := runCase(t, hcase{
		inputs: map[string][]byte{"x.ndjson": ndjson(in...)},
		config: head("json", "in/*.ndjson") + `routes:
  - {name: all, from: [in], to: [search]}
sinks:
  - name: search
    type: opensearch
    endpoints: ["` + search.Server.URL + `"]
    index: hostile
    bulk: {interval: 100ms}
    error_sink: errors
` + errorsSink,
	})
	if n := r.errorsByType["sink-rejected"]; n != 100 {
		t.Errorf("summary counts %d sink-rejected, want 100 (%v)", n, r.errorsByType)
	}
	if n := summaryCount(t, r.stdout, "search", "refused"); n != 100 {
		t.Errorf("the search sink's refused column says %d, want the 100 OpenSearch rejected", n)
	}

	t.Run("partition limit", func(t *testing.T) {
		var in []string
		for i := 0; i < 50; i++ {
			in = append(in, fmt.Sprintf(`{"k":"p%d","i":%d}`, i%5, i))
		}
		r := runCase(t, hcase{
			inputs: map[string][]byte{"x.ndjson": ndjson(in...)},
			config: head("json", "in/*.ndjson") + `routes:
  - {name: all, from: [in], to: [lake]}
sinks:
  - name: lake
    type: s3
    url: file:lake/t/
    format: parquet
    partition_keys: {k: .k}
    schema: [{name: i, type: int64}]
    max_open_partitions: 2
    on_partition_limit: error
` + errorsSink,
		})
		n := r.errorsByType["partition-limit"]
		if n == 0 {
			t.Fatalf("no partition-limit records: %v", r.errorsByType)
		}
		if got := summaryCount(t, r.stdout, "lake", "refused"); got != n {
			t.Errorf("the lake's refused column says %d, want the %d partition-limit records", got, n)
		}
	})

	bomb := "      - set:\n          a: &a [x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		bomb += fmt.Sprintf("          %s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", n, n, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = n
	}
	t.Run("alias bomb", func(t *testing.T) {
		runCase(t, hcase{
			config: head("json", "in/*.ndjson") + `routes:
  - name: all
    from: [in]
    transforms:
` + bomb + `    to: [lake]
sinks:
  - {name: lake, type: s3, url: "file:lake/t/", format: ndjson}
` + errorsSink,
			validate:  true,
			wantCode:  1,
			wantOut:   []string{"config.yaml:"},
			maxRSSMiB: 300,
		})
	})
	t.Run("illegal index name", func(t *testing.T) {
		runCase(t, hcase{
			config: head("json", "in/*.ndjson") + `routes:
  - {name: all, from: [in], to: [search]}
sinks:
  - name: search
    type: opensearch
    endpoints: ["http://127.0.0.1:9"]
    index: "logs-*-!{timestamp:yyyy.MM.dd}"
    error_sink: errors
` + errorsSink,
			validate: true,
			wantCode: 1,
			wantOut:  []string{"config.yaml:", "index"},
		})
	})
}
