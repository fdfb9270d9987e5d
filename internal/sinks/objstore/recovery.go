package objstore

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/sluice-data/sluice/internal/record"
)

// seq is a record's place in its stream (one source partition's records
// for one lake partition): its message's offset, or decimal token when the
// source's positions do not fit an int64, and k, its ordinal among the
// message's records in the stream.
type seq struct {
	off int64
	tok string
	k   int32
}

func seqOf(p record.Position) seq { return seq{off: p.Offset, tok: p.Token} }

// num is the message position as a decimal without leading zeros.
func (a seq) num() string {
	if a.tok == "" {
		return strconv.FormatInt(a.off, 10)
	}
	if t := strings.TrimLeft(a.tok, "0"); t != "" {
		return t
	}
	return "0"
}

// cmpMsg orders message positions, ignoring k.
func cmpMsg(a, b seq) int {
	if a.tok == "" && b.tok == "" {
		return cmp.Compare(a.off, b.off)
	}
	x, y := a.num(), b.num()
	if len(x) != len(y) {
		return cmp.Compare(len(x), len(y))
	}
	return strings.Compare(x, y)
}

func cmpSeq(a, b seq) int {
	if c := cmpMsg(a, b); c != 0 {
		return c
	}
	return cmp.Compare(a.k, b.k)
}

// appendText renders a place for an object name: the offset zero-padded to
// 12 digits so names sort in order (or the token), then ".k" when k > 0.
func (a seq) appendText(dst []byte) []byte {
	if a.tok != "" {
		dst = append(dst, a.tok...)
	} else {
		n := strconv.FormatInt(a.off, 10)
		if len(n) < 12 {
			dst = append(dst, "000000000000"[len(n):]...)
		}
		dst = append(dst, n...)
	}
	if a.k > 0 {
		dst = append(dst, '.')
		dst = strconv.AppendInt(dst, int64(a.k), 10)
	}
	return dst
}

// parseSeq reads a place from the start of s and returns the rest.
func parseSeq(s string) (seq, string, bool) {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	if n == 0 {
		return seq{}, s, false
	}
	var a seq
	if n <= 18 {
		a.off, _ = strconv.ParseInt(s[:n], 10, 64)
	} else {
		a.tok = s[:n]
	}
	s = s[n:]
	if len(s) > 1 && s[0] == '.' && s[1] >= '0' && s[1] <= '9' {
		m := 1
		for m < len(s) && s[m] >= '0' && s[m] <= '9' {
			m++
		}
		k, err := strconv.ParseInt(s[1:m], 10, 32)
		if err != nil {
			return seq{}, s, false
		}
		a.k, s = int32(k), s[m:]
	}
	return a, s, true
}

// span is the range of places an object holds.
type span struct{ first, last seq }

// StreamID names a source partition in object names: the source name and
// the partition, each reduced to [A-Za-z0-9._-]. A partition that had to
// be changed (a file path's slashes) gets a hash of the original, so two
// partitions never share a name. Each part is cut to maxIDPart bytes (then
// also with the hash), so that an object's name stays under the 255 bytes
// a file system takes: a 247-byte file name once made every object from
// its file fail with ENAMETOOLONG until the run gave up.
func StreamID(source, partition string) string {
	return safeID(source) + "+" + safeID(partition)
}

// maxIDPart bounds each part of a stream id: two parts, the '+', two
// places (a Kafka offset, or a 56-digit Kinesis sequence number beside a
// 20-byte shard id) and ".ndjson.gz" stay under 255.
const maxIDPart = 64

func safeID(s string) string {
	safe := record.SafeName(s)
	if safe == s && len(s) <= maxIDPart {
		return s
	}
	h := fnv.New32a()
	h.Write([]byte(s))
	sum := strconv.FormatUint(uint64(h.Sum32()), 36)
	if len(safe)+1+len(sum) <= maxIDPart {
		return safe + "." + sum
	}
	// Cut names share their first bytes, so the hash alone tells them
	// apart: 64 bits of it, so that two partitions of one source (whose
	// ranges may overlap, as line numbers do) never share a name, which
	// recovery would take for the other's durable records.
	h64 := fnv.New64a()
	h64.Write([]byte(s))
	sum = strconv.FormatUint(h64.Sum64(), 36)
	return safe[:maxIDPart-1-len(sum)] + "." + sum
}

// objectExts are the extensions the sink writes.
var objectExts = []string{".parquet", ".ndjson", ".ndjson.gz", ".csv", ".csv.gz"}

// parseObjectName reads stream id and range from the name of an object the
// sink wrote (without its prefix). Other names are not ours.
func parseObjectName(name string) (id string, sp span, ok bool) {
	i := strings.LastIndexByte(name, '+')
	if i < 0 || strings.Count(name[:i], "+") != 1 || strings.IndexByte(name, '/') >= 0 {
		return "", span{}, false
	}
	id = name[:i]
	first, rest, ok := parseSeq(name[i+1:])
	if !ok || len(rest) == 0 || rest[0] != '-' {
		return "", span{}, false
	}
	last, rest, ok := parseSeq(rest[1:])
	if !ok || !slices.Contains(objectExts, rest) || cmpSeq(first, last) > 0 {
		return "", span{}, false
	}
	return id, span{first, last}, true
}

// mergeSpans sorts spans and merges those that overlap or touch, so that a
// covered place is found by a forward scan.
func mergeSpans(in []span) []span {
	slices.SortFunc(in, func(a, b span) int { return cmpSeq(a.first, b.first) })
	out := in[:0]
	for _, s := range in {
		if n := len(out); n > 0 && cmpSeq(s.first, out[n-1].last) <= 0 {
			if cmpSeq(s.last, out[n-1].last) > 0 {
				out[n-1].last = s.last
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

// listDurable lists a lake partition's prefix (or an error output prefix)
// in the store its objects go to, and returns, per stream id, the merged
// ranges of the objects in it. lpKey is the kind byte and the prefix.
// Listing is retried like writes.
func (s *Sink) listDurable(ctx context.Context, lpKey string) (map[string][]span, error) {
	var keys []string
	store, prefix := s.storeFor(lpKey[0]), lpKey[1:]
	err := s.retry(ctx, "list "+prefix, func() (err error) {
		keys, err = store.List(ctx, prefix)
		return err
	})
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("recovery: %w", err)
	}
	s.lists.Inc()
	var out map[string][]span
	for _, k := range keys {
		id, sp, ok := parseObjectName(strings.TrimPrefix(k, prefix))
		if !ok {
			continue
		}
		if out == nil {
			out = map[string][]span{}
		}
		out[id] = append(out[id], sp)
	}
	for id, spans := range out {
		out[id] = mergeSpans(spans)
	}
	return out, nil
}
