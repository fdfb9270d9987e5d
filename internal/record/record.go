// Package record holds the types every stage of Sluice shares: the messages a
// source reads, the decoded records that routes and sinks see, their source
// positions, and the acknowledgement functions that carry durability back to the
// source.
package record

import (
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fastjson"
)

// Position says where a message came from. Positions are stable across runs
// and restarts, so names and ids derived from them make re-processing
// idempotent.
type Position struct {
	// Partition is the source partition: a file path, "topic/3", a shard id.
	Partition string
	// Offset orders messages inside a partition: a line number, a Kafka offset,
	// or the index a source assigns to a Kinesis sequence number.
	Offset int64
	// Token is the source's own stable name for the position when Offset is
	// not (a Kinesis sequence number); empty when Offset is enough.
	Token string
	// Sub names a record inside a message: "" for the message itself, "/2"
	// for the third object of a multi-object message, "/2/0" after an explode.
	Sub string
}

// String renders the position as partition:offset[sub], the form used in
// error records and logs.
func (p Position) String() string {
	return p.Partition + ":" + p.offsetText() + p.Sub
}

func (p Position) offsetText() string {
	if p.Token != "" {
		return p.Token
	}
	return strconv.FormatInt(p.Offset, 10)
}

// Child returns the position of the i-th record derived from p.
func (p Position) Child(i int) Position {
	p.Sub = p.Sub + "/" + strconv.Itoa(i)
	return p
}

// ObjectStem renders the position as a file-name-safe stem:
// source name, partition and offset, zero-padded so names sort in order.
func (p Position) ObjectStem(source string) string {
	var b strings.Builder
	b.Grow(len(source) + len(p.Partition) + 32)
	b.WriteString(SafeName(source))
	b.WriteByte('+')
	b.WriteString(SafeName(p.Partition))
	b.WriteByte('+')
	if p.Token != "" {
		b.WriteString(SafeName(p.Token))
	} else {
		s := strconv.FormatInt(p.Offset, 10)
		for i := len(s); i < 12; i++ {
			b.WriteByte('0')
		}
		b.WriteString(s)
	}
	if p.Sub != "" {
		b.WriteByte('+')
		b.WriteString(strings.ReplaceAll(strings.TrimPrefix(p.Sub, "/"), "/", "."))
	}
	return b.String()
}

// SafeName maps s onto [A-Za-z0-9._-], replacing every other byte with '_'.
func SafeName(s string) string {
	safe := true
	for i := 0; i < len(s); i++ {
		if !safeByte(s[i]) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	b := []byte(s)
	for i := range b {
		if !safeByte(b[i]) {
			b[i] = '_'
		}
	}
	return string(b)
}

func safeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'
}

// Message is one unit a source reads: a line of a file, a Kafka record, a
// Kinesis record. Data is not retained by the source after the batch is acked.
type Message struct {
	Data    []byte
	Pos     Position
	Arrival time.Time
	// Origin is the source that first read the message, when it is read
	// again from the archive; names and ids derive from it, so a replay
	// overwrites what the live path wrote.
	Origin string
	// Meta is the source's metadata for the message (Kafka: topic,
	// partition, offset, timestamp, key, headers), or nil.
	Meta *Meta
	// Err, when set, is why the source could not read the message (a
	// corrupt KPL aggregate); it goes to the error output with Data.
	Err error
}

// Meta is what a source knows about a message besides its bytes.
type Meta struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Headers   []Header
}

// Header is one message header.
type Header struct {
	Key   string
	Value []byte
}

// Batch is what a source hands out in one ReadBatch call.
type Batch struct {
	// Source is the configured name of the source.
	Source   string
	Messages []Message
}

// Record is one decoded record on its way through routes to sinks.
//
// Value points into a parser owned by the pipeline worker; it is valid only
// until the worker moves to the next message, so sinks must encode what they
// need before returning.
type Record struct {
	Source    string
	Value     *fastjson.Value // nil for format raw
	Raw       []byte          // the message bytes the record was decoded from
	Pos       Position
	EventTime time.Time
	Arrival   time.Time
	// CSV is set by the json_to_csv transform: the rendered line without its
	// terminator, and the header line for the columns.
	CSV       []byte
	CSVHeader []byte
}

// ReadError says that part of a source partition could not be read: a
// truncated or corrupt compressed file, a path that is not a readable file,
// a line longer than the source allows. A source hands it on as a Message
// with Err set, at a stable position, so the part goes to the error output
// (code Sluice.ReadFailed) and the source goes on with the rest.
type ReadError struct {
	// Partition is the file (or other partition) that failed.
	Partition string
	// First and Last are the lines (or offsets) the failure covers: First 0
	// means the partition as a whole could not be opened ("whole file" in
	// the message); Last -1 means from First to the end.
	First, Last int64
	Err         error
}

func (e *ReadError) Error() string {
	switch {
	case e.First == 0:
		return e.Partition + ": whole file: " + e.Err.Error()
	case e.Last < 0:
		return e.Partition + ": lines " + strconv.FormatInt(e.First, 10) + "-end: " + e.Err.Error()
	case e.First == e.Last:
		return e.Partition + ": line " + strconv.FormatInt(e.First, 10) + ": " + e.Err.Error()
	}
	return e.Partition + ": lines " + strconv.FormatInt(e.First, 10) + "-" + strconv.FormatInt(e.Last, 10) + ": " + e.Err.Error()
}

func (e *ReadError) Unwrap() error { return e.Err }
