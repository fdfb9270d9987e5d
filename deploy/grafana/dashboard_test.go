// Package grafana holds the Grafana dashboard for Sluice's Prometheus
// metrics (sluice.json) and its test.
package grafana

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-data/sluice/internal/metrics"
)

// registered reports whether the registry holds a metric family name:
// registering a probe under a taken name with another help text fails.
func registered(name string) bool {
	probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "dashboard test probe"})
	if err := metrics.Registry.Register(probe); err != nil {
		return true
	}
	metrics.Registry.Unregister(probe)
	return false
}

var metricName = regexp.MustCompile(`\b((?:sluice|go|process)_[a-z0-9_]+)\b`)

// TestDashboardMetricsExist: every metric a panel queries is one the
// processor serves on /metrics.
func TestDashboardMetricsExist(t *testing.T) {
	b, err := os.ReadFile("sluice.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			names := metricName.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: no metric in %q", p.Title, tg.Expr)
			}
			for _, n := range names {
				seen[n] = true
				base := n
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if s, ok := strings.CutSuffix(n, suf); ok && registered(s) {
						base = s
					}
				}
				if !registered(base) {
					t.Errorf("panel %q queries %s, which the processor does not export", p.Title, n)
				}
			}
		}
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("metrics queried: %v", names)
	if !registered("sluice_source_records_total") || registered("sluice_no_such_metric") {
		t.Fatal("the registered() probe does not tell names apart")
	}
}

// TestDashboardCoversTheIssue: the panels the operations guide promises.
func TestDashboardCoversTheIssue(t *testing.T) {
	b, _ := os.ReadFile("sluice.json")
	for _, m := range []string{"sluice_source_records_total", "sluice_route_out_total", "sluice_sink_written_total",
		"sluice_kafka_consumer_lag", "sluice_kinesis_millis_behind_latest", "sluice_error_records_total",
		"sluice_sink_flush_seconds_bucket", "sluice_sink_buffered_bytes", "sluice_sink_open_partitions"} {
		if !strings.Contains(string(b), m) {
			t.Errorf("no panel queries %s", m)
		}
	}
}
