// Package file is the file source: local files, globs, .gz files and stdin
// ("-"), one message per line. A position is the file path and the line
// number, so re-reading a file yields the same positions (and the sinks
// recognise its records as already written), and the lines' arrival time is
// the file's modification time, so a re-run produces the same objects byte
// for byte. Stdin's partition is "stdin-" and the time the run opened it.
package file

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-data/sluice/internal/checkpoint"
	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/sources"
)

var _ sources.Source = (*Source)(nil)

// Source reads files in order, one after the other.
type Source struct {
	name      string
	paths     []string
	batchSize int
	maxPend   int64
	stdin     io.Reader

	onWait   func()
	cur      *openFile
	next     int
	trackers map[string]*checkpoint.Tracker
	order    []string
}

type openFile struct {
	path    string
	part    string // the position's partition: the path, or stdin's run identity
	f       io.Closer
	r       *bufio.Reader
	line    int64
	arrival time.Time
	tracker *checkpoint.Tracker
}

// New expands the globs in paths (each must match at least one file) and
// returns a source over the files, in the order given, globs sorted.
func New(name string, paths []string, batchSize, maxPending int) (*Source, error) {
	s := &Source{name: name, batchSize: batchSize, maxPend: int64(maxPending), stdin: os.Stdin, trackers: map[string]*checkpoint.Tracker{}}
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
	return s, nil
}

// OnWait sets the hook called while reading waits at the pending cap.
func (s *Source) OnWait(f func()) { s.onWait = f }

// Paths returns the expanded file list.
func (s *Source) Paths() []string { return s.paths }

func (s *Source) open() error {
	path := s.paths[s.next]
	s.next++
	of := &openFile{path: path, part: path}
	var r io.Reader
	if path == "-" {
		r, of.arrival = s.stdin, time.Now().UTC()
		of.f = io.NopCloser(nil)
		// Stdin has no name that survives the run: each run is a new
		// partition, so a second run with other input is never taken for
		// a re-delivery of the first.
		of.part = "stdin-" + of.arrival.Format("20060102T150405.000000000Z")
	} else {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("source %s: %w", s.name, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("source %s: %w", s.name, err)
		}
		of.f, r, of.arrival = f, f, st.ModTime().UTC().Truncate(time.Millisecond)
		if strings.HasSuffix(path, ".gz") {
			zr, err := gzip.NewReader(f)
			if err != nil {
				f.Close()
				return fmt.Errorf("source %s: %s: %w", s.name, path, err)
			}
			r = zr
		}
	}
	of.r = bufio.NewReaderSize(r, 1<<20)
	of.tracker = checkpoint.New(s.maxPend)
	if s.onWait != nil {
		of.tracker.OnWait(s.onWait)
	}
	s.trackers[path] = of.tracker
	s.order = append(s.order, path)
	s.cur = of
	return nil
}

// ReadBatch returns up to batch_size lines of the current file.
func (s *Source) ReadBatch(ctx context.Context) (record.Batch, record.AckFunc, error) {
	for {
		if err := ctx.Err(); err != nil {
			return record.Batch{}, nil, err
		}
		if s.cur == nil {
			if s.next >= len(s.paths) {
				return record.Batch{}, nil, io.EOF
			}
			if err := s.open(); err != nil {
				return record.Batch{}, nil, err
			}
		}
		b, err := s.readLines()
		if err != nil {
			return record.Batch{}, nil, err
		}
		if len(b.Messages) == 0 {
			s.cur.f.Close()
			s.cur = nil
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
		ckpt := metrics.Checkpoint.WithLabelValues(s.name, of.path)
		return b, func(err error) {
			rng.Ack(err)
			pending.Sub(n)
			if pos, ok := of.tracker.Checkpoint(); ok {
				ckpt.Set(float64(pos))
			}
		}, nil
	}
}

// readLines reads the next batch of non-empty lines of the current file. A
// final line without a newline counts.
func (s *Source) readLines() (record.Batch, error) {
	of := s.cur
	b := record.Batch{Source: s.name, Messages: make([]record.Message, 0, s.batchSize)}
	slab := make([]byte, 0, 512*s.batchSize)
	for len(b.Messages) < s.batchSize {
		line, err := of.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the reader's buffer: gather it whole.
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = of.r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(line) > 0 {
			of.line++
			data := bytes.TrimRight(line, "\r\n")
			if len(bytes.TrimSpace(data)) > 0 {
				start := len(slab)
				slab = append(slab, data...)
				b.Messages = append(b.Messages, record.Message{
					Data:    slab[start:len(slab):len(slab)],
					Pos:     record.Position{Partition: of.part, Offset: of.line},
					Arrival: of.arrival,
				})
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return b, fmt.Errorf("source %s: read %s line %d: %w", s.name, of.path, of.line+1, err)
		}
	}
	// Messages point into slab; if it grew, earlier ones point at the old
	// array, which stays valid (append copies, never frees).
	return b, nil
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
		s.cur.f.Close()
		s.cur = nil
	}
	return nil
}
