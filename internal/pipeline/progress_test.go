package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/sources"
)

// syncBuffer is a bytes.Buffer safe for the progress goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFileRunProgress: a run over files is finite and reports its progress
// as replay does: new lines for a log, one redrawn line on a terminal.
func TestFileRunProgress(t *testing.T) {
	dir := t.TempDir()
	var in strings.Builder
	for i := range 500 {
		fmt.Fprintf(&in, `{"n":%d}`+"\n", i)
	}
	os.WriteFile(filepath.Join(dir, "in.ndjson"), []byte(in.String()), 0o644)
	tests := []struct {
		name     string
		tty      bool
		want     string // in the output once everything is read
		wantTail string
	}{
		{"log", false, "run: 500 records, ", ", ETA 0s | s 100%\n"},
		{"terminal", true, "\r\033[Krun: 500 records, ", ", ETA 0s | s 100%\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := fmt.Sprintf(`
service: {http_listen: "", error_sink: out}
sources: [{name: s, type: file, format: json, file: {paths: ["%s/in.ndjson"]}}]
routes: [{name: r, from: [s], to: [out]}]
sinks: [{name: out, type: s3, url: "file:%s/out-%s/", format: ndjson}]
`, dir, dir, tt.name)
			cfg, err := config.Parse("t.yaml", []byte(y), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			p, err := New(cfg, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			if !p.Finite() {
				t.Fatal("a run over files is not finite")
			}
			var out syncBuffer
			ctx, cancel := context.WithCancel(context.Background())
			shown := make(chan struct{})
			go func() { p.showProgress(ctx, &out, tt.tty, time.Millisecond, "run"); close(shown) }()
			if err := p.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a progress line with every record", func() bool { return strings.Contains(out.String(), tt.want) })
			cancel()
			<-shown
			if got := out.String(); !strings.HasSuffix(got, tt.wantTail) {
				t.Errorf("progress ends %q, want suffix %q", got[max(0, len(got)-60):], tt.wantTail)
			}
		})
	}
}

// TestProgressLineETA: the ETA comes from the share done, whatever the
// sources count in: bytes of files read at a rate of records.
func TestProgressLineETA(t *testing.T) {
	tests := []struct {
		name  string
		read  int64
		parts []sources.PartitionProgress
		want  string
	}{
		{"files, a quarter of the bytes in 10s", 40000, []sources.PartitionProgress{{Partition: "logs", Done: 25 << 20, Total: 100 << 20}},
			"run: 40000 records, 4000/s, ETA 30s | logs 25%"},
		{"two sources, half done", 1000, []sources.PartitionProgress{{Partition: "a", Done: 100, Total: 100}, {Partition: "b", Done: 0, Total: 100}},
			"run: 1000 records, 100/s, ETA 10s | a 100%, b 0%"},
		{"nothing read yet", 0, []sources.PartitionProgress{{Partition: "a", Total: 100}}, "run: 0 records, 0/s, ETA ? | a 0%"},
		{"done", 5, []sources.PartitionProgress{{Partition: "a", Done: 7, Total: 7, Finished: true}}, "run: 5 records, 0/s, ETA 0s | a 100%"},
	}
	for _, tt := range tests {
		if got := progressLine("run", tt.read, 10*time.Second, tt.parts, nil); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
