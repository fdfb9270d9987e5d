package objstore

import (
	"math"
	"sync"
	"time"
)

// limiter sets how many objects a sink encodes and writes at once.
//
// A flush worker's time on an object has two parts: work (reading the
// spill, encoding, handing bytes to the store) and wait (the store making
// the object durable: a PUT's round trip, an fsync). Only work needs a
// CPU. To keep cpus encoders busy, Little's law asks for
//
//	limit = cpus × (work + wait) / work
//
// objects in flight: with 2 CPUs, 3 ms of encoding and a 25 ms PUT, 19;
// with a local disk whose fsync takes as long as the encoding, 4. Both
// parts are moving averages of the objects written, so the limit follows
// the store: it rises when PUTs slow down and falls back when they speed
// up. CPU contention lengthens work and so lowers the limit, where more
// objects in flight would only cost memory. The limit stays between
// min(cpus, most) and most (the sink's concurrency).
//
// Memory bounds it too: an object in flight holds its rows and, while the
// store has them, its encoded bytes (a single-part PUT sends its body at
// once), both counted in the sink's flying bytes under
// max_buffered_bytes. An object handed over starts only while those are
// under that budget, or when no other is being written.
//
// A worker takes a slot (acquire) before it takes an object, so a flush
// waits while every slot is busy, and that wait reaches the appends; then
// it starts the object (start), which waits for memory, and gives the
// slot back when the object is written (release) or if there was none
// (cancel).
type limiter struct {
	most, least int
	cpus        float64
	// room reports whether memory has room for another object in flight.
	room func() bool

	mu      sync.Mutex
	freed   *sync.Cond // signalled when a slot is given back
	active  int        // workers holding a slot
	writing int        // of those, the ones that started an object
	limit   int
	work    float64 // moving averages, seconds
	wait    float64
	seen    bool // work and wait hold at least one sample
	peak    int  // most objects written at once
	onSet   func(limit int)
}

// limiterWeight is the weight of a new sample in the moving averages:
// about the last 8 objects count.
const limiterWeight = 0.125

// minWork keeps the ratio finite for objects that take no measurable work.
const minWork = 50 * time.Microsecond

func newLimiter(most, cpus int, room func() bool, onSet func(int)) *limiter {
	most = max(most, 1)
	least := min(max(cpus, 1), most)
	l := &limiter{most: most, least: least, cpus: float64(max(cpus, 1)), room: room, limit: least, onSet: onSet}
	l.freed = sync.NewCond(&l.mu)
	if onSet != nil {
		onSet(l.limit)
	}
	return l
}

// acquire waits for a slot: fewer than limit held.
func (l *limiter) acquire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.active >= l.limit {
		l.freed.Wait()
	}
	l.active++
}

// start waits until memory has room for the object taken, or no other
// is being written.
func (l *limiter) start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.writing > 0 && !l.room() {
		l.freed.Wait()
	}
	l.writing++
	l.peak = max(l.peak, l.writing)
}

// release gives back the slot of a written object; work and wait, when
// positive, are its two parts.
func (l *limiter) release(work, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active--
	l.writing--
	if work > 0 || wait > 0 {
		l.observe(max(work, minWork).Seconds(), max(wait, 0).Seconds())
	}
	l.freed.Broadcast()
}

// cancel gives back a slot that got no object.
func (l *limiter) cancel() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active--
	l.freed.Broadcast()
}

func (l *limiter) observe(work, wait float64) {
	if !l.seen {
		l.work, l.wait, l.seen = work, wait, true
	} else {
		l.work += limiterWeight * (work - l.work)
		l.wait += limiterWeight * (wait - l.wait)
	}
	limit := int(math.Round(l.cpus * (l.work + l.wait) / l.work))
	limit = min(max(limit, l.least), l.most)
	if limit != l.limit {
		l.limit = limit
		if l.onSet != nil {
			l.onSet(limit)
		}
	}
}

// state returns the current limit and the most objects written at once.
func (l *limiter) state() (limit, peak int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit, l.peak
}
