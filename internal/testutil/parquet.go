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
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
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
	// Pages is the most data pages any column chunk has, by its offset
	// index (0 when the file has none).
	Pages int
	// PageKinds lists, sorted, each distinct "page type/encoding" found by
	// reading every page header, e.g. "DATA_PAGE/PLAIN".
	PageKinds []string
	// ColumnPageKinds is PageKinds per column path, over its chunks in every
	// row group, e.g. "DICTIONARY_PAGE/PLAIN", "DATA_PAGE/RLE_DICTIONARY".
	ColumnPageKinds map[string][]string
	// MaxDictionaryBytes is the largest dictionary page, uncompressed.
	MaxDictionaryBytes int
	// MaxDataPageBytes is the largest data page, uncompressed: what a
	// reader must hold at once to read one page.
	MaxDataPageBytes int
	// Stats holds each column chunk's min and max as the footer has them,
	// row group by row group.
	Stats []ChunkStats
	// MaxStatBytes is the longest min or max anywhere in the file: footer
	// statistics, page header statistics and column indexes.
	MaxStatBytes int
}

// ChunkStats is the footer statistics of one column chunk.
type ChunkStats struct {
	RowGroup int
	Column   string
	// HasMinMax is false where the writer left min and max out.
	HasMinMax bool
	Min, Max  []byte // PLAIN-encoded, without a length prefix for byte arrays
	// HasNullCount is false where the writer left the null count out.
	HasNullCount bool
	NullCount    int64
}

// ReadParquet reads a whole file.
func ReadParquet(path string) (*ParquetFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ReadParquetBytes(path, data)
}

// ReadParquetBytes reads a whole file held in memory; name is for errors.
func ReadParquetBytes(path string, data []byte) (*ParquetFile, error) {
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
	if pf.Pages, err = checkChunks(rdr); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := pageKinds(rdr, pf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := readStats(rdr, pf); err != nil {
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

// checkChunks checks that every column chunk names its column. Arrow
// reads columns by position and would not notice an empty path_in_schema,
// but Athena, Trino and Spark look chunks up by it and fail the file
// (parquet-go/parquet-go#602 wrote such files after Writer.Reset).
func checkChunks(rdr *file.Reader) (pages int, err error) {
	md := rdr.MetaData()
	for g := 0; g < md.NumRowGroups(); g++ {
		rg := md.RowGroup(g)
		for c := 0; c < md.Schema.NumColumns(); c++ {
			cc, err := rg.ColumnChunk(c)
			if err != nil {
				return 0, err
			}
			want := md.Schema.Column(c).ColumnPath().String()
			if got := cc.PathInSchema().String(); got != want {
				return 0, fmt.Errorf("row group %d column %d: path_in_schema %q, schema says %q", g, c, got, want)
			}
			n, err := checkOffsetIndex(rdr, g, c, cc, rg.NumRows())
			if err != nil {
				return 0, fmt.Errorf("row group %d column %s: %w", g, want, err)
			}
			pages = max(pages, n)
		}
	}
	return pages, nil
}

// checkOffsetIndex checks that the page index, when written, locates the
// chunk's data pages exactly: Trino (Athena) seeks by it, and an index
// that points elsewhere fails queries that filter on the column.
func checkOffsetIndex(rdr *file.Reader, g, c int, cc *metadata.ColumnChunkMetaData, rows int64) (int, error) {
	if cc.GetOffsetIndexLocation() == nil {
		return 0, nil
	}
	rgi, err := rdr.GetPageIndexReader().RowGroup(g)
	if err != nil {
		return 0, err
	}
	oi, err := rgi.GetOffsetIndex(c)
	if err != nil || oi == nil {
		return 0, fmt.Errorf("offset index: %v", err)
	}
	start := cc.DataPageOffset()
	if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 {
		start = cc.DictionaryPageOffset()
	}
	end := start + cc.TotalCompressedSize()
	locs := oi.GetPageLocations()
	if len(locs) == 0 || locs[0].Offset != cc.DataPageOffset() || locs[0].FirstRowIndex != 0 {
		return 0, fmt.Errorf("offset index does not start at the first data page (%d)", cc.DataPageOffset())
	}
	for i, l := range locs {
		next := end
		if i+1 < len(locs) {
			next = locs[i+1].Offset
			if locs[i+1].FirstRowIndex <= l.FirstRowIndex || locs[i+1].FirstRowIndex >= rows {
				return 0, fmt.Errorf("offset index page %d: first row %d", i+1, locs[i+1].FirstRowIndex)
			}
		}
		if l.Offset+int64(l.CompressedPageSize) != next {
			return 0, fmt.Errorf("offset index page %d: %d+%d does not reach the next page at %d", i, l.Offset, l.CompressedPageSize, next)
		}
	}
	return len(locs), nil
}

// readStats collects the footer statistics and the longest min or max of
// the footer and the column indexes.
func readStats(rdr *file.Reader, pf *ParquetFile) error {
	md := rdr.MetaData()
	for g := 0; g < md.NumRowGroups(); g++ {
		rg := md.RowGroup(g)
		for c := 0; c < md.Schema.NumColumns(); c++ {
			cc, err := rg.ColumnChunk(c)
			if err != nil {
				return err
			}
			cs := ChunkStats{RowGroup: g, Column: md.Schema.Column(c).ColumnPath().String()}
			st, err := cc.Statistics()
			if err != nil {
				return fmt.Errorf("row group %d column %s statistics: %w", g, cs.Column, err)
			}
			if st != nil && st.HasMinMax() {
				cs.HasMinMax, cs.Min, cs.Max = true, st.EncodeMin(), st.EncodeMax()
				pf.MaxStatBytes = max(pf.MaxStatBytes, len(cs.Min), len(cs.Max))
			}
			if st != nil && st.HasNullCount() {
				cs.HasNullCount, cs.NullCount = true, st.NullCount()
			}
			pf.Stats = append(pf.Stats, cs)
			if cc.GetColumnIndexLocation() == nil {
				continue
			}
			rgi, err := rdr.GetPageIndexReader().RowGroup(g)
			if err != nil {
				return err
			}
			ci, err := rgi.GetColumnIndex(c)
			if err != nil {
				return fmt.Errorf("row group %d column %s column index: %w", g, cs.Column, err)
			}
			if ci == nil {
				continue
			}
			for _, v := range append(ci.GetMinValues(), ci.GetMaxValues()...) {
				pf.MaxStatBytes = max(pf.MaxStatBytes, len(v))
			}
		}
	}
	return nil
}

// pageKinds reads every page header of every column chunk, noting the
// kinds of pages, the longest min or max of their statistics and the
// largest dictionary page. It checks the dictionary pages against the
// chunk's metadata, as readers that seek by it do: a chunk has a
// dictionary page exactly when its metadata gives a dictionary page
// offset, that page comes first (the offset index check has it end where
// the data pages start), only then may data pages be dictionary-encoded,
// and the chunk's encodings and encoding stats (which Spark and Trino read
// to tell dictionary-only chunks) name exactly what the pages hold.
func pageKinds(rdr *file.Reader, pf *ParquetFile) error {
	seen := map[string]bool{}
	perColumn := map[string]map[string]bool{}
	md := rdr.MetaData()
	for g := 0; g < rdr.NumRowGroups(); g++ {
		rg := rdr.RowGroup(g)
		for c := 0; c < rg.NumColumns(); c++ {
			cc, err := md.RowGroup(g).ColumnChunk(c)
			if err != nil {
				return err
			}
			col := md.Schema.Column(c).ColumnPath().String()
			where := fmt.Sprintf("row group %d column %s", g, col)
			pr, err := rg.GetColumnPageReader(c)
			if err != nil {
				return err
			}
			chunk := map[string]bool{}
			dictPages, pages := 0, 0
			for pr.Next() {
				p := pr.Page()
				kind := p.Type().String() + "/" + p.Encoding().String()
				chunk[kind] = true
				switch {
				case p.Type().String() == "DICTIONARY_PAGE":
					if pages > 0 {
						return fmt.Errorf("%s: dictionary page after %d data pages", where, pages)
					}
					dictPages++
					pf.MaxDictionaryBytes = max(pf.MaxDictionaryBytes, len(p.Data()))
				case isDictionaryEncoding(p.Encoding().String()) && dictPages == 0:
					return fmt.Errorf("%s: %s page without a dictionary page", where, kind)
				}
				if dp, ok := p.(file.DataPage); ok {
					st := dp.Statistics()
					pf.MaxStatBytes = max(pf.MaxStatBytes, len(st.Min), len(st.Max))
					pf.MaxDataPageBytes = max(pf.MaxDataPageBytes, int(dp.UncompressedSize()))
				}
				if p.Type().String() != "DICTIONARY_PAGE" {
					pages++
				}
			}
			if err := pr.Err(); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			if dictPages > 1 || cc.HasDictionaryPage() != (dictPages == 1) {
				return fmt.Errorf("%s: %d dictionary pages, metadata says dictionary page offset set: %v", where, dictPages, cc.HasDictionaryPage())
			}
			if cc.HasDictionaryPage() && (cc.DictionaryPageOffset() < 4 || cc.DictionaryPageOffset() >= cc.DataPageOffset()) {
				return fmt.Errorf("%s: dictionary page at %d, data pages at %d", where, cc.DictionaryPageOffset(), cc.DataPageOffset())
			}
			encodings := map[string]bool{}
			for _, e := range cc.Encodings() {
				encodings[e.String()] = true
			}
			stats := map[string]bool{}
			for _, st := range cc.EncodingStats() {
				stats[st.PageType.String()+"/"+st.Encoding.String()] = true
			}
			for kind := range chunk {
				if enc := kind[strings.IndexByte(kind, '/')+1:]; !encodings[enc] {
					return fmt.Errorf("%s: a %s page, chunk encodings %v", where, kind, cc.Encodings())
				}
			}
			if len(stats) > 0 && !maps.Equal(stats, chunk) {
				return fmt.Errorf("%s: encoding stats %v, pages %v", where, slices.Sorted(maps.Keys(stats)), slices.Sorted(maps.Keys(chunk)))
			}
			if perColumn[col] == nil {
				perColumn[col] = map[string]bool{}
			}
			for kind := range chunk {
				seen[kind] = true
				perColumn[col][kind] = true
			}
		}
	}
	pf.PageKinds = slices.Sorted(maps.Keys(seen))
	pf.ColumnPageKinds = map[string][]string{}
	for col, kinds := range perColumn {
		pf.ColumnPageKinds[col] = slices.Sorted(maps.Keys(kinds))
	}
	return nil
}

func isDictionaryEncoding(e string) bool { return e == "PLAIN_DICTIONARY" || e == "RLE_DICTIONARY" }

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
