package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/sluice-data/sluice/internal/testutil"
)

// TestRunAsInContainer runs the built binary the way the ECS task does:
// a read-only-root container has only /tmp writable, so with every sink
// remote a run must write nothing to its working directory; its log
// stream (stderr) carries the EMF lines and the summary as one JSON line.
func TestRunAsInContainer(t *testing.T) {
	awsEnv(t)
	bin, err := testutil.BuildBinary(t.TempDir(), ".", "processor")
	if err != nil {
		t.Fatal(err)
	}
	backend := s3mem.New()
	backend.CreateBucket("lake")
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()

	in := filepath.Join(t.TempDir(), "in.ndjson")
	var b strings.Builder
	for i := range 50 {
		fmt.Fprintf(&b, `{"event_timestamp": %d, "project_id": "p", "message": "m"}`+"\n", 1700000000+i)
	}
	os.WriteFile(in, []byte(b.String()), 0o644)
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`service: {http_listen: "127.0.0.1:0", error_sink: lake, cloudwatch_emf: true, name: ctr}
sources: [{name: logs, type: file, format: app_log, file: {paths: [%q]}}]
routes: [{name: all, from: [logs], to: [lake]}]
sinks: [{name: lake, type: s3, url: "s3://lake/logs/", endpoint: %s, format: ndjson}]
`, in, srv.URL)), 0o644)

	cwd := t.TempDir()
	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Dir = cwd
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	if ents, _ := os.ReadDir(cwd); len(ents) != 0 {
		t.Errorf("run wrote %d entries to its working directory (first %s)", len(ents), ents[0].Name())
	}
	var emfIn float64
	var summary map[string]any
	for _, l := range strings.Split(stderr.String(), "\n") {
		var doc map[string]any
		if json.Unmarshal([]byte(l), &doc) != nil {
			continue
		}
		if _, ok := doc["_aws"]; ok && doc["Source"] == "logs" {
			emfIn += doc["RecordsIn"].(float64)
		}
		if doc["msg"] == "run summary" {
			summary, _ = doc["summary"].(map[string]any)
		}
	}
	if emfIn != 50 {
		t.Errorf("EMF RecordsIn summed to %v, want 50:\n%s", emfIn, stderr.String())
	}
	if summary == nil || summary["balance"].(map[string]any)["ok"] != true {
		t.Errorf("no JSON run summary with a good balance in the log:\n%s", stderr.String())
	}

	// The image's default command.
	if out, err := exec.Command(bin, "help").CombinedOutput(); err != nil {
		t.Errorf("help: %v\n%s", err, out)
	}
}
