package objstore

import (
	"github.com/parquet-go/parquet-go"

	"github.com/sluice-data/sluice/internal/config"
)

// ParquetDictionaries makes, on sample rows (the declared columns in
// order, then extra_column, as parquet values), the choice an object of
// the sink makes of which columns to dictionary-encode (dict.go). It is for
// programs that must encode exactly as the sink does, such as the bench
// floor (test/bench/floor).
func ParquetDictionaries(s *config.Sink, sample []parquet.Row) ([]bool, error) {
	l, err := newParquetLayout(s)
	if err != nil {
		return nil, err
	}
	ncols := len(l.cols)
	if l.extra != "" {
		ncols++
	}
	samples := make([]colSample, ncols)
	for i := range samples {
		samples[i].reset()
	}
	for _, row := range sample {
		for _, v := range row {
			i := v.Column()
			if i < 0 || i >= ncols || v.IsNull() || v.Kind() == parquet.Boolean {
				continue
			}
			cs := &samples[i]
			if v.Kind() == parquet.ByteArray {
				cs.maxLen = max(cs.maxLen, len(v.ByteArray()))
				if !cs.done {
					cs.add(hashBytes(v.ByteArray()), valueSize(v))
				}
				continue
			}
			if !cs.done {
				cs.add(hashUint64(v.Uint64()), valueSize(v))
			}
		}
	}
	dict := make([]bool, ncols)
	for i := range samples {
		cs := &samples[i]
		if !cs.done {
			cs.pays = cs.gain()
		}
		dict[i] = cs.pays && cs.maxLen <= dictMaxValue
	}
	return dict, nil
}

// ParquetWriterOptions returns the parquet-go writer options a Parquet
// sink writes an object with, given the object's dictionary columns (from
// ParquetDictionaries): its schema (the declared columns in order, then
// extra_column), codec, page version and size, encodings, dictionary
// bound and statistics bounds.
//
// Objects of the sink also get their footer statistics truncated, a page
// of each dictionary column cut every 256 KiB of its values, at most
// rowBatchBytes of rows per WriteRows call (which bounds every page), and
// a new row group past 64 MiB of input; none is a writer option.
func ParquetWriterOptions(s *config.Sink, dict []bool) ([]parquet.WriterOption, error) {
	l, err := newParquetLayout(s)
	if err != nil {
		return nil, err
	}
	return l.writerOptions(l.newSchema(dict)), nil
}
