package file

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, path, content string, gz bool) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var w io.Writer = f
	if gz {
		zw := gzip.NewWriter(f)
		defer zw.Close()
		w = zw
	}
	io.WriteString(w, content)
}

type msg struct {
	part string
	line int64
	data string
}

func readAll(t *testing.T, s *Source) ([]msg, int) {
	t.Helper()
	var out []msg
	batches := 0
	for {
		b, ack, err := s.ReadBatch(context.Background())
		if errors.Is(err, io.EOF) {
			return out, batches
		}
		if err != nil {
			t.Fatal(err)
		}
		batches++
		for _, m := range b.Messages {
			out = append(out, msg{filepath.Base(m.Pos.Partition), m.Pos.Offset, string(m.Data)})
		}
		ack(nil)
	}
}

func TestReadsGlobsGzipAndLineNumbers(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "b.ndjson"), "b1\r\n\n  \nb4", false)
	write(t, filepath.Join(dir, "a.ndjson.gz"), "a1\na2\n", true)
	long := strings.Repeat("x", 3<<20)
	write(t, filepath.Join(dir, "c.ndjson"), long+"\nc2\n", false)
	s, err := New("src", []string{filepath.Join(dir, "*.ndjson*")}, 2, 100)
	if err != nil {
		t.Fatal(err)
	}
	got, batches := readAll(t, s)
	want := []msg{{"a.ndjson.gz", 1, "a1"}, {"a.ndjson.gz", 2, "a2"}, {"b.ndjson", 1, "b1"}, {"b.ndjson", 4, "b4"}, {"c.ndjson", 1, long}, {"c.ndjson", 2, "c2"}}
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d = %+v, want %+v", i, got[i].part+":"+got[i].data[:min(5, len(got[i].data))], want[i].part)
		}
	}
	if batches != 3 {
		t.Errorf("batches = %d, want 3 (one per file at batch size 2)", batches)
	}
	cps := strings.Join(s.Checkpoints(), "; ")
	if !strings.Contains(cps, "b.ndjson: line 4") || !strings.Contains(cps, "c.ndjson: line 2") {
		t.Errorf("checkpoints = %s", cps)
	}
}

func TestStdin(t *testing.T) {
	s, err := New("src", []string{"-"}, 10, 100)
	if err != nil {
		t.Fatal(err)
	}
	s.stdin = strings.NewReader("x\ny\n")
	got, _ := readAll(t, s)
	if len(got) != 2 || !strings.HasPrefix(got[1].part, "stdin-20") || got[1].line != 2 {
		t.Errorf("got %+v", got)
	}
}

func TestNoMatchIsAnError(t *testing.T) {
	_, err := New("src", []string{"/nonexistent/*.ndjson"}, 10, 100)
	if err == nil || err.Error() != `source src: no file matches "/nonexistent/*.ndjson"` {
		t.Errorf("err = %v", err)
	}
}

func TestCheckpointWaitsForOldestAck(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a"), "1\n2\n3\n4\n", false)
	s, _ := New("src", []string{filepath.Join(dir, "a")}, 2, 100)
	_, ack1, _ := s.ReadBatch(context.Background())
	_, ack2, _ := s.ReadBatch(context.Background())
	ack2(nil)
	if cp := s.Checkpoints()[0]; !strings.HasSuffix(cp, ": none") {
		t.Errorf("checkpoint moved past an unacked batch: %s", cp)
	}
	ack1(nil)
	if cp := s.Checkpoints()[0]; !strings.HasSuffix(cp, ": line 4") {
		t.Errorf("checkpoint = %s", cp)
	}
}
