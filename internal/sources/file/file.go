// Package file is the file source: local files, globs, .gz files and stdin
// ("-"), one message per line. A position is the file path and the line
// number, so re-reading a file yields the same positions (and the sinks
// recognise its records as already written), and the lines' arrival time is
// the file's modification time, so a re-run produces the same objects byte
// for byte. Stdin's partition is "stdin-" and the time the run opened it.
//
// # Bad input
//
// One bad file never stops the source. What cannot be read goes on as a
// message with a [record.ReadError], which the pipeline files in the error
// output (code Sluice.ReadFailed), and the source goes on with the next
// file:
//
//   - a path that cannot be opened (a dangling symlink, a symlink loop, no
//     permission) or is a directory: one error record at line 0, the file
//     as a whole;
//   - a read that fails part way (a truncated or corrupt .gz, a .gz that is
//     not gzip, an I/O error): the lines before it are read as usual, and
//     the rest is one error record at the first line not read, holding the
//     bytes of that line read so far;
//   - a line longer than max_line_bytes: one error record at its line
//     number, holding its first max_line_bytes bytes; the rest of the line
//     is skipped, so memory stays bounded.
//
// These positions depend only on the file, so a re-run files the same error
// records under the same names and the sinks recognise them as written.
//
// # Streams
//
// Stdin and other paths that are not regular files (a FIFO) may block for
// as long as their writer is quiet. They are read in a goroutine, one read
// at a time and only when the source asks, so that ReadBatch hands on a
// partial batch once batch_linger has passed since its first line, and
// returns what it has at once when its context ends (shutdown). Regular
// files are read to their current end and closed: the source does not
// follow a growing file, and hands on the partial batch at its end.
package file

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/checkpoint"
	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/sources"
)

var (
	_ sources.Source           = (*Source)(nil)
	_ sources.Checkpointer     = (*Source)(nil)
	_ sources.ErrReporter      = (*Source)(nil)
	_ sources.ProgressReporter = (*Source)(nil)
)

// Defaults for the settings with setters.
const (
	DefaultLinger       = 200 * time.Millisecond
	DefaultMaxLineBytes = 16 << 20
)

// maxBatchBytes ends a batch early once its lines hold this many bytes, so
// a file of long lines (up to max_line_bytes each) does not put batch_size
// of them in memory at once: a batch in flight is held until its records
// are written, and each long line has copies downstream (decode, error
// records) of its own.
const maxBatchBytes = 8 << 20

// errIsDir is the reason a directory matched by a path or glob is filed
// as unreadable: a directory is not an input.
var errIsDir = errors.New("is a directory, not a file")

// Source reads files in order, one after the other.
type Source struct {
	name      string
	paths     []string
	batchSize int
	maxPend   int64
	linger    time.Duration
	maxLine   int
	bufSize   int
	stdin     io.Reader
	log       *zap.Logger

	onWait   func()
	cur      *openFile
	next     int
	trackers map[string]*checkpoint.Tracker
	order    []string

	// Progress over the regular files, in bytes as they lie on disk:
	// sizes[i] of paths[i] when New saw a regular file there, their sum,
	// the bytes of the files done and those read of the current one.
	// Progress reads the counters from another goroutine.
	sizes    []int64
	total    int64
	doneSize atomic.Int64
	curRead  atomic.Int64
}

type openFile struct {
	path    string
	size    int64  // as New saw it; 0 for a stream
	part    string // the position's partition: the path, or stdin's run identity
	f       io.Closer
	r       *bufio.Reader
	pump    *pump // set for streams (stdin, FIFOs)
	line    int64
	arrival time.Time
	tracker *checkpoint.Tracker

	// pend gathers a line that spans reads: its first maxLine bytes;
	// pendLen is its whole length, and extra says whether a byte past the
	// first maxLine is not part of the line's end ("\r\n"), which makes
	// the line over-long.
	pend    []byte
	pendLen int
	extra   bool
	// failed is a whole-file failure, handed on as the file's only message.
	failed *record.Message
	done   bool
}

// New expands the globs in paths (each must match at least one file) and
// returns a source over the files, in the order given, globs sorted.
func New(name string, paths []string, batchSize, maxPending int) (*Source, error) {
	s := &Source{name: name, batchSize: batchSize, maxPend: int64(maxPending), linger: DefaultLinger, maxLine: DefaultMaxLineBytes, bufSize: 1 << 20,
		stdin: os.Stdin, log: zap.NewNop(), trackers: map[string]*checkpoint.Tracker{}}
	for _, p := range paths {
		if p == "-" {
			s.paths = append(s.paths, p)
			continue
		}
		matches, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("source %s: bad glob %q: %w", name, p, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("source %s: no file matches %q", name, p)
		}
		sort.Strings(matches)
		s.paths = append(s.paths, matches...)
	}
	s.sizes = make([]int64, len(s.paths))
	for i, p := range s.paths {
		if st, err := os.Stat(p); p != "-" && err == nil && st.Mode().IsRegular() {
			s.sizes[i] = st.Size()
			s.total += st.Size()
		}
	}
	return s, nil
}

// Progress says how far the source has read its regular files, as one
// entry in bytes (compressed bytes for .gz); nothing when it reads only
// streams, whose end is unknown.
func (s *Source) Progress() []sources.PartitionProgress {
	if s.total == 0 {
		return nil
	}
	done := min(s.doneSize.Load()+s.curRead.Load(), s.total)
	return []sources.PartitionProgress{{Partition: s.name, Done: done, Total: s.total, Finished: done == s.total}}
}

// Unmatched returns the paths (globs) that match no file here and now: what
// `processor validate` warns about, and what makes New fail.
func Unmatched(paths []string) []string {
	var out []string
	for _, p := range paths {
		if p == "-" {
			continue
		}
		if m, err := filepath.Glob(p); err == nil && len(m) == 0 {
			out = append(out, p)
		}
	}
	return out
}

// OnWait sets the hook called while reading waits at the pending cap.
func (s *Source) OnWait(f func()) { s.onWait = f }

// SetLinger sets how long a stream's partial batch waits for more lines
// before it is handed on (batch_linger).
func (s *Source) SetLinger(d time.Duration) { s.linger = d }

// SetMaxLineBytes sets the longest line kept whole (max_line_bytes); a
// longer one goes to the error output with its first n bytes.
func (s *Source) SetMaxLineBytes(n int) {
	if n > 0 {
		s.maxLine = n
	}
}

// SetLogger sets the logger that warns about unreadable input.
func (s *Source) SetLogger(log *zap.Logger) { s.log = log }

// Paths returns the expanded file list.
func (s *Source) Paths() []string { return s.paths }

func (s *Source) open() {
	path := s.paths[s.next]
	of := &openFile{path: path, part: path, size: s.sizes[s.next], f: io.NopCloser(nil)}
	s.next++
	of.tracker = checkpoint.New(s.maxPend)
	if s.onWait != nil {
		of.tracker.OnWait(s.onWait)
	}
	s.trackers[path] = of.tracker
	s.order = append(s.order, path)
	s.cur = of
	if path == "-" {
		of.arrival = time.Now().UTC()
		// Stdin has no name that survives the run: each run is a new
		// partition, so a second run with other input is never taken for
		// a re-delivery of the first.
		of.part = "stdin-" + of.arrival.Format("20060102T150405.000000000Z")
		stdin := s.stdin
		of.pump = &pump{open: func() (io.Reader, io.Closer, error) { return stdin, nil, nil }, unblock: stdin}
		of.r = bufio.NewReaderSize(of.pump, s.bufSize)
		return
	}
	st, err := os.Stat(path)
	if err == nil && st.IsDir() {
		err = errIsDir
	}
	if err != nil {
		s.failFile(of, err)
		return
	}
	of.arrival = st.ModTime().UTC().Truncate(time.Millisecond)
	gz := strings.HasSuffix(path, ".gz")
	if !st.Mode().IsRegular() {
		// A FIFO or a device: even opening it may block until a writer
		// comes, so the pump opens it too. A failure shows as a read
		// failure from line 1.
		of.pump = &pump{open: func() (io.Reader, io.Closer, error) { return openPath(path, gz) }}
		of.r = bufio.NewReaderSize(of.pump, s.bufSize)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		s.failFile(of, err)
		return
	}
	of.f = f
	var r io.Reader = &countingReader{r: f, n: &s.curRead, max: of.size}
	if gz {
		zr, err := gzip.NewReader(r)
		if err != nil {
			// Not gzip, or cut inside the header: nothing of it can be read.
			of.failed = s.readFailed(of, nil, err)
			of.done = true
			return
		}
		r = zr
	}
	of.r = bufio.NewReaderSize(r, s.bufSize)
}

// openPath opens a file, through gzip if gz.
func openPath(path string, gz bool) (io.Reader, io.Closer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, reason(err)
	}
	if !gz {
		return f, f, nil
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, f, err
	}
	return zr, f, nil
}

// reason drops the path from an *fs.PathError: the error record names the
// file already.
func reason(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// failFile records that the file as a whole could not be opened: one
// error record at line 0. Its arrival time is the path's own modification
// time (the link's, for a symlink), so a re-run names it the same way.
func (s *Source) failFile(of *openFile, err error) {
	if st, lerr := os.Lstat(of.path); lerr == nil {
		of.arrival = st.ModTime().UTC().Truncate(time.Millisecond)
	} else {
		of.arrival = time.Unix(0, 0).UTC()
	}
	rerr := &record.ReadError{Partition: of.path, Err: reason(err)}
	of.failed = &record.Message{Pos: record.Position{Partition: of.part}, Arrival: of.arrival, Err: rerr}
	of.done = true
	s.countFailure(rerr)
}

// readFailed returns the error record for a read that failed at the line
// after of.line: it holds the bytes of that line read so far and stands
// for the rest of the file.
func (s *Source) readFailed(of *openFile, data []byte, err error) *record.Message {
	of.line++
	rerr := &record.ReadError{Partition: of.path, First: of.line, Last: -1, Err: reason(err)}
	s.countFailure(rerr)
	return &record.Message{Data: bytes.Clone(data), Pos: record.Position{Partition: of.part, Offset: of.line}, Arrival: of.arrival, Err: rerr}
}

func (s *Source) countFailure(err *record.ReadError) {
	metrics.SourceReadFailed.WithLabelValues(s.name).Inc()
	s.log.Warn("input not readable, sent to the error output", zap.String("source", s.name), zap.Error(err))
}

// ReadBatch returns up to batch_size lines of the current file: fewer at
// the end of a file, once batch_linger has passed on a stream, or when ctx
// ends while a stream read waits.
func (s *Source) ReadBatch(ctx context.Context) (record.Batch, record.AckFunc, error) {
	for {
		if err := ctx.Err(); err != nil {
			return record.Batch{}, nil, err
		}
		if s.cur == nil {
			if s.next >= len(s.paths) {
				return record.Batch{}, nil, io.EOF
			}
			s.open()
		}
		b, err := s.readLines(ctx)
		if err != nil {
			return record.Batch{}, nil, err
		}
		if len(b.Messages) == 0 {
			s.closeCur()
			continue
		}
		of := s.cur
		last := b.Messages[len(b.Messages)-1].Pos.Offset
		rng, err := of.tracker.Track(ctx, last, len(b.Messages))
		if err != nil {
			return record.Batch{}, nil, err
		}
		pending := metrics.SourcePending.WithLabelValues(s.name)
		pending.Add(float64(len(b.Messages)))
		n := float64(len(b.Messages))
		// A Linux file name may be any bytes; the Prometheus client
		// panics on a label that is not valid UTF-8.
		ckpt := metrics.Checkpoint.WithLabelValues(s.name, strings.ToValidUTF8(of.path, "\uFFFD"))
		return b, func(err error) {
			rng.Ack(err)
			pending.Sub(n)
			if pos, ok := of.tracker.Checkpoint(); ok {
				ckpt.Set(float64(pos))
			}
		}, nil
	}
}

// readLines reads the next batch of non-empty lines of the current file;
// an empty batch means the file is done. A final line without a newline
// counts. It returns an error only when ctx ended before any line came.
func (s *Source) readLines(ctx context.Context) (record.Batch, error) {
	of := s.cur
	b := record.Batch{Source: s.name}
	if of.failed != nil {
		b.Messages = []record.Message{*of.failed}
		of.failed = nil
		return b, nil
	}
	if of.done {
		return b, nil
	}
	if of.pump != nil {
		of.pump.ctx, of.pump.deadline = ctx, time.Time{}
	}
	b.Messages = make([]record.Message, 0, s.batchSize)
	slab := make([]byte, 0, min(512*s.batchSize, maxBatchBytes))
	size, sized := 0, 0
	full := func() bool {
		for ; sized < len(b.Messages); sized++ {
			size += len(b.Messages[sized].Data)
		}
		return len(b.Messages) >= s.batchSize || size >= maxBatchBytes
	}
	for reads := 1; !full(); reads++ {
		// Stdin and FIFOs are read through a pump that watches ctx; a
		// regular file is looked at every 1,024 reads, so that a run of
		// blank lines (2 GiB of "\n" in a .gz held SIGTERM for 70 s) or
		// one over-long line cannot hold shutdown. A line cut short is
		// left for the next run, which reads on from the checkpoint.
		if reads%1024 == 0 && of.pump == nil && ctx.Err() != nil {
			if len(b.Messages) == 0 {
				return b, ctx.Err()
			}
			return b, nil
		}
		line, err := of.r.ReadSlice('\n')
		if err == nil && of.pendLen == 0 {
			s.addLine(of, &b, &slab, line, false)
			s.startLinger(of, &b)
			continue
		}
		of.gather(line, s.maxLine)
		switch {
		case err == nil:
			s.endLine(of, &b, &slab)
		case errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, errLinger):
			if len(b.Messages) > 0 {
				return b, nil
			}
		case errors.Is(err, errStopped):
			// Shutdown: hand on what was read, a line cut short included;
			// nothing more is read from this stream in this run.
			if of.pendLen > 0 {
				s.endLine(of, &b, &slab)
			}
			if len(b.Messages) == 0 {
				return b, ctx.Err()
			}
			return b, nil
		case err == io.EOF:
			if of.pendLen > 0 {
				s.endLine(of, &b, &slab)
			}
			of.done = true
			return b, nil
		default:
			b.Messages = append(b.Messages, *s.readFailed(of, of.pend, err))
			of.pend, of.pendLen, of.extra = nil, 0, false
			of.done = true
			return b, nil
		}
		s.startLinger(of, &b)
	}
	// Messages point into slab; if it grew, earlier ones point at the old
	// array, which stays valid (append copies, never frees).
	return b, nil
}

// startLinger starts a stream's linger once its batch has a line.
func (s *Source) startLinger(of *openFile, b *record.Batch) {
	if of.pump != nil && of.pump.deadline.IsZero() && len(b.Messages) > 0 {
		of.pump.deadline = time.Now().Add(s.linger)
	}
}

// gather adds part of a line that spans reads, keeping at most maxLine
// bytes of it.
func (of *openFile) gather(part []byte, maxLine int) {
	of.pendLen += len(part)
	if room := maxLine - len(of.pend); room > 0 {
		k := min(room, len(part))
		of.pend = append(of.pend, part[:k]...)
		part = part[k:]
	}
	if !of.extra && len(bytes.Trim(part, "\r\n")) > 0 {
		of.extra = true
	}
}

// endLine hands on the gathered line.
func (s *Source) endLine(of *openFile, b *record.Batch, slab *[]byte) {
	s.addLine(of, b, slab, of.pend, of.extra)
	of.pend, of.pendLen, of.extra = of.pend[:0], 0, false
	if cap(of.pend) > 1<<20 {
		of.pend = nil // do not hold on to an over-long line's buffer
	}
}

// addLine adds one line as a message: line is the whole line, or its
// first max_line_bytes bytes when over says the rest makes it longer.
// Empty and blank lines are skipped, and a line longer than max_line_bytes
// (without its "\r\n") goes on as a read failure with its first
// max_line_bytes bytes.
func (s *Source) addLine(of *openFile, b *record.Batch, slab *[]byte, line []byte, over bool) {
	of.line++
	data := bytes.TrimRight(line, "\r\n")
	if over || len(data) > s.maxLine {
		rerr := &record.ReadError{Partition: of.path, First: of.line, Last: of.line,
			Err: fmt.Errorf("line longer than max_line_bytes (%d bytes): only its first %d bytes are kept", s.maxLine, s.maxLine)}
		s.countFailure(rerr)
		b.Messages = append(b.Messages, record.Message{Data: bytes.Clone(line[:min(len(line), s.maxLine)]),
			Pos: record.Position{Partition: of.part, Offset: of.line}, Arrival: of.arrival, Err: rerr})
		return
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return
	}
	start := len(*slab)
	*slab = append(*slab, data...)
	b.Messages = append(b.Messages, record.Message{
		Data:    (*slab)[start:len(*slab):len(*slab)],
		Pos:     record.Position{Partition: of.part, Offset: of.line},
		Arrival: of.arrival,
	})
}

func (s *Source) closeCur() {
	if s.cur.pump != nil {
		s.cur.pump.close()
	}
	s.cur.f.Close()
	// The file counts whole once done, however much of it was read (a
	// failed file, one that shrank); curRead first, so Progress never
	// counts it twice.
	s.curRead.Store(0)
	s.doneSize.Add(s.cur.size)
	s.cur = nil
}

// countingReader counts the bytes read from a file into n, at most max:
// a file that grew after New counts as its size then.
type countingReader struct {
	r    io.Reader
	n    *atomic.Int64
	max  int64
	read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	if add := min(int64(k), c.max-c.read); add > 0 {
		c.read += add
		c.n.Add(add)
	}
	return k, err
}

// Checkpoints returns, per file in read order, the last line whose
// records, and all before them, are durably written.
func (s *Source) Checkpoints() []string {
	var out []string
	for _, p := range s.order {
		pos, ok := s.trackers[p].Checkpoint()
		if !ok {
			out = append(out, p+": none")
			continue
		}
		out = append(out, p+": line "+strconv.FormatInt(pos, 10))
	}
	return out
}

// Err returns the first ack failure on any file.
func (s *Source) Err() error {
	for _, p := range s.order {
		if err := s.trackers[p].Err(); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the current file.
func (s *Source) Close(context.Context) error {
	if s.cur != nil {
		s.closeCur()
	}
	return nil
}

var (
	// errLinger is what a stream read returns once batch_linger has passed.
	errLinger = errors.New("batch_linger passed")
	// errStopped is what a stream read returns once ReadBatch's context
	// has ended.
	errStopped = errors.New("read stopped")
)

// pump reads a stream that may block (stdin, a FIFO) in a goroutine, so
// that a read can be given up on. It reads only when asked, one read at a
// time, so nothing is taken from the stream that the source did not ask
// for. A read that the operating system cannot interrupt (a blocking
// stdin) stays parked in the goroutine after close; the process exits past
// it.
//
// ctx and deadline are set by readLines before each batch; Read is called
// from the source's goroutine only.
type pump struct {
	open    func() (io.Reader, io.Closer, error)
	unblock any // the stream, if it can be given a read deadline

	ctx      context.Context
	deadline time.Time

	started  bool
	inflight bool
	want     chan struct{}
	got      chan chunk
	quit     chan struct{}
	rest     []byte
	err      error

	mu     sync.Mutex
	closer io.Closer
	closed bool
}

type chunk struct {
	data []byte
	err  error
}

func (p *pump) run() {
	r, c, err := p.open()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		if c != nil {
			c.Close()
		}
		return
	}
	p.closer = c
	if p.unblock == nil && c != nil {
		p.unblock = c
	}
	p.mu.Unlock()
	for {
		select {
		case <-p.want:
		case <-p.quit:
			return
		}
		var ch chunk
		if err != nil {
			ch.err = err
		} else {
			buf := make([]byte, 64<<10)
			n, rerr := r.Read(buf)
			ch = chunk{buf[:n], rerr}
		}
		select {
		case p.got <- ch:
		case <-p.quit:
			return
		}
		if ch.err != nil {
			return
		}
	}
}

// Read returns the stream's next bytes, errLinger once the deadline (if
// set) passes, or errStopped once ctx ends.
func (p *pump) Read(b []byte) (int, error) {
	if len(p.rest) > 0 {
		n := copy(b, p.rest)
		p.rest = p.rest[n:]
		return n, nil
	}
	if p.err != nil {
		return 0, p.err
	}
	if !p.started {
		p.started = true
		p.want, p.got, p.quit = make(chan struct{}, 1), make(chan chunk), make(chan struct{})
		go p.run()
	}
	if !p.inflight {
		p.want <- struct{}{}
		p.inflight = true
	}
	var timeout <-chan time.Time
	if !p.deadline.IsZero() {
		t := time.NewTimer(time.Until(p.deadline))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case c := <-p.got:
		p.inflight = false
		n := copy(b, c.data)
		p.rest = c.data[n:]
		if c.err != nil {
			p.err = c.err
			if len(p.rest) == 0 {
				return n, c.err
			}
		}
		return n, nil
	case <-timeout:
		return 0, errLinger
	case <-p.ctx.Done():
		return 0, errStopped
	}
}

// close stops the goroutine: a parked read ends if the stream takes read
// deadlines (pipes, FIFOs) or when the stream is closed.
func (p *pump) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	if p.quit != nil {
		close(p.quit)
	}
	if u, ok := p.unblock.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = u.SetReadDeadline(time.Unix(1, 0))
	}
	if p.closer != nil {
		p.closer.Close()
	}
}
