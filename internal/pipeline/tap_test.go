package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/tap"
)

// TestTapShowsWhatRoutesDeliver: a route tap sees the records its route
// hands to its sinks, after the route's transforms, and not what the route
// filtered out; a sink tap sees every route's records for that sink.
func TestTapShowsWhatRoutesDeliver(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.ndjson"), []byte(`{"id":"a","level":"ERROR"}`+"\n"+`{"id":"b","level":"INFO"}`+"\n"), 0o644)
	cfg, err := config.Parse("t.yaml", []byte(fmt.Sprintf(`
service: {http_listen: "", error_sink: out}
sources: [{name: s, type: file, format: json, file: {paths: ["%s/in.ndjson"]}}]
routes:
  - name: errors
    from: [s]
    match: {level: [ERROR]}
    transforms: [{set: {route: errors}}]
    to: [alerts, out]
  - name: all
    from: [s]
    to: [out]
sinks:
  - {name: out, type: s3, url: "file:%s/out/", format: ndjson}
  - {name: alerts, type: s3, url: "file:%s/alerts/", format: ndjson}
`, dir, dir, dir)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	hub := tap.NewHub([]string{"errors", "all"}, []string{"out", "alerts"})
	p.SetTap(hub)
	byRoute, _ := hub.Subscribe(tap.Filter{Route: "errors"}, 100)
	bySink, _ := hub.Subscribe(tap.Filter{Sink: "out"}, 100)
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "in.ndjson")
	tests := []struct {
		name string
		sub  *tap.Subscription
		want []string
	}{
		{"route errors", byRoute, []string{
			`{"route":"errors","sinks":["alerts","out"],"source":"s","position":"` + in + `:1","record":{"id":"a","level":"ERROR","route":"errors"}}`,
		}},
		{"sink out", bySink, []string{
			`{"route":"errors","sinks":["alerts","out"],"source":"s","position":"` + in + `:1","record":{"id":"a","level":"ERROR","route":"errors"}}`,
			`{"route":"all","sinks":["out"],"source":"s","position":"` + in + `:1","record":{"id":"a","level":"ERROR"}}`,
			`{"route":"all","sinks":["out"],"source":"s","position":"` + in + `:2","record":{"id":"b","level":"INFO"}}`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.sub.Close()
			var got []string
			for l := range tt.sub.Lines() {
				got = append(got, strings.TrimSuffix(string(l), "\n"))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
