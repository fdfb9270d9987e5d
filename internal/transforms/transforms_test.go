package transforms

import (
	"context"
	"encoding/csv"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/jq"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/testutil"
)

func chain(t *testing.T, transforms string) *Chain {
	t.Helper()
	y := "service: {error_sink: s}\nsources: [{name: a, type: file, file: {paths: [x]}}]\n" +
		"routes:\n  - name: r\n    from: [a]\n    to: [s]\n    transforms:\n" + transforms +
		"sinks: [{name: s, type: s3, url: 'file:o/', format: ndjson}]\n"
	c, err := config.Parse("t.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ch, err := Compile(c.Routes[0].Transforms)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// apply runs the chain and returns each output as JSON (or CSV when set),
// and each failure as "error: ...".
func apply(t *testing.T, ch *Chain, in string) ([]string, Stats) {
	t.Helper()
	var c Context
	var p fastjson.Parser
	v, err := p.Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	rec := &record.Record{Value: v, Pos: record.Position{Partition: "f", Offset: 1}, EventTime: time.UnixMilli(1730617200000).UTC()}
	var out []string
	var st Stats
	ch.Run(&c, rec, &st, func(r *record.Record) {
		s := r.Value.String()
		if r.CSV != nil {
			s = "csv:" + string(r.CSV)
		}
		out = append(out, r.Pos.Sub+" "+s)
	}, func(r *record.Record, err error) {
		out = append(out, r.Pos.Sub+" error: "+err.Error())
	})
	return out, st
}

func TestTransforms(t *testing.T) {
	tests := []struct {
		name, transforms, in string
		want                 []string
	}{
		{"explode with envelope",
			"      - explode: detail.findings\n",
			`{"id":"e1","detail":{"findings":[{"Id":"f1"},{"Id":"f2"}],"x":1}}`,
			[]string{`/0 {"Id":"f1","event":{"id":"e1","detail":{"x":1}}}`, `/1 {"Id":"f2","event":{"id":"e1","detail":{"x":1}}}`}},
		{"explode scalars, no envelope",
			"      - explode: {field: tags, envelope: \"\"}\n",
			`{"tags":["a",2]}`,
			[]string{`/0 {"value":"a"}`, `/1 {"value":2}`}},
		{"explode missing",
			"      - explode: detail.findings\n",
			`{"detail":{}}`,
			[]string{` error: explode: field detail.findings is missing`}},
		{"explode then filter per child",
			"      - explode: findings\n      - severity: {field: Severity.Label, min: HIGH}\n",
			`{"findings":[{"Severity":{"Label":"MEDIUM"}},{"Severity":{"Label":"CRITICAL"}},{"Severity":{"Label":"BOGUS"}}]}`,
			[]string{`/1 {"Severity":{"Label":"CRITICAL"},"event":{}}`, `/2 error: severity: severity "BOGUS" is not an ASFF label (INFORMATIONAL, LOW, MEDIUM, HIGH, CRITICAL)`}},
		{"guardduty numbers",
			"      - severity: {field: detail.severity, min: HIGH, target: sev}\n",
			`{"detail":{"severity":8.0}}`,
			[]string{` {"detail":{"severity":8.0},"sev":"HIGH"}`}},
		{"guardduty low filtered",
			"      - severity: {field: detail.severity, min: HIGH}\n",
			`{"detail":{"severity":3.9}}`,
			nil},
		{"asff normalized",
			"      - severity: {field: Severity.Normalized, min: CRITICAL}\n",
			`{"Severity":{"Normalized":90}}`,
			[]string{` {"Severity":{"Normalized":90}}`}},
		{"log levels",
			"      - severity: {field: level, min: WARN, max: ERROR}\n",
			`{"level":"warning"}`,
			[]string{` {"level":"warning"}`}},
		{"log level above max",
			"      - severity: {field: level, min: WARN, max: ERROR}\n",
			`{"level":"FATAL"}`,
			nil},
		{"severity wrong type",
			"      - severity: {field: level, min: WARN}\n",
			`{"level":3}`,
			[]string{` error: severity: severity 3 is a number, not a log level`}},
		{"epoch seconds",
			"      - epoch_to_utc: {field: event_timestamp, target: time_utc}\n",
			`{"event_timestamp":1730617263}`,
			[]string{` {"event_timestamp":1730617263,"time_utc":"2024-11-03T07:01:03.000Z"}`}},
		{"epoch ms in place, Seoul",
			"      - epoch_to_utc: {field: timestamp, unit: ms, timezone: Asia/Seoul}\n",
			`{"timestamp":1730617200123}`,
			[]string{` {"timestamp":"2024-11-03T16:00:00.123+09:00"}`}},
		{"epoch string where number needed",
			"      - epoch_to_utc: {field: ts, unit: s}\n",
			`{"ts":"yesterday"}`,
			[]string{` error: epoch_to_utc: field ts: "yesterday" is neither an epoch nor an RFC 3339 time`}},
		{"epoch out of range",
			"      - epoch_to_utc: {field: ts, unit: s}\n",
			`{"ts":1e15}`,
			[]string{` error: epoch_to_utc: field ts: epoch 1000000000000000 s is out of range (1970-01-01 to 9999-12-31)`}},
		{"epoch missing uses event time",
			"      - epoch_to_utc: {field: timestamp, target: time_utc}\n",
			`{"Id":"x"}`,
			[]string{` {"Id":"x","time_utc":"2024-11-03T07:00:00.000Z"}`}},
		{"epoch missing error",
			"      - epoch_to_utc: {field: timestamp, missing: error}\n",
			`{"Id":"x"}`,
			[]string{` error: epoch_to_utc: field timestamp is missing`}},
		{"set rename drop",
			"      - set: {env: prod, meta.tags: [a, b], n: 3}\n      - rename: {msg: message, nope: x}\n      - drop: [secret, meta.none]\n",
			`{"msg":"hi","secret":"pw"}`,
			[]string{` {"env":"prod","meta":{"tags":["a","b"]},"n":3,"message":"hi"}`}},
		{"jq map",
			"      - jq: '{id: .a, doubled: (.b * 2)}'\n",
			`{"a":"x","b":2}`,
			[]string{` {"doubled":4,"id":"x"}`}},
		{"jq zero outputs filters",
			"      - jq: 'select(.keep)'\n",
			`{"keep":false}`,
			nil},
		{"jq explodes",
			"      - jq: '.items[] | {v: .}'\n",
			`{"items":[1,2]}`,
			[]string{`/0 {"v":1}`, `/1 {"v":2}`}},
		{"jq non-object",
			"      - jq: '.a'\n",
			`{"a":1}`,
			[]string{` error: jq: output 0 is a number, want an object`}},
		{"jq runtime error",
			"      - jq: '.a + 1'\n",
			`{"a":"x"}`,
			[]string{` error: jq: jq .a + 1: cannot add: string ("x") and number (1)`}},
		{"json to csv",
			"      - json_to_csv: {columns: [name, value.sum, dims, missing, note], header: true}\n",
			`{"name":"CPU","value":{"sum":1.5},"dims":{"a":"b"},"note":"say \"hi\", ok"}`,
			[]string{` csv:CPU,1.5,"{""a"":""b""}",,"say ""hi"", ok"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := apply(t, chain(t, tt.transforms), tt.in)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestStatsBalance(t *testing.T) {
	ch := chain(t, "      - explode: f\n      - severity: {field: s, min: HIGH}\n")
	_, st := apply(t, ch, `{"f":[{"s":"HIGH"},{"s":"LOW"},{"s":"x"},{"s":"CRITICAL"}]}`)
	if st != (Stats{Out: 2, Filtered: 1, Failed: 1}) {
		t.Errorf("stats = %+v", st)
	}
}

func TestCSVParsesAsRFC4180(t *testing.T) {
	ch := chain(t, "      - json_to_csv: {columns: [a, b]}\n")
	out, _ := apply(t, ch, `{"a":"line1\nline2","b":"x,y\"z"}`)
	line := strings.TrimPrefix(out[0], " csv:")
	rows, err := csv.NewReader(strings.NewReader(line + "\n")).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0][0] != "line1\nline2" || rows[0][1] != `x,y"z` {
		t.Errorf("rows = %q", rows)
	}
}

func TestCSVHeaderNames(t *testing.T) {
	tests := []struct {
		columns string
		want    string
	}{
		{"[time_utc, owner.team, value.sum]", "time_utc,owner_team,value_sum"},
		{"[owner.team, {name: value.sum, column: sum}, {name: a.b}, {name: x, column: 'x.y'}]", "owner_team,sum,a_b,x.y"},
	}
	for _, tt := range tests {
		ch := chain(t, "      - json_to_csv: {columns: "+tt.columns+", header: true}\n")
		var c Context
		rec := &record.Record{Value: fastjson.MustParse(`{"owner":{"team":"planning"},"value":{"sum":2}}`)}
		var header string
		ch.Run(&c, rec, &Stats{}, func(r *record.Record) { header = string(r.CSVHeader) }, func(r *record.Record, err error) { t.Fatal(err) })
		if header != tt.want {
			t.Errorf("columns %s: header %q, want %q", tt.columns, header, tt.want)
		}
	}
}

// TestJQLimits: a jq transform that never ends, never stops producing or
// grows without bound fails the record with the bound it passed, and
// the chain goes on with the next record.
func TestJQLimits(t *testing.T) {
	tests := []struct {
		program, in, limit string
	}{
		{`until(.n == 0; .n -= 1)`, `{"n":-1}`, jq.LimitTimeout},
		{`repeat(.)`, `{"n":1}`, jq.LimitOutputs},
		{`[range(1e9)] | {n: length}`, `{}`, jq.LimitTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.program, func(t *testing.T) {
			// The next record, ok, passes.
			ch := chain(t, "      - jq: 'if .ok then . else "+tt.program+" end'\n")
			var c Context
			var st Stats
			var errs []error
			var out int
			for _, in := range []string{tt.in, `{"ok":true}`} {
				rec := &record.Record{Value: fastjson.MustParse(in)}
				testutil.Bounded(tt.program, func() {
					ch.Run(&c, rec, &st, func(*record.Record) { out++ }, func(_ *record.Record, err error) { errs = append(errs, err) })
				})
			}
			var le *jq.LimitError
			if len(errs) != 1 || !errors.As(errs[0], &le) || le.Limit != tt.limit {
				t.Fatalf("errors = %v, want one %s LimitError", errs, tt.limit)
			}
			if !strings.HasPrefix(errs[0].Error(), "jq: jq if .ok then . else "+tt.program+" end: evaluation ") {
				t.Errorf("message %q does not say what was stopped", errs[0])
			}
			if out == 0 || st.Failed != 1 {
				t.Errorf("the next record was not processed: out %d, stats %+v", out, st)
			}
		})
	}
}

// TestJQCanceled: a canceled evaluation fails with jq.ErrCanceled, which
// is not the record's fault.
func TestJQCanceled(t *testing.T) {
	ch := chain(t, "      - jq: 'until(.n == 0; .n -= 1)'\n")
	ctx, cancel := context.WithCancel(context.Background())
	c := Context{JQ: jq.NewEnv(ctx, jq.Limits{Timeout: time.Hour})}
	time.AfterFunc(20*time.Millisecond, cancel)
	var got error
	testutil.Bounded("canceled jq", func() {
		ch.Run(&c, &record.Record{Value: fastjson.MustParse(`{"n":-1}`)}, &Stats{}, func(*record.Record) {}, func(_ *record.Record, err error) { got = err })
	})
	if !errors.Is(got, jq.ErrCanceled) {
		t.Fatalf("err = %v, want jq.ErrCanceled", got)
	}
}
