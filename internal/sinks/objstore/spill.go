package objstore

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// errSpillFull says the spill holds max_spill_bytes already.
var errSpillFull = errors.New("spill full")

const (
	// spillWriteAt is how much a segment gathers before writing it out:
	// a cold partition spills a few rows at a time.
	spillWriteAt = 1 << 20
	// spillSegment is the size at which a segment takes no more rows; it
	// is removed once every buffer it holds rows of has been flushed.
	spillSegment = 64 << 20
)

// spill holds the encoded rows of open buffers on local disk, so that
// many open lake partitions cost no memory for their rows. It is memory
// relief, not durability: its files are removed from the directory as soon
// as they are created, so they vanish with the process, and the records in
// them are unacked, so the source delivers them again after a crash.
//
// Rows go to the current segment (a file) in the order they are spilled;
// an extent says where. Appends happen under the sink's lock; reads and
// releases come from the flush workers, so the spill has its own lock.
type spill struct {
	dir   string
	max   int64
	gauge prometheus.Gauge

	mu     sync.Mutex
	cur    *segment
	segs   map[*segment]struct{}
	disk   int64 // bytes of the segments not yet removed
	failed error // set by the first I/O failure: nothing more is spilled
}

// segment is one spill file.
type segment struct {
	f       *os.File
	size    int64  // bytes appended
	written int64  // bytes in the file; [written, size) is in tail
	tail    []byte // appended, not yet written
	live    int64  // bytes of extents not yet released
}

// extent is where a run of a buffer's rows lies in the spill.
type extent struct {
	seg *segment
	off int64
	n   int64
}

func newSpill(dir string, max int64, gauge prometheus.Gauge) *spill {
	if dir == "" {
		dir = os.TempDir()
	}
	return &spill{dir: dir, max: max, gauge: gauge, segs: map[*segment]struct{}{}}
}

// write appends p, returning where it lies. It fails with errSpillFull at
// max_spill_bytes, and with the first I/O error for good: the caller
// flushes the buffer instead. p is copied or written before write returns.
func (sp *spill) write(p []byte) (extent, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.failed != nil {
		return extent{}, sp.failed
	}
	if sp.disk+int64(len(p)) > sp.max {
		return extent{}, errSpillFull
	}
	if sp.cur == nil {
		f, err := os.CreateTemp(sp.dir, "sluice-spill-*")
		if err != nil {
			sp.failed = fmt.Errorf("spill: %w", err)
			return extent{}, sp.failed
		}
		// Unlinked at once: the file lives while it is open, and a crash
		// leaves nothing behind.
		if err := os.Remove(f.Name()); err != nil {
			f.Close()
			sp.failed = fmt.Errorf("spill: %w", err)
			return extent{}, sp.failed
		}
		sp.cur = &segment{f: f}
		sp.segs[sp.cur] = struct{}{}
	}
	seg := sp.cur
	e := extent{seg: seg, off: seg.size, n: int64(len(p))}
	seg.tail = append(seg.tail, p...)
	seg.size += e.n
	seg.live += e.n
	sp.disk += e.n
	sp.gauge.Set(float64(sp.disk))
	if len(seg.tail) >= spillWriteAt || seg.size >= spillSegment {
		if _, err := seg.f.WriteAt(seg.tail, seg.written); err != nil {
			// The rows stay in tail, where reads find them.
			sp.failed = fmt.Errorf("spill: %w", err)
			return e, nil
		}
		seg.written = seg.size
		seg.tail = seg.tail[:0]
		if seg.size >= spillSegment {
			sp.cur = nil
			seg.tail = nil
		}
	}
	return e, nil
}

// read appends the bytes of es to dst.
func (sp *spill) read(dst []byte, es []extent) ([]byte, error) {
	for _, e := range es {
		sp.mu.Lock()
		if e.off >= e.seg.written {
			i := e.off - e.seg.written
			dst = append(dst, e.seg.tail[i:i+e.n]...)
			sp.mu.Unlock()
			continue
		}
		sp.mu.Unlock()
		// Written rows never move, and the segment stays open until e is
		// released.
		n := len(dst)
		dst = append(dst, make([]byte, e.n)...)
		if _, err := e.seg.f.ReadAt(dst[n:], e.off); err != nil {
			return dst, fmt.Errorf("read spill: %w", err)
		}
	}
	return dst, nil
}

// release gives back the space of es. A segment no longer needed is
// closed, which frees its disk; the current one is emptied for reuse.
func (sp *spill) release(es []extent) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for _, e := range es {
		seg := e.seg
		seg.live -= e.n
		if seg.live > 0 {
			continue
		}
		if seg == sp.cur {
			if seg.written > 0 && seg.f.Truncate(0) != nil {
				continue // reclaimed when the segment fills and empties
			}
			sp.disk -= seg.size
			seg.size, seg.written, seg.tail = 0, 0, seg.tail[:0]
			continue
		}
		seg.f.Close()
		delete(sp.segs, seg)
		sp.disk -= seg.size
	}
	sp.gauge.Set(float64(sp.disk))
}

// close closes every segment.
func (sp *spill) close() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for seg := range sp.segs {
		seg.f.Close()
	}
	clear(sp.segs)
	sp.cur, sp.disk = nil, 0
	sp.gauge.Set(0)
}
