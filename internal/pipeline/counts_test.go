package pipeline

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/internal/testutil"
)

// TestErrorsByTypeCountsWhatWasWritten: a line that does not decode and a
// document OpenSearch refuses are both counted in errors by type, where
// their error records are written (the refused one used to be missing).
// Run again over the same input, the decode failure is already durable and
// skipped, so it is not counted again; the refused document is filed anew
// (the OpenSearch error stream is at least once) and is.
func TestErrorsByTypeCountsWhatWasWritten(t *testing.T) {
	dir := t.TempDir()
	in := `{"n":1}` + "\n" + `{"n":` + "\n" + `{"n":"refuse me"}` + "\n" + `{"n":4}` + "\n"
	os.WriteFile(filepath.Join(dir, "in.ndjson"), []byte(in), 0o644)
	fake := testutil.NewSearchFake(t)
	fake.Item = func(index, id string, doc []byte, attempt int) int {
		if strings.Contains(string(doc), "refuse me") {
			return 400
		}
		return 0
	}
	y := fmt.Sprintf(`
service: {http_listen: "", error_sink: errs}
sources: [{name: s, type: file, format: json, file: {paths: ["%s/in.ndjson"]}}]
routes: [{name: r, from: [s], to: [search]}]
sinks:
  - {name: search, type: opensearch, endpoints: ["%s"], index: logs}
  - {name: errs, type: s3, url: "file:%s/errs/", format: ndjson}
`, dir, fake.Server.URL, dir)
	tests := []struct {
		pass int
		want map[string]int64
	}{
		{1, map[string]int64{"processing-failed": 1, "sink-rejected": 1}},
		{2, map[string]int64{"sink-rejected": 1}},
	}
	for _, tt := range tests {
		sum := runYAML(t, y)
		if !maps.Equal(sum.ErrorsByType, tt.want) {
			t.Errorf("pass %d: errors by type %v, want %v", tt.pass, sum.ErrorsByType, tt.want)
		}
		var errs int64
		for _, sk := range sum.Sinks {
			errs += sk.ErrorRecords
		}
		var byType int64
		for _, n := range sum.ErrorsByType {
			byType += n
		}
		if errs != byType {
			t.Errorf("pass %d: %d error records written, %d by type", tt.pass, errs, byType)
		}
	}
}
