package config

import (
	"strings"
	"testing"
)

func TestErrorLocation(t *testing.T) {
	tests := []struct {
		url, errorPrefix string
		wantURL, want    string
	}{
		{"s3://b/lake/app-logs/", "", "s3://b/lake/app-logs-errors/", DefaultErrorPrefix},
		{"s3://b/lake/app-logs", "", "s3://b/lake/app-logs-errors/", DefaultErrorPrefix},
		{"file:out/lake/app-logs/", "", "file:out/lake/app-logs-errors/", DefaultErrorPrefix},
		{"file:./out/lake/", "", "file:out/lake-errors/", DefaultErrorPrefix},
		{"file:///srv/lake/app/", "", "file:///srv/lake/app-errors/", DefaultErrorPrefix},
		{"file:lake", "", "file:lake-errors/", DefaultErrorPrefix},
		// Roots have no sibling: errors go inside.
		{"s3://b/", "", "s3://b/", "errors/" + DefaultErrorPrefix},
		{"s3://b", "", "s3://b", "errors/" + DefaultErrorPrefix},
		{"file:///", "", "file:///", "errors/" + DefaultErrorPrefix},
		{"file:./", "", "file:./", "errors/" + DefaultErrorPrefix},
		// A configured error_prefix keeps its meaning: under the url.
		{"s3://b/lake/app-logs/", "bad/!{error-output-type}/", "s3://b/lake/app-logs/", "bad/!{error-output-type}/"},
	}
	for _, tt := range tests {
		s := Sink{URL: tt.url, ErrorPrefix: tt.errorPrefix, routed: true}
		url, prefix := s.ErrorLocation()
		if url != tt.wantURL || prefix != tt.want {
			t.Errorf("ErrorLocation(%q, %q) = %q, %q; want %q, %q", tt.url, tt.errorPrefix, url, prefix, tt.wantURL, tt.want)
		}
	}
	// A sink no route writes to is only an error output: its records stay
	// under its url.
	s := Sink{URL: "s3://mozart-lake/errors/security-search/"}
	if url, prefix := s.ErrorLocation(); url != s.URL || prefix != DefaultErrorPrefix {
		t.Errorf("error-only sink: ErrorLocation = %q, %q; want %q, %q", url, prefix, s.URL, DefaultErrorPrefix)
	}
}

// TestWarnErrorsInsideTable: validate warns, naming file and line, when a
// configured error location sits inside a Parquet sink's table location
// (issue 11: DuckDB's read_parquet('out/lake/app-logs/**') failed with
// "No magic bytes" on the error files), and not for the default.
func TestWarnErrorsInsideTable(t *testing.T) {
	const head = "service: {error_sink: lake}\nsources:\n  - {name: a, type: file, file: {paths: [x]}}\nroutes:\n  - {name: r, from: [a], to: [lake]}\nsinks:\n"
	const lake = "  - name: lake\n    type: s3\n    format: parquet\n    schema: [{name: a, type: string}]\n"
	tests := []struct {
		name, sinks string
		want        []string
	}{
		{"default", lake + "    url: s3://b/lake/app-logs/\n", nil},
		{"explicit error_prefix", lake + "    url: s3://b/lake/app-logs/\n    error_prefix: 'errors/!{error-output-type}/'\n",
			[]string{`w.yaml:12: sinks[0].error_prefix: error records of sink "lake" land in s3://b/lake/app-logs/errors/!{error-output-type}/, inside the table location of Parquet sink "lake" (s3://b/lake/app-logs/), where Parquet readers of the table (DuckDB, Athena) fail on them; leave error_prefix unset to write them beside the table`}},
		{"bucket root", lake + "    url: s3://b/\n",
			[]string{`w.yaml:11: sinks[0].url: error records of sink "lake" land in s3://b/errors/!{error-output-type}/!{timestamp:yyyy/MM/dd}/, inside the table location of Parquet sink "lake" (s3://b/), where Parquet readers of the table (DuckDB, Athena) fail on them; a url that is a bucket or file-system root has no sibling location for them: give the url a prefix`}},
		{"error sink inside another table", lake + "    url: file:out/lake/app-logs/\n  - {name: errs, type: s3, format: ndjson, url: 'file:./out/lake/app-logs/errors/', error_prefix: '!{error-output-type}/'}\n",
			[]string{`w.yaml:12: sinks[1].error_prefix: error records of sink "errs" land in file:./out/lake/app-logs/errors/!{error-output-type}/, inside the table location of Parquet sink "lake" (file:out/lake/app-logs/), where Parquet readers of the table (DuckDB, Athena) fail on them; the url of sink "errs" is inside that table location: move it out`}},
		{"pure error output inside the table, default prefix", lake + "    url: s3://b/lake/\n  - {name: errs, type: s3, format: ndjson, url: 's3://b/lake/errors/'}\n",
			[]string{`w.yaml:12: sinks[1].url: error records of sink "errs" land in s3://b/lake/errors/!{error-output-type}/!{timestamp:yyyy/MM/dd}/, inside the table location of Parquet sink "lake" (s3://b/lake/), where Parquet readers of the table (DuckDB, Athena) fail on them; the url of sink "errs" is inside that table location: move it out`}},
		{"error sink beside the table", lake + "    url: file:out/lake/app-logs/\n  - {name: errs, type: s3, format: ndjson, url: 'file:out/lake/app-logs-errors/', error_prefix: '!{error-output-type}/'}\n", nil},
	}
	for _, tt := range tests {
		c, err := Parse("w.yaml", []byte(head+tt.sinks), lookup(nil))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if len(c.Warnings) != len(tt.want) {
			t.Errorf("%s: warnings %v, want %d", tt.name, c.Warnings, len(tt.want))
			continue
		}
		for i, w := range tt.want {
			if got := c.Warnings[i].Error(); !strings.HasPrefix(got, "warning: "+w) {
				t.Errorf("%s: warning\n%s\nwant\n%s", tt.name, got, w)
			}
		}
	}
}
