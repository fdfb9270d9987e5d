package objstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/gzip"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/parquet-go/parquet-go/compress/uncompressed"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/valyala/fastjson"

	"github.com/sluice-data/sluice/internal/buildinfo"
	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/jsonx"
	"github.com/sluice-data/sluice/internal/timeconv"
)

// column is one declared Parquet column.
type column struct {
	path     jsonx.Path
	name     string
	typ      string
	required bool
}

// parquetLayout is a sink's schema: how records become rows, and rows
// become a file. Rows are kept in the partition buffers in a compact binary
// form (a presence byte per column, then the value) and only turned into
// parquet.Row at flush time, so buffered memory is close to the size of the
// data itself.
type parquetLayout struct {
	cols   []column
	extra  string // "" drops unlisted fields
	trie   *trie
	schema *parquet.Schema
	codec  compress.Codec
	// maxValue is the largest string or json cell (max_value_bytes).
	maxValue int
	// blobs names the byte-array columns, whose page headers carry no
	// statistics (see encodeTo).
	blobs [][]string
}

func newParquetLayout(s *config.Sink) (*parquetLayout, error) {
	l := &parquetLayout{extra: s.ExtraColumn, trie: &trie{}, maxValue: int(s.MaxValueBytes)}
	for _, c := range s.Schema {
		name := c.Column
		if name == "" {
			name = c.Name
		}
		col := column{path: jsonx.ParsePath(c.Name), name: name, typ: c.Type, required: c.Required}
		l.cols = append(l.cols, col)
		l.trie.add(col.path)
		if c.Type == "string" || c.Type == "json" {
			l.blobs = append(l.blobs, []string{name})
		}
	}
	if l.extra != "" {
		l.blobs = append(l.blobs, []string{l.extra})
	}
	l.schema = l.newSchema(nil)
	switch s.Compression {
	case "snappy", "":
		l.codec = &snappy.Codec{}
	case "zstd":
		l.codec = &zstd.Codec{Level: zstd.SpeedDefault}
	case "gzip":
		l.codec = &gzip.Codec{}
	case "none":
		l.codec = &uncompressed.Codec{}
	default:
		return nil, fmt.Errorf("unknown parquet compression %q", s.Compression)
	}
	return l, nil
}

// newSchema returns the Parquet schema of the layout's columns, with the
// columns dict marks dictionary-encoded (see dict.go) and the others PLAIN.
func (l *parquetLayout) newSchema(dict []bool) *parquet.Schema {
	var fields []parquet.Field
	node := func(i int, n parquet.Node) parquet.Node {
		if i < len(dict) && dict[i] {
			n = parquet.Encoded(n, &parquet.RLEDictionary)
		}
		return parquet.Optional(n)
	}
	for i, c := range l.cols {
		fields = append(fields, field{Node: node(i, leafNode(c.typ)), name: c.name})
	}
	if l.extra != "" {
		fields = append(fields, field{Node: node(len(l.cols), parquet.String()), name: l.extra})
	}
	return parquet.NewSchema("sluice", group(fields))
}

func leafNode(typ string) parquet.Node {
	switch typ {
	case "string":
		return parquet.String()
	case "int64":
		return parquet.Int(64)
	case "double":
		return parquet.Leaf(parquet.DoubleType)
	case "bool":
		return parquet.Leaf(parquet.BooleanType)
	case "timestamp_ms":
		return parquet.Timestamp(parquet.Millisecond)
	case "timestamp_us":
		return parquet.Timestamp(parquet.Microsecond)
	case "date":
		return parquet.Date()
	case "json":
		// JSON text annotated as STRING: Athena, Trino, Spark, DuckDB and
		// Arrow all read that as text, while the JSON annotation comes back
		// as binary from some of them.
		return parquet.String()
	}
	panic("unknown column type " + typ)
}

// group is a Parquet group whose fields keep the declared order (the
// library's map-based Group sorts them by name).
type group []parquet.Field

func (g group) ID() int                           { return 0 }
func (g group) String() string                    { return "group" }
func (g group) Type() parquet.Type                { return parquet.Group{}.Type() }
func (g group) Optional() bool                    { return false }
func (g group) Repeated() bool                    { return false }
func (g group) Required() bool                    { return true }
func (g group) Leaf() bool                        { return false }
func (g group) Fields() []parquet.Field           { return g }
func (g group) Encoding() encoding.Encoding       { return nil }
func (g group) Compression() compress.Codec       { return nil }
func (g group) GoType() reflect.Type              { return reflect.TypeFor[map[string]any]() }
func (f field) Name() string                      { return f.name }
func (f field) Value(reflect.Value) reflect.Value { return reflect.Value{} }

type field struct {
	parquet.Node
	name string
}

// trie marks which field paths the schema consumes, so the rest can be
// collected into the extra column.
type trie struct {
	leaf bool
	// The children: a schema has few at each level, and finding one of
	// those is a few length checks, cheaper than hashing the key; past
	// trieScan of them, a map.
	names []string
	kids  []*trie
	index map[string]*trie
}

const trieScan = 16

func (t *trie) add(p jsonx.Path) {
	for _, k := range p {
		c := t.child([]byte(k))
		if c == nil {
			c = &trie{}
			t.names, t.kids = append(t.names, k), append(t.kids, c)
			if len(t.names) > trieScan {
				if t.index == nil {
					t.index = map[string]*trie{}
					for i, n := range t.names {
						t.index[n] = t.kids[i]
					}
				}
				t.index[k] = c
			}
		}
		t = c
	}
	t.leaf = true
}

// child returns the child at key k, or nil.
func (t *trie) child(k []byte) *trie {
	if t.index != nil {
		return t.index[string(k)]
	}
	for i, n := range t.names {
		if n == string(k) {
			return t.kids[i]
		}
	}
	return nil
}

// errMismatch marks a value that does not fit its column.
type mismatchError struct{ msg string }

func (e *mismatchError) Error() string { return e.msg }

func mismatch(c *column, format string, args ...any) error {
	return &mismatchError{msg: fmt.Sprintf("column %s (%s, field %s): %s", c.name, c.typ, c.path, shorten(fmt.Sprintf(format, args...)))}
}

// maxReason bounds the part of a mismatch reason that quotes the value: a
// 16 MiB value must not make a 16 MiB error message (the record's bytes
// are in the error record already).
const maxReason = 200

func shorten(s string) string {
	if len(s) <= maxReason {
		return s
	}
	n := maxReason
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// encodeRow appends the binary row for v. dropped reports that fields
// outside the schema were discarded.
func (l *parquetLayout) encodeRow(dst []byte, v *fastjson.Value) (out []byte, dropped bool, err error) {
	start := len(dst)
	for i := range l.cols {
		c := &l.cols[i]
		fv := jsonx.Get(v, c.path)
		if fv == nil || fv.Type() == fastjson.TypeNull {
			if c.required {
				return dst[:start], false, mismatch(c, "missing")
			}
			dst = append(dst, 0)
			continue
		}
		dst = append(dst, 1)
		at := len(dst)
		if dst, err = encodeValue(dst, c, fv); err != nil {
			return dst[:start], false, err
		}
		if n := len(dst) - at - 4; (c.typ == "string" || c.typ == "json") && n > l.maxValue {
			return dst[:start], false, mismatch(c, "value of %d bytes is over max_value_bytes (%d)", n, l.maxValue)
		}
	}
	if v.Type() != fastjson.TypeObject {
		return dst[:start], false, &mismatchError{msg: "record is not a JSON object"}
	}
	if l.extra == "" {
		obj, _ := v.Object()
		return dst, hasExtra(obj, l.trie), nil
	}
	mark := len(dst)
	dst = append(dst, 1, 0, 0, 0, 0) // presence + fixed 4-byte length, patched below
	body := len(dst)
	obj, _ := v.Object()
	var any bool
	dst, any = appendExtra(dst, obj, l.trie)
	if !any {
		return append(dst[:mark], 0), false, nil
	}
	if n := len(dst) - body; n > l.maxValue {
		return dst[:start], false, &mismatchError{msg: fmt.Sprintf("column %s (json, fields outside the schema): value of %d bytes is over max_value_bytes (%d)", l.extra, n, l.maxValue)}
	}
	binary.LittleEndian.PutUint32(dst[mark+1:], uint32(len(dst)-body))
	return dst, false, nil
}

func encodeValue(dst []byte, c *column, v *fastjson.Value) ([]byte, error) {
	switch c.typ {
	case "string":
		switch v.Type() {
		case fastjson.TypeObject, fastjson.TypeArray:
			return dst, mismatch(c, "got %s, want a string", v.Type())
		}
		n := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		dst = jsonx.Text(dst, v)
		binary.LittleEndian.PutUint32(dst[n:], uint32(len(dst)-n-4))
		return dst, nil
	case "json":
		n := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		dst = jsonx.AppendValue(dst, v)
		binary.LittleEndian.PutUint32(dst[n:], uint32(len(dst)-n-4))
		return dst, nil
	case "int64":
		i, err := intOf(v)
		if err != nil {
			return dst, mismatch(c, "%v", err)
		}
		return binary.LittleEndian.AppendUint64(dst, uint64(i)), nil
	case "double":
		f, err := floatOf(v)
		if err != nil {
			return dst, mismatch(c, "%v", err)
		}
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f)), nil
	case "bool":
		switch v.Type() {
		case fastjson.TypeTrue:
			return append(dst, 1), nil
		case fastjson.TypeFalse:
			return append(dst, 0), nil
		case fastjson.TypeString:
			b, _ := v.StringBytes()
			if p, err := strconv.ParseBool(string(b)); err == nil {
				if p {
					return append(dst, 1), nil
				}
				return append(dst, 0), nil
			}
		}
		return dst, mismatch(c, "got %s, want true or false", shortValue(v))
	case "timestamp_ms", "timestamp_us", "date":
		t, err := timeconv.Read(v, "auto")
		if err != nil && c.typ == "date" && v.Type() == fastjson.TypeString {
			// A date column also takes a calendar date, as Athena's and
			// DuckDB's DATE literals do.
			if d, derr := time.Parse(time.DateOnly, string(v.GetStringBytes())); derr == nil {
				t, err = d, nil
			}
		}
		if err != nil {
			return dst, mismatch(c, "%v", err)
		}
		var n int64
		switch c.typ {
		case "timestamp_ms":
			n = t.UnixMilli()
		case "timestamp_us":
			n = t.UnixMicro()
		default:
			n = int64(math.Floor(float64(t.Unix()) / 86400))
		}
		return binary.LittleEndian.AppendUint64(dst, uint64(n)), nil
	}
	return dst, mismatch(c, "unknown type")
}

func shortValue(v *fastjson.Value) string {
	s := v.String()
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

// intOf reads an integer column: a JSON number that is a whole number in
// int64's range, or a string holding one in JSON's number syntax ("7",
// not "+7", "07" or "0x7").
func intOf(v *fastjson.Value) (int64, error) {
	switch v.Type() {
	case fastjson.TypeNumber:
		if i, err := v.Int64(); err == nil {
			return i, nil
		}
		f, err := v.Float64()
		if err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return int64(f), nil
		}
		return 0, fmt.Errorf("%s is not a 64-bit integer", v)
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		if jsonx.ValidNumber(b) {
			if i, err := strconv.ParseInt(string(b), 10, 64); err == nil {
				return i, nil
			}
		}
	}
	return 0, fmt.Errorf("got %s, want an integer", shortValue(v))
}

// floatOf reads a double column: a JSON number, or a string holding one,
// that fits a float64. 1e400 is refused, not stored as +Inf, and so are
// "NaN", "Infinity" and "inf", which are not JSON numbers.
func floatOf(v *fastjson.Value) (float64, error) {
	var b []byte
	switch v.Type() {
	case fastjson.TypeNumber:
		b = v.MarshalTo(nil)
	case fastjson.TypeString:
		b, _ = v.StringBytes()
	default:
		return 0, fmt.Errorf("got %s, want a number", shortValue(v))
	}
	f, err := jsonx.FiniteFloat(b)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("%s does not fit a double", shortValue(v))
	case err != nil:
		return 0, fmt.Errorf("got %s, want a number", shortValue(v))
	}
	return f, nil
}

// appendExtra writes, as one JSON object, every field of obj the schema does
// not consume. any reports whether anything was written.
func appendExtra(dst []byte, obj *fastjson.Object, t *trie) ([]byte, bool) {
	start := len(dst)
	dst = append(dst, '{')
	n := 0
	obj.Visit(func(k []byte, v *fastjson.Value) {
		c := t.child(k)
		if c != nil && c.leaf {
			return
		}
		if c != nil && v.Type() == fastjson.TypeObject {
			o, _ := v.Object()
			mark := len(dst)
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = jsonx.AppendString(dst, k)
			dst = append(dst, ':')
			var wrote bool
			dst, wrote = appendExtra(dst, o, c)
			if !wrote {
				dst = dst[:mark]
				return
			}
			n++
			return
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = jsonx.AppendString(dst, k)
		dst = append(dst, ':')
		dst = jsonx.AppendValue(dst, v)
		n++
	})
	if n == 0 {
		return dst[:start], false
	}
	return append(dst, '}'), true
}

func hasExtra(obj *fastjson.Object, t *trie) bool {
	found := false
	obj.Visit(func(k []byte, v *fastjson.Value) {
		if found {
			return
		}
		c := t.child(k)
		switch {
		case c == nil:
			found = true
		case c.leaf:
		case v.Type() == fastjson.TypeObject:
			o, _ := v.Object()
			found = hasExtra(o, c)
		default:
			found = true
		}
	})
	return found
}

// parquetFile turns buffered binary rows into Parquet files, reusing its
// row buffers between files.
type parquetFile struct {
	l    *parquetLayout
	rows []parquet.Row
	// Per object: the dictionary choice (dict.go) and, per dictionary
	// column, the bytes of values written since its last page cut.
	samples []colSample
	dict    []bool
	since   []int
	// schemas holds a schema per set of dictionary columns seen.
	schemas map[string]*parquet.Schema
	key     []byte
	// maxRow is the longest row of the next object when its caller knows
	// it (the sink's buffers do), else 0.
	maxRow int
	// rowGroupBytes is rowGroupInput; tests lower it.
	rowGroupBytes int
}

func (l *parquetLayout) newFileWriter() *parquetFile {
	return &parquetFile{l: l, schemas: map[string]*parquet.Schema{}, rowGroupBytes: rowGroupInput}
}

const rowsPerWrite = 512

// pageBytes is the page buffer of every column: parquet-go cuts a data page
// once a column holds this much after a WriteRows call.
const pageBytes = 256 << 10

// rowBatchBytes bounds the rows of one WriteRows call. parquet-go checks
// the page size only between calls, so a batch of 512 rows of 1 MiB values
// would otherwise make a page of 512 MiB; with this bound a data page holds
// at most pageBytes + rowBatchBytes plus one row.
const rowBatchBytes = 128 << 10

// rowGroupInput is how many bytes of buffered rows go into one row group:
// the Parquet writer holds a row group's pages in memory until it is
// flushed, so this bounds the memory of encoding an object of any size.
// On the bench's app logs that is about 150,000 rows and 15 MB of Snappy
// Parquet per row group: few enough row groups that their metadata costs
// nothing, many enough that engines can split and prune a large object.
const rowGroupInput = 64 << 20

// schema returns the schema with f.dict's dictionary columns.
func (f *parquetFile) schema() *parquet.Schema {
	f.key = f.key[:0]
	for _, d := range f.dict {
		if d {
			f.key = append(f.key, 1)
		} else {
			f.key = append(f.key, 0)
		}
	}
	sc := f.schemas[string(f.key)]
	if sc == nil {
		sc = f.l.newSchema(f.dict)
		f.schemas[string(f.key)] = sc
	}
	return sc
}

// encodeTo writes one Parquet file to w from the buffered rows in data
// (each row prefixed by its uvarint length).
func (f *parquetFile) encodeTo(w io.Writer, data []byte) error {
	// A new writer per file: Writer.Reset in parquet-go v0.32.0 clears the
	// column paths it shares with its footer, so every file after the first
	// has an empty path_in_schema, which Athena, Trino and Spark refuse
	// (parquet-go/parquet-go#602).
	//
	// Version 1 data pages, as Firehose's Parquet SerDe writes by default
	// (WriterVersion V1): PLAIN, or RLE_DICTIONARY with a PLAIN dictionary
	// page where that pays (dict.go), as DuckDB writes. Every reader takes
	// them, where parquet-go's defaults (V2 pages, DELTA_LENGTH_BYTE_ARRAY)
	// fail in Snowflake and older Spark and Presto readers.
	//
	// Statistics of strings are bounded (a 1 MiB value would otherwise be
	// copied whole into its page header and the footer, and Arrow fails
	// page headers over 4 MiB): string and json columns carry none in their
	// page headers, their column index bounds are cut to statsTruncate bytes
	// by parquet-go, and their footer statistics by footerWriter. Pages are
	// cut at PageBufferSize between WriteRows calls, and a call takes at
	// most rowBatchBytes of rows, so a page is at most their sum plus one
	// row, and max_value_bytes bounds that row's values. Every column chunk has
	// min, max (where a bound fits) and null count in the footer.
	if err := f.chooseDictionaries(data); err != nil {
		return err
	}
	fw := &footerWriter{w: w}
	pw := parquet.NewWriter(fw, f.l.writerOptions(f.schema())...)
	ncols := len(f.dict)
	if cap(f.rows) < rowsPerWrite {
		f.rows = make([]parquet.Row, rowsPerWrite)
		for i := range f.rows {
			f.rows[i] = make(parquet.Row, 0, ncols)
		}
	}
	if len(f.since) != ncols {
		f.since = make([]int, ncols)
	}
	clear(f.since)
	batch := f.rows[:0]
	batchBytes := 0
	group := 0
	check := false // a dictionary column is due for a page cut
	write := func() error {
		if _, err := pw.WriteRows(batch); err != nil {
			return err
		}
		batch, batchBytes = f.rows[:0], 0
		if group >= f.rowGroupBytes {
			clear(f.since)
			check, group = false, 0
			return pw.Flush()
		}
		if check {
			// Cutting a page is when parquet-go weighs the dictionary
			// against DictionaryMaxBytes.
			cws := pw.ColumnWriters()
			for c, n := range f.since {
				if n >= dictCheckBytes {
					if err := cws[c].Flush(); err != nil {
						return err
					}
					f.since[c] = 0
				}
			}
			check = false
		}
		return nil
	}
	for len(data) > 0 {
		n, k := binary.Uvarint(data)
		if k <= 0 || int(n) > len(data)-k {
			return errors.New("corrupt row buffer")
		}
		row, err := f.decodeRow(f.rows[len(batch)][:0], data[k:k+int(n)])
		if err != nil {
			return err
		}
		batch = append(batch, row)
		data = data[k+int(n):]
		group += k + int(n)
		batchBytes += k + int(n)
		for c, d := range f.dict {
			if d && !row[c].IsNull() {
				if f.since[c] += valueSize(row[c]); f.since[c] >= dictCheckBytes {
					check = true
				}
			}
		}
		if len(batch) == rowsPerWrite || batchBytes >= rowBatchBytes || check || group >= f.rowGroupBytes {
			if err := write(); err != nil {
				return err
			}
		}
	}
	if len(batch) > 0 {
		if _, err := pw.WriteRows(batch); err != nil {
			return err
		}
	}
	if err := pw.Flush(); err != nil {
		return err
	}
	fw.hold()
	if err := pw.Close(); err != nil {
		return err
	}
	return fw.finish(statsTruncate)
}

// valueSize is the PLAIN size of a non-null value.
func valueSize(v parquet.Value) int {
	switch v.Kind() {
	case parquet.ByteArray:
		return 4 + len(v.ByteArray())
	case parquet.Int32:
		return 4
	}
	return 8
}

// writerOptions are the parquet-go options of an object of the sink whose
// schema (with its dictionary columns) is schema (see encodeTo for why
// each is there). The bench floor (test/bench/floor) writes with the same
// ones, through ParquetWriterOptions.
func (l *parquetLayout) writerOptions(schema *parquet.Schema) []parquet.WriterOption {
	opts := []parquet.WriterOption{schema, parquet.Compression(l.codec),
		parquet.CreatedBy(buildinfo.CreatedBy()), parquet.PageBufferSize(pageBytes),
		parquet.DataPageVersion(1), parquet.DefaultEncodingFor(parquet.ByteArray, &parquet.Plain),
		parquet.DictionaryMaxBytes(dictMaxBytes),
		parquet.ColumnIndexSizeLimit(func([]string) int { return statsTruncate })}
	for _, path := range l.blobs {
		opts = append(opts, parquet.SkipPageStatistics(path...))
	}
	return opts
}

func (f *parquetFile) decodeRow(row parquet.Row, b []byte) (parquet.Row, error) {
	l := f.l
	for i := range l.cols {
		if len(b) == 0 {
			return nil, errors.New("short row")
		}
		present := b[0] == 1
		b = b[1:]
		if !present {
			row = append(row, parquet.NullValue().Level(0, 0, i))
			continue
		}
		var v parquet.Value
		switch l.cols[i].typ {
		case "string", "json":
			n := int(binary.LittleEndian.Uint32(b))
			v = parquet.ByteArrayValue(b[4 : 4+n])
			b = b[4+n:]
		case "int64", "timestamp_ms", "timestamp_us":
			v = parquet.Int64Value(int64(binary.LittleEndian.Uint64(b)))
			b = b[8:]
		case "date":
			v = parquet.Int32Value(int32(int64(binary.LittleEndian.Uint64(b))))
			b = b[8:]
		case "double":
			v = parquet.DoubleValue(math.Float64frombits(binary.LittleEndian.Uint64(b)))
			b = b[8:]
		case "bool":
			v = parquet.BooleanValue(b[0] == 1)
			b = b[1:]
		}
		row = append(row, v.Level(0, 1, i))
	}
	if l.extra != "" {
		i := len(l.cols)
		if len(b) == 0 || b[0] == 0 {
			row = append(row, parquet.NullValue().Level(0, 0, i))
		} else {
			n := int(binary.LittleEndian.Uint32(b[1:]))
			row = append(row, parquet.ByteArrayValue(b[5:5+n]).Level(0, 1, i))
		}
	}
	return row, nil
}

// describe renders the schema as Athena-style column list, for logs.
func (l *parquetLayout) describe() string {
	var parts []string
	for _, c := range l.cols {
		parts = append(parts, c.name+" "+c.typ)
	}
	if l.extra != "" {
		parts = append(parts, l.extra+" json")
	}
	return strings.Join(parts, ", ")
}

var _ = time.Time{}
