// Command floor is the bench harness's lower bound: the bench workload's
// job (test/bench/bench.yaml: app logs to Parquet partitioned by
// project_id, plan_ver, year, month, day and hour) done as bare as it can
// be, on one core. It parses each line with fastjson, computes the
// partition natively, and writes the declared columns plus the unlisted
// fields as JSON into one Parquet file per partition, with the very
// writer options of Sluice's object store (objstore.ParquetWriterOptions).
// No routing, no acks, no checkpoints, no fsync, no UTF-8 or number
// checks, no recovery listing.
//
// The input is ordered by event time (test/bench/gen writes it so, with a
// minute of jitter): a partition's file is closed once the input is two
// hours past its hour, so each partition becomes one object, as in
// Sluice's run, while only a few hours of partitions are open at a time.
//
// Usage: floor -c test/bench/bench.yaml -i INPUT -o OUTDIR
//
// It prints one line: records, objects, output bytes, and the CPU time of
// the process.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/valyala/fastjson"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/sinks/objstore"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run() error {
	conf := flag.String("c", "test/bench/bench.yaml", "bench config: its sink's schema, compression and extra_column are used")
	sinkName := flag.String("sink", "lake", "sink of the config to take the schema from")
	in := flag.String("i", "", "input NDJSON")
	out := flag.String("o", "", "output directory")
	procs := flag.Int("procs", 1, "GOMAXPROCS")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here")
	flag.Parse()
	if *in == "" || *out == "" {
		return errors.New("-i and -o are required")
	}
	runtime.GOMAXPROCS(*procs)
	// The config names its input and output through these; the floor
	// reads only its sink's schema.
	os.Setenv("BENCH_INPUT", *in)
	os.Setenv("BENCH_OUT", *out)
	cfg, err := config.Load(*conf)
	if err != nil {
		return err
	}
	var sink *config.Sink
	for i := range cfg.Sinks {
		if cfg.Sinks[i].Name == *sinkName {
			sink = &cfg.Sinks[i]
		}
	}
	if sink == nil || sink.Format != "parquet" {
		return fmt.Errorf("%s: no parquet sink %q", *conf, *sinkName)
	}
	f, err := newFloor(sink, *out)
	if err != nil {
		return err
	}
	src, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer src.Close()
	if *cpuprofile != "" {
		pf, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	if err := f.copy(src); err != nil {
		return err
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	fmt.Printf("floor: records=%d objects=%d bytes=%d wall=%.2fs cpu=%.2fs\n",
		f.records, f.objects, f.bytes, time.Since(start).Seconds(), cpu.Seconds())
	return nil
}

// column is one declared column.
type column struct {
	path []string // the field, "context.line" as ["context", "line"]
	typ  string
}

// node marks the fields the columns take, so that the rest goes to the
// extra column: a leaf is taken whole, an inner node only in part.
type node struct {
	leaf bool
	kids map[string]*node
}

func (n *node) add(path []string) {
	for _, k := range path {
		if n.kids == nil {
			n.kids = map[string]*node{}
		}
		c := n.kids[k]
		if c == nil {
			c = &node{}
			n.kids[k] = c
		}
		n = c
	}
	n.leaf = true
}

type partition struct {
	hour  int64 // event hour, Unix hours
	file  *os.File
	buf   *bufio.Writer
	w     *parquet.Writer // made once sampleRows rows are in, or at close
	sink  *config.Sink
	rows  []parquet.Row // written to w rowsPerWrite at a time
	arena arena         // the bytes rows point to
}

// rowsPerWrite is how many rows go to the Parquet writer at once, as in
// the object store's encoder: a call per row costs twice as much.
const rowsPerWrite = 512

// sampleRows is how many rows an object holds before its writer is made:
// the sink chooses an object's dictionary columns from a sample this large
// (objstore's dictSample), and so does the floor.
const sampleRows = 4096

// arena holds copies of values for a partition's pending rows in chunks
// that never move, so a row can point into it until it is written.
type arena struct {
	chunks [][]byte
	cur    int
}

func (a *arena) copy(b []byte) []byte {
	for {
		if a.cur < len(a.chunks) {
			c := a.chunks[a.cur]
			if len(c)+len(b) <= cap(c) {
				n := len(c)
				c = append(c, b...)
				a.chunks[a.cur] = c
				return c[n:len(c):len(c)]
			}
			a.cur++
			continue
		}
		a.chunks = append(a.chunks, make([]byte, 0, max(64<<10, len(b))))
	}
}

func (a *arena) reset() {
	for i := range a.chunks {
		a.chunks[i] = a.chunks[i][:0]
	}
	a.cur = 0
}

type floor struct {
	dir     string
	sink    *config.Sink
	cols    []column
	taken   node // the fields the columns take
	extra   bool
	parser  fastjson.Parser
	parts   map[string]*partition
	key     []byte
	extraB  []byte
	num     []byte
	latest  int64
	records int
	objects int
	bytes   int64
}

// seedKeys are the partition keys of the bench, the seed's Firehose keys.
const seedKeys = `project_id: .project_id; plan_ver: .plan_ver; year: .event_timestamp| strftime("%Y"); ` +
	`month: .event_timestamp| strftime("%m"); day: .event_timestamp| strftime("%d"); hour: .event_timestamp| strftime("%H")`

func newFloor(s *config.Sink, dir string) (*floor, error) {
	f := &floor{dir: dir, sink: s, parts: map[string]*partition{}, extra: s.ExtraColumn != ""}
	// The floor computes these keys natively; any others are not its job.
	var keys []string
	for _, kv := range s.PartitionKeys {
		keys = append(keys, kv.Key+": "+kv.Value)
	}
	if got := strings.Join(keys, "; "); got != seedKeys || s.Prefix != "" {
		return nil, fmt.Errorf("partition keys %q (prefix %q): the floor computes only the default prefix of %q", got, s.Prefix, seedKeys)
	}
	for _, c := range s.Schema {
		switch c.Type {
		case "string", "int64", "double", "json":
		default:
			return nil, fmt.Errorf("column %s: the floor handles string, int64, double and json columns, not %s", c.Name, c.Type)
		}
		path := strings.Split(c.Name, ".")
		f.cols = append(f.cols, column{path: path, typ: c.Type})
		f.taken.add(path)
	}
	return f, nil
}

// copy reads NDJSON lines from r and writes them to their partitions.
func (f *floor) copy(r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return errors.New("line over 1 MiB")
		}
		if len(bytes.TrimSpace(line)) > 0 {
			if werr := f.write(line); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	for k, p := range f.parts {
		if err := f.close(k, p); err != nil {
			return err
		}
	}
	return nil
}

func (f *floor) write(line []byte) error {
	v, err := f.parser.ParseBytes(line)
	if err != nil {
		return fmt.Errorf("record %d: %w", f.records+1, err)
	}
	o, err := v.Object()
	if err != nil {
		return fmt.Errorf("record %d: %w", f.records+1, err)
	}
	f.records++
	// The partition: the seed's six keys, computed natively.
	ts := v.GetInt64("event_timestamp")
	t := time.Unix(ts, 0).UTC()
	f.key = append(f.key[:0], "project_id="...)
	f.key = append(f.key, v.GetStringBytes("project_id")...)
	f.key = append(f.key, "/plan_ver="...)
	f.key = append(f.key, v.GetStringBytes("plan_ver")...)
	f.key = append(f.key, "/year="...)
	f.key = strconv.AppendInt(f.key, int64(t.Year()), 10)
	f.key = append(f.key, "/month="...)
	f.key = appendTwo(f.key, int(t.Month()))
	f.key = append(f.key, "/day="...)
	f.key = appendTwo(f.key, t.Day())
	f.key = append(f.key, "/hour="...)
	f.key = appendTwo(f.key, t.Hour())
	p := f.parts[string(f.key)]
	if p == nil {
		if p, err = f.open(string(f.key), ts/3600); err != nil {
			return err
		}
	}
	// The row: the declared columns, then the rest as one JSON object.
	var row parquet.Row
	if n := len(p.rows); n < cap(p.rows) {
		row = p.rows[:n+1][n][:0]
	} else {
		row = make(parquet.Row, 0, len(f.cols)+1)
	}
	for i, c := range f.cols {
		fv := v.Get(c.path...)
		if fv == nil || fv.Type() == fastjson.TypeNull {
			row = append(row, parquet.NullValue().Level(0, 0, i))
			continue
		}
		var pv parquet.Value
		switch c.typ {
		case "string":
			if fv.Type() == fastjson.TypeString {
				pv = parquet.ByteArrayValue(p.arena.copy(fv.GetStringBytes()))
				break
			}
			fallthrough
		case "json":
			f.num = fv.MarshalTo(f.num[:0])
			pv = parquet.ByteArrayValue(p.arena.copy(f.num))
		case "int64":
			n, err := fv.Int64()
			if err != nil {
				return fmt.Errorf("record %d: column %s: %w", f.records, strings.Join(c.path, "."), err)
			}
			pv = parquet.Int64Value(n)
		case "double":
			x, err := fv.Float64()
			if err != nil {
				return fmt.Errorf("record %d: column %s: %w", f.records, strings.Join(c.path, "."), err)
			}
			pv = parquet.DoubleValue(x)
		}
		row = append(row, pv.Level(0, 1, i))
	}
	if f.extra {
		i := len(f.cols)
		var any bool
		if f.extraB, any = appendExtra(f.extraB[:0], o, &f.taken); any {
			row = append(row, parquet.ByteArrayValue(p.arena.copy(f.extraB)).Level(0, 1, i))
		} else {
			row = append(row, parquet.NullValue().Level(0, 0, i))
		}
	}
	p.rows = append(p.rows, row)
	if len(p.rows) == rowsPerWrite && p.w != nil || len(p.rows) == sampleRows {
		if err := p.writeRows(); err != nil {
			return err
		}
	}
	if h := ts / 3600; h > f.latest {
		f.latest = h
		for k, q := range f.parts {
			if q.hour < h-1 {
				if err := f.close(k, q); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (p *partition) writeRows() error {
	if p.w == nil {
		// The object's dictionary columns, chosen from its first rows as
		// the sink chooses them.
		dict, err := objstore.ParquetDictionaries(p.sink, p.rows)
		if err != nil {
			return err
		}
		opts, err := objstore.ParquetWriterOptions(p.sink, dict)
		if err != nil {
			return err
		}
		p.w = parquet.NewWriter(p.buf, opts...)
	}
	if _, err := p.w.WriteRows(p.rows); err != nil {
		return err
	}
	p.rows = p.rows[:0]
	p.arena.reset()
	return nil
}

// appendExtra appends, as one JSON object, the fields of o the columns
// do not take; any reports whether there was one.
func appendExtra(dst []byte, o *fastjson.Object, taken *node) (out []byte, any bool) {
	start := len(dst)
	dst = append(dst, '{')
	o.Visit(func(k []byte, v *fastjson.Value) {
		t := taken.kids[string(k)]
		if t != nil && t.leaf {
			return
		}
		mark := len(dst)
		if len(dst) > start+1 {
			dst = append(dst, ',')
		}
		dst = appendKey(dst, k)
		dst = append(dst, ':')
		if t != nil && v.Type() == fastjson.TypeObject {
			inner, _ := v.Object()
			var some bool
			if dst, some = appendExtra(dst, inner, t); !some {
				dst = dst[:mark]
			}
			return
		}
		dst = v.MarshalTo(dst)
	})
	if len(dst) == start+1 {
		return dst[:start], false
	}
	return append(dst, '}'), true
}

// appendKey appends k as a JSON string; keys needing no escapes, the
// common case, are copied as they are.
func appendKey(b, k []byte) []byte {
	for _, c := range k {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(string(k))
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, k...)
	return append(b, '"')
}

func appendTwo(b []byte, n int) []byte {
	return append(b, byte('0'+n/10), byte('0'+n%10))
}

func (f *floor) open(key string, hour int64) (*partition, error) {
	dir := filepath.Join(f.dir, key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	file, err := os.Create(filepath.Join(dir, "part.parquet"))
	if err != nil {
		return nil, err
	}
	p := &partition{hour: hour, file: file, buf: bufio.NewWriterSize(file, 64<<10), sink: f.sink}
	f.parts[key] = p
	return p, nil
}

func (f *floor) close(key string, p *partition) error {
	delete(f.parts, key)
	if err := p.writeRows(); err != nil {
		return err
	}
	if err := p.w.Close(); err != nil {
		return err
	}
	if err := p.buf.Flush(); err != nil {
		return err
	}
	st, err := p.file.Stat()
	if err != nil {
		return err
	}
	f.objects++
	f.bytes += st.Size()
	return p.file.Close()
}
