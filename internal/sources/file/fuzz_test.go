package file

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-data/sluice/internal/record"
)

// want is what reading content as lines must give, from a splitter that
// shares nothing with the source's: every line numbered, blank ones
// skipped, over-long ones (without their "\r\n") as a read failure with
// their first maxLine bytes, and, if fail is set, the bytes after the last
// newline as a read failure standing for the rest of the file.
func wantLines(content []byte, maxLine int, fail bool) []got {
	var out []got
	lines := bytes.Split(content, []byte("\n"))
	last := lines[len(lines)-1]
	lines = lines[:len(lines)-1]
	if !fail && len(last) > 0 {
		lines = append(lines, last)
	}
	for i, l := range lines {
		n := int64(i + 1)
		data := bytes.TrimRight(l, "\r\n")
		switch {
		case len(data) > maxLine:
			out = append(out, got{"f", n, string(l[:maxLine]), "over"})
		case len(bytes.TrimSpace(data)) > 0:
			out = append(out, got{"f", n, string(data), ""})
		}
	}
	if fail {
		out = append(out, got{"f", int64(len(lines) + 1), string(last[:min(len(last), maxLine)]), "rest"})
	}
	return out
}

// FuzzReadLines reads outside bytes as a plain file and as a .gz file,
// through a small read buffer so lines span reads, and checks the lines
// against wantLines (and, for gzip, against what compress/gzip yields).
func FuzzReadLines(f *testing.F) {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write([]byte("a\r\nbb\n\n  \nccccccccccccccccccccccccc\nd"))
	zw.Close()
	f.Add([]byte("a\nb\r\n\n  \nccccccccccccccccccccccccc\nd"), uint8(8), false)
	f.Add([]byte("x\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r\ry\n"), uint8(3), false)
	f.Add(z.Bytes(), uint8(4), true)
	f.Add(z.Bytes()[:z.Len()/2], uint8(40), true)
	f.Add(append(z.Bytes(), z.Bytes()...), uint8(40), true)
	f.Add([]byte("not gzip"), uint8(40), true)
	dir := f.TempDir() // one per fuzzing process, which runs inputs one at a time
	f.Fuzz(func(t *testing.T, data []byte, maxLine uint8, gz bool) {
		m := int(maxLine%64) + 1
		name := "f"
		content, fail := data, false
		if gz {
			name = "f.gz"
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				content, fail = nil, true
			} else {
				content, err = io.ReadAll(zr)
				fail = err != nil
			}
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := New("src", []string{p}, 7, 0)
		if err != nil {
			t.Fatal(err)
		}
		s.SetMaxLineBytes(m)
		s.bufSize = 16 // bufio's smallest: long lines span reads
		var gotMsgs []got
		for {
			b, ack, err := s.ReadBatch(context.Background())
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, msg := range b.Messages {
				g := got{part: "f", line: msg.Pos.Offset, data: string(msg.Data)}
				var re *record.ReadError
				switch {
				case msg.Err == nil:
				case !errors.As(msg.Err, &re):
					t.Fatalf("error %v is not a ReadError", msg.Err)
				case re.Last < 0:
					g.err = "rest"
				default:
					g.err = "over"
				}
				gotMsgs = append(gotMsgs, g)
			}
			ack(nil)
		}
		if gz && content == nil && fail {
			// Not gzip at all: one failure for the whole file, from line 1.
			if len(gotMsgs) != 1 || gotMsgs[0].line != 1 || gotMsgs[0].err != "rest" {
				t.Fatalf("not gzip: got %+v", gotMsgs)
			}
			return
		}
		want := wantLines(content, m, fail)
		if len(gotMsgs) != len(want) {
			t.Fatalf("got %d messages, want %d:\n%+v\n%+v", len(gotMsgs), len(want), gotMsgs, want)
		}
		for i := range want {
			if gotMsgs[i] != want[i] {
				t.Fatalf("message %d = %+v, want %+v", i, gotMsgs[i], want[i])
			}
		}
	})
}
