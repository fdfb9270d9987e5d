// Package testutil reads back what Sluice writes with implementations that
// share no code with it: Parquet through Apache Arrow's Go reader, so a test
// passes only if an independent reader agrees on schema, rows and values.
package testutil

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// ParquetFile is a Parquet file as Arrow reads it.
type ParquetFile struct {
	// Columns lists "name type" in file order, Arrow's type names, e.g.
	// "time_utc timestamp[ms, tz=UTC]".
	Columns []string
	// Rows holds each row as Arrow renders it to JSON.
	Rows []map[string]any
	// Codec is the compression of the first column chunk.
	Codec string
	// LogicalTypes lists each leaf's Parquet logical type.
	LogicalTypes []string
}

// ReadParquet reads a whole file.
func ReadParquet(path string) (*ParquetFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rdr, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer rdr.Close()
	pf := &ParquetFile{}
	md := rdr.MetaData()
	if md.NumRowGroups() > 0 && md.Schema.NumColumns() > 0 {
		cc, err := md.RowGroup(0).ColumnChunk(0)
		if err == nil {
			pf.Codec = strings.ToLower(cc.Compression().String())
		}
	}
	if err := checkChunkPaths(rdr); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i := 0; i < md.Schema.NumColumns(); i++ {
		pf.LogicalTypes = append(pf.LogicalTypes, md.Schema.Column(i).LogicalType().String())
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 1024}, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer tbl.Release()
	for _, f := range tbl.Schema().Fields() {
		pf.Columns = append(pf.Columns, f.Name+" "+f.Type.String())
	}
	tr := array.NewTableReader(tbl, 1024)
	defer tr.Release()
	for tr.Next() {
		rec := tr.RecordBatch()
		js, err := rec.MarshalJSON()
		if err != nil {
			return nil, err
		}
		var rows []map[string]any
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.UseNumber()
		if err := dec.Decode(&rows); err != nil {
			return nil, err
		}
		pf.Rows = append(pf.Rows, rows...)
	}
	return pf, nil
}

// checkChunkPaths checks that every column chunk names its column. Arrow
// reads columns by position and would not notice an empty path_in_schema,
// but Athena, Trino and Spark look chunks up by it and fail the file
// (parquet-go/parquet-go#602 wrote such files after Writer.Reset).
func checkChunkPaths(rdr *file.Reader) error {
	md := rdr.MetaData()
	for g := 0; g < md.NumRowGroups(); g++ {
		rg := md.RowGroup(g)
		for c := 0; c < md.Schema.NumColumns(); c++ {
			cc, err := rg.ColumnChunk(c)
			if err != nil {
				return err
			}
			want := md.Schema.Column(c).ColumnPath().String()
			if got := cc.PathInSchema().String(); got != want {
				return fmt.Errorf("row group %d column %d: path_in_schema %q, schema says %q", g, c, got, want)
			}
		}
	}
	return nil
}

// ReadGzip returns the decompressed content of a gzip file.
func ReadGzip(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(zr)
	return string(b), err
}

// TreeHashes returns every file under dir, by path relative to dir, with
// the SHA-256 of its content.
func TreeHashes(dir string) map[string]string {
	out := map[string]string{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			out[rel] = fmt.Sprintf("%x", sha256.Sum256(b))
		}
		return nil
	})
	return out
}
