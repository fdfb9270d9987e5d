package objstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// statsTruncate is the longest min or max a Parquet file keeps for a
// byte-array column, in its column index and in its footer: parquet-mr's
// parquet.columnindex.truncate.length. Without a bound, one 1 MiB string
// puts 1 MiB into the footer per bound and per row group, and readers with
// a metadata limit (Arrow takes page headers up to 4 MiB) fail the whole
// object.
const statsTruncate = 64

// truncateMin returns a lower bound of v at most limit bytes long: a
// prefix, cut on a UTF-8 boundary when v is valid UTF-8, as parquet-mr's
// BinaryTruncator does for strings.
func truncateMin(v []byte, limit int) []byte {
	if len(v) <= limit {
		return v
	}
	n := limit
	if utf8.Valid(v) {
		for n > 0 && !utf8.RuneStart(v[n]) {
			n--
		}
	}
	return v[:n:n]
}

// truncateMax returns an upper bound of v at most limit bytes long, or
// ok=false when there is none that short (every byte 0xFF, or every code
// point U+10FFFF): a prefix whose last byte, or for UTF-8 its last code
// point that can grow, is incremented, as parquet-mr's BinaryTruncator
// does. The result is valid UTF-8 when v is.
func truncateMax(v []byte, limit int) (out []byte, ok bool) {
	if len(v) <= limit {
		return v, true
	}
	if utf8.Valid(v) {
		n := limit
		for n > 0 && !utf8.RuneStart(v[n]) {
			n--
		}
		p := v[:n]
		for len(p) > 0 {
			r, size := utf8.DecodeLastRune(p)
			p = p[:len(p)-size]
			next := r + 1
			if next == 0xD800 {
				next = 0xE000 // surrogates are not scalar values
			}
			if next > utf8.MaxRune {
				continue
			}
			out = append(append(make([]byte, 0, len(p)+utf8.UTFMax), p...), string(next)...)
			if len(out) <= limit {
				return out, true
			}
			// A longer encoding pushed it over: drop this code point and
			// grow the one before.
		}
		return nil, false
	}
	out = append([]byte(nil), v[:limit]...)
	for i := len(out) - 1; i >= 0; i-- {
		if out[i] != 0xFF {
			out[i]++
			return out[:i+1], true
		}
	}
	return nil, false
}

// truncateStats bounds the min and max of byte-array column statistics.
// Where no short upper bound exists both are dropped, as a reader would
// otherwise prune on a max that is too small.
func truncateStats(st *format.Statistics, limit int) {
	if len(st.MinValue) > limit || len(st.MaxValue) > limit {
		max, ok := truncateMax(st.MaxValue, limit)
		if ok {
			st.MinValue, st.MaxValue = truncateMin(st.MinValue, limit), max
		} else {
			st.MinValue, st.MaxValue = nil, nil
		}
	}
	if len(st.Min) > limit || len(st.Max) > limit {
		st.Min, st.Max = nil, nil // deprecated signed-order fields: no truncation rule
	}
}

// footerWriter passes writes through to w until hold is called, then keeps
// the rest: the page indexes and footer that Writer.Close emits, which
// finish rewrites with truncated statistics. parquet-go v0.32.0 truncates
// the column index (ColumnIndexSizeLimit) but copies every page's full min
// and max into the column chunk statistics of the footer.
type footerWriter struct {
	w    io.Writer
	held bool
	tail bytes.Buffer
}

func (f *footerWriter) Write(p []byte) (int, error) {
	if f.held {
		return f.tail.Write(p)
	}
	return f.w.Write(p)
}

func (f *footerWriter) hold() { f.held = true }

// finish writes the held tail with the footer's byte-array statistics
// truncated to limit.
func (f *footerWriter) finish(limit int) error {
	t := f.tail.Bytes()
	if len(t) < 8 || string(t[len(t)-4:]) != "PAR1" {
		return errors.New("parquet footer: no trailing magic")
	}
	n := int(binary.LittleEndian.Uint32(t[len(t)-8:]))
	start := len(t) - 8 - n
	if start < 0 {
		return fmt.Errorf("parquet footer: %d bytes, only %d held", n, len(t)-8)
	}
	var md format.FileMetaData
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), t[start:len(t)-8], &md); err != nil {
		return fmt.Errorf("parquet footer: %w", err)
	}
	for i := range md.RowGroups {
		for j := range md.RowGroups[i].Columns {
			m := &md.RowGroups[i].Columns[j].MetaData
			if m.Type == format.ByteArray || m.Type == format.FixedLenByteArray {
				truncateStats(&m.Statistics, limit)
			}
		}
	}
	footer, err := thrift.Marshal(new(thrift.CompactProtocol), &md)
	if err != nil {
		return fmt.Errorf("parquet footer: %w", err)
	}
	out := append(t[:start:start], footer...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(footer)))
	out = append(out, "PAR1"...)
	_, err = f.w.Write(out)
	return err
}
