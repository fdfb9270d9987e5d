package athena

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fastjson"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/sinks/objstore"
	"github.com/sluice-data/sluice/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite golden files")

func load(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("testdata/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// now fixes NOW for the golden files.
var now = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

func years(t *testing.T, s string) Years {
	t.Helper()
	y, err := ParseYears(s)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

// goldenOptions are the athena-ddl flags each golden file is written with.
func goldenOptions(t *testing.T) map[string]Options {
	return map[string]Options{
		"app-lake":      {Database: "telemetry", Now: now, Injected: []string{"project_id", "plan_ver"}},
		"security-lake": {Database: "telemetry", Now: now},
		"by-day":        {Database: "telemetry", Now: now, Years: years(t, "2019-2030")},
		"metrics-lake":  {Database: "telemetry", Now: now, Enums: map[string][]string{"namespace": {"AWS/EC2", "AWS/Lambda", "Custom"}}},
	}
}

func TestDDLGolden(t *testing.T) {
	cfg := load(t)
	golden := goldenOptions(t)
	// Without --enum or --injected for keys Athena cannot list, the table
	// has no projection: partitions are registered instead.
	golden["app-lake-registered"] = Options{Database: "telemetry", Now: now}
	for name, opts := range golden {
		sink := strings.TrimSuffix(name, "-registered")
		got, err := DDL(cfg, sink, opts)
		if err != nil {
			t.Fatal(err)
		}
		path := "testdata/" + name + ".sql"
		if *update {
			os.WriteFile(path, []byte(got), 0o644)
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("%s DDL:\n%s\nwant\n%s", sink, got, want)
		}
	}
}

// TestDDLStatementHasNoComments: every note is a comment line before the
// CREATE statement, none inside it. Athena's console and tools that join a
// query onto one line turn a comment inside a DDL statement into a parse
// error ("cannot recognize input near ..."), or comment out its rest.
func TestDDLStatementHasNoComments(t *testing.T) {
	cfg := load(t)
	golden := goldenOptions(t)
	golden["app-lake-registered"] = Options{Database: "telemetry", Now: now}
	for name, opts := range golden {
		got, err := DDL(cfg, strings.TrimSuffix(name, "-registered"), opts)
		if err != nil {
			t.Fatal(err)
		}
		_, stmt, _ := strings.Cut(got, "CREATE EXTERNAL TABLE")
		if strings.Contains(stmt, "--") {
			t.Errorf("%s: comment inside the statement:\nCREATE EXTERNAL TABLE%s", name, stmt)
		}
	}
}

// TestDDLRegisteredSaysCleanValues: registered partitions (the sink's glue
// option, MSCK REPAIR TABLE) hold the unescaped value (AWS/EC2), so the DDL
// must not tell a user to filter on the path's escaped form.
func TestDDLRegisteredSaysCleanValues(t *testing.T) {
	got, err := DDL(load(t), "app-lake", Options{Database: "telemetry", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "filter with the escaped form") || !strings.Contains(got, "filter with the clean value") {
		t.Errorf("registered DDL must say partition values are clean:\n%s", got)
	}
}

// TestDDLNonHiveRegistered: a sink whose prefix is not Hive-style
// (data/P1/2024/) cannot have its partitions registered by MSCK REPAIR
// TABLE (it finds only key=value directories) nor by the glue option (it
// needs the default prefix), so a table without projection must say how
// its partitions can be added instead of pointing at those two.
func TestDDLNonHiveRegistered(t *testing.T) {
	cfg, err := config.Parse("nonhive.yaml", []byte(`service: {error_sink: e}
sources: [{name: a, type: file, format: app_log, file: {paths: [x]}}]
routes: [{name: r, from: [a], to: [l]}]
sinks:
  - name: l
    type: s3
    url: s3://b/lake/app/
    format: parquet
    partition_keys: {project_id: .project_id, year: '.event_timestamp | strftime("%Y")'}
    prefix: "data/!{partitionKeyFromQuery:project_id}/!{partitionKeyFromQuery:year}/"
    schema: [{name: message, type: string}]
  - {name: e, type: s3, url: "s3://b/errors/", format: ndjson}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	got, err := DDL(cfg, "l", Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "Register partitions with the sink's glue option") || !strings.Contains(got, "ALTER TABLE") {
		t.Errorf("non-Hive prefix without projection must say MSCK REPAIR TABLE and glue cannot register it:\n%s", got)
	}
}

func TestParseYears(t *testing.T) {
	tests := []struct {
		give    string
		want    [2]int
		wantErr string
	}{
		{give: "2020-NOW+1", want: [2]int{2020, 2027}},
		{give: "2019-2030", want: [2]int{2019, 2030}},
		{give: "NOW-3-NOW", want: [2]int{2023, 2026}},
		{give: "2030-2019", wantErr: "first year is after the last"},
		{give: "NOW-NOW+2", want: [2]int{2026, 2028}},
		{give: "2020", wantErr: "want FIRST-LAST"},
		{give: "20-2030", wantErr: "want FIRST-LAST"},
		{give: "2020-NOW*2", wantErr: "want FIRST-LAST"},
	}
	for _, tt := range tests {
		y, err := ParseYears(tt.give)
		got := [2]int{}
		if err == nil {
			got = [2]int{y.Lo.resolve(now), y.Hi.resolve(now)}
		}
		if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) || tt.wantErr == "" && (err != nil || got != tt.want) {
			t.Errorf("ParseYears(%q) = %v, %v; want %v, %q", tt.give, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDDLErrors(t *testing.T) {
	cfg := load(t)
	tests := []struct {
		sink string
		opts Options
		want string
	}{
		{"nope", Options{}, `no sink "nope" (defined: app-lake, security-lake, by-day, metrics-lake)`},
		{"app-lake", Options{Injected: []string{"project_id", "plan_ver", "nokey"}}, "--injected nokey: no such partition key"},
		{"app-lake", Options{Injected: []string{"project_id", "plan_ver"}, Enums: map[string][]string{"plan_ver": {"v1"}}}, "plan_ver is both --enum and --injected"},
		{"metrics-lake", Options{Enums: map[string][]string{"ns": {"a"}}}, "--enum ns: no such partition key"},
	}
	for _, tt := range tests {
		if _, err := DDL(cfg, tt.sink, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("DDL(%s, %+v) = %v; want %q", tt.sink, tt.opts, err, tt.want)
		}
	}
}

// TestDDLColumnNames: Hive, and so Athena, refuses a column name with a
// dot or a colon, and lowers every name, so two columns that differ only in
// case are one. The default column name of a dotted field path
// (detail.Severity.Label) is such a name: athena-ddl names the schema entry
// to fix instead of printing DDL that fails.
func TestDDLColumnNames(t *testing.T) {
	tests := []struct {
		give string // the sink's schema
		want string
	}{
		{"[{name: detail.Severity.Label, type: string}]", `schema[0] column "detail.Severity.Label": Athena refuses '.' and ':' in column names; name the column (column: detail_severity_label)`},
		{"[{name: a:b, type: string}]", `schema[0] column "a:b": Athena refuses '.' and ':' in column names; name the column (column: a_b)`},
		{"[{name: Id, type: string}, {name: x, column: id, type: string}]", `schema[1] column "id": Athena lowers column names, so it is the same column as schema[0] ("Id")`},
		{"[{name: _Extra, type: string}]", `schema[0] column "_Extra": Athena lowers column names, so it is the same column as extra_column ("_extra")`},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			cfg, err := parseSink(tt.give)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DDL(cfg, "l", Options{Now: now}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("DDL error = %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestDDLNotPartitioned: a sink without partition keys says so, not that
// it has partition projection.
func TestDDLNotPartitioned(t *testing.T) {
	cfg, err := parseSink("[{name: Id, type: string}]")
	if err != nil {
		t.Fatal(err)
	}
	got, err := DDL(cfg, "l", Options{Now: now})
	if err != nil || !strings.HasPrefix(got, "-- Sluice sink l: s3://b/l/ Parquet (SNAPPY), not partitioned.\n") || strings.Contains(got, "projection") {
		t.Errorf("DDL = %v, %v; want a table that says it is not partitioned", got, err)
	}
}

// parseSink is a config whose Parquet sink l has the given schema.
func parseSink(schema string) (*config.Config, error) {
	return config.Parse("cols.yaml", []byte(`service: {error_sink: e}
sources: [{name: a, type: file, format: json, file: {paths: [x]}}]
routes: [{name: r, from: [a], to: [l]}]
sinks:
  - {name: l, type: s3, url: "s3://b/l/", format: parquet, schema: `+schema+`}
  - {name: e, type: s3, url: "s3://b/errors/", format: ndjson}
`), func(string) (string, bool) { return "", false })
}

// table is what a test reads back from DDL text, as Athena would.
type table struct {
	columns   map[string]string // data column -> type
	parts     []string          // partition columns in order
	partTypes map[string]string
	props     map[string]string
}

var (
	colLine  = regexp.MustCompile("^  `([^`]+)` (\\w+),?$")
	propLine = regexp.MustCompile(`^  '([^']+)'=(?:'([^']*)'|"([^"]*)"),?$`)
)

func parseDDL(t *testing.T, ddl string) table {
	t.Helper()
	tb := table{columns: map[string]string{}, partTypes: map[string]string{}, props: map[string]string{}}
	section := ""
	for _, l := range strings.Split(ddl, "\n") {
		switch {
		case strings.HasPrefix(l, "CREATE EXTERNAL TABLE"):
			section = "columns"
		case strings.HasPrefix(l, "PARTITIONED BY"):
			section = "parts"
		case strings.HasPrefix(l, "TBLPROPERTIES"):
			section = "props"
		case colLine.MatchString(l) && section == "columns":
			m := colLine.FindStringSubmatch(l)
			tb.columns[m[1]] = m[2]
		case colLine.MatchString(l) && section == "parts":
			m := colLine.FindStringSubmatch(l)
			if _, dup := tb.columns[m[1]]; dup {
				t.Errorf("column %s declared twice", m[1])
			}
			tb.parts = append(tb.parts, m[1])
			tb.partTypes[m[1]] = m[2]
		case propLine.MatchString(l) && section == "props":
			m := propLine.FindStringSubmatch(l)
			tb.props[m[1]] = m[2] + m[3]
		}
	}
	return tb
}

// javaDate reads and writes dates in the Java formats athena writes
// (yyyy, MM, dd, HH and quoted literals), as Athena's projection does.
type javaDate struct {
	re     *regexp.Regexp
	fields []string
	tokens []string
}

func newJavaDate(t *testing.T, f string) javaDate {
	t.Helper()
	var jd javaDate
	pat := "^"
	for i := 0; i < len(f); {
		tok := f[i : i+1]
		switch {
		case f[i] == '\'':
			j := strings.IndexByte(f[i+1:], '\'')
			tok = f[i : i+j+2]
			pat += regexp.QuoteMeta(tok[1 : len(tok)-1])
		case strings.HasPrefix(f[i:], "yyyy"):
			tok = "yyyy"
			pat += `(\d{4})`
			jd.fields = append(jd.fields, tok)
		case slices.Contains([]string{"MM", "dd", "HH"}, f[i:min(i+2, len(f))]):
			tok = f[i : i+2]
			pat += `(\d{2})`
			jd.fields = append(jd.fields, tok)
		case f[i] >= 'a' && f[i] <= 'z' || f[i] >= 'A' && f[i] <= 'Z':
			t.Fatalf("date format %q: unquoted letter %q", f, f[i])
		default:
			pat += regexp.QuoteMeta(tok)
		}
		jd.tokens = append(jd.tokens, tok)
		i += len(tok)
	}
	jd.re = regexp.MustCompile(pat + "$")
	return jd
}

func (jd javaDate) parse(s string) (time.Time, error) {
	m := jd.re.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, fmt.Errorf("%q does not match", s)
	}
	v := map[string]int{"MM": 1, "dd": 1}
	for i, f := range jd.fields {
		v[f], _ = strconv.Atoi(m[i+1])
	}
	return time.Date(v["yyyy"], time.Month(v["MM"]), v["dd"], v["HH"], 0, 0, 0, time.UTC), nil
}

func (jd javaDate) format(d time.Time) string {
	var b strings.Builder
	for _, tok := range jd.tokens {
		switch tok {
		case "yyyy":
			fmt.Fprintf(&b, "%04d", d.Year())
		case "MM":
			fmt.Fprintf(&b, "%02d", d.Month())
		case "dd":
			fmt.Fprintf(&b, "%02d", d.Day())
		case "HH":
			fmt.Fprintf(&b, "%02d", d.Hour())
		default:
			b.WriteString(strings.Trim(tok, "'"))
		}
	}
	return b.String()
}

// checkProjected reports whether Athena's projection of column would
// generate value, and whether value parses as the column's type.
func checkProjected(t *testing.T, tb table, column, value string) error {
	t.Helper()
	p := func(k string) string { return tb.props["projection."+column+"."+k] }
	switch tb.partTypes[column] {
	case "int":
		if _, err := strconv.Atoi(value); err != nil {
			return fmt.Errorf("%s=%q is not an int", column, value)
		}
	case "string":
	default:
		return fmt.Errorf("%s: partition column type %q", column, tb.partTypes[column])
	}
	switch p("type") {
	case "integer":
		if tb.partTypes[column] != "int" {
			return fmt.Errorf("%s: integer projection on a %s column", column, tb.partTypes[column])
		}
		lo, hi, _ := strings.Cut(p("range"), ",")
		l, _ := strconv.Atoi(lo)
		h, _ := strconv.Atoi(hi)
		digits, _ := strconv.Atoi(p("digits"))
		n, _ := strconv.Atoi(value)
		if n < l || n > h || fmt.Sprintf("%0*d", digits, n) != value {
			return fmt.Errorf("%s=%s: not generated by integer range %s digits %d", column, value, p("range"), digits)
		}
	case "date":
		jd := newJavaDate(t, p("format"))
		lo, hi, _ := strings.Cut(p("range"), ",")
		d, err := jd.parse(value)
		if err != nil || jd.format(d) != value {
			return fmt.Errorf("%s=%s: not in date format %s", column, value, p("format"))
		}
		l, err := jd.parse(lo)
		if err != nil {
			return fmt.Errorf("%s: range start %q not in format %s", column, lo, p("format"))
		}
		h := time.Now()
		if hi != "NOW" {
			if h, err = jd.parse(hi); err != nil {
				return fmt.Errorf("%s: range end %q not in format %s", column, hi, p("format"))
			}
		}
		if d.Before(l) || d.After(h) {
			return fmt.Errorf("%s=%s: outside date range %s", column, value, p("range"))
		}
	case "enum":
		if !slices.Contains(strings.Split(p("values"), ","), value) {
			return fmt.Errorf("%s=%s: not among enum values %s", column, value, p("values"))
		}
	case "injected":
		// The query supplies the value; any path value is reachable.
	default:
		return fmt.Errorf("%s: no projection", column)
	}
	return nil
}

// TestLakeReadsBackThroughProjection writes a small lake with the sink,
// then checks that every object lies in a partition the DDL's projection
// generates (types, ranges, enum values, location template), and that
// every data column the table declares is in the Parquet file with the
// record's clean value.
func TestLakeReadsBackThroughProjection(t *testing.T) {
	cfg := load(t)
	recs := map[string][]string{
		"app-lake": {
			`{"project_id":"P-1","plan_ver":"v7","event_timestamp":1730617200,"level":"INFO","message":"a"}`,
			`{"project_id":"P/2","plan_ver":"v=1","event_timestamp":1735689599,"level":"WARN","message":"b"}`,
			`{"project_id":"P-3","plan_ver":"v2","event_timestamp":1577836800,"level":"ERROR","message":"c"}`,
		},
		"security-lake": {
			`{"Id":"f1","Severity":{"Label":"HIGH"},"time_utc":"2024-11-03T07:00:00Z"}`,
			`{"Id":"f2","Severity":{"Label":"CRITICAL"},"time_utc":"2026-01-31T23:59:59Z"}`,
		},
		"by-day": {
			`{"Id":"f1","time_utc":"2024-11-03T07:00:00Z"}`,
			`{"Id":"f2","time_utc":"2019-01-01T00:00:00Z"}`,
		},
		"metrics-lake": {
			`{"namespace":"AWS/EC2","metric_name":"CPUUtilization","time_utc":"2024-11-03T07:00:00Z","value":{"sum":1.5}}`,
			`{"namespace":"AWS/Lambda","metric_name":"Errors","time_utc":"2024-11-03T23:10:00Z","value":{"sum":2}}`,
			`{"namespace":"Custom","metric_name":"Jobs","time_utc":"2020-01-01T00:00:00Z","value":{"sum":3}}`,
		},
	}
	for sink, opts := range goldenOptions(t) {
		t.Run(sink, func(t *testing.T) {
			opts.Now = time.Time{} // the real NOW: the lake is read today
			ddl, err := DDL(cfg, sink, opts)
			if err != nil {
				t.Fatal(err)
			}
			tb := parseDDL(t, ddl)
			dir := writeLake(t, cfg, sink, recs[sink])
			loc := strings.TrimSuffix(regexp.MustCompile(`(?m)^LOCATION '([^']+)'$`).FindStringSubmatch(ddl)[1], "/") + "/"
			tpl, ok := strings.CutPrefix(tb.props["storage.location.template"], loc)
			if !ok {
				t.Fatalf("template %q is not under LOCATION %q", tb.props["storage.location.template"], loc)
			}
			// The template as a pattern: each ${column} one path value.
			var cols []string
			pat := strings.NewReplacer(`\$\{`, "${", `\}`, "}").Replace(regexp.QuoteMeta(tpl))
			pat = regexp.MustCompile(`\$\{([^}]+)\}`).ReplaceAllStringFunc(pat, func(m string) string {
				cols = append(cols, m[2:len(m)-1])
				return "([^/]+)"
			})
			if !slices.Equal(cols, tb.parts) {
				t.Fatalf("template columns %v, partition columns %v", cols, tb.parts)
			}
			re := regexp.MustCompile("^" + pat + "[^/]+\\.parquet$")
			objects := 0
			rows := 0
			for rel := range testutil.TreeHashes(dir) {
				m := re.FindStringSubmatch(rel)
				if m == nil {
					t.Errorf("object %s: not under the location template %s", rel, tpl)
					continue
				}
				objects++
				vals := map[string]string{}
				for i, c := range cols {
					vals[c] = m[i+1]
					if err := checkProjected(t, tb, c, m[i+1]); err != nil {
						t.Errorf("object %s: %v", rel, err)
					}
				}
				pf, err := testutil.ReadParquet(filepath.Join(dir, rel))
				if err != nil {
					t.Fatal(err)
				}
				var fileCols []string
				for _, c := range pf.Columns {
					fileCols = append(fileCols, strings.Fields(c)[0])
				}
				for c := range tb.columns {
					if !slices.Contains(fileCols, c) {
						t.Errorf("object %s: table column %s not in the file (%v)", rel, c, fileCols)
					}
				}
				// A partition key that is also a data column: the table
				// reads the clean value from the file, the path holds it
				// escaped.
				for _, c := range cols {
					key, renamed := strings.CutSuffix(c, "_path")
					if !renamed {
						continue
					}
					clean, _ := url.PathUnescape(vals[c])
					for _, r := range pf.Rows {
						rows++
						if r[key] != clean {
							t.Errorf("object %s: column %s = %v, path value %s", rel, key, r[key], vals[c])
						}
					}
				}
			}
			if objects == 0 {
				t.Fatal("the sink wrote nothing")
			}
			if strings.Contains(ddl, "_path`") && rows == 0 {
				t.Error("no rows compared against their path values")
			}
		})
	}
}

// writeLake writes records through sink's configuration into a temp dir.
func writeLake(t *testing.T, cfg *config.Config, sink string, lines []string) string {
	t.Helper()
	dir := t.TempDir()
	i := slices.IndexFunc(cfg.Sinks, func(s config.Sink) bool { return s.Name == sink })
	sc := cfg.Sinks[i]
	sc.URL = "file:" + dir + "/"
	stores, err := objstore.StoresFor(&sc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := objstore.New(&sc, stores, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- s.Run(context.Background()) }()
	w := s.NewWriter()
	for n, l := range lines {
		v, err := fastjson.Parse(l)
		if err != nil {
			t.Fatal(err)
		}
		rec := &record.Record{Source: "src", Value: v, Raw: []byte(l), Pos: record.Position{Partition: "f", Offset: int64(n + 1)},
			EventTime: time.Date(2024, 11, 3, 7, 0, 0, 0, time.UTC), Arrival: time.Date(2024, 11, 3, 8, 0, 0, 0, time.UTC)}
		if f := w.Write(rec); f != nil {
			t.Fatalf("record %d: %+v", n, f)
		}
	}
	acked := make(chan error, 1)
	if err := s.Append(context.Background(), w.Take(), func(err error) { acked <- err }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDDLPlaceholderNote: the note on a file: sink's placeholder LOCATION
// names storage.location.template only when the table has one.
func TestDDLPlaceholderNote(t *testing.T) {
	cfg, err := config.Parse("f.yaml", []byte(`service: {error_sink: e}
sources: [{name: a, type: file, format: json, file: {paths: [x]}}]
routes: [{name: r, from: [a], to: [l]}]
sinks:
  - {name: l, type: s3, url: "file:out/l/", format: parquet, partition_keys: {k: .k}, schema: [{name: m, type: string}]}
  - {name: e, type: s3, url: "file:out/errors/", format: ndjson}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		opts Options
		want string
	}{
		{Options{Now: now}, "-- in LOCATION.\n"},
		{Options{Now: now, Injected: []string{"k"}}, "-- in LOCATION and storage.location.template.\n"},
	}
	for _, tt := range tests {
		got, err := DDL(cfg, "l", tt.opts)
		if err != nil || !strings.Contains(got, tt.want) {
			t.Errorf("DDL(%+v) = %v, %v; want it to contain %q", tt.opts, got, err, tt.want)
		}
	}
}
