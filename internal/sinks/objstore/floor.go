package objstore

import (
	"github.com/parquet-go/parquet-go"

	"github.com/sluice-data/sluice/internal/config"
)

// ParquetWriterOptions returns the parquet-go writer options a Parquet
// sink writes its objects with: its schema (the declared columns in order,
// then extra_column), codec, page version and size, encodings and
// statistics bounds. It is for programs that must encode exactly as the
// sink does, such as the bench floor (test/bench/floor), so that a change
// of encoding moves both at once.
//
// Objects of the sink also get their footer statistics truncated and a
// new row group past 64 MiB of input; neither is a writer option.
func ParquetWriterOptions(s *config.Sink) ([]parquet.WriterOption, error) {
	l, err := newParquetLayout(s)
	if err != nil {
		return nil, err
	}
	return l.writerOptions(), nil
}
