// Package archivefmt is the raw event archive's format, shared by the
// object-store sink that writes it (format: raw) and the archive source
// that reads it back, so that neither imports the other.
//
// An archive object holds one envelope a line, in NDJSON: where the record
// came from (source name and position), when it arrived, and its bytes in
// base64. Objects go under a Hive-style arrival date and hour (Layout),
// which the archive source lists one hour at a time (HourPrefix).
package archivefmt

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/sluice-data/sluice/internal/jsonx"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/template"
)

// Layout is the default prefix of a raw-archive sink: Hive-style arrival
// date and hour.
const Layout = "dt=!{arrival:yyyy-MM-dd}/hour=!{arrival:HH}/"

// layout is Layout parsed, for HourPrefix.
var layout = func() *template.Template {
	t, err := template.Parse(Layout)
	if err != nil {
		panic("archivefmt: Layout: " + err.Error())
	}
	return t
}()

// HourPrefix returns the key prefix, under Layout, of the objects of the
// hour that holds t (in UTC), e.g. "dt=2024-11-03/hour=07/".
func HourPrefix(t time.Time) string {
	return string(layout.Append(nil, template.Values{Arrival: t}))
}

// Append renders a record as one envelope line, ending in a newline.
// Token and Sub are left out when empty.
func Append(dst []byte, rec *record.Record) []byte {
	dst = append(dst, `{"source":`...)
	dst = jsonx.AppendString(dst, []byte(rec.Source))
	dst = append(dst, `,"partition":`...)
	dst = jsonx.AppendString(dst, []byte(rec.Pos.Partition))
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, rec.Pos.Offset, 10)
	if rec.Pos.Token != "" {
		dst = append(dst, `,"token":`...)
		dst = jsonx.AppendString(dst, []byte(rec.Pos.Token))
	}
	if rec.Pos.Sub != "" {
		dst = append(dst, `,"sub":`...)
		dst = jsonx.AppendString(dst, []byte(rec.Pos.Sub))
	}
	dst = append(dst, `,"arrival":`...)
	dst = strconv.AppendInt(dst, rec.Arrival.UnixMilli(), 10)
	dst = append(dst, `,"data":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, rec.Raw)
	return append(dst, "\"}\n"...)
}

// envelope is the JSON shape Append writes.
type envelope struct {
	Source    string `json:"source"`
	Partition string `json:"partition"`
	Offset    int64  `json:"offset"`
	Token     string `json:"token"`
	Sub       string `json:"sub"`
	Arrival   int64  `json:"arrival"`
	Data      []byte `json:"data"`
}

// Decode parses one envelope line back into the message it was read as:
// its bytes, its position, its arrival time (to the millisecond, in UTC)
// and, as Origin, the name of the source that first read it. Names are
// JSON strings, so bytes in them that are not UTF-8 come back as U+FFFD.
func Decode(line []byte) (record.Message, error) {
	var e envelope
	if err := json.Unmarshal(line, &e); err != nil {
		return record.Message{}, fmt.Errorf("not an archive envelope: %w", err)
	}
	// A position goes into object names (a token verbatim): one Sluice
	// could not have written is refused, so "../../x" or a 5,000-digit
	// token never reaches a key.
	if e.Offset < 0 {
		return record.Message{}, fmt.Errorf("not an archive envelope: offset %d is negative", e.Offset)
	}
	if !isSequenceNumber(e.Token) {
		return record.Message{}, fmt.Errorf("not an archive envelope: token %q is not a sequence number (up to %d decimal digits)", shorten(e.Token), maxTokenDigits)
	}
	return record.Message{
		Data:    e.Data,
		Pos:     record.Position{Partition: e.Partition, Offset: e.Offset, Token: e.Token, Sub: e.Sub},
		Arrival: time.UnixMilli(e.Arrival).UTC(),
		Origin:  e.Source,
	}, nil
}

// maxTokenDigits is the longest token Decode takes: a Kinesis sequence
// number is at most 129 digits (the API's pattern 0|([1-9]\d{0,128})).
const maxTokenDigits = 129

// isSequenceNumber reports whether t is empty or decimal digits, as the
// tokens sources write are.
func isSequenceNumber(t string) bool {
	if len(t) > maxTokenDigits {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] < '0' || t[i] > '9' {
			return false
		}
	}
	return true
}

func shorten(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
