package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkReadLines reads a 200,000-line file (about 24 MB) as the
// pipeline does, 1,024 lines a batch.
func BenchmarkReadLines(b *testing.B) {
	p := filepath.Join(b.TempDir(), "in.ndjson")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 200000 {
		fmt.Fprintf(f, `{"project_id":"p%d","level":"INFO","message":"request handled in %d ms","event_timestamp":%d}`+"\n", i%50, i%997, 1700000000000+i)
	}
	f.Close()
	st, _ := os.Stat(p)
	b.SetBytes(st.Size())
	b.ReportAllocs()
	for b.Loop() {
		s, err := New("src", []string{p}, 1024, 0)
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, ack, err := s.ReadBatch(context.Background())
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			ack(nil)
		}
	}
}
