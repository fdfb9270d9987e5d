package configtest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/blob"
	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/pipeline"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/sinks/objstore"
)

// partition is the source partition a test's messages come from; their
// offsets are their places in the input, from 0.
const partition = "test"

// written is what one sink wrote.
type written struct {
	records    []any
	partitions map[string]int64
}

// Run runs one test on cfg and returns its diffs: none when it passes.
func Run(ctx context.Context, cfg *config.Config, t *Test) ([]string, error) {
	arrival := t.Arrival
	if arrival.IsZero() {
		arrival = time.Now()
	}
	var src *config.Source
	for i := range cfg.Sources {
		if cfg.Sources[i].Name == t.Source {
			src = &cfg.Sources[i]
		}
	}
	msgs := make([]record.Message, len(t.Input))
	for i, b := range t.Input {
		msgs[i] = record.Message{Data: b, Pos: record.Position{Partition: partition, Offset: int64(i)}, Arrival: arrival}
		if src.Type == "kafka" && len(src.Kafka.Topics) > 0 {
			msgs[i].Meta = &record.Meta{Topic: src.Kafka.Topics[0], Offset: int64(i), Timestamp: arrival}
		}
	}
	mem := &pipeline.Memory{Input: map[string][]record.Message{t.Source: msgs}}
	p, err := pipeline.New(cfg, zap.NewNop(), pipeline.InMemory(mem))
	if err != nil {
		return nil, err
	}
	if err := p.Run(ctx); err != nil {
		return nil, err
	}
	got := map[string]*written{}
	for _, sc := range cfg.Sinks {
		var w *written
		if s, ok := mem.Search[sc.Name]; ok {
			w, err = searchWritten(s.Documents)
		} else {
			w, err = storeWritten(ctx, cfg, &sc, mem.Stores[sc.Name].Data)
		}
		if err != nil {
			return nil, fmt.Errorf("sink %s: %w", sc.Name, err)
		}
		got[sc.Name] = w
	}
	var diffs []string
	for _, name := range slices.Sorted(maps.Keys(t.Sinks)) {
		diffs = append(diffs, compareSink(name, t.Sinks[name], got[name])...)
	}
	errs := p.Summary().ErrorsByType
	for _, typ := range ErrorTypes {
		if g, w := errs[typ], t.Errors[typ]; g != w {
			diffs = append(diffs, fmt.Sprintf("errors: %s: got %d, want %d", typ, g, w))
			diffs = append(diffs, errorDetails(ctx, mem, typ)...)
		}
	}
	return diffs, nil
}

// errorDetails lists the error records of a type, so that a diff says why
// records failed.
func errorDetails(ctx context.Context, mem *pipeline.Memory, typ string) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(mem.Stores)) {
		st := mem.Stores[name].Errors
		keys, _ := st.List(ctx, "")
		for _, k := range keys {
			b, err := st.Get(ctx, k)
			if err != nil {
				continue
			}
			b, _ = gunzip(k, b)
			for line := range bytes.Lines(b) {
				var e struct{ ErrorCode, ErrorMessage, ErrorOutputType string }
				if json.Unmarshal(line, &e) == nil && e.ErrorOutputType == typ {
					out = append(out, fmt.Sprintf("  %s: %s: %s", name, e.ErrorCode, e.ErrorMessage))
				}
			}
		}
	}
	return out
}

func searchWritten(docs func() ([]Document, error)) (*written, error) {
	ds, err := docs()
	if err != nil {
		return nil, err
	}
	w := &written{partitions: map[string]int64{}}
	for _, d := range ds {
		v, err := decodeJSON(d.Source)
		if err != nil {
			return nil, err
		}
		if m, ok := v.(map[string]any); ok {
			m["_index"], m["_id"] = d.Index, d.ID
		}
		w.records = append(w.records, v)
		w.partitions[d.Index]++
	}
	return w, nil
}

// object is one data object of a sink.
type object struct {
	key, prefix string
	first       int64
}

var rangeRE = regexp.MustCompile(`^\+0*([0-9]+)`)

// storeWritten decodes every data object of an object-store sink: objects
// in the order of the input position of their first record (then by key),
// rows in order within each.
func storeWritten(ctx context.Context, cfg *config.Config, sc *config.Sink, st *blob.MemStore) (*written, error) {
	keys, err := st.List(ctx, "")
	if err != nil {
		return nil, err
	}
	var objs []object
	for _, k := range keys {
		o := object{key: k, prefix: k[:strings.LastIndex(k, "/")+1]}
		for _, s := range cfg.Sources {
			id := objstore.StreamID(s.Name, partition)
			if i := strings.LastIndex(k, id+"+"); i >= 0 {
				o.prefix = k[:i]
				if m := rangeRE.FindStringSubmatch(k[i+len(id):]); m != nil {
					o.first, _ = strconv.ParseInt(m[1], 10, 64)
				}
				break
			}
		}
		objs = append(objs, o)
	}
	slices.SortStableFunc(objs, func(a, b object) int {
		if a.first != b.first {
			return int(a.first - b.first)
		}
		return strings.Compare(a.key, b.key)
	})
	w := &written{partitions: map[string]int64{}}
	for _, o := range objs {
		b, err := st.Get(ctx, o.key)
		if err != nil {
			return nil, err
		}
		rows, err := decodeObject(cfg, sc, o.key, b)
		if err != nil {
			return nil, fmt.Errorf("object %s: %w", o.key, err)
		}
		w.records = append(w.records, rows...)
		w.partitions[o.prefix] += int64(len(rows))
	}
	return w, nil
}

func gunzip(key string, b []byte) ([]byte, error) {
	if !strings.HasSuffix(key, ".gz") {
		return b, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

func decodeObject(cfg *config.Config, sc *config.Sink, key string, b []byte) ([]any, error) {
	if strings.HasSuffix(key, ".parquet") {
		return readParquet(sc, b)
	}
	b, err := gunzip(key, b)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(strings.TrimSuffix(key, ".gz"), ".csv") {
		return readCSV(cfg, sc, b)
	}
	var out []any
	for line := range bytes.Lines(b) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		v, err := decodeJSON(line)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// readCSV reads rows as header -> text. The header is the object's first
// line when the route's json_to_csv writes one, else its columns' headers.
func readCSV(cfg *config.Config, sc *config.Sink, b []byte) ([]any, error) {
	var j *config.JSONToCSV
	for _, r := range cfg.Routes {
		if !slices.Contains(r.To, sc.Name) {
			continue
		}
		for _, tr := range r.Transforms {
			if tr.JSONToCSV != nil && j == nil {
				j = tr.JSONToCSV
			}
		}
	}
	cr := csv.NewReader(bytes.NewReader(b))
	cr.FieldsPerRecord = -1
	var header []string
	if j != nil {
		cr.Comma = rune(j.Delimiter[0])
		if !j.Header {
			for _, c := range j.Columns {
				header = append(header, c.Header())
			}
		}
	}
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, err
	}
	if j != nil && j.Header && len(rows) > 0 {
		header, rows = rows[0], rows[1:]
	}
	var out []any
	for _, r := range rows {
		m := map[string]any{}
		for i, f := range r {
			k := strconv.Itoa(i + 1)
			if i < len(header) {
				k = header[i]
			}
			m[k] = f
		}
		out = append(out, m)
	}
	return out, nil
}

// readParquet reads rows as column -> value: timestamps as RFC 3339
// text, dates as YYYY-MM-DD, json columns and the extra column decoded.
func readParquet(sc *config.Sink, b []byte) ([]any, error) {
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	isJSON := map[string]bool{}
	for _, c := range sc.Schema {
		name := c.Column
		if name == "" {
			name = c.Name
		}
		isJSON[name] = c.Type == "json"
	}
	if sc.ExtraColumn != "" {
		isJSON[sc.ExtraColumn] = true
	}
	cols := f.Schema().Columns()
	leaves := make([]parquet.Node, len(cols))
	for i, path := range cols {
		leaf, _ := f.Schema().Lookup(path...)
		leaves[i] = leaf.Node
	}
	var out []any
	buf := make([]parquet.Row, 64)
	for _, rg := range f.RowGroups() {
		rr := rg.Rows()
		for {
			n, err := rr.ReadRows(buf)
			for _, row := range buf[:n] {
				m := map[string]any{}
				for _, v := range row {
					c := v.Column()
					name := strings.Join(cols[c], ".")
					x, err := parquetValue(leaves[c], v, isJSON[name])
					if err != nil {
						rr.Close()
						return nil, fmt.Errorf("column %s: %w", name, err)
					}
					m[name] = x
				}
				out = append(out, m)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				rr.Close()
				return nil, err
			}
		}
		rr.Close()
	}
	return out, nil
}

func parquetValue(n parquet.Node, v parquet.Value, isJSON bool) (any, error) {
	if v.IsNull() {
		return nil, nil
	}
	lt := n.Type().LogicalType()
	switch v.Kind() {
	case parquet.Boolean:
		return v.Boolean(), nil
	case parquet.Int32:
		if _, ok := logical(lt).(*format.DateType); ok {
			return time.Unix(int64(v.Int32())*86400, 0).UTC().Format(time.DateOnly), nil
		}
		return json.Number(strconv.FormatInt(int64(v.Int32()), 10)), nil
	case parquet.Int64:
		if ts, ok := logical(lt).(*format.TimestampType); ok && ts.Unit.Value != nil {
			t := time.Unix(0, v.Int64()*int64(ts.Unit.Value.Duration()))
			return t.UTC().Format(time.RFC3339Nano), nil
		}
		return json.Number(strconv.FormatInt(v.Int64(), 10)), nil
	case parquet.Float:
		return json.Number(strconv.FormatFloat(float64(v.Float()), 'g', -1, 32)), nil
	case parquet.Double:
		return json.Number(strconv.FormatFloat(v.Double(), 'g', -1, 64)), nil
	case parquet.ByteArray, parquet.FixedLenByteArray:
		if isJSON {
			return decodeJSON(v.ByteArray())
		}
		return string(v.ByteArray()), nil
	}
	return v.String(), nil
}

func compareSink(name string, want *SinkExpect, got *written) []string {
	var diffs []string
	if want.Count != nil && int64(len(got.records)) != *want.Count {
		diffs = append(diffs, fmt.Sprintf("%s: count: got %d, want %d", name, len(got.records), *want.Count))
	}
	if want.Partitions != nil {
		for _, p := range slices.Sorted(maps.Keys(union(want.Partitions, got.partitions))) {
			if g, w := got.partitions[p], want.Partitions[p]; g != w {
				diffs = append(diffs, fmt.Sprintf("%s: partitions[%q]: got %d, want %d", name, p, g, w))
			}
		}
	}
	for i, w := range want.Records {
		path := fmt.Sprintf("records[%d]", i)
		if i >= len(got.records) {
			diffs = append(diffs, fmt.Sprintf("%s: %s: missing (the sink wrote %d records), want %s", name, path, len(got.records), render(w)))
			continue
		}
		for _, d := range match(path, got.records[i], w) {
			diffs = append(diffs, name+": "+d)
		}
	}
	return diffs
}

func union(a, b map[string]int64) map[string]int64 {
	out := maps.Clone(a)
	for k, v := range b {
		out[k] += v - v
	}
	return out
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

func child(path, key string) string {
	if identRE.MatchString(key) {
		return path + "." + key
	}
	return fmt.Sprintf("%s[%q]", path, key)
}

// match compares got with want: objects as subsets (every key of want must
// match), arrays element by element, scalars by value.
func match(path string, got, want any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: got %s, want %s", path, render(got), render(want))}
		}
		var diffs []string
		for _, k := range slices.Sorted(maps.Keys(w)) {
			gv, ok := g[k]
			if !ok {
				diffs = append(diffs, fmt.Sprintf("%s: missing, want %s", child(path, k), render(w[k])))
				continue
			}
			diffs = append(diffs, match(child(path, k), gv, w[k])...)
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: got %s, want %s", path, render(got), render(want))}
		}
		var diffs []string
		for i := range w {
			diffs = append(diffs, match(fmt.Sprintf("%s[%d]", path, i), g[i], w[i])...)
		}
		return diffs
	}
	if !scalarEqual(got, want) {
		return []string{fmt.Sprintf("%s: got %s, want %s", path, render(got), render(want))}
	}
	return nil
}

// scalarEqual compares JSON scalars: numbers by value, times (RFC 3339) by
// instant, and a string with a number or bool by text (CSV fields are
// text).
func scalarEqual(got, want any) bool {
	if got == want {
		return true
	}
	gs, gIsStr := got.(string)
	ws, wIsStr := want.(string)
	gn, gIsNum := got.(json.Number)
	wn, wIsNum := want.(json.Number)
	switch {
	case gIsNum && wIsNum:
		return numEqual(string(gn), string(wn))
	case gIsStr && wIsStr:
		gt, err1 := time.Parse(time.RFC3339Nano, gs)
		wt, err2 := time.Parse(time.RFC3339Nano, ws)
		return err1 == nil && err2 == nil && gt.Equal(wt)
	case gIsStr && wIsNum:
		return numEqual(gs, string(wn))
	case gIsStr:
		if b, ok := want.(bool); ok {
			return gs == strconv.FormatBool(b)
		}
	}
	return false
}

func numEqual(a, b string) bool {
	x, ok1 := new(big.Float).SetString(a)
	y, ok2 := new(big.Float).SetString(b)
	return ok1 && ok2 && x.Cmp(y) == 0
}

func render(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func logical(lt *format.LogicalType) format.LogicalTypeValue {
	if lt == nil {
		return nil
	}
	return lt.Value
}
