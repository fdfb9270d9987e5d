package objstore

import (
	"bytes"
	"testing"
)

// TestGrowRowsKeepsRows: growing keeps the rows in order, in a slice of a
// pool's size at most twice what they need (or the smallest size), and a
// slice larger than the pools' is still made.
func TestGrowRowsKeepsRows(t *testing.T) {
	var data, want []byte
	for i := range 20000 {
		row := bytes.Repeat([]byte{byte(i)}, i%700+1)
		data = growRows(data, len(row))
		if cap(data)-len(data) < len(row) {
			t.Fatalf("row %d: no room for %d bytes in %d/%d", i, len(row), len(data), cap(data))
		}
		data = append(data, row...)
		want = append(want, row...)
		if c := cap(data); c&(c-1) != 0 && c <= 1<<maxRowBufShift || c > 2*len(data) && c > 1<<minRowBufShift {
			t.Fatalf("row %d: capacity %d for %d bytes", i, c, len(data))
		}
	}
	if !bytes.Equal(data, want) {
		t.Fatal("rows changed while growing")
	}
	releaseRows(data)
	big := growRows(nil, 5<<20)
	if cap(big) < 5<<20 {
		t.Fatalf("capacity %d for 5 MiB", cap(big))
	}
	releaseRows(big) // not a pool's size: dropped
}
