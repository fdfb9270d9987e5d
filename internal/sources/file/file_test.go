package file

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/record"
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

// got is one message as the tests compare it: position, data, and the
// read failure's text if any.
type got struct {
	part string
	line int64
	data string
	err  string
}

func readAllMsgs(t *testing.T, s *Source) []got {
	t.Helper()
	var out []got
	for {
		b, ack, err := s.ReadBatch(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range b.Messages {
			g := got{part: filepath.Base(m.Pos.Partition), line: m.Pos.Offset, data: string(m.Data)}
			if m.Err != nil {
				var re *record.ReadError
				if !errors.As(m.Err, &re) {
					t.Fatalf("message error %v is not a *record.ReadError", m.Err)
				}
				g.err = strings.ReplaceAll(m.Err.Error(), filepath.Dir(m.Pos.Partition)+"/", "")
			}
			out = append(out, g)
		}
		ack(nil)
	}
}

func gzipBytes(t *testing.T, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := io.WriteString(zw, content); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// truncatedGzip returns a gzip file of many lines cut short, and what a
// gzip reader yields of it: the whole lines and the partial last one.
func truncatedGzip(t *testing.T) (file []byte, lines []string, partial string) {
	t.Helper()
	var content strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&content, `{"n":%d,"pad":"%x"}`+"\n", i, i*7919)
	}
	full := gzipBytes(t, content.String())
	file = full[:len(full)/2]
	zr, err := gzip.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reading the cut gzip: %v, want unexpected EOF", err)
	}
	all := strings.Split(string(out), "\n")
	return file, all[:len(all)-1], all[len(all)-1]
}

// TestBadInputIsFiledAndReadingGoesOn puts each kind of unreadable input
// between two good files: the good files are read whole, what can be read
// of the bad one is read, and the rest is one error record at a stable
// position naming the file, the lines and the reason.
func TestBadInputIsFiledAndReadingGoesOn(t *testing.T) {
	cut, cutLines, cutPartial := truncatedGzip(t)
	var cutWant []got
	for i, l := range cutLines {
		cutWant = append(cutWant, got{"b.ndjson.gz", int64(i + 1), l, ""})
	}
	n := int64(len(cutLines)) + 1
	cutWant = append(cutWant, got{"b.ndjson.gz", n, cutPartial, fmt.Sprintf("b.ndjson.gz: lines %d-end: unexpected EOF", n)})

	tests := []struct {
		name  string
		setup func(t *testing.T, path string) // makes dir/b.ndjson[.gz]
		gz    bool
		want  []got
	}{
		{
			name:  "truncated gzip",
			gz:    true,
			setup: func(t *testing.T, p string) { writeBytes(t, p, cut) },
			want:  cutWant,
		},
		{
			name:  "not gzip but named .gz",
			gz:    true,
			setup: func(t *testing.T, p string) { writeBytes(t, p, []byte("plain\ntext\n")) },
			want:  []got{{"b.ndjson.gz", 1, "", "b.ndjson.gz: lines 1-end: gzip: invalid header"}},
		},
		{
			name:  "gzip with a bad checksum",
			gz:    true,
			setup: func(t *testing.T, p string) { z := gzipBytes(t, "x1\nx2\n"); z[len(z)-8] ^= 0xff; writeBytes(t, p, z) },
			want:  []got{{"b.ndjson.gz", 1, "x1", ""}, {"b.ndjson.gz", 2, "x2", ""}, {"b.ndjson.gz", 3, "", "b.ndjson.gz: lines 3-end: gzip: invalid checksum"}},
		},
		{
			name:  "directory",
			setup: func(t *testing.T, p string) { mustOK(t, os.Mkdir(p, 0o755)) },
			want:  []got{{"b.ndjson", 0, "", "b.ndjson: whole file: is a directory, not a file"}},
		},
		{
			name:  "dangling symlink",
			setup: func(t *testing.T, p string) { mustOK(t, os.Symlink(p+".gone", p)) },
			want:  []got{{"b.ndjson", 0, "", "b.ndjson: whole file: stat: no such file or directory"}},
		},
		{
			name:  "symlink loop",
			setup: func(t *testing.T, p string) { mustOK(t, os.Symlink(p, p)) },
			want:  []got{{"b.ndjson", 0, "", "b.ndjson: whole file: stat: too many levels of symbolic links"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "a.ndjson"), "a1\na2\n", false)
			write(t, filepath.Join(dir, "c.ndjson"), "c1\n", false)
			bad := filepath.Join(dir, "b.ndjson")
			if tt.gz {
				bad += ".gz"
			}
			tt.setup(t, bad)
			s, err := New("src", []string{filepath.Join(dir, "*")}, 1024, 0)
			if err != nil {
				t.Fatal(err)
			}
			want := append([]got{{"a.ndjson", 1, "a1", ""}, {"a.ndjson", 2, "a2", ""}}, tt.want...)
			want = append(want, got{"c.ndjson", 1, "c1", ""})
			compare(t, readAllMsgs(t, s), want)
			if err := s.Err(); err != nil {
				t.Errorf("Err() = %v", err)
			}
		})
	}
}

func TestUnopenableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root opens a mode-000 file; the symlink cases cover a failing open")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "b.ndjson")
	write(t, p, "secret\n", false)
	mustOK(t, os.Chmod(p, 0))
	s, _ := New("src", []string{p}, 10, 0)
	compare(t, readAllMsgs(t, s), []got{{"b.ndjson", 0, "", "b.ndjson: whole file: open: permission denied"}})
}

func TestOverlongLines(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		content string
		want    []got
	}{
		{
			name:    "inside one read",
			max:     4,
			content: "abcd\nabcdefgh\r\nxy\n",
			want: []got{{"f", 1, "abcd", ""}, {"f", 2, "abcd", "f: line 2: line longer than max_line_bytes (4 bytes): only its first 4 bytes are kept"},
				{"f", 3, "xy", ""}},
		},
		{
			name:    "last line without newline",
			max:     3,
			content: "ab\nabcdef",
			want:    []got{{"f", 1, "ab", ""}, {"f", 2, "abc", "f: line 2: line longer than max_line_bytes (3 bytes): only its first 3 bytes are kept"}},
		},
		{
			name:    "longer than the read buffer",
			max:     1<<20 + 5,
			content: "a\n" + strings.Repeat("y", 3<<20) + "\nb\n" + strings.Repeat("z", 1<<20+5) + "\r\n",
			want: []got{{"f", 1, "a", ""}, {"f", 2, strings.Repeat("y", 1<<20+5), fmt.Sprintf("f: line 2: line longer than max_line_bytes (%d bytes): only its first %d bytes are kept", 1<<20+5, 1<<20+5)},
				{"f", 3, "b", ""}, {"f", 4, strings.Repeat("z", 1<<20+5), ""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "f")
			write(t, p, tt.content, false)
			s, _ := New("src", []string{p}, 2, 0)
			s.SetMaxLineBytes(tt.max)
			compare(t, readAllMsgs(t, s), tt.want)
		})
	}
}

// TestHugeLineWithoutNewline reads a 100 MiB file without a newline: one
// error record with the first max_line_bytes bytes, not a 100 MiB line.
func TestHugeLineWithoutNewline(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 100 MiB")
	}
	p := filepath.Join(t.TempDir(), "huge")
	f, err := os.Create(p)
	mustOK(t, err)
	mustOK(t, f.Truncate(100<<20)) // sparse: 100 MiB of zero bytes
	f.Close()
	s, _ := New("src", []string{p}, 1024, 0)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b, _, err := s.ReadBatch(context.Background())
	runtime.ReadMemStats(&after)
	mustOK(t, err)
	if len(b.Messages) != 1 || b.Messages[0].Err == nil || len(b.Messages[0].Data) != DefaultMaxLineBytes {
		t.Fatalf("got %d messages, first with %d bytes and error %v", len(b.Messages), len(b.Messages[0].Data), b.Messages[0].Err)
	}
	t.Logf("allocated %d MiB reading a 100 MiB line", (after.TotalAlloc-before.TotalAlloc)>>20)
}

// TestStdinHeldOpen writes 1,500 lines into a pipe that stays open: the
// second, partial batch comes after batch_linger, and a read that waits
// for more ends when its context does, with the lines it has.
func TestStdinHeldOpen(t *testing.T) {
	pr, pw, err := os.Pipe()
	mustOK(t, err)
	defer pw.Close()
	s, _ := New("src", []string{"-"}, 1024, 0)
	nr := &notifyReader{r: pr, calls: make(chan int, 1000)}
	s.stdin = nr
	s.SetLinger(10 * time.Millisecond)
	defer s.Close(context.Background())
	for i := range 1500 { // 15 KB: the pipe's buffer holds them
		fmt.Fprintf(pw, "line %d\n", i)
	}
	var total int
	for _, want := range []int{1024, 476} {
		b, ack := readWithin(t, s, context.Background())
		total += len(b.Messages)
		if len(b.Messages) != want {
			t.Fatalf("batch of %d lines, want %d", len(b.Messages), want)
		}
		ack(nil)
	}
	if total != 1500 {
		t.Fatalf("read %d lines", total)
	}

	// Shutdown while lines wait for the linger, a line cut short included.
	s.SetLinger(time.Hour)
	written := 0
	for i := range 1500 {
		written += len(fmt.Sprintf("line %d\n", i))
	}
	written += len("x1\nx2\npart")
	fmt.Fprint(pw, "x1\nx2\npart")
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan record.Batch, 1)
	go func() {
		b, _, err := s.ReadBatch(ctx)
		if err != nil {
			t.Error(err)
		}
		res <- b
	}()
	// The source asks for more only once it has taken every byte
	// written so far.
	for n := range nr.calls {
		if n == written {
			break
		}
	}
	cancel()
	select {
	case b := <-res:
		var lines []string
		for _, m := range b.Messages {
			lines = append(lines, string(m.Data))
		}
		if got := strings.Join(lines, ","); got != "x1,x2,part" {
			t.Errorf("on shutdown got %q, want x1,x2,part", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadBatch did not return on cancel")
	}
	// Nothing read, then shutdown: ReadBatch returns the context's error.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.ReadBatch(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// readWithin reads one batch, failing the test if that takes more than
// ten seconds (a read that never returns).
func readWithin(t *testing.T, s *Source, ctx context.Context) (record.Batch, record.AckFunc) {
	t.Helper()
	type res struct {
		b   record.Batch
		ack record.AckFunc
		err error
	}
	c := make(chan res, 1)
	go func() {
		b, ack, err := s.ReadBatch(ctx)
		c <- res{b, ack, err}
	}()
	select {
	case r := <-c:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.b, r.ack
	case <-time.After(10 * time.Second):
		t.Fatal("ReadBatch did not return")
	}
	panic("unreachable")
}

// TestFIFOIsReadAsAStream reads a FIFO matched by a glob: a partial batch
// after batch_linger while its writer is quiet, then the next file once
// the writer closes.
func TestFIFOIsReadAsAStream(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "a.fifo")
	mustOK(t, syscall.Mkfifo(fifo, 0o600))
	write(t, filepath.Join(dir, "b.ndjson"), "b1\n", false)
	s, _ := New("src", []string{filepath.Join(dir, "*")}, 100, 0)
	s.SetLinger(10 * time.Millisecond)
	w := make(chan *os.File, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
		}
		fmt.Fprint(f, "f1\nf2\n")
		w <- f
	}()
	b, ack := readWithin(t, s, context.Background())
	ack(nil)
	if len(b.Messages) != 2 || string(b.Messages[1].Data) != "f2" {
		t.Fatalf("got %d messages", len(b.Messages))
	}
	(<-w).Close()
	b, ack = readWithin(t, s, context.Background())
	ack(nil)
	if len(b.Messages) != 1 || string(b.Messages[0].Data) != "b1" {
		t.Fatalf("after the FIFO closed: %d messages", len(b.Messages))
	}
}

// TestGrowingFileHandsOnPartialBatch: a file is read to its current end
// and its lines handed on at once, not held for a full batch.
func TestGrowingFileHandsOnPartialBatch(t *testing.T) {
	p := filepath.Join(t.TempDir(), "grow")
	write(t, p, "1\n2\n3\n", false)
	s, _ := New("src", []string{p}, 1024, 0)
	b, ack := readWithin(t, s, context.Background())
	ack(nil)
	if len(b.Messages) != 3 {
		t.Fatalf("got %d lines, want 3", len(b.Messages))
	}
}

func TestUnmatched(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.ndjson"), "a\n", false)
	got := Unmatched([]string{"-", filepath.Join(dir, "*.ndjson"), filepath.Join(dir, "*.gz")})
	if len(got) != 1 || got[0] != filepath.Join(dir, "*.gz") {
		t.Errorf("Unmatched = %v", got)
	}
}

func writeBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	mustOK(t, os.WriteFile(path, b, 0o644))
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func compare(t *testing.T, got, want []got) {
	t.Helper()
	short := func(s string) string {
		if len(s) > 40 {
			return fmt.Sprintf("%s…(%d bytes)", s[:40], len(s))
		}
		return s
	}
	if len(got) != len(want) {
		t.Errorf("got %d messages, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			g, w := got[i], want[i]
			t.Errorf("message %d = {%s %d %q %q}, want {%s %d %q %q}", i, g.part, g.line, short(g.data), g.err, w.part, w.line, short(w.data), w.err)
		}
	}
}

// notifyReader reports, as each Read starts, how many bytes earlier reads
// returned.
type notifyReader struct {
	r     io.Reader
	n     int
	calls chan int
}

func (r *notifyReader) Read(p []byte) (int, error) {
	r.calls <- r.n
	n, err := r.r.Read(p)
	r.n += n
	return n, err
}

// TestNameNotUTF8: a file whose name is not valid UTF-8 (any byte but "/"
// and NUL may be in a Linux file name) is read like any other. Its
// checkpoint gauge's partition label once took the name as it was, and
// the Prometheus client panics on a label that is not valid UTF-8: one
// such file ended the process.
func TestNameNotUTF8(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "b\xff.ndjson")
	write(t, p, "x\n", false)
	s, _ := New("src", []string{filepath.Join(dir, "*")}, 10, 0)
	compare(t, readAllMsgs(t, s), []got{{"b\xff.ndjson", 1, "x", ""}})
}

// TestProgress: a source over regular files says how far it has read, in
// bytes of the files as they lie on disk (compressed for .gz), so a long
// run can show a percentage and an ETA; over stdin alone it says nothing.
func TestProgress(t *testing.T) {
	dir := t.TempDir()
	var plain, zipped strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&plain, `{"n":%d,"pad":"%s"}`+"\n", i, strings.Repeat("x", i%50))
		fmt.Fprintf(&zipped, `{"z":%d}`+"\n", i)
	}
	write(t, filepath.Join(dir, "a.ndjson"), plain.String(), false)
	write(t, filepath.Join(dir, "b.ndjson.gz"), zipped.String(), true)
	write(t, filepath.Join(dir, "c.ndjson"), "", false)
	var total int64
	for _, n := range []string{"a.ndjson", "b.ndjson.gz", "c.ndjson"} {
		st, err := os.Stat(filepath.Join(dir, n))
		mustOK(t, err)
		total += st.Size()
	}
	s, err := New("src", []string{filepath.Join(dir, "*")}, 1000, 0)
	mustOK(t, err)
	s.bufSize = 4096 // so the first batch does not take the whole file
	want := func(done int64, finished bool) {
		t.Helper()
		got := s.Progress()
		if len(got) != 1 || got[0].Partition != "src" || got[0].Done != done || got[0].Total != total || got[0].Finished != finished {
			t.Fatalf("progress %+v, want src %d of %d, finished %v", got, done, total, finished)
		}
	}
	want(0, false)
	b, ack, err := s.ReadBatch(context.Background())
	mustOK(t, err)
	ack(nil)
	if p := s.Progress(); len(b.Messages) != 1000 || p[0].Done <= 0 || p[0].Done >= int64(plain.Len()) {
		t.Fatalf("after %d lines of a.ndjson: %+v", len(b.Messages), p)
	}
	readAll(t, s)
	want(total, true)

	stdin, err := New("in", []string{"-"}, 10, 0)
	mustOK(t, err)
	if p := stdin.Progress(); p != nil {
		t.Errorf("stdin: progress %+v, want none", p)
	}
}

// TestBatchBoundedByBytes: a file of long lines is handed on in batches of
// about maxBatchBytes, not batch_size lines: a batch stays in memory until
// its records are written, so 1,000 lines of 3 MiB in one batch would hold
// 3 GB. Every line is still read, once and in order.
func TestBatchBoundedByBytes(t *testing.T) {
	dir := t.TempDir()
	line := strings.Repeat("x", 3<<20)
	var in strings.Builder
	for range 10 {
		in.WriteString(line + "\n")
	}
	write(t, filepath.Join(dir, "a.ndjson"), in.String(), false)
	s, err := New("src", []string{filepath.Join(dir, "*")}, 1000, 0)
	mustOK(t, err)
	lines := 0
	for {
		b, ack, err := s.ReadBatch(context.Background())
		if err == io.EOF {
			break
		}
		mustOK(t, err)
		size := 0
		for _, m := range b.Messages {
			size += len(m.Data)
			lines++
			if m.Pos.Offset != int64(lines) {
				t.Fatalf("line %d at position %d", lines, m.Pos.Offset)
			}
		}
		// 8 MiB, plus the line that crossed it.
		if bound := 8<<20 + len(line); size > bound {
			t.Errorf("a batch of %d lines holds %d bytes, over %d", len(b.Messages), size, bound)
		}
		ack(nil)
	}
	if lines != 10 {
		t.Errorf("%d lines read, want 10", lines)
	}
}

// errAfter is a context whose Err turns to Canceled after its first n
// calls: the moment a reader looks again, without timing.
type errAfter struct {
	context.Context
	n int
}

func (c *errAfter) Err() error {
	if c.n > 0 {
		c.n--
		return nil
	}
	return context.Canceled
}

// TestBlankLinesDoNotHoldShutdown: a file of blank lines is read with an
// eye on ctx. 2 GiB of "\n" in a .gz once held SIGTERM for 70 s, past
// shutdown_timeout, because only non-blank lines end a batch.
func TestBlankLinesDoNotHoldShutdown(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.ndjson.gz"), strings.Repeat("\n", 1<<20)+`{"a":1}`+"\n", true)
	s, err := New("src", []string{filepath.Join(dir, "a.ndjson.gz")}, 10, 100)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := s.ReadBatch(&errAfter{Context: context.Background(), n: 1})
	if !errors.Is(err, context.Canceled) || len(b.Messages) != 0 {
		t.Fatalf("ReadBatch after ctx ended = %d messages, %v; want context.Canceled", len(b.Messages), err)
	}
}
