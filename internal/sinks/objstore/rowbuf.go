package objstore

import (
	"math/bits"
	"sync"
)

// Buffers' rows live in byte slices of power-of-two capacities, from
// minRowBuf to maxRowBuf, pooled by capacity: a buffer grows by taking the
// next size from its pool and gives the old slice back, and a written
// buffer gives its slice back for the next one. Appending to a plain
// slice grows large ones by a quarter at a time, so a 300 KiB buffer was
// reallocated and copied a dozen times, and every new buffer started from
// nothing: the bench run allocated 2 GB for 0.45 GB of rows. A slice's
// capacity is at most twice its rows (or minRowBuf), as append's was.
const (
	minRowBufShift = 8  // 256 B: small buffers stay small, as the memory caps count capacity
	maxRowBufShift = 22 // 4 MiB; larger slices are allocated and dropped
)

var rowBufPools [maxRowBufShift - minRowBufShift + 1]sync.Pool // of *[]byte

// rowBufClass returns the pool index and capacity for n bytes; ok is false
// past maxRowBuf.
func rowBufClass(n int) (class, size int, ok bool) {
	shift := minRowBufShift
	if n > 1<<minRowBufShift {
		shift = bits.Len(uint(n - 1))
	}
	if shift > maxRowBufShift {
		return 0, n, false
	}
	return shift - minRowBufShift, 1 << shift, true
}

// growRows returns data, or a copy of it in a larger slice, with room for
// n more bytes; a slice it leaves goes back to its pool.
func growRows(data []byte, n int) []byte {
	need := len(data) + n
	if need <= cap(data) {
		return data
	}
	if need < 2*cap(data) {
		need = 2 * cap(data)
	}
	var out []byte
	class, size, ok := rowBufClass(need)
	if ok {
		if p, _ := rowBufPools[class].Get().(*[]byte); p != nil {
			out = (*p)[:0]
		}
	}
	if out == nil {
		out = make([]byte, 0, size)
	}
	out = append(out, data...)
	releaseRows(data)
	return out
}

// releaseRows gives a slice that nothing refers to any more back to its
// pool.
func releaseRows(data []byte) {
	c := cap(data)
	if c < 1<<minRowBufShift || c&(c-1) != 0 {
		return // not one of the pools' sizes
	}
	if class, _, ok := rowBufClass(c); ok {
		data = data[:0]
		rowBufPools[class].Put(&data)
	}
}
