package objstore

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"math/bits"
)

// Dictionary encoding. A column chunk is dictionary-encoded (a PLAIN
// dictionary page, then RLE_DICTIONARY version 1 data pages: what DuckDB
// writes, and what Athena, Trino, Spark, Snowflake and parquet-mr read)
// where that makes it smaller, which each object decides per column from
// its own rows before it is written:
//
//   - A sample of the column's values (the first dictSample, fewer when an
//     early checkpoint already shows mostly distinct values) is hashed, and
//     the column is dictionary-encoded when the estimated dictionary page
//     plus index bits come to at most dictGain of its PLAIN size. Columns of
//     mostly distinct values (messages, ids, JSON) stay PLAIN and cost
//     nothing to hash past the first checkpoint.
//   - A column holding a value over dictMaxValue bytes anywhere in the
//     object is PLAIN: one such value would fill a dictionary on its own.
//   - A chunk whose dictionary outgrows dictMaxBytes falls back to PLAIN for
//     its later pages, as parquet-mr does (its dictionary page size is 1
//     MiB): parquet-go checks the dictionary when it cuts a page, and the
//     encoder cuts a page of a dictionary column at least every
//     dictCheckBytes of its values, so no dictionary passes dictMaxBytes
//     by more than dictCheckBytes plus one value.
//
// Booleans are never dictionary-encoded: PLAIN stores them as bits.
const (
	dictMaxBytes   = 1 << 20
	dictCheckBytes = 256 << 10
	dictMaxValue   = 64 << 10
	dictSample     = 4 << 10
	// dictGain is the most a dictionary encoding may cost, in quarters
	// of the PLAIN size (3: 75 %), for it to be chosen.
	dictGain = 3
	// dictPageCost is what a dictionary page adds besides its values: a
	// page header and an offset in the footer.
	dictPageCost = 32
)

// dictCheckpoints are the sample sizes at which a column whose values are
// mostly distinct stops being sampled.
var dictCheckpoints = [...]int{256, 1024}

var dictSeed = maphash.MakeSeed()

// colSample is the dictionary estimate of one column of one object.
type colSample struct {
	seen     hashSet
	n        int // sampled values
	plain    int // their PLAIN size
	distinct int // PLAIN size of the distinct ones: the dictionary page
	next     int // index in dictCheckpoints
	done     bool
	pays     bool
	maxLen   int // longest byte-array value in the whole object
}

func (s *colSample) reset() {
	s.seen.reset()
	s.n, s.plain, s.distinct, s.next, s.done, s.pays, s.maxLen = 0, 0, 0, 0, false, false, 0
}

// gain reports whether dictionary encoding of the sampled values would be
// worth it.
func (s *colSample) gain() bool {
	if s.n == 0 {
		return false
	}
	dict := s.distinct + (s.n*bits.Len(uint(s.seen.n-1))+7)/8 + dictPageCost
	return dict*4 <= s.plain*dictGain
}

// add samples one value: its hash and PLAIN size.
func (s *colSample) add(h uint64, size int) {
	s.n++
	s.plain += size
	if s.seen.add(h) {
		s.distinct += size
	}
	switch {
	case s.n == dictSample:
		s.done, s.pays = true, s.gain()
	case s.next < len(dictCheckpoints) && s.n == dictCheckpoints[s.next]:
		s.next++
		if !s.gain() {
			s.done = true
		}
	}
}

// chooseDictionaries sets f.dict: which columns of the object whose
// buffered rows are data are dictionary-encoded.
func (f *parquetFile) chooseDictionaries(data []byte) error {
	l := f.l
	ncols := len(l.cols)
	if l.extra != "" {
		ncols++
	}
	if len(f.samples) != ncols {
		f.samples = make([]colSample, ncols)
		f.dict = make([]bool, ncols)
	}
	sampling := 0
	for i := range f.samples {
		f.samples[i].reset()
		if i < len(l.cols) && l.cols[i].typ == "bool" {
			f.samples[i].done = true
			continue
		}
		sampling++
	}
	for len(data) > 0 {
		if sampling == 0 && (!f.anyDict() || f.maxRow > 0 && f.maxRow <= dictMaxValue) {
			// Every column is PLAIN whatever the rest holds, or the rest
			// is known to hold no value over dictMaxValue.
			break
		}
		n, k := binary.Uvarint(data)
		if k <= 0 || int(n) > len(data)-k {
			return errors.New("corrupt row buffer")
		}
		row := data[k : k+int(n)]
		data = data[k+int(n):]
		if sampling == 0 && len(row) <= dictMaxValue {
			// Past the samples, only a value over dictMaxValue matters.
			// (Walking the rest costs a cache miss per row; the sink's
			// buffers know their longest row, which spares it.)
			continue
		}
		for i := range l.cols {
			if len(row) == 0 {
				return errors.New("short row")
			}
			present := row[0] == 1
			row = row[1:]
			if !present {
				continue
			}
			s := &f.samples[i]
			switch l.cols[i].typ {
			case "string", "json":
				n := int(binary.LittleEndian.Uint32(row))
				v := row[4 : 4+n]
				row = row[4+n:]
				s.maxLen = max(s.maxLen, n)
				if !s.done {
					s.add(hashBytes(v), 4+n)
					if s.done {
						sampling--
					}
				}
			case "bool":
				row = row[1:]
			default:
				size := 8
				if l.cols[i].typ == "date" {
					size = 4
				}
				if !s.done {
					s.add(hashUint64(binary.LittleEndian.Uint64(row)), size)
					if s.done {
						sampling--
					}
				}
				row = row[8:]
			}
		}
		if l.extra != "" && len(row) > 0 && row[0] == 1 {
			n := int(binary.LittleEndian.Uint32(row[1:]))
			s := &f.samples[len(l.cols)]
			s.maxLen = max(s.maxLen, n)
			if !s.done {
				s.add(hashBytes(row[5:5+n]), 4+n)
				if s.done {
					sampling--
				}
			}
		}
	}
	for i := range f.samples {
		s := &f.samples[i]
		if !s.done {
			s.done, s.pays = true, s.gain()
		}
		f.dict[i] = s.pays && s.maxLen <= dictMaxValue
	}
	return nil
}

// anyDict reports whether a column has been chosen for a dictionary so far.
func (f *parquetFile) anyDict() bool {
	for i := range f.samples {
		if f.samples[i].pays {
			return true
		}
	}
	return false
}

func hashBytes(b []byte) uint64 { return nonZero(maphash.Bytes(dictSeed, b)) }

func hashUint64(x uint64) uint64 {
	x *= 0x9E3779B97F4A7C15
	return nonZero(x ^ x>>32)
}

func nonZero(h uint64) uint64 {
	if h == 0 {
		return 1
	}
	return h
}

// hashSet is a set of non-zero hashes (open addressing, linear probing),
// reused from object to object.
type hashSet struct {
	slots []uint64
	n     int
}

const hashSetMin = 256

func (s *hashSet) reset() {
	if len(s.slots) != hashSetMin {
		s.slots = make([]uint64, hashSetMin)
	} else {
		clear(s.slots)
	}
	s.n = 0
}

// add inserts h and reports whether it was not there yet.
func (s *hashSet) add(h uint64) bool {
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case h:
			return false
		case 0:
			s.slots[i] = h
			s.n++
			if s.n*2 > len(s.slots) {
				s.grow()
			}
			return true
		}
	}
}

func (s *hashSet) grow() {
	old := s.slots
	s.slots = make([]uint64, 2*len(old))
	s.n = 0
	for _, h := range old {
		if h != 0 {
			s.add(h)
		}
	}
}
