package pipeline

import (
	"strings"
	"testing"
)

// TestSummaryLegend: the sink table is followed by a line saying what its
// columns count.
func TestSummaryLegend(t *testing.T) {
	var b strings.Builder
	Summary{Sinks: []SinkSummary{{Name: "lake", Written: 10, ErrorRecords: 2, Failed: 1, Skipped: 3}}}.Print(&b)
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "lake ") {
			if i+1 >= len(lines) || !strings.Contains(lines[i+1], "errors: error records this sink wrote") ||
				!strings.Contains(lines[i+1], "refused: records this sink could not take") || !strings.Contains(lines[i+1], "skipped: records already durable") {
				t.Errorf("no legend after the sink table:\n%s", b.String())
			}
			return
		}
	}
	t.Fatalf("no sink row:\n%s", b.String())
}
